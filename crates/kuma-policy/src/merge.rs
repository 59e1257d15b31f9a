//! Folding policy confs, least important first, into one.
//!
//! Kuma merges with JSON merge patch (RFC 7396): objects merge key by key,
//! scalars and lists are replaced by the later conf, `null` deletes. Two
//! exceptions keep lists from several policies:
//! - fields named `append*` (`appendModifications`, `appendProfiles`,
//!   `appendMatch`) concatenate, earlier confs first;
//! - keyed lists (MeshHTTPRoute `rules`, keyed by `matches`) concatenate,
//!   then entries with equal keys fold into one, placed where the key last
//!   appeared.

use std::sync::Arc;

use serde_json::{Map, Value};

use kuma_api::Kind;

/// A list field whose entries are folded per key instead of replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedList {
    /// The list field of the conf (`rules`).
    pub field: &'static str,
    /// The field of each entry identifying it (`matches`).
    pub key: &'static str,
    /// The field of each entry holding what is folded (`default`).
    pub value: &'static str,
}

/// How confs of one policy kind fold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStrategy {
    pub keyed_lists: &'static [KeyedList],
}

const APPEND_PREFIX: &str = "append";

const HTTP_ROUTE_RULES: &[KeyedList] = &[KeyedList {
    field: "rules",
    key: "matches",
    value: "default",
}];

impl MergeStrategy {
    /// The strategy Kuma's conf types declare for `kind`.
    pub fn for_kind(kind: Kind) -> MergeStrategy {
        match kind {
            Kind::MeshHTTPRoute => MergeStrategy {
                keyed_lists: HTTP_ROUTE_RULES,
            },
            _ => MergeStrategy::default(),
        }
    }

