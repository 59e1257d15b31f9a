//! `to` rules as generation reads them: per destination service, the conf
//! of the first rule holding it.
//!
//! Most `to` entries name one service or the whole mesh. For those, a
//! proxy's rules are a conf per named service (the fold of the mesh-wide
//! entries and its own, in order) and one for the mesh: [`ToRules`] keeps
//! just these, grouped by the service numbers [`Aims`] gave the index's
//! entries once, and writes out the rules themselves (subsets, origins)
//! only when someone reads them (inspection). Other entries go through
//! [`rules::build`].

use std::any::Any;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::TargetRefKind;

use crate::fingerprint::Fingerprint;
use crate::merge::{JoinKeys, MergeStrategy};
use crate::policy::Policy;
use crate::rules::{
    self, Aim, PolicyOrigin, Rule, RuleItem, ServiceRules, aim, is_tag_era_kind, merge_in_order,
};

/// What one `to` entry aims at, tag values numbered.
#[derive(Debug, Clone, Copy)]
enum EntryAim {
    /// Not a tag-era kind: left to resource rules.
    Skip,
    Mesh,
    Tag {
        key: u32,
        value: u32,
    },
    /// Anything else (several tags, a gateway, a route): the general path.
    Other,
}

/// The aim and conf of every `to` entry of an index's policies, and what
/// the policies hold at all, computed when the index is built: a proxy's
/// rules then read these few arrays instead of every policy again.
#[derive(Debug, Default)]
pub(super) struct Aims {
    /// Whether any policy has `from` or `rules` entries.
    pub(super) inbound: bool,
    /// Whether any policy has a `spec.default` of its own.
    pub(super) defaults: bool,
    /// Whether some `to` entry names a resource whatever the mesh's
    /// destinations (the Mesh, a MeshHTTPRoute): without destinations,
    /// only those make resource rules.
    pub(super) names_resources: bool,
    /// Per policy (in fold order), whether its `to` entries take part in
    /// tag rules at all (see [`takes_part`]).
    takes_part: Vec<bool>,
    /// Per policy, where its entries start in `entries`; one more at the end.
    starts: Vec<u32>,
    entries: Vec<EntryAim>,
    /// The conf of each entry, as `entries`.
    confs: Vec<Arc<Value>>,
    /// Per entry, whether its conf folds to itself however often it comes
    /// again ([`MergeStrategy::repeats_are_no_ops`]).
    repeats_away: Vec<bool>,
    /// Per entry, what deciding whether folds only join keyed lists reads
    /// of its conf ([`MergeStrategy::join_keys`]): read once here rather
    /// than in every fold.
    join_keys: Vec<Option<JoinKeys>>,
    /// Tag key ids; `kuma.io/service` is 0.
    keys: foldhash::HashMap<String, u32>,
    /// Per key id, value ids by value (unique across keys).
    values: Vec<foldhash::HashMap<String, u32>>,
    next_value: u32,
}

impl Aims {
    pub(super) fn new(policies: &[Arc<Policy>], strategy: MergeStrategy) -> Aims {
        let mut aims = Aims {
            keys: [(SERVICE_TAG.to_string(), 0)].into_iter().collect(),
            values: vec![foldhash::HashMap::default()],
            starts: vec![0],
            ..Aims::default()
        };
        for policy in policies {
            aims.inbound |= !policy.from.is_empty() || !policy.rules.is_empty();
            aims.defaults |= policy.default.is_some();
            aims.takes_part.push(takes_part(policy));
            for entry in &policy.to {
                let target_ref = &entry.target_ref;
                aims.names_resources |= matches!(
                    target_ref.kind,
                    TargetRefKind::Mesh | TargetRefKind::MeshHTTPRoute
                );
                let entry_aim = if !is_tag_era_kind(&target_ref.kind) {
                    EntryAim::Skip
                } else {
                    match aim(target_ref) {
                        None => EntryAim::Other,
                        Some(Aim::Mesh) => EntryAim::Mesh,
                        Some(Aim::Tag(key, value)) => aims.tag(key, value),
                    }
                };
                aims.entries.push(entry_aim);
                aims.repeats_away
                    .push(strategy.repeats_are_no_ops(&entry.conf));
                aims.join_keys.push(strategy.join_keys(&entry.conf));
                aims.confs.push(entry.conf.clone());
            }
            aims.starts.push(aims.entries.len() as u32);
        }
        aims
    }

