//! Every non-policy kind, written as a Kuma user writes it in Universal YAML,
//! parses, validates, and comes back unchanged from its REST JSON form.

use chrono::{TimeZone, Utc};
use kuma_api::{ApiError, Kind, ResourceDocument};

const DOCS: &[(Kind, &str)] = &[
    (
        Kind::Mesh,
        r#"
type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
      dpCert:
        rotation:
          expiration: 1d
      conf:
        caCert:
          RSAbits: 2048
          expiration: 10y
"#,
    ),
    (
        Kind::Dataplane,
        r#"
type: Dataplane
mesh: default
name: redis-1
networking:
  address: 192.168.0.1
  inbound:
    - port: 9000
      servicePort: 6379
      tags:
        kuma.io/service: redis
  outbound:
    - port: 10001
      tags:
        kuma.io/service: backend
"#,
    ),
    (
        Kind::Secret,
        "type: Secret\nmesh: default\nname: sample-secret\ndata: dmFsdWUK\n",
    ),
    (
        Kind::GlobalSecret,
        "type: GlobalSecret\nname: sample-global-secret\ndata: dmFsdWUK\n",
    ),
    (Kind::Zone, "type: Zone\nname: zone-1\nenabled: true\n"),
    (
        Kind::ZoneIngress,
        r#"
type: ZoneIngress
name: zone-ingress-1
networking:
  address: 192.168.0.1
  port: 10001
  advertisedAddress: 10.0.0.1
  advertisedPort: 10000
"#,
    ),
    (
        Kind::ZoneEgress,
        "type: ZoneEgress\nname: zoneegress-1\nnetworking:\n  address: 192.168.0.1\n  port: 10002\n",
    ),
    (
        Kind::MeshGateway,
        r#"
type: MeshGateway
mesh: default
name: edge-gateway
selectors:
  - match:
      kuma.io/service: edge-gateway
conf:
  listeners:
    - port: 8080
      protocol: HTTP
      hostname: foo.example.com
"#,
    ),
    (
        Kind::MeshGatewayRoute,
        r#"
type: MeshGatewayRoute
mesh: default
name: edge-gateway-route
selectors:
  - match:
      kuma.io/service: edge-gateway
conf:
  http:
    rules:
      - matches:
          - path:
              match: PREFIX
              value: /
        backends:
          - destination:
              kuma.io/service: demo-app
"#,
    ),
    (
        Kind::MeshService,
        r#"
type: MeshService
mesh: default
name: redis
labels:
  kuma.io/origin: zone
spec:
  selector:
    dataplaneTags:
      kuma.io/service: redis
  ports:
    - port: 6739
      targetPort: 6739
      appProtocol: tcp
"#,
    ),
    (
        Kind::MeshExternalService,
        r#"
type: MeshExternalService
mesh: default
name: example
spec:
  match:
    type: HostnameGenerator
    port: 443
    protocol: http
  endpoints:
    - address: example.com
      port: 443
  tls:
    enabled: true
"#,
    ),
    (
        Kind::MeshMultiZoneService,
        r#"
type: MeshMultiZoneService
mesh: default
name: redis
spec:
  selector:
    meshService:
      matchLabels:
        kuma.io/display-name: redis
  ports:
    - port: 6379
      appProtocol: tcp
"#,
    ),
    (
        Kind::HostnameGenerator,
        r#"
type: HostnameGenerator
name: local-mesh-service
spec:
  selector:
    meshService:
      matchLabels:
        kuma.io/origin: zone
  template: "{{ .DisplayName }}.svc.mesh.local"
"#,
    ),
    (
        Kind::MeshIdentity,
        r#"
type: MeshIdentity
mesh: default
name: identity
spec:
  selector:
    dataplane:
      matchLabels: {}
  spiffeID:
    trustDomain: "{{ .Mesh }}.{{ .Zone }}.mesh.local"
  provider:
    type: Bundled
    bundled:
      meshTrustCreation: Enabled
      autogenerate:
        enabled: true
"#,
    ),
    (
        Kind::MeshTrust,
        r#"
type: MeshTrust
mesh: default
name: trust-of-identity
spec:
  trustDomain: default.zone-1.mesh.local
  caBundles:
    - type: Pem
      pem:
        value: |
          -----BEGIN CERTIFICATE-----
          MIIBfakecertificatebodyforparsing
          -----END CERTIFICATE-----
"#,
    ),
    (
        Kind::MeshOpenTelemetryBackend,
        r#"
type: MeshOpenTelemetryBackend
mesh: default
name: otel
spec:
  endpoint:
    address: otel-collector.observability
    port: 4317
  protocol: grpc
"#,
    ),
];

#[test]
fn every_kind_parses_validates_and_round_trips() {
    let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    for (kind, yaml) in DOCS {
        let doc = ResourceDocument::from_yaml(yaml).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(doc.kind(), *kind);
        doc.validate().unwrap_or_else(|e| panic!("{kind}: {e:?}"));

        let resource = doc.clone().into_resource(now);
        let json = resource.to_json();
        let again =
            ResourceDocument::from_json(json.clone()).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(again.spec, doc.spec, "{kind} round trip: {json}");
    }
}

#[test]
fn every_kind_is_covered() {
    for kind in Kind::ALL.iter().filter(|k| !k.is_policy()) {
        assert!(
            DOCS.iter().any(|(k, _)| k == kind),
            "{kind} has no example document"
        );
    }
}

#[test]
fn inline_kinds_report_paths_from_the_root() {
    let doc = ResourceDocument::from_yaml(
        r#"
type: Dataplane
mesh: default
name: Bad_Name
networking:
  address: ""
  inbound:
    - port: 0
      tags:
        kuma.io/service: web
"#,
    )
    .unwrap();
    let Err(ApiError::Invalid(violations)) = doc.validate() else {
        panic!("expected violations");
    };
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["name", "networking.address", "networking.inbound[0].port"]
    );
}

#[test]
fn wrapped_kinds_report_paths_under_spec() {
    let doc = ResourceDocument::from_yaml(
        "type: MeshService\nmesh: default\nname: web\nspec:\n  ports:\n    - port: 70000\n",
    )
    .unwrap();
    let Err(ApiError::Invalid(violations)) = doc.validate() else {
        panic!("expected violations");
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "spec.ports[0].port");
    assert_eq!(
        violations[0].message,
        "port must be in the range [1, 65535]"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let doc =
        ResourceDocument::from_yaml("type: Zone\nname: zone-1\nenabled: false\nsomethingNew: 1\n")
            .unwrap();
    doc.validate().unwrap();
}
