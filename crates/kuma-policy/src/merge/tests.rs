use super::*;
use crate::testing::Random;
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

/// The fold as RFC 7396 spells it, on copies: what the fold over
/// references must give, member order included.
fn fold_by_copies(confs: &[Value], keyed: &[KeyedList]) -> Value {
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
    let mut result = confs.first().cloned().unwrap_or(json!({}));
    for conf in confs.iter().skip(1) {
        patch(&mut result, conf, keyed);
    }
    result
}

#[test]
fn folding_by_reference_gives_what_patching_copies_gives() {
    let confs = [
        json!({"a": 1, "b": {"c": null, "d": [1], "appendX": [1]}, "rules": [{"x": 1}], "e": null}),
        json!({"b": {"d": [2], "appendX": [2], "f": {"g": null, "h": 1}}, "a": null, "z": 3}),
        json!({"b": {"appendX": [3], "f": "scalar"}, "rules": [{"x": 2}], "e": {"k": null}}),
        json!({"b": null, "a": {"n": {"m": null, "o": 1}}, "appendY": [1]}),
        json!("not an object"),
        json!({"appendY": [2], "z": null, "y": {"w": 1}}),
        json!({"q": 1, "r": 2, "s": 3, "t": 4}),
        json!({"q": null, "r": {"p": null}}),
    ];
    let keyed = &[KeyedList {
        field: "rules",
        key: "matches",
        value: "default",
    }];
    // Every ordered pair and triple, and the whole list, each way.
    let n = confs.len();
    let mut sequences: Vec<Vec<usize>> = vec![(0..n).collect(), (0..n).rev().collect()];
    for i in 0..n {
        for j in 0..n {
            sequences.push(vec![i, j]);
            for k in 0..n {
                sequences.push(vec![i, j, k]);
            }
        }
    }
    for sequence in sequences {
        let seq: Vec<Value> = sequence.iter().map(|&i| confs[i].clone()).collect();
        for keyed in [&[][..], &keyed[..]] {
            let mut folded = Folded::Conf(&seq[0]);
            for conf in &seq[1..] {
                folded.patch(conf, keyed);
            }
            let got = folded.into_value();
            let want = fold_by_copies(&seq, keyed);
            // As text: member order must match too.
            assert_eq!(got.to_string(), want.to_string(), "{sequence:?}");
        }
    }
}

#[test]
fn repeated_confs_fold_as_patching_each_copy_does() {
    let confs = [
        json!({"a": 1, "b": {"c": null, "d": [1]}, "e": null}),
        json!({"b": {"d": [2], "f": {"g": null, "h": 1}}, "a": null}),
        json!({"b": {"d": [2], "f": {"g": null, "h": 1}}, "a": null}),
        json!({"a": null, "b": {"d": [2], "f": {"g": null, "h": 1}}}),
        json!({"x": {"appendY": [1]}, "z": [{"appendW": 1}]}),
        json!({"x": {"appendY": [1]}, "z": [{"appendW": 1}]}),
        json!({"appendV": [3], "k": {"m": null}}),
        json!({"appendV": [3], "k": {"m": null}}),
        json!("scalar"),
        json!({"k": {"m": 2}, "n": null}),
    ];
    // Runs of equal confs in every combination of a few positions.
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for round in 0..2000 {
        let len = 1 + round % 9;
        let sequence: Vec<Value> = (0..len)
            .map(|_| random.pick(&confs).clone())
            .flat_map(|conf| std::iter::repeat_n(conf, 1 + round % 3))
            .collect();
        let got = MergeStrategy::default().fold(sequence.iter());
        let want = fold_by_copies(&sequence, &[]);
        assert_eq!(got.to_string(), want.to_string(), "{sequence:?}");
    }
}

#[test]
fn shared_confs_fold_as_patching_each_copy_does() {
    let confs = [
        json!({"a": 1, "b": {"c": null, "d": [1]}, "e": null}),
        json!({"b": {"d": [2], "f": {"g": null, "h": 1}}, "a": null}),
        json!({"x": {"appendY": [1]}, "z": [{"appendW": 1}]}),
        json!({"appendV": [3], "k": {"m": null}}),
        json!({"z": [{"appendW": 1}]}),
        json!("scalar"),
        json!({"k": {"m": 2}, "n": null}),
    ];
    for conf in &confs {
        assert_eq!(appends(conf), !repeats(conf, &conf.clone()), "{conf}");
    }
    // The same values again and again, as confs read together are.
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for round in 0..3000 {
        let len = 1 + round % 11;
        let sequence: Vec<&Value> = (0..len)
            .flat_map(|_| {
                let random = random.next_u64();
                let conf = &confs[(random % confs.len() as u64) as usize];
                std::iter::repeat_n(conf, 1 + (random >> 32) as usize % 3)
            })
            .collect();
        let got = MergeStrategy::default().fold(sequence.iter().copied());
        let copies: Vec<Value> = sequence.iter().map(|v| (*v).clone()).collect();
        let want = fold_by_copies(&copies, &[]);
        assert_eq!(got.to_string(), want.to_string(), "{sequence:?}");
    }
}

