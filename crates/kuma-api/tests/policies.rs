//! One Universal YAML document per targetRef policy, read through the public
//! API the REST server uses: parse, validate, print, parse again.

use kuma_api::policies::{TargetRef, TargetRefKind};
use kuma_api::{Kind, ResourceDocument, Spec};

const DOCS: &[(Kind, &str)] = &[
    (
        Kind::MeshTrafficPermission,
        "spec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Allow\n",
    ),
    (
        Kind::MeshTimeout,
        "spec:\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: 20s\n",
    ),
    (
        Kind::MeshRetry,
        "spec:\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        http:\n          numRetries: 3\n",
    ),
    (
        Kind::MeshCircuitBreaker,
        "spec:\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        connectionLimits:\n          maxConnections: 2\n",
    ),
    (
        Kind::MeshHealthCheck,
        "spec:\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        interval: 10s\n        tcp: {}\n",
    ),
    (
        Kind::MeshHTTPRoute,
        "spec:\n  to:\n    - targetRef:\n        kind: MeshService\n        name: backend\n      rules:\n        - matches:\n            - path:\n                type: PathPrefix\n                value: /v1\n          default:\n            backendRefs:\n              - kind: MeshService\n                name: backend-v1\n                port: 80\n",
    ),
    (
        Kind::MeshTCPRoute,
        "spec:\n  to:\n    - targetRef:\n        kind: MeshService\n        name: db\n      rules:\n        - default:\n            backendRefs:\n              - kind: MeshService\n                name: db-v2\n",
    ),
    (
        Kind::MeshLoadBalancingStrategy,
        "spec:\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        loadBalancer:\n          type: LeastRequest\n          leastRequest:\n            choiceCount: 3\n",
    ),
    (
        Kind::MeshRateLimit,
        "spec:\n  targetRef:\n    kind: Mesh\n    proxyTypes: [Sidecar]\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        local:\n          tcp:\n            connectionRate:\n              num: 5\n              interval: 1s\n",
    ),
    (
        Kind::MeshFaultInjection,
        "spec:\n  targetRef:\n    kind: Mesh\n    proxyTypes: [Sidecar]\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        http:\n          - delay:\n              value: 1s\n              percentage: 10\n",
    ),
    (
        Kind::MeshAccessLog,
        "spec:\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        backends:\n          - type: File\n            file:\n              path: /dev/stdout\n",
    ),
    (
        Kind::MeshTrace,
        "spec:\n  default:\n    backends:\n      - type: OpenTelemetry\n        openTelemetry:\n          endpoint: collector:4317\n",
    ),
    (
        Kind::MeshMetric,
        "spec:\n  default:\n    backends:\n      - type: Prometheus\n        prometheus:\n          port: 5670\n          path: /metrics\n",
    ),
    (
        Kind::MeshProxyPatch,
        "spec:\n  default:\n    appendModifications:\n      - cluster:\n          operation: Add\n          value: \"name: test\"\n",
    ),
    (
        Kind::MeshPassthrough,
        "spec:\n  default:\n    passthroughMode: All\n",
    ),
    (
        Kind::MeshTLS,
        "spec:\n  rules:\n    - default:\n        mode: Permissive\n",
    ),
];

fn document(kind: Kind, spec: &str) -> String {
    format!("type: {kind}\nname: example\nmesh: default\n{spec}")
}

#[test]
fn every_policy_parses_validates_and_round_trips() {
    assert_eq!(
        DOCS.len(),
        Kind::ALL.iter().filter(|k| k.is_policy()).count()
    );
    for (kind, spec) in DOCS {
        let text = document(*kind, spec);
        let doc = ResourceDocument::from_yaml(&text).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(doc.kind(), *kind);
        if let Err(e) = doc.validate() {
            panic!("{kind} should be valid: {:?}", e.violations());
        }
        let json = doc.clone().into_resource(chrono::Utc::now()).to_json();
        let original: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(json["spec"], original["spec"], "{kind} printed differently");
        assert_eq!(ResourceDocument::from_json(json).unwrap(), doc, "{kind}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let text = document(
        Kind::MeshTimeout,
        "spec:\n  futureField: 1\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: 1s\n        somethingNew: x\n",
    );
    let doc = ResourceDocument::from_yaml(&text).unwrap();
    assert!(doc.validate().is_ok());
}

#[test]
fn wrong_field_types_are_reported_with_their_path() {
    let text = document(
        Kind::MeshRetry,
        "spec:\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        http:\n          numRetries: many\n",
    );
    let err = ResourceDocument::from_yaml(&text).unwrap_err();
    assert_eq!(
        err.violations()[0].field,
        "spec.to[0].default.http.numRetries"
    );
}

#[test]
fn absent_top_level_target_ref_means_mesh() {
    let text = document(
        Kind::MeshTLS,
        "spec:\n  rules:\n    - default:\n        mode: Strict\n",
    );
    let doc = ResourceDocument::from_yaml(&text).unwrap();
    let Spec::MeshTLS(spec) = &doc.spec else {
        panic!("not a MeshTLS")
    };
    assert_eq!(spec.target_ref, None);
    assert_eq!(
        kuma_api::policies::target_ref::top_level(&spec.target_ref),
        TargetRef::mesh()
    );
    assert_eq!(TargetRef::mesh().kind, TargetRefKind::Mesh);
}

#[test]
fn violations_of_several_sections_come_back_together() {
    let text = document(
        Kind::MeshTimeout,
        "spec:\n  targetRef:\n    kind: MeshFoo\n  to:\n    - targetRef:\n        kind: Mesh\n      default: {}\n",
    );
    let doc = ResourceDocument::from_yaml(&text).unwrap();
    let err = doc.validate().unwrap_err();
    let fields: Vec<_> = err.violations().iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.targetRef.kind", "spec.to[0].default"]);
}