    /// Folds `confs` in order: later confs win.
    ///
    /// The fold is built over references to the confs and only its result
    /// is copied into a new value: thousands of policies fold into a few
    /// hundred rules, and copying every conf into every rule it joins (then
    /// overwriting most of it) was most of the cost of building rules.
    pub fn fold<'a>(&self, confs: impl IntoIterator<Item = &'a Value>) -> Value {
        let mut iter = confs.into_iter();
        let Some(first) = iter.next() else {
            return Value::Object(Map::new());
        };
        let (folded, _) = self.fold_onto(first, iter);
        self.finish(folded)
    }

    /// [`MergeStrategy::fold`] of shared confs, sharing the result too: a
    /// fold that only meets its first conf (and repeats of it) is that
    /// conf, not a copy. Most destinations of a proxy fold one conf.
    pub fn fold_shared<'a>(&self, confs: impl IntoIterator<Item = &'a Arc<Value>>) -> Arc<Value> {
        let mut iter = confs.into_iter();
        let Some(first) = iter.next() else {
            return Arc::new(Value::Object(Map::new()));
        };
        let (folded, patched) = self.fold_onto(first, iter.map(|conf| &**conf));
        if !patched && self.keeps_as_is(first) {
            return first.clone();
        }
        Arc::new(self.finish(folded))
    }

    /// The keyed-list field that folding `confs` only joins, if it does:
    /// when every conf holds nothing but that one list, non-empty, of
    /// `{key, value}` entries whose keys are all distinct, the fold is
    /// `{field: every conf's entries, in order}` (routes aimed at one
    /// destination mostly match on paths of their own). Readers can then
    /// take the entries from the confs instead of a folded copy.
    pub fn joins<'v>(&self, confs: impl IntoIterator<Item = &'v Value>) -> Option<&'static str> {
        let confs: Vec<&Value> = confs.into_iter().collect();
        let keys: Vec<Option<JoinKeys>> = confs.iter().map(|c| self.join_keys(c)).collect();
        self.joins_by_keys(confs.into_iter().zip(keys.iter().map(Option::as_ref)))
    }

    /// What [`MergeStrategy::joins`] reads of one conf, worked out once
    /// for a conf that takes part in many folds (see [`JoinKeys`]).
    pub fn join_keys(&self, conf: &Value) -> Option<JoinKeys> {
        let [keyed] = self.keyed_lists else {
            return None;
        };
        only_list(conf, keyed)?
            .iter()
            .map(|entry| {
                let key = entry.get(keyed.key).filter(|_| is_pair(entry, keyed))?;
                Some(shape_hash(key))
            })
            .collect::<Option<Box<[u64]>>>()
            .map(JoinKeys)
    }

    /// [`MergeStrategy::joins`] of confs with their
    /// [`MergeStrategy::join_keys`] (`None` for a conf that has none): keys
    /// are told apart by their hashes, and only keys with the same hash
    /// are read and compared.
    pub fn joins_by_keys<'v>(
        &self,
        confs: impl IntoIterator<Item = (&'v Value, Option<&'v JoinKeys>)>,
    ) -> Option<&'static str> {
        let [keyed] = self.keyed_lists else {
            return None;
        };
        let confs: Vec<(&Value, &JoinKeys)> = confs
            .into_iter()
            .map(|(conf, keys)| Some((conf, keys?)))
            .collect::<Option<_>>()?;
        // (hash, (conf, entry)) of every entry.
        let mut keys: Vec<(u64, (usize, usize))> =
            Vec::with_capacity(confs.iter().map(|(_, keys)| keys.0.len()).sum());
        for (c, (_, hashes)) in confs.iter().enumerate() {
            keys.extend(hashes.0.iter().enumerate().map(|(e, h)| (*h, (c, e))));
        }
        let key = |&(c, e): &(usize, usize)| only_list(confs[c].0, keyed)?.get(e)?.get(keyed.key);
        distinct_by_hash(&mut keys, key).then_some(keyed.field)
    }

    /// Whether a fold of `conf` followed by the very same value again is
    /// `conf` as it is: without appending fields, keyed lists or `null`s
    /// (which a repeat would delete), a merge patch is idempotent.
    pub fn repeats_are_no_ops(&self, conf: &Value) -> bool {
        self.keyed_lists.is_empty()
            && !appends(conf)
            && !matches!(conf, Value::Object(m) if has_null_member(m))
    }

    /// The fold of `first` and `rest`, and whether any of `rest` was
    /// applied (otherwise the fold is `first` as it is).
    fn fold_onto<'a>(
        &self,
        first: &'a Value,
        rest: impl Iterator<Item = &'a Value>,
    ) -> (Folded<'a>, bool) {
        let mut folded = Folded::Conf(first);
        let mut last = first;
        // Whether `last` appends anywhere, once asked.
        let mut last_appends = None;
        let mut patched = false;
        for conf in rest {
            // A merge patch applied twice in a row changes nothing more,
            // unless it appends: many policies often carry one conf. The
            // first conf is taken as it is, not applied: its `null`s are
            // still there for a repeat to delete. Equal confs read together
            // are one value (`SharedConfs`): a repeat by address is known
            // without comparing them.
            if self.keyed_lists.is_empty()
                && (if std::ptr::eq(last, conf) {
                    !*last_appends.get_or_insert_with(|| appends(last))
                } else {
                    repeats(last, conf)
                })
                && (patched || !matches!(first, Value::Object(m) if has_null_member(m)))
            {
                continue;
            }
            folded.patch(conf, self.keyed_lists);
            last = conf;
            last_appends = None;
            patched = true;
        }
        (folded, patched)
    }

    /// The folded value, keyed lists folded per key. The lists are folded
    /// over references, so each entry is copied once, into the result.
    fn finish(&self, mut folded: Folded<'_>) -> Value {
        let merged: Vec<(&KeyedList, Vec<Value>)> = self
            .keyed_lists
            .iter()
            .filter_map(|keyed| {
                let entries = folded.take_list(keyed.field)?;
                Some((keyed, fold_by_key(&entries, keyed)))
            })
            .collect();
        let mut result = folded.into_value();
        for (keyed, entries) in merged {
            if let Some(list) = result.get_mut(keyed.field) {
                *list = Value::Array(entries);
            }
        }
        result
    }

    /// Whether a conf folded alone is itself: always, but for keyed lists
    /// with a repeated key or entries other than exactly `{key, value}`
    /// (in that order), which folding per key rewrites.
    fn keeps_as_is(&self, conf: &Value) -> bool {
        self.keyed_lists
            .iter()
            .all(|keyed| match conf.get(keyed.field) {
                Some(Value::Array(entries)) => distinct_pairs(entries, keyed),
                _ => true,
            })
    }
}