    fn tag(&mut self, key: &str, value: &str) -> EntryAim {
        let key = match self.keys.get(key) {
            Some(&id) => id,
            None => {
                let id = self.values.len() as u32;
                self.keys.insert(key.to_string(), id);
                self.values.push(foldhash::HashMap::default());
                id
            }
        };
        let values = &mut self.values[key as usize];
        let value = match values.get(value) {
            Some(&id) => id,
            None => {
                let id = self.next_value;
                self.next_value += 1;
                values.insert(value.to_string(), id);
                id
            }
        };
        EntryAim::Tag { key, value }
    }

    /// The entries of `policy`, as positions in `entries`.
    fn of(&self, policy: usize) -> std::ops::Range<u32> {
        self.starts[policy]..self.starts[policy + 1]
    }

    /// The fold of the confs of `entries` (positions in `entries`, in fold
    /// order): the first conf itself when the rest only repeat it, the
    /// confs themselves when folding only joins their keyed lists.
    fn fold(&self, entries: &[usize], strategy: MergeStrategy) -> PlainConf {
        let first = &self.confs[entries[0]];
        let repeats = entries[1..]
            .iter()
            .all(|&at| Arc::ptr_eq(&self.confs[at], first));
        if repeats && self.repeats_away[entries[0]] {
            return PlainConf::Shared(first.clone());
        }
        if entries.len() > 1
            && let Some(field) = strategy.joins_by_keys(
                entries
                    .iter()
                    .map(|&at| (&*self.confs[at], self.join_keys[at].as_ref())),
            )
        {
            return PlainConf::Joined {
                field,
                parts: entries.iter().map(|&at| self.confs[at].clone()).collect(),
                folded: OnceLock::new(),
            };
        }
        PlainConf::Shared(strategy.fold_shared(entries.iter().map(|&at| &self.confs[at])))
    }

    /// Whether policy `policy` (by fold order) takes part in tag rules.
    pub(super) fn takes_part(&self, policy: usize) -> bool {
        self.takes_part[policy]
    }
}

/// Whether a policy's `to` entries make tag rules: not when it targets a
/// MeshHTTPRoute or aims an entry at one (those are routed per route).
fn takes_part(policy: &Policy) -> bool {
    policy.target_ref.kind != TargetRefKind::MeshHTTPRoute
        && !policy
            .to
            .iter()
            .any(|e| e.target_ref.kind == TargetRefKind::MeshHTTPRoute)
}

/// The index's policies and what was computed from them, shared by the
/// rules built from it.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub(super) policies: Arc<[Arc<Policy>]>,
    pub(super) origins: Arc<[PolicyOrigin]>,
    pub(super) aims: Arc<Aims>,
    pub(super) strategy: MergeStrategy,
}

impl Source {
    /// The `to` rules of the policies `indices` (in fold order), and why
    /// they could not be built, if so.
    pub(super) fn to_rules(&self, indices: &[usize]) -> (ToRules, Option<String>) {
        let aims = &self.aims;
        // Most policies have one `to` entry.
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(indices.len());
        for &i in indices.iter().filter(|&&i| aims.takes_part(i)) {
            entries.extend(aims.of(i).map(|at| (i as u32, at)));
        }
        let entries = match Plain::new(self, entries) {
            Ok(plain) => return (ToRules(Repr::Plain(Box::new(plain))), None),
            Err(entries) => entries,
        };
        // Not plain: straight to subsets (the plain path would refuse the
        // entries for the same reasons).
        match rules::build_by_subsets(&self.items(&entries), false, self.strategy) {
            Ok(rules) => (ToRules::from_rules(rules), None),
            Err(e) => (
                ToRules::from_rules(Vec::new()),
                Some(format!("couldn't create To rules: {e}")),
            ),
        }
    }

    fn items(&self, entries: &[(u32, u32)]) -> Vec<RuleItem<'_>> {
        entries
            .iter()
            .map(|&(p, at)| {
                let e = at - self.aims.starts[p as usize];
                let entry = &self.policies[p as usize].to[e as usize];
                RuleItem {
                    target_ref: &entry.target_ref,
                    conf: &entry.conf,
                    origin: &self.origins[p as usize],
                }
            })
            .collect()
    }
}

/// One proxy's `to` rules of one kind.
#[derive(Debug)]
pub struct ToRules(Repr);

/// What is kept of each conf of [`ToRules`] once made.
#[derive(Default)]
struct Kept {
    fingerprint: OnceLock<Fingerprint>,
    typed: OnceLock<Option<Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("fingerprint", &self.fingerprint)
            .field("typed", &self.typed.get().map(Option::is_some))
            .finish()
    }
}

