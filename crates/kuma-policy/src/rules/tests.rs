use serde_json::{Value, json};

use super::*;
use crate::subset::Element;
use crate::subset::deduplicate;
use crate::testing::Pairs;

fn origin(name: &str) -> PolicyOrigin {
    PolicyOrigin {
        kind: "MeshTrafficPermission".into(),
        mesh: "default".into(),
        name: name.into(),
    }
}

fn target(v: Value) -> TargetRef {
    serde_json::from_value(v).unwrap()
}

fn el(pairs: &[(&str, &str)]) -> Element {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Items {
    refs: Vec<TargetRef>,
    confs: Vec<Value>,
    origins: Vec<PolicyOrigin>,
}

impl Items {
    fn new(entries: &[(&str, Value, &str)]) -> Items {
        Items {
            refs: entries.iter().map(|(_, r, _)| target(r.clone())).collect(),
            confs: entries
                .iter()
                .map(|(_, _, a)| json!({"action": a}))
                .collect(),
            origins: entries.iter().map(|(p, _, _)| origin(p)).collect(),
        }
    }

    fn items(&self) -> Vec<RuleItem<'_>> {
        (0..self.refs.len())
            .map(|i| RuleItem {
                target_ref: &self.refs[i],
                conf: &self.confs[i],
                origin: &self.origins[i],
            })
            .collect()
    }

    fn action_for(&self, rules: &[Rule], client: &[(&str, &str)]) -> Option<String> {
        compute(rules, &el(client)).map(|r| r.conf["action"].as_str().unwrap().to_string())
    }
}

#[test]
fn mesh_deny_with_service_allow() {
    // Kuma's docs: deny everything, allow one client service.
    let items = Items::new(&[
        ("deny-all", json!({"kind": "Mesh"}), "Deny"),
        (
            "allow-orders",
            json!({"kind": "MeshService", "name": "orders"}),
            "Allow",
        ),
    ]);
    let rules = build(&items.items(), true, MergeStrategy::default()).unwrap();
    let orders = [(SERVICE_TAG, "orders")];
    assert_eq!(items.action_for(&rules, &orders).as_deref(), Some("Allow"));
    assert_eq!(
        items.action_for(&rules, &[(SERVICE_TAG, "web")]).as_deref(),
        Some("Deny")
    );
    // The rule for orders names both policies, deny-all first.
    let rule = compute(&rules, &el(&orders)).unwrap();
    assert_eq!(
        rule.origins,
        vec![origin("deny-all"), origin("allow-orders")]
    );
    // Exactly Kuma's rules: the positive subset first, then its negation.
    let subsets: Vec<&Subset> = rules.iter().map(|r| &r.subset).collect();
    assert_eq!(
        subsets,
        vec![
            &Subset(vec![Tag::new(SERVICE_TAG, "orders")]),
            &Subset(vec![Tag::not(SERVICE_TAG, "orders")]),
        ]
    );
}

#[test]
fn overlapping_subset_and_service_fold_in_entry_order() {
    let items = Items::new(&[
        (
            "p",
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            "Allow",
        ),
        ("p", json!({"kind": "MeshService", "name": "web"}), "Deny"),
    ]);
    let rules = build(&items.items(), true, MergeStrategy::default()).unwrap();
    // web v1 is in both: the later entry (Deny) wins.
    let cases: &[(Pairs<'_>, Option<&str>)] = &[
        (&[(SERVICE_TAG, "web"), ("version", "v1")], Some("Deny")),
        (&[(SERVICE_TAG, "api"), ("version", "v1")], Some("Allow")),
        (&[(SERVICE_TAG, "web"), ("version", "v2")], Some("Deny")),
        (&[(SERVICE_TAG, "api"), ("version", "v2")], None),
    ];
    for (client, want) in cases {
        assert_eq!(
            items.action_for(&rules, client).as_deref(),
            *want,
            "{client:?}"
        );
    }
    // Swapping the entries swaps the answer for the overlap only.
    let swapped = Items::new(&[
        ("p", json!({"kind": "MeshService", "name": "web"}), "Deny"),
        (
            "p",
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            "Allow",
        ),
    ]);
    let rules = build(&swapped.items(), true, MergeStrategy::default()).unwrap();
    assert_eq!(
        swapped
            .action_for(&rules, &[(SERVICE_TAG, "web"), ("version", "v1")])
            .as_deref(),
        Some("Allow")
    );
    assert_eq!(
        swapped
            .action_for(&rules, &[(SERVICE_TAG, "web"), ("version", "v2")])
            .as_deref(),
        Some("Deny")
    );
}

#[test]
fn conflicting_services_never_share_a_rule() {
    let items = Items::new(&[
        ("base", json!({"kind": "Mesh"}), "Deny"),
        ("a", json!({"kind": "MeshService", "name": "a"}), "Allow"),
        (
            "b",
            json!({"kind": "MeshService", "name": "b"}),
            "AllowWithShadowDeny",
        ),
        (
            "z",
            json!({"kind": "MeshSubset", "tags": {"kuma.io/zone": "east"}}),
            "Deny",
        ),
    ]);
    let rules = build(&items.items(), true, MergeStrategy::default()).unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[(SERVICE_TAG, "a")], "Allow"),
        (&[(SERVICE_TAG, "b")], "AllowWithShadowDeny"),
        (&[(SERVICE_TAG, "a"), ("kuma.io/zone", "east")], "Deny"),
        (
            &[(SERVICE_TAG, "b"), ("kuma.io/zone", "west")],
            "AllowWithShadowDeny",
        ),
        (&[(SERVICE_TAG, "c")], "Deny"),
    ];
    for (client, want) in cases {
        assert_eq!(
            items.action_for(&rules, client).as_deref(),
            Some(*want),
            "{client:?}"
        );
    }
    // Most positive tags first.
    let positives: Vec<usize> = rules.iter().map(|r| r.subset.num_positive()).collect();
    let mut sorted = positives.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(positives, sorted);
}