/// The [`shape_hash`] of each entry's key of a conf that holds nothing but
/// its strategy's one keyed list, non-empty, of `{key, value}` pairs: what
/// deciding whether folds of it only join keyed lists reads of it
/// ([`MergeStrategy::joins_by_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKeys(Box<[u64]>);

/// The keyed list `conf` holds, when it holds nothing else and the list is
/// not empty.
fn only_list<'v>(conf: &'v Value, keyed: &KeyedList) -> Option<&'v [Value]> {
    match conf {
        Value::Object(map) if map.len() == 1 => match map.get(keyed.field) {
            Some(Value::Array(list)) if !list.is_empty() => Some(list),
            _ => None,
        },
        _ => None,
    }
}

/// Whether every entry of a keyed list is a `{key, value}` pair and no two
/// keys are equal: what folding per key gives back as it is. Keys are told
/// apart by their [`shape_hash`] first; only keys with the same hash are
/// compared.
fn distinct_pairs<'v>(entries: impl IntoIterator<Item = &'v Value>, keyed: &KeyedList) -> bool {
    let mut keys: Vec<(u64, &Value)> = Vec::new();
    for entry in entries {
        let Some(key) = entry.get(keyed.key).filter(|_| is_pair(entry, keyed)) else {
            return false;
        };
        keys.push((shape_hash(key), key));
    }
    distinct_by_hash(&mut keys, |key| Some(*key))
}

/// Whether no two of `keys` are [`equal`], each given with its
/// [`shape_hash`]: sorted by hash, only keys with the same hash are read
/// (`key`, `None` when one cannot be, which counts as not distinct) and
/// compared.
fn distinct_by_hash<'v, T>(keys: &mut [(u64, T)], key: impl Fn(&T) -> Option<&'v Value>) -> bool {
    keys.sort_unstable_by_key(|(hash, _)| *hash);
    keys.chunk_by(|a, b| a.0 == b.0).all(|same_hash| {
        if let [_] = same_hash {
            return true;
        }
        let values: Vec<Option<&Value>> = same_hash.iter().map(|(_, k)| key(k)).collect();
        values.iter().enumerate().all(|(at, value)| {
            value.is_some_and(|v| {
                !values[at + 1..]
                    .iter()
                    .any(|o| o.is_some_and(|o| equal(o, v)))
            })
        })
    })
}

/// A hash of `value` that values [`equal`] to it share: an object's members
/// count in any order.
fn shape_hash(value: &Value) -> u64 {
    use std::hash::BuildHasher;
    let state = foldhash::fast::FixedState::with_seed(0x6b75_6d61);
    match value {
        Value::Null => state.hash_one(0u8),
        Value::Bool(b) => state.hash_one((1u8, *b)),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => state.hash_one((2u8, u)),
            (None, Some(i)) => state.hash_one((3u8, i)),
            // Zeros of either sign are equal.
            _ => state.hash_one((4u8, n.as_f64().map_or(0, |f| (f + 0.0).to_bits()))),
        },
        Value::String(s) => state.hash_one((5u8, s.as_str())),
        Value::Array(items) => items
            .iter()
            .fold(state.hash_one((6u8, items.len())), |hash, item| {
                state.hash_one((hash, shape_hash(item)))
            }),
        Value::Object(map) => {
            let members = map.iter().fold(0u64, |sum, (key, item)| {
                sum.wrapping_add(state.hash_one((key.as_str(), shape_hash(item))))
            });
            state.hash_one((7u8, map.len(), members))
        }
    }
}