#[derive(Debug)]
enum Repr {
    /// Built through subsets, looked up by service.
    Rules {
        rules: Vec<Rule>,
        by_service: ServiceRules,
        kept: Vec<Kept>,
    },
    Plain(Box<Plain>),
}

#[derive(Debug)]
struct Slot {
    conf: u32,
    own: std::ops::Range<usize>,
}

/// A conf of [`Plain`] rules.
#[derive(Debug)]
enum PlainConf {
    /// A fold, or a conf itself: shared by the values it is the conf of.
    Shared(Arc<Value>),
    /// The confs whose keyed list `field` the fold only joins
    /// ([`MergeStrategy::joins`]): folded only when the value is read.
    /// Route tables read the entries from the parts.
    Joined {
        field: &'static str,
        parts: Vec<Arc<Value>>,
        folded: OnceLock<Arc<Value>>,
    },
}

impl PlainConf {
    fn value(&self, strategy: MergeStrategy) -> &Value {
        match self {
            PlainConf::Shared(conf) => conf,
            PlainConf::Joined { parts, folded, .. } => {
                folded.get_or_init(|| strategy.fold_shared(parts))
            }
        }
    }

    /// The conf's fingerprint; a join's is made from its parts, as the
    /// fold's would be.
    fn fingerprint(&self, strategy: MergeStrategy) -> Fingerprint {
        match self {
            PlainConf::Joined { field, parts, .. } => Fingerprint::of_joined(field, parts),
            PlainConf::Shared(_) => Fingerprint::of(self.value(strategy)),
        }
    }
}

/// Rules of entries that each name one tag value or the mesh.
#[derive(Debug)]
struct Plain {
    /// Whether the values are services (values of another tag never hold a
    /// bare service).
    services: bool,
    /// Per value id, its slot in `slots`.
    by_value: foldhash::HashMap<u32, u32>,
    /// Per value, its conf and where its own entries are in `own`.
    slots: Vec<Slot>,
    /// Positions (in `entries`) of each value's own entries, value after
    /// value, and of the mesh-wide ones.
    own: Vec<usize>,
    mesh_wide: Vec<usize>,
    /// The conf of the mesh rule (destinations no entry names).
    mesh: Option<u32>,
    /// Distinct confs (shared ones by address): the values of most
    /// services are one.
    confs: Vec<PlainConf>,
    kept: Vec<Kept>,
    source: Source,
    /// `(policy, position in Aims::entries)` of every `to` entry, in fold
    /// order.
    entries: Vec<(u32, u32)>,
    rules: OnceLock<Vec<Rule>>,
}