#[test]
fn without_negations_one_key_rules_are_plain() {
    let items = Items::new(&[
        ("m", json!({"kind": "Mesh"}), "x"),
        ("s", json!({"kind": "MeshService", "name": "web"}), "y"),
        ("s2", json!({"kind": "MeshService", "name": "web"}), "z"),
    ]);
    let rules = build(&items.items(), false, MergeStrategy::default()).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].subset, Subset(vec![Tag::new(SERVICE_TAG, "web")]));
    assert_eq!(rules[0].conf, json!({"action": "z"}));
    assert_eq!(
        rules[0].origins,
        vec![origin("m"), origin("s"), origin("s2")]
    );
    assert_eq!(rules[1].subset, Subset::mesh());
    assert_eq!(rules[1].conf, json!({"action": "x"}));
}

#[test]
fn real_resource_kinds_are_left_out_and_gateways_refused() {
    let items = Items::new(&[(
        "e",
        json!({"kind": "MeshExternalService", "name": "x"}),
        "a",
    )]);
    assert!(
        build(&items.items(), false, MergeStrategy::default())
            .unwrap()
            .is_empty()
    );
    let items = Items::new(&[("g", json!({"kind": "MeshGateway", "name": "x"}), "a")]);
    assert!(build(&items.items(), true, MergeStrategy::default()).is_err());
}

/// Property: for any order of entries, the conf a client gets is the fold
/// of exactly the entries whose subset holds it, in the given order.
#[test]
fn folding_follows_entry_order_for_every_permutation() {
    let pool = [
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshService", "name": "web"}),
        json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
        json!({"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}),
        json!({"kind": "MeshSubset", "tags": {"zone": "east"}}),
    ];
    let clients: Vec<Element> = [
        vec![(SERVICE_TAG, "web"), ("version", "v1"), ("zone", "east")],
        vec![(SERVICE_TAG, "web"), ("version", "v2")],
        vec![(SERVICE_TAG, "api"), ("version", "v1"), ("zone", "west")],
        vec![(SERVICE_TAG, "api"), ("zone", "east")],
    ]
    .iter()
    .map(|c| el(c))
    .collect();
    // Every permutation of the 5 entries (Heap's algorithm would do; 120
    // is small enough to enumerate by index).
    let mut order: Vec<usize> = (0..pool.len()).collect();
    let mut seen = 0;
    permute(&mut order, 0, &mut |order| {
        seen += 1;
        let refs: Vec<TargetRef> = order.iter().map(|&i| target(pool[i].clone())).collect();
        // Each entry appends its index to an `append` list and sets `last`.
        let confs: Vec<Value> = order
            .iter()
            .map(|&i| json!({"last": i, "appendSeen": [i]}))
            .collect();
        let o = origin("p");
        let items: Vec<RuleItem<'_>> = (0..refs.len())
            .map(|k| RuleItem {
                target_ref: &refs[k],
                conf: &confs[k],
                origin: &o,
            })
            .collect();
        let rules = build(&items, true, MergeStrategy::default()).unwrap();
        for client in &clients {
            let applying: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| {
                    as_subset(&target(pool[i].clone()))
                        .unwrap()
                        .contains_element(client)
                })
                .collect();
            let got = compute(&rules, client).map(|r| r.conf.clone());
            let want = applying
                .last()
                .map(|last| json!({"last": last, "appendSeen": applying}));
            assert_eq!(got, want, "order {order:?} client {client:?}");
        }
    });
    assert_eq!(seen, 120);
}

fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, f);
        v.swap(k, i);
    }
}

