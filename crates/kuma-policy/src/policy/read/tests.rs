use serde_json::json;

use kuma_api::{Kind, Spec};

use super::*;
use crate::testing::Random;

fn mk_spec(kind: Kind, spec: Value) -> Spec {
    Spec::from_json(kind, spec).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// The typed reader gives what the JSON reader gives for the spec's JSON.
fn assert_same_parts(kind: Kind, spec: Value) {
    let spec = mk_spec(kind, spec);
    let json = from_json(&spec.to_json(), "p").unwrap();
    let typed = from_typed(spec, &mut SharedConfs::default())
        .unwrap_or_else(|_| panic!("{kind} has no typed reader"));
    // Member order too: confs are folded and written out in it.
    assert_eq!(format!("{typed:?}"), format!("{json:?}"), "{kind}");
    assert_eq!(typed, json, "{kind}");
}

#[test]
fn every_policy_kind_has_a_typed_reader() {
    for kind in Kind::ALL.iter().filter(|k| k.is_policy()) {
        let spec = mk_spec(*kind, json!({}));
        let parts = from_typed(spec, &mut SharedConfs::default())
            .unwrap_or_else(|_| panic!("{kind} has no typed reader"));
        assert_eq!(parts.target_ref, TargetRef::mesh(), "{kind}");
    }
    let dataplane = mk_spec(Kind::Dataplane, json!({}));
    assert!(from_typed(dataplane, &mut SharedConfs::default()).is_err());
}

#[test]
fn typed_and_json_readers_agree_on_to_from_and_rules() {
    let subset = json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "web"}});
    let backend = json!({"kind": "MeshService", "name": "backend"});
    let timeout = json!({"idleTimeout": "1s", "http": {"requestTimeout": "2s"}});
    assert_same_parts(
        Kind::MeshTimeout,
        json!({"targetRef": subset, "to": [
            {"targetRef": backend, "default": timeout},
            {"targetRef": {"kind": "Mesh"}}
        ], "from": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "3s"}}]}),
    );
    // Rules with and without matches or a default.
    let spiffe = json!([{"spiffeID": {"type": "Exact", "value": "spiffe://default/web"}}]);
    assert_same_parts(
        Kind::MeshTimeout,
        json!({"rules": [{"matches": spiffe, "default": timeout}, {"matches": spiffe}, {}]}),
    );
    assert_same_parts(
        Kind::MeshTrafficPermission,
        json!({"targetRef": {"kind": "Dataplane", "labels": {"app": "a"}, "sectionName": "http"},
               "from": [{"targetRef": subset, "default": {"action": "Deny"}}, {"targetRef": {"kind": "Mesh"}}]}),
    );
    assert_same_parts(
        Kind::MeshTrafficPermission,
        json!({"rules": [{"default": {"allow": spiffe, "deny": spiffe}}, {}]}),
    );
    assert_same_parts(
        Kind::MeshCircuitBreaker,
        json!({"to": [{"targetRef": backend, "default": {"connectionLimits": {"maxConnections": 2}}}],
               "rules": [{"default": {"outlierDetection": {"disabled": true}}}, {}]}),
    );
    assert_same_parts(
        Kind::MeshTLS,
        json!({"from": [{"targetRef": {"kind": "Mesh"}, "default": {"mode": "Strict"}}],
               "rules": [{"default": {"mode": "Permissive"}}, {}]}),
    );
    assert_same_parts(
        Kind::MeshRetry,
        json!({"to": [{"targetRef": backend, "default": {"http": {"numRetries": 2}}}]}),
    );
    assert_same_parts(
        Kind::MeshHealthCheck,
        json!({"to": [{"targetRef": backend, "default": {"interval": "10s", "http": {"path": "/h"}}}]}),
    );
    assert_same_parts(
        Kind::MeshLoadBalancingStrategy,
        json!({"to": [{"targetRef": backend, "default": {"loadBalancer": {"type": "RoundRobin"}}}]}),
    );
    assert_same_parts(
        Kind::MeshRateLimit,
        json!({"from": [{"targetRef": {"kind": "Mesh"}, "default": {"local": {"http": {
                   "requestRate": {"num": 5, "interval": "10s"}}}}}],
               "rules": [{"matches": spiffe, "default": {"local": {"tcp": {"disabled": true}}}}]}),
    );
    assert_same_parts(
        Kind::MeshFaultInjection,
        json!({"from": [{"targetRef": {"kind": "Mesh"}, "default": {"http": [
                   {"abort": {"httpStatus": 500, "percentage": 50}}]}}]}),
    );
    assert_same_parts(
        Kind::MeshAccessLog,
        json!({"to": [{"targetRef": backend, "default": {"backends": [{"type": "File", "file": {"path": "/tmp/log"}}]}}],
               "from": [{"targetRef": {"kind": "Mesh"}}]}),
    );
}