impl Plain {
    /// `Err` (with the entries back) when some entry is not plain, or the
    /// entries name values of more than one tag key.
    fn new(source: &Source, entries: Vec<(u32, u32)>) -> Result<Plain, Vec<(u32, u32)>> {
        let aims = &source.aims;
        let mut key = None;
        let mut mesh_wide: Vec<usize> = Vec::new();
        // Values in order of first appearance; each entry's value slot.
        let n = entries.len();
        let mut slots: foldhash::HashMap<u32, u32> =
            foldhash::HashMap::with_capacity_and_hasher(n, Default::default());
        let mut values: Vec<u32> = Vec::with_capacity(n);
        let mut counts: Vec<u32> = Vec::with_capacity(n);
        let mut slot_of: Vec<u32> = vec![u32::MAX; entries.len()];
        for (at, &(_, entry)) in entries.iter().enumerate() {
            match aims.entries[entry as usize] {
                EntryAim::Skip => {}
                EntryAim::Other => return Err(entries),
                EntryAim::Mesh => mesh_wide.push(at),
                EntryAim::Tag { key: k, value } => {
                    if *key.get_or_insert(k) != k {
                        return Err(entries);
                    }
                    let slot = *slots.entry(value).or_insert_with(|| {
                        values.push(value);
                        counts.push(0);
                        values.len() as u32 - 1
                    });
                    counts[slot as usize] += 1;
                    slot_of[at] = slot;
                }
            }
        }
        // Each value's own entries, ascending, one after the other.
        let mut starts: Vec<usize> = Vec::with_capacity(counts.len() + 1);
        let mut total = 0;
        for count in &counts {
            starts.push(total);
            total += *count as usize;
        }
        starts.push(total);
        let mut own = vec![0; total];
        let mut next = starts.clone();
        for (at, &slot) in slot_of.iter().enumerate() {
            if slot != u32::MAX {
                own[next[slot as usize]] = at;
                next[slot as usize] += 1;
            }
        }

        let mut plain = Plain {
            services: key == Some(0),
            by_value: foldhash::HashMap::with_capacity_and_hasher(values.len(), Default::default()),
            slots: Vec::with_capacity(values.len()),
            own: Vec::new(),
            mesh_wide: Vec::new(),
            mesh: None,
            confs: Vec::with_capacity(values.len() + 1),
            kept: Vec::with_capacity(values.len() + 1),
            source: source.clone(),
            entries: Vec::new(),
            rules: OnceLock::new(),
        };
        let mut distinct: foldhash::HashMap<usize, u32> =
            foldhash::HashMap::with_capacity_and_hasher(values.len() + 1, Default::default());
        let mut add = |plain: &mut Plain, conf: PlainConf| -> u32 {
            let mut push = |conf| {
                plain.confs.push(conf);
                plain.kept.push(Kept::default());
                plain.confs.len() as u32 - 1
            };
            match conf {
                PlainConf::Shared(shared) => {
                    let address = Arc::as_ptr(&shared) as usize;
                    *distinct
                        .entry(address)
                        .or_insert_with(|| push(PlainConf::Shared(shared)))
                }
                joined => push(joined),
            }
        };
        let mut folded: Vec<usize> = Vec::with_capacity(n);
        for (slot, value) in values.iter().enumerate() {
            folded.clear();
            let range = starts[slot]..starts[slot + 1];
            merge_in_order(&mesh_wide, &own[range.clone()], |at| {
                folded.push(entries[at].1 as usize)
            });
            let conf = add(&mut plain, aims.fold(&folded, source.strategy));
            plain.by_value.insert(*value, slot as u32);
            plain.slots.push(Slot { conf, own: range });
        }
        if !mesh_wide.is_empty() {
            folded.clear();
            folded.extend(mesh_wide.iter().map(|&at| entries[at].1 as usize));
            let conf = add(&mut plain, aims.fold(&folded, source.strategy));
            plain.mesh = Some(conf);
        }
        plain.entries = entries;
        plain.own = own;
        plain.mesh_wide = mesh_wide;
        Ok(plain)
    }

    /// The slot of the value `service`, when it has one.
    fn slot(&self, service: &str) -> Option<&Slot> {
        let value = self
            .services
            .then(|| self.source.aims.values[0].get(service))??;
        self.slots.get(*self.by_value.get(value)? as usize)
    }

    fn for_service(&self, service: &str) -> Option<usize> {
        let conf = self.slot(service).map(|slot| slot.conf).or(self.mesh)?;
        Some(conf as usize)
    }

    /// The policies that contributed to the conf of `service`, as the
    /// rule holding it lists them.
    fn origins_for_service(&self, service: &str) -> Vec<PolicyOrigin> {
        let own = self
            .slot(service)
            .map_or(&[][..], |slot| &self.own[slot.own.clone()]);
        if own.is_empty() && self.mesh.is_none() {
            return Vec::new();
        }
        let mut positions = Vec::with_capacity(self.mesh_wide.len() + own.len());
        merge_in_order(&self.mesh_wide, own, |at| positions.push(at));
        let origins = &self.source.origins;
        rules::origins(
            positions
                .iter()
                .map(|&at| &origins[self.entries[at].0 as usize]),
        )
    }

    fn rules(&self) -> &[Rule] {
        self.rules.get_or_init(|| {
            let items = self.source.items(&self.entries);
            // Plain entries always make rules.
            rules::build(&items, false, self.source.strategy).unwrap_or_default()
        })
    }
}

impl ToRules {
    /// Rules built elsewhere, looked up by service.
    pub fn from_rules(rules: Vec<Rule>) -> ToRules {
        ToRules(Repr::Rules {
            by_service: ServiceRules::new(&rules),
            kept: (0..rules.len()).map(|_| Kept::default()).collect(),
            rules,
        })
    }

    /// Where the conf of the first rule holding the destination `service`
    /// is (for [`ToRules::conf`] and [`ToRules::text`]): what
    /// `rules::compute(rules, &{kuma.io/service: service})` finds.
    pub fn for_service(&self, service: &str) -> Option<usize> {
        match &self.0 {
            Repr::Rules {
                rules, by_service, ..
            } => by_service.position(rules, service),
            Repr::Plain(plain) => plain.for_service(service),
        }
    }