/// The rules a plain scan of every entry gives: the reference the indexed
/// candidate lookup of `build` must agree with.
fn build_by_scan(items: &[RuleItem<'_>], negations: bool) -> Vec<Rule> {
    let items: Vec<(Subset, &RuleItem<'_>)> = items
        .iter()
        .filter(|i| is_tag_era_kind(&i.target_ref.kind))
        .map(|i| (as_subset(i.target_ref).unwrap(), i))
        .collect();
    let subsets = deduplicate(items.iter().map(|(s, _)| s.clone()).collect());
    let keys: BTreeSet<&str> = subsets
        .iter()
        .flat_map(|s| s.tags().iter().map(|t| t.key.as_str()))
        .collect();
    let scan = |ss: Subset| {
        let relevant: Vec<&RuleItem<'_>> = items
            .iter()
            .filter(|(s, _)| s.is_subset(&ss))
            .map(|(_, i)| *i)
            .collect();
        (!relevant.is_empty()).then(|| Rule {
            subset: ss,
            conf: MergeStrategy::default().fold(relevant.iter().map(|i| i.conf)),
            origins: origins(relevant.iter().map(|i| i.origin)),
        })
    };
    let mut rules: Vec<Rule> = Vec::new();
    if !negations && keys.len() <= 1 {
        rules.extend(subsets.into_iter().filter_map(scan));
        rules.sort_by_key(|r| std::cmp::Reverse(r.subset.tags().len()));
        return rules;
    }
    for group in cliques::maximal_cliques(&subsets) {
        let mut tags: Vec<Tag> = group
            .iter()
            .flat_map(|&node| subsets[node].tags().iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tags.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.value.cmp(&b.value)));
        rules.extend(combinations(&tags).into_iter().filter_map(scan));
    }
    rules.sort_by_key(|r| std::cmp::Reverse(r.subset.num_positive()));
    rules
}

fn mixed_items() -> Items {
    Items::new(&[
        ("mesh", json!({"kind": "Mesh"}), "Deny"),
        (
            "web",
            json!({"kind": "MeshService", "name": "web"}),
            "Allow",
        ),
        (
            "web-v1",
            json!({"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}),
            "Deny",
        ),
        (
            "v1",
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            "Allow",
        ),
        ("api", json!({"kind": "MeshService", "name": "api"}), "Deny"),
        (
            "web-again",
            json!({"kind": "MeshService", "name": "web"}),
            "Deny",
        ),
        (
            "zone",
            json!({"kind": "MeshSubset", "tags": {"kuma.io/zone": "east", "version": "v2"}}),
            "Allow",
        ),
    ])
}

#[test]
fn indexed_candidates_give_the_rules_a_full_scan_gives() {
    let items = mixed_items();
    for negations in [true, false] {
        let got = build(&items.items(), negations, MergeStrategy::default()).unwrap();
        assert!(!got.is_empty());
        assert_eq!(got, build_by_scan(&items.items(), negations), "{negations}");
    }
    // One key only: the plain path.
    let services = Items::new(&[
        ("mesh", json!({"kind": "Mesh"}), "Deny"),
        ("a", json!({"kind": "MeshService", "name": "a"}), "Allow"),
        ("b", json!({"kind": "MeshService", "name": "b"}), "Allow"),
        (
            "a-again",
            json!({"kind": "MeshService", "name": "a"}),
            "Deny",
        ),
    ]);
    let got = build(&services.items(), false, MergeStrategy::default()).unwrap();
    assert_eq!(got, build_by_scan(&services.items(), false));
    assert_eq!(
        services.action_for(&got, &[(SERVICE_TAG, "a")]).as_deref(),
        Some("Deny")
    );
    assert_eq!(
        services.action_for(&got, &[(SERVICE_TAG, "b")]).as_deref(),
        Some("Allow")
    );
}

#[test]
fn service_lookup_finds_what_a_scan_finds() {
    let items = mixed_items();
    for negations in [true, false] {
        let rules = build(&items.items(), negations, MergeStrategy::default()).unwrap();
        let lookup = ServiceRules::new(&rules);
        for service in ["web", "api", "other", ""] {
            let scanned = compute(&rules, &el(&[(SERVICE_TAG, service)]));
            let looked_up = lookup.compute(&rules, service);
            assert_eq!(looked_up, scanned, "{service} with negations {negations}");
        }
    }
    // Hand-made rules: negations, another key, the mesh last.
    let rule = |tags: Vec<Tag>, action: &str| Rule {
        subset: Subset(tags),
        conf: json!({"action": action}),
        origins: Vec::new(),
    };
    let rules = vec![
        rule(
            vec![Tag::new(SERVICE_TAG, "web"), Tag::new("version", "v1")],
            "a",
        ),
        rule(vec![Tag::not(SERVICE_TAG, "web")], "b"),
        rule(
            vec![Tag::new(SERVICE_TAG, "web"), Tag::not("version", "v1")],
            "c",
        ),
        rule(vec![Tag::new("version", "v1")], "d"),
        rule(vec![], "e"),
    ];
    let lookup = ServiceRules::new(&rules);
    let action = |service: &str| {
        lookup
            .compute(&rules, service)
            .map(|r| r.conf["action"].as_str().unwrap().to_string())
    };
    assert_eq!(action("web").as_deref(), Some("c"));
    assert_eq!(action("api").as_deref(), Some("b"));
    for service in ["web", "api"] {
        assert_eq!(
            lookup.compute(&rules, service),
            compute(&rules, &el(&[(SERVICE_TAG, service)]))
        );
    }
    assert_eq!(ServiceRules::new(&[]).compute(&[], "web"), None);
}
