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
    pub fn fold<'a>(&self, confs: impl IntoIterator<Item = &'a Value>) -> Value {
        let mut iter = confs.into_iter();
        let Some(first) = iter.next() else {
            return Value::Object(Map::new());
        };
        let mut result = first.clone();
        for conf in iter {
            patch(&mut result, conf, self.keyed_lists);
        }
        for keyed in self.keyed_lists {
            if let Some(Value::Array(entries)) = result.get_mut(keyed.field) {
                let merged = self.fold_by_key(std::mem::take(entries), keyed);
                *entries = merged;
            }
        }
        result
    }

    fn fold_by_key(&self, entries: Vec<Value>, keyed: &KeyedList) -> Vec<Value> {
        // (key, values folded so far); a later equal key takes over the
        // earlier slot's values and moves to the later position.
        let mut slots: Vec<Option<(Value, Vec<Value>)>> = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = entry.get(keyed.key).cloned().unwrap_or(Value::Null);
            let value = entry.get(keyed.value).cloned().unwrap_or(Value::Null);
            let mut values = Vec::new();
            for slot in slots.iter_mut() {
                if slot.as_ref().is_some_and(|(k, _)| *k == key)
                    && let Some((_, earlier)) = slot.take()
                {
                    values = earlier;
                }
            }
            values.push(value);
            slots.push(Some((key, values)));
        }
        slots
            .into_iter()
            .flatten()
            .map(|(key, values)| {
                let inner = MergeStrategy::default();
                let mut out = Map::new();
                out.insert(keyed.key.to_string(), key);
                out.insert(keyed.value.to_string(), inner.fold(values.iter()));
                Value::Object(out)
            })
            .collect()
    }
}

/// RFC 7396 merge patch of `patch` onto `target`, with Kuma's appending
/// lists.
fn patch(target: &mut Value, patch_value: &Value, keyed: &[KeyedList]) {
    let Value::Object(patch_map) = patch_value else {
        *target = patch_value.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let appends = key.starts_with(APPEND_PREFIX) || keyed.iter().any(|k| k.field == key);
        match (target_map.get_mut(key), value) {
            (Some(Value::Array(existing)), Value::Array(more)) if appends => {
                existing.extend(more.iter().cloned());
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                // Keyed lists only exist at the top of a conf.
                patch(existing, value, &[]);
            }
            _ => {
                let mut fresh = Value::Null;
                patch(&mut fresh, value, &[]);
                target_map.insert(key.clone(), fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fold(kind: Kind, confs: &[Value]) -> Value {
        MergeStrategy::for_kind(kind).fold(confs.iter())
    }

    #[test]
    fn objects_merge_scalars_and_lists_replace() {
        let got = fold(
            Kind::MeshTimeout,
            &[
                json!({"idleTimeout": "1h", "http": {"requestTimeout": "1s", "maxStreamDuration": "2s"}, "codes": [1, 2]}),
                json!({"http": {"requestTimeout": "5s"}, "codes": [3]}),
            ],
        );
        assert_eq!(
            got,
            json!({"idleTimeout": "1h", "http": {"requestTimeout": "5s", "maxStreamDuration": "2s"}, "codes": [3]})
        );
    }

    #[test]
    fn null_deletes_and_nothing_folds_to_empty() {
        let got = fold(
            Kind::MeshRetry,
            &[json!({"a": 1, "b": 2}), json!({"a": null})],
        );
        assert_eq!(got, json!({"b": 2}));
        assert_eq!(fold(Kind::MeshRetry, &[]), json!({}));
    }

    #[test]
    fn append_fields_concatenate_in_order() {
        let got = fold(
            Kind::MeshProxyPatch,
            &[
                json!({"appendModifications": [{"cluster": 1}]}),
                json!({"appendModifications": [{"cluster": 2}], "other": [1]}),
                json!({"nested": {"appendProfiles": [{"name": "All"}]}}),
                json!({"nested": {"appendProfiles": [{"name": "Basic"}]}}),
            ],
        );
        assert_eq!(
            got,
            json!({
                "appendModifications": [{"cluster": 1}, {"cluster": 2}],
                "other": [1],
                "nested": {"appendProfiles": [{"name": "All"}, {"name": "Basic"}]},
            })
        );
    }

    #[test]
    fn http_route_rules_fold_by_matches_at_the_last_position() {
        let m1 = json!([{"path": {"type": "PathPrefix", "value": "/a"}}]);
        let m2 = json!([{"path": {"type": "PathPrefix", "value": "/b"}}]);
        let got = fold(
            Kind::MeshHTTPRoute,
            &[
                json!({"rules": [
                    {"matches": m1, "default": {"filters": [1], "backendRefs": [{"name": "a"}]}},
                    {"matches": m2, "default": {"backendRefs": [{"name": "b"}]}},
                ]}),
                json!({"rules": [{"matches": m1, "default": {"backendRefs": [{"name": "a2"}]}}]}),
            ],
        );
        assert_eq!(
            got,
            json!({"rules": [
                {"matches": m2, "default": {"backendRefs": [{"name": "b"}]}},
                {"matches": m1, "default": {"filters": [1], "backendRefs": [{"name": "a2"}]}},
            ]})
        );
        // Other kinds replace a `rules` list like any other.
        let got = fold(
            Kind::MeshTimeout,
            &[json!({"rules": [1]}), json!({"rules": [2]})],
        );
        assert_eq!(got, json!({"rules": [2]}));
    }
}