#[test]
fn typed_and_json_readers_agree_on_routes_and_defaults() {
    assert_same_parts(
        Kind::MeshHTTPRoute,
        json!({"targetRef": {"kind": "MeshService", "name": "web"}, "to": [
            {"targetRef": {"kind": "MeshService", "name": "backend"}, "hostnames": ["a.b"], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "default": {"backendRefs": [{"kind": "MeshService", "name": "backend", "weight": 90}]}}
            ]},
            {"targetRef": {"kind": "Mesh"}}
        ]}),
    );
    // Hostnames or rules alone, rules without matches.
    assert_same_parts(
        Kind::MeshHTTPRoute,
        json!({"to": [
            {"targetRef": {"kind": "MeshService", "name": "a"}, "hostnames": ["x.y", "z"]},
            {"targetRef": {"kind": "MeshService", "name": "b"}, "hostnames": [], "rules": [
                {"default": {"filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}]}}
            ]},
            {"rules": [{"matches": [{"method": "GET"}], "default": {}}], "targetRef": {"kind": "Mesh"}}
        ]}),
    );
    assert_same_parts(
        Kind::MeshTCPRoute,
        json!({"to": [{"targetRef": {"kind": "Mesh"}}]}),
    );
    assert_same_parts(
        Kind::MeshTCPRoute,
        json!({"to": [{"targetRef": {"kind": "MeshService", "name": "db"}, "rules": [
            {"default": {"backendRefs": [{"kind": "MeshService", "name": "db-v2"}]}}
        ]}]}),
    );
    assert_same_parts(
        Kind::MeshTrace,
        json!({"default": {"sampling": {"overall": 50}, "tags": [{"name": "team", "literal": "x"}]}}),
    );
    assert_same_parts(Kind::MeshMetric, json!({"default": {}}));
    assert_same_parts(
        Kind::MeshProxyPatch,
        json!({"targetRef": {"kind": "Mesh"}, "default": {"appendModifications": [
            {"cluster": {"operation": "Add", "value": "name: c"}}]}}),
    );
    assert_same_parts(Kind::MeshPassthrough, json!({}));
    assert_same_parts(
        Kind::MeshPassthrough,
        json!({"default": {"passthroughMode": "Matched", "appendMatch": [
            {"type": "Domain", "value": "example.com", "protocol": "tls"}]}}),
    );
}

#[test]
fn json_reader_names_the_target_ref_it_cannot_read() {
    let err = from_json(&json!({"to": [{"targetRef": {"kind": 7}}]}), "p").unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy p: spec.to[0].targetRef does not read as a targetRef"
    );
    let missing = from_json(&json!({"from": [{}]}), "p").unwrap_err();
    assert!(missing.to_string().contains("spec.from[0].targetRef"));
}

#[test]
fn policies_read_together_share_equal_confs_and_read_as_alone() {
    let timeouts = [
        json!({"idleTimeout": "1s"}),
        json!({"idleTimeout": "1s", "http": {"requestTimeout": "2s"}}),
        json!({"http": {"requestTimeout": "2s"}, "idleTimeout": "1s"}),
        json!({"connectionTimeout": "1s"}),
        json!({}),
    ];
    let mut confs = SharedConfs::default();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut read = Vec::new();
    for round in 0..200 {
        let random = random.next_u64();
        let a = &timeouts[(random % 5) as usize];
        let b = &timeouts[((random >> 8) % 5) as usize];
        let spec = json!({"to": [{"targetRef": {"kind": "Mesh"}, "default": a}],
                          "from": [{"targetRef": {"kind": "Mesh"}, "default": b}],
                          "rules": [{"default": a}, {}]});
        let together = from_typed(mk_spec(Kind::MeshTimeout, spec.clone()), &mut confs).unwrap();
        let alone = from_typed(
            mk_spec(Kind::MeshTimeout, spec),
            &mut SharedConfs::default(),
        )
        .unwrap();
        assert_eq!(
            format!("{together:?}"),
            format!("{alone:?}"),
            "round {round}"
        );
        read.push(together);
    }
    // Equal confs are one value; confs with members in another order are
    // not equal as text, so they are not shared.
    let confs: Vec<&Arc<Value>> = read
        .iter()
        .flat_map(|p| {
            p.to.iter()
                .chain(&p.from)
                .map(|e| &e.conf)
                .chain(p.rules.iter().map(|e| &e.conf))
        })
        .collect();
    for a in &confs {
        for b in &confs {
            let same_text = a.to_string() == b.to_string();
            assert_eq!(Arc::ptr_eq(a, b), same_text, "{a} {b}");
        }
    }
}
