use super::*;
use crate::kind::{Kind, Spec};

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_inbound(port: u32, service: &str) -> Inbound {
    Inbound {
        port,
        tags: tags(&[(SERVICE_TAG, service)]),
        ..Default::default()
    }
}

fn mk_dataplane(address: &str, inbound: Vec<Inbound>, outbound: Vec<Outbound>) -> DataplaneSpec {
    DataplaneSpec {
        networking: Some(Networking {
            address: address.into(),
            inbound,
            outbound,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn violations(spec: &DataplaneSpec) -> Vec<(String, String)> {
    crate::validation::violations_of(spec, "dp-1", Some("default"))
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

const DOCS_DATAPLANE: &str = r#"
networking:
  address: 192.168.0.1
  inbound:
    - port: 9000
      servicePort: 6379
      tags:
        kuma.io/service: redis
        kuma.io/protocol: tcp
      serviceProbe:
        interval: 10s
        timeout: 2s
        unhealthyThreshold: 3
        healthyThreshold: 1
        tcp: {}
  outbound:
    - port: 10000
      tags:
        kuma.io/service: backend
    - port: 10001
      backendRef:
        kind: MeshService
        name: web
        port: 8080
  transparentProxying:
    redirectPortInbound: 15006
    redirectPortOutbound: 15001
    reachableServices: [backend]
    ipFamilyMode: DualStack
  admin:
    port: 9902
probes:
  port: 9000
  endpoints:
    - inboundPort: 9001
      inboundPath: /healthz
      path: /9001/healthz
"#;

#[test]
fn docs_example_parses_validates_and_round_trips() {
    let spec: DataplaneSpec = serde_yaml::from_str(DOCS_DATAPLANE).unwrap();
    assert_eq!(violations(&spec), vec![]);
    assert_eq!(spec.service_tag(), Some("redis"));
    assert_eq!(spec.inbounds()[0].protocol(), "tcp");
    assert_eq!(spec.inbounds()[0].workload_port(), 6379);
    assert_eq!(spec.outbounds()[0].service(), Some("backend"));
    assert_eq!(spec.admin_port(), Some(9902));
    assert_eq!(
        spec.transparent_proxying().unwrap().ip_family_mode,
        Some(IpFamilyMode::DualStack)
    );
    let json = Spec::Dataplane(spec.clone()).to_json();
    assert_eq!(
        json["networking"]["transparentProxying"]["redirectPortInbound"],
        15006
    );
    assert!(json["networking"]["inbound"][0].get("address").is_none());
    assert_eq!(
        Spec::from_json(Kind::Dataplane, json).unwrap(),
        Spec::Dataplane(spec)
    );
}

#[test]
fn snake_case_protobuf_names_are_accepted() {
    let spec: DataplaneSpec = serde_yaml::from_str(
        "networking: {address: 10.0.0.1, transparent_proxying: {redirect_port_inbound: 15006}}",
    )
    .unwrap();
    assert_eq!(
        spec.transparent_proxying().unwrap().redirect_port_inbound,
        15006
    );
}

#[test]
fn gateway_accessors() {
    let spec: DataplaneSpec = serde_yaml::from_str(
        "networking: {address: 10.0.0.1, gateway: {type: BUILTIN, tags: {kuma.io/service: edge}}}",
    )
    .unwrap();
    assert!(spec.is_builtin_gateway());
    assert_eq!(spec.service_tag(), Some("edge"));
    assert_eq!(violations(&spec), vec![]);
}

#[test]
fn inbound_protocol_defaults_to_tcp_and_prefers_the_field() {
    let mut i = mk_inbound(80, "web");
    assert_eq!(i.protocol(), "tcp");
    i.tags.insert(PROTOCOL_TAG.into(), "http".into());
    assert_eq!(i.protocol(), "http");
    i.protocol = "grpc".into();
    assert_eq!(i.protocol(), "grpc");
}

#[test]
fn missing_networking() {
    assert_eq!(
        violations(&DataplaneSpec::default()),
        vec![("networking".to_string(), "must be defined".to_string())]
    );
}

#[test]
fn inbound_and_outbound_violations_are_reported_together() {
    let mut bad_inbound = mk_inbound(0, "");
    bad_inbound.service_port = 70000;
    bad_inbound.tags.insert(PROTOCOL_TAG.into(), "mongo".into());
    let untagged_service = Inbound {
        port: 8080,
        tags: tags(&[("version", "v1")]),
        ..Default::default()
    };
    let spec = mk_dataplane(
        "0.0.0.0",
        vec![bad_inbound, untagged_service],
        vec![
            Outbound {
                port: 10000,
                ..Default::default()
            },
            Outbound {
                port: 10001,
                tags: tags(&[(SERVICE_TAG, "db")]),
                backend_ref: Some(BackendRef {
                    kind: "Dataplane".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    );
    let got = violations(&spec);
    assert_eq!(
        pairs(&got),
        vec![
            ("networking.address", "must not be 0.0.0.0 or ::"),
            (
                "networking.inbound[0].port",
                "port must be in the range [1, 65535]"
            ),
            (
                "networking.inbound[0].servicePort",
                "port must be in the range [1, 65535]"
            ),
            (
                r#"networking.inbound[0].tags["kuma.io/protocol"]"#,
                r#"tag "kuma.io/protocol" has an invalid value "mongo". Allowed values: grpc, http, http2, kafka, tcp"#
            ),
            (
                r#"networking.inbound[0].tags["kuma.io/service"]"#,
                "tag value must be non-empty"
            ),
            (
                r#"networking.inbound[1].tags["kuma.io/service"]"#,
                "tag has to exist"
            ),
            (
                "networking.outbound[0].tags",
                r#"mandatory tag "kuma.io/service" is missing"#
            ),
            (
                "networking.outbound[1].backendRef.kind",
                "invalid value. Available values are: MeshExternalService,MeshMultiZoneService,MeshService"
            ),
            (
                "networking.outbound[1].backendRef",
                "either 'name' or 'labels' should be specified"
            ),
            (
                "networking.outbound[1].backendRef.port",
                "port must be in the range [1, 65535]"
            ),
            (
                "networking.outbound[1].backendRef",
                "both backendRef and tags/service cannot be defined"
            ),
        ]
    );
}

#[test]
fn gateway_rules() {
    let mut spec = mk_dataplane("10.0.0.1", vec![mk_inbound(80, "web")], vec![]);
    let networking = spec.networking.as_mut().unwrap();
    networking.gateway = Some(Gateway {
        tags: tags(&[(PROTOCOL_TAG, "http"), ("app", "edge")]),
        type_: None,
    });
    let got = violations(&spec);
    assert_eq!(
        pairs(&got),
        vec![
            (
                "networking.inbound",
                "inbound cannot be defined for delegated gateways"
            ),
            (
                r#"networking.gateway.tags["kuma.io/protocol"]"#,
                r#"other values than tcp are not allowed, provided value "http""#
            ),
            (
                "networking.gateway.tags",
                r#"mandatory tag "kuma.io/service" is missing"#
            ),
        ]
    );
}

#[test]
fn admin_port_probe_and_service_probe_rules() {
    let mut inbound = mk_inbound(9901, "web");
    inbound.service_probe = Some(ServiceProbe {
        interval: Some("0s".into()),
        timeout: Some("5 seconds".into()),
        unhealthy_threshold: Some(0),
        ..Default::default()
    });
    let mut spec = mk_dataplane("10.0.0.1", vec![inbound], vec![]);
    spec.networking.as_mut().unwrap().admin = Some(EnvoyAdmin { port: 9901 });
    spec.probes = Some(Probes {
        port: 9000,
        endpoints: vec![ProbeEndpoint {
            inbound_port: 9901,
            inbound_path: "healthz".into(),
            path: "/ok".into(),
        }],
    });
    let got = violations(&spec);
    assert_eq!(
        pairs(&got),
        vec![
            ("networking.admin.port", "must differ from inbound"),
            (
                "networking.inbound[0].serviceProbe.interval",
                "must have a positive value"
            ),
            (
                "networking.inbound[0].serviceProbe.timeout",
                "must have a valid value"
            ),
            (
                "networking.inbound[0].serviceProbe.unhealthyThreshold",
                "must have a positive value"
            ),
            (
                "probes.endpoints[0].inboundPath",
                "should be a valid URL Path"
            ),
        ]
    );
}

#[test]
fn reachable_backends_rules() {
    let mut spec = mk_dataplane("10.0.0.1", vec![mk_inbound(80, "web")], vec![]);
    spec.networking.as_mut().unwrap().transparent_proxying = Some(TransparentProxying {
        reachable_backends: Some(ReachableBackends {
            refs: vec![
                ReachableBackendRef {
                    kind: "MeshService".into(),
                    name: "Bad_Name".into(),
                    ..Default::default()
                },
                ReachableBackendRef {
                    kind: "MeshService".into(),
                    namespace: "ns".into(),
                    ..Default::default()
                },
            ],
        }),
        ..Default::default()
    });
    let got = violations(&spec);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "networking.transparentProxying.reachableBackends.refs[0].name",
            "networking.transparentProxying.reachableBackends.refs[1].name",
        ]
    );
    assert_eq!(got[1].1, "name is required, when namespace is defined");
}
