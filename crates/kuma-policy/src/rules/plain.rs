//! Rules from entries that each aim at one tag value or at the whole mesh
//! (`to` entries naming MeshServices, or MeshSubsets on one key): every
//! distinct tag value gets the fold of the mesh-wide entries and its own,
//! in entry order, without building subsets for every entry first.
//!
//! Gives exactly what the general path of [`super::build`] gives for such
//! entries (see the tests beside it); the general path remains for the rest.

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::{TargetRef, TargetRefKind};

use super::{Rule, RuleItem, is_tag_era_kind, origins};
use crate::merge::MergeStrategy;
use crate::subset::{Subset, Tag};

/// What one entry aims at, when it is simple enough for this path.
pub(crate) enum Aim<'a> {
    Mesh,
    Tag(&'a str, &'a str),
}

pub(crate) fn aim(target_ref: &TargetRef) -> Option<Aim<'_>> {
    let mut tags = target_ref.tags.iter().flatten();
    match target_ref.kind {
        TargetRefKind::Mesh => Some(Aim::Mesh),
        TargetRefKind::MeshService => Some(Aim::Tag(
            SERVICE_TAG,
            target_ref.name.as_deref().unwrap_or_default(),
        )),
        TargetRefKind::MeshServiceSubset if target_ref.tags.iter().flatten().next().is_none() => {
            Some(Aim::Tag(
                SERVICE_TAG,
                target_ref.name.as_deref().unwrap_or_default(),
            ))
        }
        TargetRefKind::MeshSubset => match (tags.next(), tags.next()) {
            (None, _) => Some(Aim::Mesh),
            (Some((k, v)), None) => Some(Aim::Tag(k, v)),
            _ => None,
        },
        _ => None,
    }
}

/// The rules of `items` (in fold order) without negations, or `None` when
/// some entry aims at more than one tag, the entries use more than one tag
/// key, or an entry cannot be turned into a subset at all (the general path
/// then decides, errors included).
pub(super) fn build(items: &[RuleItem<'_>], strategy: MergeStrategy) -> Option<Vec<Rule>> {
    let mut key: Option<&str> = None;
    let mut mesh_wide: Vec<usize> = Vec::new();
    // Distinct tag values in order of first appearance, with their entries.
    let mut values: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut by_value: foldhash::HashMap<&str, usize> = foldhash::HashMap::default();
    for (i, item) in items.iter().enumerate() {
        if !is_tag_era_kind(&item.target_ref.kind) {
            continue;
        }
        match aim(item.target_ref)? {
            Aim::Mesh => mesh_wide.push(i),
            Aim::Tag(k, v) => {
                match key {
                    None => key = Some(k),
                    Some(known) if known != k => return None,
                    Some(_) => {}
                }
                let at = *by_value.entry(v).or_insert_with(|| {
                    values.push((v, Vec::new()));
                    values.len() - 1
                });
                values[at].1.push(i);
            }
        }
    }
    let mut rules = Vec::with_capacity(values.len() + 1);
    let mut relevant: Vec<&RuleItem<'_>> = Vec::new();
    for (value, own) in &values {
        relevant.clear();
        merge_in_order(&mesh_wide, own, |i| relevant.push(&items[i]));
        rules.push(rule(
            Subset(vec![Tag::new(key.unwrap_or_default(), value)]),
            &relevant,
            strategy,
        ));
    }
    // The mesh holds every tag value, so its rule comes last.
    if !mesh_wide.is_empty() {
        relevant.clear();
        relevant.extend(mesh_wide.iter().map(|&i| &items[i]));
        rules.push(rule(Subset::mesh(), &relevant, strategy));
    }
    Some(rules)
}

fn rule(subset: Subset, relevant: &[&RuleItem<'_>], strategy: MergeStrategy) -> Rule {
    Rule {
        subset,
        conf: strategy.fold(relevant.iter().map(|i| i.conf)),
        origins: origins(relevant.iter().map(|i| i.origin)),
    }
}

/// Calls `f` with the indices of two ascending lists, ascending.
pub(crate) fn merge_in_order(a: &[usize], b: &[usize], mut f: impl FnMut(usize)) {
    let (mut x, mut y) = (0, 0);
    while x < a.len() || y < b.len() {
        if y == b.len() || (x < a.len() && a[x] < b[y]) {
            f(a[x]);
            x += 1;
        } else {
            f(b[y]);
            y += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use kuma_api::policies::TargetRef;

    use super::super::{PolicyOrigin, RuleItem, build, build_by_subsets};
    use crate::merge::MergeStrategy;
    use crate::testing::Random;

    fn target_refs() -> Vec<TargetRef> {
        [
            json!({"kind": "Mesh"}),
            json!({"kind": "MeshService", "name": "a"}),
            json!({"kind": "MeshService", "name": "b"}),
            json!({"kind": "MeshService", "name": "c", "sectionName": "http"}),
            json!({"kind": "MeshService"}),
            json!({"kind": "MeshSubset", "tags": {}}),
            json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "a"}}),
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "b", "version": "v1"}}),
            json!({"kind": "MeshServiceSubset", "name": "b"}),
            json!({"kind": "MeshServiceSubset", "name": "a", "tags": {"version": "v2"}}),
            json!({"kind": "MeshExternalService", "name": "ext"}),
            json!({"kind": "MeshGateway", "name": "gw"}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
    }

    fn confs() -> Vec<Value> {
        vec![
            json!({"http": {"numRetries": 2}, "tcp": {"maxConnectAttempt": 3}}),
            json!({"http": {"numRetries": 5, "perTryTimeout": "1s"}}),
            json!({"http": null, "idleTimeout": "20s"}),
            json!({"tcp": {"maxConnectAttempt": null}, "appendX": [1]}),
            json!({"appendX": [2], "list": [1, 2]}),
            json!({"list": [3]}),
        ]
    }

    #[test]
    fn plain_rules_are_the_rules_subsets_give_on_random_entries() {
        let refs = target_refs();
        let confs = confs();
        let origins: Vec<PolicyOrigin> = (0..6)
            .map(|i| PolicyOrigin {
                kind: "MeshRetry".into(),
                mesh: "default".into(),
                name: format!("policy-{i}").into(),
            })
            .collect();
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let mut plain = 0;
        for round in 0..3000 {
            // Mostly services and the mesh, the entries this path takes;
            // sometimes anything.
            let simple = round % 3 != 0;
            let len = random.below(12);
            let items: Vec<RuleItem<'_>> = (0..len)
                .map(|_| RuleItem {
                    target_ref: if simple {
                        random.pick(&refs[..5])
                    } else {
                        random.pick(&refs)
                    },
                    conf: random.pick(&confs),
                    origin: random.pick(&origins),
                })
                .collect();
            let want = build_by_subsets(&items, false, MergeStrategy::default());
            let got = build(&items, false, MergeStrategy::default());
            if super::build(&items, MergeStrategy::default()).is_some() {
                plain += 1;
            }
            match (got, want) {
                (Ok(got), Ok(want)) => {
                    // As text too: member order of confs must match.
                    assert_eq!(got, want, "round {round}");
                    assert_eq!(
                        serde_json::to_string(&got).unwrap(),
                        serde_json::to_string(&want).unwrap()
                    );
                }
                (Err(_), Err(_)) => {}
                (got, want) => panic!("round {round}: {got:?} against {want:?}"),
            }
        }
        // Both paths were taken often.
        assert!(plain > 1500 && plain < 3000, "{plain}");
    }
}