/// Whether a keyed list's entry is exactly `{key, value}`, in that order:
/// what folding it alone per key gives back unchanged.
fn is_pair(entry: &Value, keyed: &KeyedList) -> bool {
    let Value::Object(map) = entry else {
        return false;
    };
    let mut names = map.keys().map(String::as_str);
    map.len() == 2 && names.next() == Some(keyed.key) && names.next() == Some(keyed.value)
}

/// A keyed list's entries folded per key: a later entry with an equal key
/// takes over the earlier ones' values and moves to the later position.
fn fold_by_key(entries: &[&Value], keyed: &KeyedList) -> Vec<Value> {
    fn field<'v>(entry: &'v Value, name: &str) -> &'v Value {
        static NULL: Value = Value::Null;
        entry.get(name).unwrap_or(&NULL)
    }
    let mut slots: Vec<Option<(&Value, Vec<&Value>)>> = Vec::with_capacity(entries.len());
    for &entry in entries {
        let key = field(entry, keyed.key);
        let mut same = Vec::new();
        for slot in slots.iter_mut() {
            if slot.as_ref().is_some_and(|(k, _)| equal(k, key))
                && let Some((_, earlier)) = slot.take()
            {
                same = earlier;
            }
        }
        same.push(entry);
        slots.push(Some((key, same)));
    }
    slots
        .into_iter()
        .flatten()
        .map(|(key, same)| {
            let folded = match same.as_slice() {
                // One entry folds to itself.
                [entry] if is_pair(entry, keyed) => return (*entry).clone(),
                [entry] => field(entry, keyed.value).clone(),
                _ => MergeStrategy::default().fold(same.iter().map(|e| field(e, keyed.value))),
            };
            let mut out = Map::new();
            out.insert(keyed.key.to_string(), key.clone());
            out.insert(keyed.value.to_string(), folded);
            Value::Object(out)
        })
        .collect()
}