#[test]
fn shared_folds_are_the_folds_and_a_lone_conf_is_itself() {
    let m1 = json!([{"path": {"type": "PathPrefix", "value": "/a"}}]);
    let m2 = json!([{"path": {"type": "PathPrefix", "value": "/b"}}]);
    let confs: Vec<Arc<Value>> = [
        json!({"a": 1, "b": {"c": null, "d": [1]}, "e": null}),
        json!({"b": {"d": [2]}, "a": null}),
        json!({"x": {"appendY": [1]}}),
        json!("scalar"),
        json!({"rules": [{"matches": m1, "default": {"x": 1}}]}),
        json!({"rules": [{"matches": m1, "default": {"x": 1}}, {"matches": m2, "default": {}}]}),
        // Folding per key rewrites these even alone.
        json!({"rules": [{"matches": m1, "default": {"x": 1}}, {"matches": m1, "default": {"y": 2}}]}),
        json!({"rules": [{"default": {"x": 1}, "matches": m2}]}),
        json!({"rules": [{"matches": m2}]}),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for kind in [Kind::MeshTimeout, Kind::MeshHTTPRoute] {
        let strategy = MergeStrategy::for_kind(kind);
        // What a fold of repeats is taken to be without folding.
        for conf in &confs {
            let repeated = strategy.fold_shared([conf, conf, conf]);
            if strategy.repeats_are_no_ops(conf) {
                assert!(Arc::ptr_eq(&repeated, conf), "{kind:?} {conf}");
            }
        }
        for round in 0..2000 {
            let len = round % 5;
            let sequence: Vec<&Arc<Value>> = (0..len).map(|_| random.pick(&confs)).collect();
            let got = strategy.fold_shared(sequence.iter().copied());
            let want = strategy.fold(sequence.iter().map(|c| &***c));
            assert_eq!(got.to_string(), want.to_string(), "{kind:?} {sequence:?}");
            // One conf (or, without keyed lists, its repeats) is shared
            // whenever folding leaves it as it is.
            let lone = match kind {
                Kind::MeshHTTPRoute => len == 1,
                _ => len > 0 && sequence.iter().all(|c| Arc::ptr_eq(c, sequence[0])),
            };
            if lone {
                let unchanged = got.to_string() == sequence[0].to_string();
                assert_eq!(
                    Arc::ptr_eq(&got, sequence[0]),
                    unchanged,
                    "{kind:?} {sequence:?}"
                );
            }
        }
    }
}

/// Keyed lists folded the plain way: entries copied, taken apart and
/// put together again per key.
fn keyed_fold_by_copies(confs: &[Value], keyed: &KeyedList) -> Value {
    let mut result = fold_by_copies(confs, std::slice::from_ref(keyed));
    if let Some(Value::Array(entries)) = result.get_mut(keyed.field) {
        let mut slots: Vec<Option<(Value, Vec<Value>)>> = Vec::new();
        for entry in std::mem::take(entries) {
            let (key, value) = match entry {
                Value::Object(mut map) => (
                    map.swap_remove(keyed.key).unwrap_or(Value::Null),
                    map.swap_remove(keyed.value).unwrap_or(Value::Null),
                ),
                _ => (Value::Null, Value::Null),
            };
            let mut values = Vec::new();
            for slot in slots.iter_mut() {
                if slot.as_ref().is_some_and(|(k, _)| *k == key) {
                    values = slot.take().map(|(_, v)| v).unwrap_or_default();
                }
            }
            values.push(value);
            slots.push(Some((key, values)));
        }
        *entries = slots
            .into_iter()
            .flatten()
            .map(|(key, values)| {
                let folded = match values.as_slice() {
                    [one] => one.clone(),
                    _ => fold_by_copies(&values, &[]),
                };
                json!({keyed.key: key, keyed.value: folded})
            })
            .collect();
    }
    result
}

#[test]
fn keyed_lists_fold_as_folding_copies_does() {
    let m1 = json!([{"path": {"type": "PathPrefix", "value": "/a"}}]);
    let m2 = json!([{"path": {"type": "Exact", "value": "/b"}}]);
    let confs = [
        json!({"rules": [{"matches": m1, "default": {"x": 1, "y": {"z": 1}}}]}),
        json!({"rules": [{"matches": m2, "default": {"x": 2}}, {"matches": m1, "default": {"y": {"w": 2}}}]}),
        json!({"rules": [{"default": {"x": 3}, "matches": m2}], "hostnames": ["a"]}),
        json!({"rules": [{"matches": m1}], "hostnames": null}),
        json!({"rules": ["odd", {"matches": m2, "default": {"x": null}, "extra": 1}]}),
        json!({"rules": null}),
        json!({"hostnames": ["b"]}),
    ];
    let keyed = &HTTP_ROUTE_RULES[0];
    let strategy = MergeStrategy::for_kind(Kind::MeshHTTPRoute);
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for _ in 0..3000 {
        let len = 1 + random.below(5);
        let sequence: Vec<Value> = (0..len).map(|_| random.pick(&confs).clone()).collect();
        let got = strategy.fold(sequence.iter());
        let want = keyed_fold_by_copies(&sequence, keyed);
        // As text: member order must match too.
        assert_eq!(got.to_string(), want.to_string(), "{sequence:?}");
    }
}

#[test]
fn confs_that_join_fold_to_their_entries_in_order() {
    let rule = |path: &str| json!({"matches": [{"path": {"value": path}}], "default": {"x": path}});
    let confs = [
        json!({"rules": [rule("/a")]}),
        json!({"rules": [rule("/b"), rule("/c")]}),
        json!({"rules": [rule("/d")]}),
        json!({"rules": [rule("/a")], "hostnames": ["h"]}),
        json!({"rules": [{"default": {"x": 1}, "matches": []}]}),
        json!({"rules": []}),
        // Equal keys, their members in another order.
        json!({"rules": [{"matches": [{"path": {"type": "Exact", "value": "/e"}}], "default": {}}]}),
        json!({"rules": [{"matches": [{"path": {"value": "/e", "type": "Exact"}}], "default": {}}]}),
    ];
    let strategy = MergeStrategy::for_kind(Kind::MeshHTTPRoute);
    let (mut joined, mut not) = (0, 0);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let len = 1 + random.below(4);
        let sequence: Vec<&Value> = (0..len).map(|_| random.pick(&confs)).collect();
        let Some(field) = strategy.joins(sequence.iter().copied()) else {
            not += 1;
            continue;
        };
        joined += 1;
        let entries: Vec<&Value> = sequence
            .iter()
            .flat_map(|c| c[field].as_array().unwrap())
            .collect();
        let want = json!({field: entries});
        assert_eq!(
            strategy.fold(sequence.iter().copied()).to_string(),
            want.to_string()
        );
    }
    assert!(joined > 100 && not > 100, "{joined} joined, {not} not");
    assert_eq!(MergeStrategy::default().joins([&confs[0], &confs[2]]), None);
    assert_eq!(strategy.joins([&confs[6], &confs[0], &confs[7]]), None);
    assert_eq!(strategy.joins([&confs[6], &confs[0]]), Some("rules"));
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

#[test]
fn equal_is_values_equality_whatever_the_member_order() {
    // Members of `{a, b}` in either order, values drawn from a few.
    let leaves = [json!(1), json!("x"), json!([1, {"p": 1}]), json!(null)];
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let draw = |random: &mut Random| -> Value {
        let (a, b) = (random.pick(&leaves).clone(), random.pick(&leaves).clone());
        let mut map = Map::new();
        match random.below(3) {
            0 => {
                map.insert("a".into(), a);
                map.insert("b".into(), json!({"c": b, "d": 1}));
            }
            1 => {
                map.insert("b".into(), json!({"d": 1, "c": b}));
                map.insert("a".into(), a);
            }
            _ => {
                map.insert("a".into(), a);
            }
        }
        json!([map])
    };
    let (mut same, mut apart) = (0, 0);
    for _ in 0..2000 {
        let (x, y) = (draw(&mut random), draw(&mut random));
        assert_eq!(equal(&x, &y), x == y, "{x} {y}");
        if x == y { same += 1 } else { apart += 1 }
    }
    assert!(same > 100 && apart > 100, "{same} equal, {apart} not");
}
