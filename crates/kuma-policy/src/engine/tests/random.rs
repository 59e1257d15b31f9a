//! The conf a proxy's `to` rules give each service, checked against the
//! written rules on random policies.

use serde_json::{Value, json};

use super::{ctx, proxy, web_dataplane};
use crate::engine::PolicyIndex;
use crate::fingerprint::Fingerprint;
use crate::policy::{Policy, SharedConfs};
use crate::rules::compute;
use crate::testing::{Random, mk_resource};
use kuma_api::Kind;
use kuma_api::kinds::tags::SERVICE_TAG;
use std::collections::BTreeMap;

const REFS: &[&str] = &[
    r#"{"kind": "Mesh"}"#,
    r#"{"kind": "MeshService", "name": "a"}"#,
    r#"{"kind": "MeshService", "name": "b"}"#,
    r#"{"kind": "MeshServiceSubset", "name": "c"}"#,
    r#"{"kind": "MeshSubset", "tags": {}}"#,
    r#"{"kind": "MeshSubset", "tags": {"kuma.io/service": "a"}}"#,
    // Taken by the general path only.
    r#"{"kind": "MeshSubset", "tags": {"version": "v1"}}"#,
    r#"{"kind": "MeshSubset", "tags": {"kuma.io/service": "b", "version": "v1"}}"#,
    r#"{"kind": "MeshServiceSubset", "name": "a", "tags": {"version": "v2"}}"#,
    r#"{"kind": "MeshExternalService", "name": "ext"}"#,
];

/// A random `to` entry of `kind`: MeshTimeout confs that repeat, delete
/// and nest; MeshHTTPRoute rules keyed by matches that may repeat.
fn entry(kind: Kind, target_ref: &Value, random: &mut Random) -> Value {
    if kind == Kind::MeshHTTPRoute {
        let rules: Vec<Value> = (0..1 + random.below(2))
            .map(|_| {
                let path = format!("/{}", random.below(6));
                let backend = format!("b{}", random.below(3));
                json!({"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                       "default": {"backendRefs": [{"kind": "MeshService", "name": backend}]}})
            })
            .collect();
        return json!({"targetRef": target_ref, "rules": rules});
    }
    let confs = [
        json!({"idleTimeout": "1s"}),
        json!({"idleTimeout": "2s", "http": {"requestTimeout": "3s"}}),
        json!({"http": {"requestTimeout": null}, "connectionTimeout": "4s"}),
        json!({"http": {"streamIdleTimeout": "5s"}}),
    ];
    json!({"targetRef": target_ref, "default": random.pick(&confs)})
}

#[test]
fn destination_confs_are_the_rules_confs_on_random_policies() {
    let refs: Vec<Value> = REFS
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    let tops = [
        json!({"kind": "Mesh"}),
        json!({"kind": "MeshService", "name": "web"}),
    ];
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let p = proxy("dp-1", &labels, &spec);
    let mut random = Random(0x51_7cc1_b727_220a);
    let mut joined = 0;
    for round in 0..900 {
        // Mostly entries naming one service or the mesh; sometimes anything.
        let simple = round % 3 != 0;
        let kind = if round % 2 == 0 {
            Kind::MeshTimeout
        } else {
            Kind::MeshHTTPRoute
        };
        let mut shared = SharedConfs::default();
        let policies: Vec<Policy> = (0..1 + random.below(8))
            .map(|n| {
                let to: Vec<Value> = (0..1 + random.below(3))
                    .map(|_| {
                        let target_ref = if simple {
                            random.pick(&refs[..6])
                        } else {
                            random.pick(&refs)
                        };
                        entry(kind, target_ref, &mut random)
                    })
                    .collect();
                let spec = json!({"targetRef": random.pick(&tops), "to": to});
                let resource = mk_resource(kind, &format!("p-{n}"), spec);
                let labels = resource.meta.labels.clone();
                Policy::from_spec_sharing(
                    "default",
                    &format!("p-{n}"),
                    labels,
                    resource.spec,
                    &mut shared,
                )
                .unwrap()
            })
            .collect();
        let index = PolicyIndex::new(kind, policies, &ctx());
        let lean = index.shared_rules_for(&p, &ctx());
        let fresh = index.rules_for(&p, &ctx());
        for service in ["a", "b", "c", "d", "web"] {
            let element = BTreeMap::from([(SERVICE_TAG.to_string(), service.to_string())]);
            let want = compute(&fresh.to, &element).map(|r| &r.conf);
            let at = lean.to.for_service(service);
            // Read before the conf itself, which a join folds on first read.
            let fingerprint = at.and_then(|at| lean.to.fingerprint(at));
            assert_eq!(
                fingerprint,
                want.map(Fingerprint::of),
                "round {round}, {service}"
            );
            if let Some(parts) = at.and_then(|at| lean.to.joined(at)) {
                joined += 1;
                let entries: Vec<&Value> = parts
                    .iter()
                    .flat_map(|part| part["rules"].as_array().unwrap())
                    .collect();
                let want = want.map(|w| w["rules"].as_array().unwrap().iter().collect());
                assert_eq!(Some(entries), want, "round {round}, {service}");
            }
            assert_eq!(lean.to_service(service), want, "round {round}, {service}");
            let origins = compute(&fresh.to, &element).map(|r| r.origins.clone());
            assert_eq!(
                lean.to.origins_for_service(service),
                origins.unwrap_or_default(),
                "round {round}, {service}"
            );
        }
        assert_eq!(lean.to.rules(), fresh.to, "round {round}");
    }
    assert!(joined > 50, "only {joined} joined confs");
}
