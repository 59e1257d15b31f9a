use super::*;
use crate::kind::{Kind, Spec};

fn parse(yaml: &str) -> MeshSpec {
    serde_yaml::from_str(yaml).unwrap()
}

fn violations(spec: &MeshSpec) -> Vec<(String, String)> {
    crate::validation::violations_of(spec, "default", None)
}

fn mk_builtin_backend(name: &str) -> CaBackend {
    CaBackend {
        name: name.into(),
        type_: "builtin".into(),
        ..Default::default()
    }
}

const DOCS_MESH: &str = r#"
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
      mode: PERMISSIVE
networking:
  outbound:
    passthrough: false
routing:
  zoneEgress: true
  localityAwareLoadBalancing: true
meshServices:
  mode: Exclusive
metrics:
  enabledBackend: prometheus-1
  backends:
    - name: prometheus-1
      type: prometheus
      conf:
        port: 5670
        path: /metrics
        skipMTLS: false
skipCreatingInitialPolicies: ["*"]
"#;

#[test]
fn docs_example_parses_validates_and_round_trips() {
    let spec = parse(DOCS_MESH);
    assert_eq!(violations(&spec), vec![]);
    assert!(spec.mtls_enabled());
    assert!(!spec.passthrough());
    assert_eq!(spec.mesh_services_mode(), MeshServicesMode::Exclusive);
    let backend = spec.enabled_ca_backend().unwrap();
    assert_eq!(backend.mode(), MtlsMode::Permissive);
    let conf = backend.builtin_conf().unwrap();
    assert_eq!(conf.ca_cert.unwrap().rsa_bits, Some(2048));

    let json = Spec::Mesh(spec.clone()).to_json();
    assert_eq!(
        json["mtls"]["backends"][0]["conf"]["caCert"]["RSAbits"],
        2048
    );
    assert!(json.get("tracing").is_none(), "no noise: {json}");
    let again = Spec::from_json(Kind::Mesh, json).unwrap();
    assert_eq!(again, Spec::Mesh(spec));
}

#[test]
fn empty_mesh_is_valid_and_prints_nothing() {
    let spec = parse("{}");
    assert_eq!(violations(&spec), vec![]);
    assert_eq!(serde_json::to_string(&spec).unwrap(), "{}");
    assert!(spec.passthrough());
}

#[test]
fn mode_accepts_protobuf_numbers_and_refuses_unknown_names() {
    let spec = parse("mtls: {backends: [{name: a, type: builtin, mode: 1}]}");
    assert_eq!(
        spec.mtls.unwrap().backends[0].mode,
        Some(MtlsMode::Permissive)
    );
    assert!(
        serde_yaml::from_str::<MeshSpec>("mtls: {backends: [{name: a, mode: LOOSE}]}").is_err()
    );
}

#[test]
fn mtls_violations_are_reported_together() {
    let mut second = mk_builtin_backend("ca-1");
    second.dp_cert = Some(DpCert {
        rotation: Some(Rotation {
            expiration: "1.5 days".into(),
        }),
        request_timeout: None,
    });
    let spec = MeshSpec {
        mtls: Some(Mtls {
            enabled_backend: "ca-2".into(),
            backends: vec![
                mk_builtin_backend("ca-1"),
                second,
                CaBackend {
                    name: "vault".into(),
                    type_: "vault".into(),
                    ..Default::default()
                },
            ],
            skip_validation: false,
        }),
        ..Default::default()
    };
    assert_eq!(
        violations(&spec),
        vec![
            (
                "mtls.backends".to_string(),
                "cannot have more than 1 backends".to_string()
            ),
            (
                "mtls.backends[1].name".to_string(),
                r#""ca-1" name is already used for another backend"#.to_string()
            ),
            (
                "mtls.backends[1].dpCert.rotation.expiration".to_string(),
                "has to be a valid format".to_string()
            ),
            (
                "mtls.backends[2].type".to_string(),
                "could not find installed plugin for this type".to_string()
            ),
            (
                "mtls.enabledBackend".to_string(),
                "has to be set to one of the backends in the mesh".to_string()
            ),
        ]
    );
}

#[test]
fn provided_backend_needs_cert_and_key() {
    let spec = parse(
        r#"
mtls:
  enabledBackend: ca
  backends:
    - name: ca
      type: provided
      conf:
        cert:
          secret: ""
"#,
    );
    assert_eq!(
        violations(&spec),
        vec![
            (
                "mtls.backends[0].conf.cert.secret".to_string(),
                "cannot be empty".to_string()
            ),
            (
                "mtls.backends[0].conf.key".to_string(),
                "has to be defined".to_string()
            ),
        ]
    );
}

#[test]
fn builtin_backend_name_must_make_a_dns_name() {
    let spec = MeshSpec {
        mtls: Some(Mtls {
            backends: vec![mk_builtin_backend("CA One")],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        violations(&spec),
        vec![(
            "mtls.backends[0].name".to_string(),
            r#""CA One" name must be valid dns name"#.to_string()
        )]
    );
}

#[test]
fn observability_and_routing_violations() {
    let spec = parse(
        r#"
routing:
  zoneEgress: true
logging:
  defaultBackend: missing
  backends:
    - name: tcp
      type: tcp
      conf:
        address: no-port
    - name: ""
      type: syslog
tracing:
  backends:
    - name: zipkin
      type: zipkin
      sampling: 120
      conf:
        url: http://zipkin/api/v2/spans
metrics:
  backends:
    - name: prom
      type: statsd
constraints:
  dataplaneProxy:
    requirements:
      - tags: {}
"#,
    );
    let got = violations(&spec);
    let expected: Vec<(&str, &str)> = vec![
        (
            "logging.backends[0].config.address",
            "has to be in format of HOST:PORT",
        ),
        ("logging.backends[1].name", "cannot be empty"),
        (
            "logging.backends[1].type",
            r#"unknown backend type. Available backends: "tcp", "file""#,
        ),
        (
            "logging.defaultBackend",
            "has to be set to one of the logging backend in mesh",
        ),
        (
            "tracing.backends[0].sampling",
            "has to be in [0.0 - 100.0] range",
        ),
        (
            "tracing.backends[0].config.url",
            "port has to be explicitly specified",
        ),
        (
            "metrics.backends[0].type",
            r#"unknown backend type. Available backends: "prometheus""#,
        ),
        (
            "constraints.dataplaneProxy.requirements[0].tags",
            "must have at least one tag",
        ),
        ("mtls", "has to be set when zoneEgress enabled"),
    ];
    let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, expected);
}