    /// Whether no destination gets a conf from these rules.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Rules { rules, .. } => rules.is_empty(),
            Repr::Plain(plain) => plain.confs.is_empty(),
        }
    }

    /// The conf at `at`, from [`ToRules::for_service`].
    pub fn conf(&self, at: usize) -> Option<&Value> {
        match &self.0 {
            Repr::Rules { rules, .. } => rules.get(at).map(|r| &r.conf),
            Repr::Plain(plain) => plain.confs.get(at).map(|c| c.value(plain.source.strategy)),
        }
    }

    /// The confs whose keyed lists, joined, are the conf at `at` (from
    /// [`ToRules::for_service`]), when it is such a join: their entries
    /// in order are the folded list's, without the folded copy.
    pub fn joined(&self, at: usize) -> Option<&[Arc<Value>]> {
        match &self.0 {
            Repr::Plain(plain) => match plain.confs.get(at)? {
                PlainConf::Joined { parts, .. } => Some(parts),
                PlainConf::Shared(_) => None,
            },
            Repr::Rules { .. } => None,
        }
    }

    /// The fingerprint of the conf at `at`, made on first use and kept:
    /// proxies sharing the rules put it in the cache key of every
    /// destination they reach.
    pub fn fingerprint(&self, at: usize) -> Option<Fingerprint> {
        let fingerprint = match &self.0 {
            Repr::Rules { kept, rules, .. } => {
                let conf = &rules.get(at)?.conf;
                kept.get(at)?
                    .fingerprint
                    .get_or_init(|| Fingerprint::of(conf))
            }
            Repr::Plain(plain) => {
                let conf = plain.confs.get(at)?;
                plain
                    .kept
                    .get(at)?
                    .fingerprint
                    .get_or_init(|| conf.fingerprint(plain.source.strategy))
            }
        };
        Some(*fingerprint)
    }

    /// The conf at `at` in the typed form `read` makes of it, made on first
    /// use and kept: proxies sharing the rules apply the same conf to every
    /// cluster and listener they build, and reading it is deserializing
    /// JSON. A conf that does not read stays unread. A position is kept in
    /// the first type read; read as another, it is read every time.
    pub fn typed<T: Any + Send + Sync>(
        &self,
        at: usize,
        read: impl Fn(&Value) -> Option<T>,
    ) -> Option<Arc<T>> {
        let conf = self.conf(at)?;
        let kept = match &self.0 {
            Repr::Rules { kept, .. } => kept.get(at),
            Repr::Plain(plain) => plain.kept.get(at),
        };
        let Some(kept) = kept else {
            return read(conf).map(Arc::new);
        };
        let typed = kept
            .typed
            .get_or_init(|| read(conf).map(|t| -> Arc<dyn Any + Send + Sync> { Arc::new(t) }));
        match typed.clone()?.downcast::<T>() {
            Ok(typed) => Some(typed),
            Err(_) => read(conf).map(Arc::new),
        }
    }

    /// The policies that contributed to the conf [`ToRules::for_service`]
    /// finds, as its rule lists them.
    pub fn origins_for_service(&self, service: &str) -> Vec<PolicyOrigin> {
        match &self.0 {
            Repr::Rules {
                rules, by_service, ..
            } => by_service
                .position(rules, service)
                .map(|at| rules[at].origins.clone())
                .unwrap_or_default(),
            Repr::Plain(plain) => plain.origins_for_service(service),
        }
    }

    /// The rules themselves, in order.
    pub fn rules(&self) -> &[Rule] {
        match &self.0 {
            Repr::Rules { rules, .. } => rules,
            Repr::Plain(plain) => plain.rules(),
        }
    }
}

/// The policies that select a proxy, written out when read.
#[derive(Debug)]
pub struct PolicyList {
    origins: Arc<[PolicyOrigin]>,
    indices: Vec<usize>,
    list: OnceLock<Vec<PolicyOrigin>>,
}

impl PolicyList {
    pub(super) fn new(origins: Arc<[PolicyOrigin]>, indices: Vec<usize>) -> PolicyList {
        PolicyList {
            origins,
            indices,
            list: OnceLock::new(),
        }
    }
}

impl Deref for PolicyList {
    type Target = [PolicyOrigin];

    fn deref(&self) -> &[PolicyOrigin] {
        self.list.get_or_init(|| {
            self.indices
                .iter()
                .map(|&i| self.origins[i].clone())
                .collect()
        })
    }
}