/// A fold in progress: what a JSON merge patch of the confs so far gives,
/// sharing every part that is some conf's unchanged.
#[derive(Debug)]
enum Folded<'a> {
    /// This part of a conf, as it is.
    Conf(&'a Value),
    /// An object some patch changed: its members in the order a
    /// `serde_json` map (with `preserve_order`) would hold them.
    Object(Vec<(&'a str, Folded<'a>)>),
    /// A list that an appending field made of several confs' entries.
    List(Vec<&'a Value>),
}

impl<'a> Folded<'a> {
    /// RFC 7396 merge patch of `patch_value` onto this, with Kuma's
    /// appending lists (`keyed` names the lists of the top level that
    /// append).
    fn patch(&mut self, patch_value: &'a Value, keyed: &[KeyedList]) {
        let Value::Object(patch_map) = patch_value else {
            *self = Folded::Conf(patch_value);
            return;
        };
        let members = self.members();
        for (key, value) in patch_map {
            let at = members.iter().position(|(k, _)| *k == key.as_str());
            if value.is_null() {
                // As `serde_json::Map::remove` does with `preserve_order`:
                // the last member takes the removed one's place.
                if let Some(at) = at {
                    members.swap_remove(at);
                }
                continue;
            }
            let Some(at) = at else {
                members.push((key.as_str(), Folded::fresh(value)));
                continue;
            };
            let existing = &mut members[at].1;
            let appends = || key.starts_with(APPEND_PREFIX) || keyed.iter().any(|k| k.field == key);
            match value {
                Value::Array(more) if existing.is_array() && appends() => existing.append(more),
                // Keyed lists only exist at the top of a conf.
                Value::Object(_) if existing.is_object() => existing.patch(value, &[]),
                _ => *existing = Folded::fresh(value),
            }
        }
    }

    /// `value` patched onto nothing: objects lose their null members.
    fn fresh(value: &'a Value) -> Folded<'a> {
        match value {
            Value::Object(map) if has_null_member(map) => {
                let mut out = Folded::Object(Vec::new());
                out.patch(value, &[]);
                out
            }
            _ => Folded::Conf(value),
        }
    }

    /// Takes the list at member `field` out of this object (leaving an
    /// empty list in its place): its entries, or `None` when there is no
    /// such list.
    fn take_list(&mut self, field: &str) -> Option<Vec<&'a Value>> {
        static EMPTY: Value = Value::Array(Vec::new());
        let is_list = match &*self {
            Folded::Object(members) => members.iter().any(|(k, v)| *k == field && v.is_array()),
            Folded::Conf(Value::Object(map)) => map.get(field).is_some_and(Value::is_array),
            _ => false,
        };
        if !is_list {
            return None;
        }
        let (_, part) = self.members().iter_mut().find(|(k, _)| *k == field)?;
        match std::mem::replace(part, Folded::Conf(&EMPTY)) {
            Folded::List(items) => Some(items),
            Folded::Conf(Value::Array(items)) => Some(items.iter().collect()),
            other => {
                // Checked to be a list above.
                *part = other;
                None
            }
        }
    }

    /// This as an object open to changes (whatever it was is replaced when
    /// it was not an object, as a merge patch does).
    fn members(&mut self) -> &mut Vec<(&'a str, Folded<'a>)> {
        match self {
            Folded::Object(_) => {}
            Folded::Conf(Value::Object(map)) => {
                let members = map
                    .iter()
                    .map(|(k, v)| (k.as_str(), Folded::Conf(v)))
                    .collect();
                *self = Folded::Object(members);
            }
            _ => *self = Folded::Object(Vec::new()),
        }
        match self {
            Folded::Object(members) => members,
            // Just made one.
            _ => unreachable!("a fold part was just made an object"),
        }
    }

    fn is_object(&self) -> bool {
        matches!(self, Folded::Object(_) | Folded::Conf(Value::Object(_)))
    }

    fn is_array(&self) -> bool {
        matches!(self, Folded::List(_) | Folded::Conf(Value::Array(_)))
    }

    /// Appends `more` to this list.
    fn append(&mut self, more: &'a [Value]) {
        if let Folded::Conf(Value::Array(items)) = self {
            *self = Folded::List(items.iter().collect());
        }
        if let Folded::List(items) = self {
            items.extend(more.iter());
        }
    }

    fn into_value(self) -> Value {
        match self {
            Folded::Conf(value) => value.clone(),
            Folded::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_value()))
                    .collect(),
            ),
            Folded::List(items) => Value::Array(items.into_iter().cloned().collect()),
        }
    }
}

/// Whether patching with `conf` right after `last` changes nothing: they
/// are equal, members in the same order, and neither appends anywhere
/// (without appending, a merge patch is idempotent). Unequal orders only
/// cost the shortcut.
fn repeats(last: &Value, conf: &Value) -> bool {
    match (last, conf) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                    ka == kb && !ka.starts_with(APPEND_PREFIX) && repeats(va, vb)
                })
        }
        // Lists are replaced whole (appending ones are refused above).
        (a, b) => a == b,
    }
}

/// Whether `conf` has an appending field at any depth of objects: what
/// keeps [`repeats`] from taking a conf as a repeat of itself.
fn appends(conf: &Value) -> bool {
    match conf {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with(APPEND_PREFIX) || appends(v)),
        _ => false,
    }
}

/// `a == b`, compared member by member in order where both objects list
/// the same members in the same order (values written from one type
/// always do); as `Value` compares them (looking each member up) otherwise.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            if x.keys().zip(y.keys()).all(|(k, l)| k == l) {
                x.values().zip(y.values()).all(|(v, w)| equal(v, w))
            } else {
                a == b
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal(v, w))
        }
        _ => a == b,
    }
}

/// Whether a patch object deletes anything, at any depth of objects.
fn has_null_member(map: &Map<String, Value>) -> bool {
    map.values().any(|v| match v {
        Value::Null => true,
        Value::Object(inner) => has_null_member(inner),
        _ => false,
    })
}

#[cfg(test)]
mod tests;
