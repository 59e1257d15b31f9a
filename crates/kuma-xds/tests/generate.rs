//! Behaviour of proxy generation beyond the golden files: sharing,
//! isolation, determinism, transparent proxying, errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use kuma_api::kinds::dataplane::{
    BackendRef, DataplaneSpec, Gateway, GatewayType, Inbound, Networking, Outbound,
    TransparentProxying,
};
use kuma_api::{Resource, ResourceDocument};
use kuma_xds::generate::{GenerateError, MeshSnapshot, generate_proxy};
use kuma_xds::testing::encoded;
use kuma_xds::{ProxyResources, type_url};
use prost::Message;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_inbound(service: &str, port: u32, protocol: &str) -> Inbound {
    Inbound {
        port,
        tags: tags(&[("kuma.io/service", service), ("kuma.io/protocol", protocol)]),
        ..Inbound::default()
    }
}

fn mk_outbound(service: &str, port: u32) -> Outbound {
    Outbound {
        port,
        tags: tags(&[("kuma.io/service", service)]),
        ..Outbound::default()
    }
}

fn mk_dataplane(address: &str, inbound: Vec<Inbound>, outbound: Vec<Outbound>) -> DataplaneSpec {
    DataplaneSpec {
        networking: Some(Networking {
            address: address.into(),
            inbound,
            outbound,
            ..Networking::default()
        }),
        ..DataplaneSpec::default()
    }
}

/// `web-N` proxies calling `backend`, served by `backend-1` and `backend-2`.
fn mk_snapshot(webs: usize) -> MeshSnapshot {
    let mut b = MeshSnapshot::builder("default");
    for i in 1..=webs {
        b.dataplane(
            &format!("web-{i}"),
            mk_dataplane(
                &format!("10.0.1.{i}"),
                vec![mk_inbound("web", 8080, "http")],
                vec![mk_outbound("backend", 10001)],
            ),
        );
    }
    for i in 1..=2 {
        b.dataplane(
            &format!("backend-{i}"),
            mk_dataplane(
                &format!("10.0.2.{i}"),
                vec![mk_inbound("backend", 9090, "grpc")],
                vec![],
            ),
        );
    }
    b.build()
}

fn names(p: &ProxyResources, url: &str) -> Vec<String> {
    p.of_type(url).map(|r| r.name.clone()).collect()
}

fn endpoint_addresses(p: &ProxyResources, cluster: &str) -> Vec<String> {
    let r = p
        .by_type
        .get(type_url::ENDPOINT)
        .and_then(|m| m.get(cluster))
        .expect("load assignment");
    let cla = ClusterLoadAssignment::decode(r.body.value.as_slice()).expect("decodes");
    addresses_in(&cla)
}

/// The socket addresses in a message, in order: enough to compare without
/// walking the oneofs.
fn addresses_in(message: &impl std::fmt::Debug) -> Vec<String> {
    let text = format!("{message:?}");
    text.split("address: \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn identical_resources_are_built_once_and_shared() {
    let snap = mk_snapshot(3);
    let a = generate_proxy(&snap, "web-1").expect("web-1");
    let b = generate_proxy(&snap, "web-2").expect("web-2");
    for (url, name) in [
        (type_url::CLUSTER, "backend"),
        (type_url::ENDPOINT, "backend"),
        (type_url::LISTENER, "outbound:127.0.0.1:10001"),
        (type_url::CLUSTER, "localhost:8080"),
    ] {
        let ra = &a.by_type[url][name];
        let rb = &b.by_type[url][name];
        assert!(Arc::ptr_eq(ra, rb), "{name} of {url} not shared");
    }
    // Inbound listeners carry each proxy's own address: never shared.
    assert_ne!(names(&a, type_url::LISTENER), names(&b, type_url::LISTENER));
}

#[test]
fn versions_are_the_same_in_a_fresh_snapshot() {
    // A restarted control plane must not resend what proxies already have.
    let one = generate_proxy(&mk_snapshot(1), "web-1").expect("one");
    let two = generate_proxy(&mk_snapshot(1), "web-1").expect("two");
    for url in type_url::ORDER {
        assert_eq!(one.type_version(url), two.type_version(url), "{url}");
    }
    assert_eq!(one, two);
}

#[test]
fn outbound_gets_every_ready_instance_and_http2() {
    let snap = mk_snapshot(1);
    let p = generate_proxy(&snap, "web-1").expect("web-1");
    assert_eq!(endpoint_addresses(&p, "backend"), ["10.0.2.1", "10.0.2.2"]);
    let cluster = Cluster::decode(
        p.by_type[type_url::CLUSTER]["backend"]
            .body
            .value
            .as_slice(),
    )
    .expect("decodes");
    assert!(
        cluster
            .typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"),
        "grpc destination needs HTTP/2"
    );
}

#[test]
fn a_proxy_gets_only_what_it_declares() {
    let snap = mk_snapshot(1);
    let backend = generate_proxy(&snap, "backend-1").expect("backend-1");
    assert!(backend.of_type(type_url::ENDPOINT).next().is_none());
    assert_eq!(names(&backend, type_url::CLUSTER), ["localhost:9090"]);
    assert_eq!(
        names(&backend, type_url::LISTENER),
        ["inbound:10.0.2.1:9090"]
    );
}

fn resource(mesh: Option<&str>, yaml: &str) -> Resource {
    let mut doc = ResourceDocument::from_yaml(yaml).expect("parses");
    doc.mesh = mesh.map(str::to_string);
    doc.into_resource(DateTime::<Utc>::MIN_UTC)
}

#[test]
fn another_meshs_dataplanes_never_appear() {
    let dp = |name: &str, address: &str, service: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 80\n    tags:\n      kuma.io/service: {service}\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        )
    };
    let listing = vec![
        resource(None, "type: Mesh\nname: blue"),
        resource(None, "type: Mesh\nname: green"),
        resource(Some("blue"), &dp("web", "10.0.0.1", "web")),
        resource(Some("blue"), &dp("backend-blue", "10.0.0.2", "backend")),
        resource(Some("green"), &dp("backend-green", "10.9.9.9", "backend")),
        resource(Some("green"), &dp("web", "10.9.9.1", "web")),
    ];
    let blue = MeshSnapshot::from_resources("blue", listing.clone());
    let p = generate_proxy(&blue, "web").expect("blue web");
    assert_eq!(endpoint_addresses(&p, "backend"), ["10.0.0.2"]);
    let all = format!("{p:?}");
    assert!(!all.contains("10.9.9"), "green leaked into blue");
    assert!(blue.dataplane("backend-green").is_none());
    assert!(matches!(
        generate_proxy(&blue, "backend-green"),
        Err(GenerateError::DataplaneNotFound { .. })
    ));

    let green = MeshSnapshot::from_resources("green", listing);
    let p = generate_proxy(&green, "web").expect("green web");
    assert_eq!(endpoint_addresses(&p, "backend"), ["10.9.9.9"]);
}

#[test]
fn transparent_proxy_reaches_listed_services_or_all() {
    let mut b = MeshSnapshot::builder("default");
    for (name, svc, addr) in [
        ("a", "alpha", "10.0.0.1"),
        ("b", "beta", "10.0.0.2"),
        ("c", "gamma", "10.0.0.3"),
    ] {
        b.dataplane(
            name,
            mk_dataplane(addr, vec![mk_inbound(svc, 80, "tcp")], vec![]),
        );
    }
    let mut limited = mk_dataplane("10.0.0.9", vec![mk_inbound("client", 80, "tcp")], vec![]);
    let mut open = limited.clone();
    if let Some(n) = limited.networking.as_mut() {
        n.transparent_proxying = Some(TransparentProxying {
            redirect_port_inbound: 15006,
            redirect_port_outbound: 15001,
            reachable_services: vec!["beta".into()],
            ..TransparentProxying::default()
        });
    }
    if let Some(n) = open.networking.as_mut() {
        n.transparent_proxying = Some(TransparentProxying {
            redirect_port_inbound: 15006,
            redirect_port_outbound: 15001,
            ..TransparentProxying::default()
        });
    }
    b.dataplane("limited", limited);
    b.dataplane("open", open);
    let snap = b.build();
    let limited = generate_proxy(&snap, "limited").expect("limited");
    assert_eq!(names(&limited, type_url::ENDPOINT), ["beta"]);
    let open = generate_proxy(&snap, "open").expect("open");
    assert_eq!(
        names(&open, type_url::ENDPOINT),
        ["alpha", "beta", "client", "gamma"]
    );
}

#[test]
fn unserved_and_unknown_destinations() {
    let mut b = MeshSnapshot::builder("default");
    let msvc = Outbound {
        port: 10002,
        backend_ref: Some(BackendRef {
            kind: "MeshService".into(),
            name: "nope".into(),
            port: 80,
            ..BackendRef::default()
        }),
        ..Outbound::default()
    };
    b.dataplane(
        "web",
        mk_dataplane(
            "10.0.0.1",
            vec![mk_inbound("web", 80, "http")],
            vec![mk_outbound("nobody-yet", 10001), msvc],
        ),
    );
    let p = generate_proxy(&b.build(), "web").expect("web");
    // A service nobody serves yet still gets its listener and an empty
    // assignment; an unknown MeshService gets nothing.
    assert_eq!(
        names(&p, type_url::LISTENER),
        ["inbound:10.0.0.1:80", "outbound:127.0.0.1:10001"]
    );
    assert!(endpoint_addresses(&p, "nobody-yet").is_empty());
}

#[test]
fn errors_name_the_problem() {
    let mut b = MeshSnapshot::builder("default");
    b.dataplane(
        "no-address",
        mk_dataplane("", vec![mk_inbound("x", 80, "tcp")], vec![]),
    );
    let mut gw = mk_dataplane("10.0.0.1", vec![], vec![]);
    if let Some(n) = gw.networking.as_mut() {
        n.gateway = Some(Gateway {
            tags: tags(&[("kuma.io/service", "edge")]),
            type_: Some(GatewayType::Builtin),
        });
    }
    b.dataplane("builtin", gw);
    let snap = b.build();
    let err = generate_proxy(&snap, "no-address").expect_err("no address");
    assert!(matches!(
        err,
        GenerateError::NoInboundAddress { port: 80, .. }
    ));
    assert!(matches!(
        generate_proxy(&snap, "builtin"),
        Err(GenerateError::BuiltinGateway { .. })
    ));
    let missing = generate_proxy(&snap, "ghost").expect_err("missing");
    assert_eq!(
        missing.to_string(),
        "dataplane ghost not found in mesh default"
    );
}

#[test]
fn confs_aimed_at_a_route_keep_proxies_apart_whose_destinations_agree() {
    let dp = |name: &str, address: &str, version: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n      version: {version}\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        )
    };
    let route = "type: MeshHTTPRoute\nname: route-web\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    rules:\n    - matches:\n      - path:\n          type: PathPrefix\n          value: /api\n      default:\n        backendRefs:\n        - kind: MeshService\n          name: backend\n";
    // Only v1 clients get a timeout on route-web's routes; both proxies
    // get the same confs for backend itself.
    let timeout = "type: MeshTimeout\nname: v1-route-timeout\nspec:\n  targetRef:\n    kind: MeshSubset\n    tags:\n      version: v1\n  to:\n  - targetRef:\n      kind: MeshHTTPRoute\n      name: route-web\n    default:\n      http:\n        requestTimeout: 2s\n";
    let backend = "type: Dataplane\nname: backend-1\nnetworking:\n  address: 10.0.0.9\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: backend\n      kuma.io/protocol: http\n";
    let mut listing = vec![
        resource(None, "type: Mesh\nname: default"),
        resource(Some("default"), &dp("web-1", "10.0.0.1", "v1")),
        resource(Some("default"), &dp("web-2", "10.0.0.2", "v2")),
        resource(Some("default"), backend),
        resource(Some("default"), route),
    ];
    let listener = |snapshot: &MeshSnapshot, name: &str| {
        let p = generate_proxy(snapshot, name).expect("generates");
        p.of_type(type_url::LISTENER)
            .find(|r| r.name.starts_with("outbound:"))
            .map(|r| r.body.value.clone())
            .expect("an outbound listener")
    };
    let without = MeshSnapshot::from_resources("default", listing.clone());
    let plain = listener(&without, "web-2");
    listing.push(resource(Some("default"), timeout));
    // In either order: the proxy generated first must not decide the
    // other's listener through the shared cache.
    for order in [["web-1", "web-2"], ["web-2", "web-1"]] {
        let with = MeshSnapshot::from_resources("default", listing.clone());
        let got: BTreeMap<&str, Vec<u8>> = order.iter().map(|n| (*n, listener(&with, n))).collect();
        assert!(
            got["web-1"] != plain,
            "{order:?}: web-1's route-web routes get the timeout"
        );
        assert!(got["web-2"] == plain, "{order:?}: web-2's do not");
    }
}

#[test]
fn locality_aware_load_assignments_are_shared_by_proxies_alike() {
    let dp = |name: &str, address: &str, service: &str, node: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n      k8s.io/node: {node}\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        )
    };
    let affinity = "type: MeshLoadBalancingStrategy\nname: near\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      localityAwareness:\n        localZone:\n          affinityTags:\n          - key: k8s.io/node\n";
    let listing = vec![
        resource(None, "type: Mesh\nname: default"),
        resource(Some("default"), &dp("web-1", "10.0.0.1", "web", "n1")),
        resource(Some("default"), &dp("web-2", "10.0.0.2", "web", "n1")),
        resource(Some("default"), &dp("web-3", "10.0.0.3", "web", "n2")),
        resource(
            Some("default"),
            &dp("backend-1", "10.0.1.1", "backend", "n1"),
        ),
        resource(
            Some("default"),
            &dp("backend-2", "10.0.1.2", "backend", "n2"),
        ),
        resource(Some("default"), affinity),
    ];
    let snapshot = MeshSnapshot::from_resources("default", listing);
    let proxies: Vec<ProxyResources> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|n| generate_proxy(&snapshot, n).expect("generates"))
        .collect();
    let of = |p: &ProxyResources, url: &str| p.by_type[url]["backend"].clone();
    let assignment = |p: &ProxyResources| {
        ClusterLoadAssignment::decode(of(p, type_url::ENDPOINT).body.value.as_slice())
            .expect("decodes")
    };
    // web-1 and web-2 run on n1: one assignment; web-3 on n2 its own.
    assert!(Arc::ptr_eq(
        &of(&proxies[0], type_url::ENDPOINT),
        &of(&proxies[1], type_url::ENDPOINT)
    ));
    assert_ne!(assignment(&proxies[0]), assignment(&proxies[2]));
    // The cluster names no node: every proxy shares it.
    assert!(Arc::ptr_eq(
        &of(&proxies[0], type_url::CLUSTER),
        &of(&proxies[2], type_url::CLUSTER)
    ));
    let weighted = |p: &ProxyResources| -> Vec<(String, u32, Vec<String>)> {
        assignment(p)
            .endpoints
            .iter()
            .map(|l| {
                let sub_zone = l.locality.clone().unwrap_or_default().sub_zone;
                let weight = l.load_balancing_weight.as_ref().map_or(0, |w| w.value);
                let hosts = addresses_in(l);
                (sub_zone, weight, hosts)
            })
            .collect()
    };
    assert_eq!(
        weighted(&proxies[0]),
        [
            (String::new(), 1, vec!["10.0.1.2".to_string()]),
            (
                "k8s.io/node=n1".to_string(),
                9,
                vec!["10.0.1.1".to_string()]
            ),
        ]
    );
    assert_eq!(
        weighted(&proxies[2]),
        [
            (String::new(), 1, vec!["10.0.1.1".to_string()]),
            (
                "k8s.io/node=n2".to_string(),
                9,
                vec!["10.0.1.2".to_string()]
            ),
        ]
    );
}

#[test]
fn route_tables_are_shared_but_each_proxy_resolves_its_backends() {
    let dp = |name: &str, address: &str, version: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n      version: {version}\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n  - port: 10002\n    tags:\n      kuma.io/service: billing\n"
        )
    };
    let instance = |name: &str, address: &str, service: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n"
        )
    };
    // backend's and billing's /api go to audit, by routes whose confs are
    // the same: what tells their tables apart is the destination.
    let route = |name: &str, to: &str| {
        format!(
            "type: MeshHTTPRoute\nname: {name}\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: {to}\n    rules:\n    - matches:\n      - path:\n          type: PathPrefix\n          value: /api\n      default:\n        backendRefs:\n        - kind: MeshService\n          name: audit\n"
        )
    };
    // Only v1 clients connect to audit with a 3s timeout.
    let timeout = "type: MeshTimeout\nname: v1-audit\nspec:\n  targetRef:\n    kind: MeshSubset\n    tags:\n      version: v1\n  to:\n  - targetRef:\n      kind: MeshService\n      name: audit\n    default:\n      connectionTimeout: 3s\n";
    let listing = vec![
        resource(None, "type: Mesh\nname: default"),
        resource(Some("default"), &dp("web-1", "10.0.0.1", "v1")),
        resource(Some("default"), &dp("web-2", "10.0.0.2", "v2")),
        resource(Some("default"), &dp("web-3", "10.0.0.3", "v2")),
        resource(
            Some("default"),
            &instance("backend-1", "10.0.1.1", "backend"),
        ),
        resource(
            Some("default"),
            &instance("billing-1", "10.0.2.1", "billing"),
        ),
        resource(Some("default"), &instance("audit-1", "10.0.3.1", "audit")),
        resource(Some("default"), &route("to-backend", "backend")),
        resource(Some("default"), &route("to-billing", "billing")),
        resource(Some("default"), timeout),
    ];
    let listener = |p: &ProxyResources, port: u32| {
        let name = format!("outbound:127.0.0.1:{port}");
        format!("{:?}", p.by_type[type_url::LISTENER][&name].body.value)
    };
    // Cluster names are in the encoded listener as they are.
    let names = |p: &ProxyResources, port: u32, cluster: &str| {
        let name = format!("outbound:127.0.0.1:{port}");
        let body = &p.by_type[type_url::LISTENER][&name].body.value;
        String::from_utf8_lossy(body).contains(cluster)
    };
    let connect_timeout = |p: &ProxyResources| {
        let cluster = Cluster::decode(p.by_type[type_url::CLUSTER]["audit"].body.value.as_slice())
            .expect("decodes");
        cluster.connect_timeout.map(|d| d.seconds)
    };
    // In either order: the proxy generated first must not decide the
    // others' backends through the shared table.
    for order in [["web-1", "web-2", "web-3"], ["web-3", "web-2", "web-1"]] {
        let snapshot = MeshSnapshot::from_resources("default", listing.clone());
        let got: BTreeMap<&str, ProxyResources> = order
            .iter()
            .map(|n| (*n, generate_proxy(&snapshot, n).expect("generates")))
            .collect();
        for (name, p) in &got {
            for port in [10001, 10002] {
                assert!(
                    names(p, port, "audit"),
                    "{order:?}: {name}:{port} routes to audit"
                );
            }
            // The rest of each destination's traffic stays with it.
            assert!(names(p, 10001, "backend"), "{order:?}: {name}");
            assert!(!names(p, 10002, "backend"), "{order:?}: {name}");
        }
        // Every proxy gets audit's cluster, with its own confs.
        assert_eq!(connect_timeout(&got["web-1"]), Some(3), "{order:?}");
        assert_ne!(connect_timeout(&got["web-2"]), Some(3), "{order:?}");
        assert_ne!(connect_timeout(&got["web-3"]), Some(3), "{order:?}");
        // web-2 and web-3 share everything of their outbounds.
        for port in [10001, 10002] {
            assert_eq!(listener(&got["web-2"], port), listener(&got["web-3"], port));
        }
    }
}

#[test]
fn a_route_back_to_its_own_destination_goes_to_its_cluster_while_it_is_served() {
    use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
    use envoy_types::pb::envoy::config::route::v3::{route, route_action};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager,
    };
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        TcpProxy, tcp_proxy,
    };
    let web = "type: Dataplane\nname: web-1\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n";
    let instance = |name: &str, address: &str, service: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n"
        )
    };
    // 90 to backend itself, 10 to audit: /api by an HTTP route, every
    // connection by a TCP route.
    let backends = "        backendRefs:\n        - kind: MeshService\n          name: backend\n          weight: 90\n        - kind: MeshService\n          name: audit\n          weight: 10\n";
    let http_route = format!(
        "type: MeshHTTPRoute\nname: canary\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    rules:\n    - matches:\n      - path:\n          type: Exact\n          value: /api\n      default:\n{backends}"
    );
    let tcp_route = format!(
        "type: MeshTCPRoute\nname: canary\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    rules:\n    - default:\n{backends}"
    );
    // The outbound's filter with `route`, backend served or not.
    let outbound = |route: &str, with_backend: bool| {
        let mut listing = vec![
            resource(None, "type: Mesh\nname: default"),
            resource(Some("default"), web),
            resource(Some("default"), &instance("audit-1", "10.0.3.1", "audit")),
            resource(Some("default"), route),
        ];
        if with_backend {
            listing.push(resource(
                Some("default"),
                &instance("backend-1", "10.0.1.1", "backend"),
            ));
        }
        let snapshot = MeshSnapshot::from_resources("default", listing);
        let p = generate_proxy(&snapshot, "web-1").expect("generates");
        let body = &p.by_type[type_url::LISTENER]["outbound:127.0.0.1:10001"]
            .body
            .value;
        let listener = Listener::decode(body.as_slice()).expect("a listener");
        let Some(filter::ConfigType::TypedConfig(any)) =
            &listener.filter_chains[0].filters[0].config_type
        else {
            panic!("a typed filter");
        };
        any.clone()
    };
    let any = outbound(&http_route, true);
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("a manager");
    let Some(http_connection_manager::RouteSpecifier::RouteConfig(config)) = hcm.route_specifier
    else {
        panic!("inline routes");
    };
    let Some(route::Action::Route(action)) = &config.virtual_hosts[0].routes[0].action else {
        panic!("a route action");
    };
    let Some(route_action::ClusterSpecifier::WeightedClusters(split)) = &action.cluster_specifier
    else {
        panic!("a split");
    };
    let split: Vec<String> = split
        .clusters
        .iter()
        .map(|c| format!("{} {}", c.name, c.weight.map_or(0, |w| w.value)))
        .collect();
    assert_eq!(split, ["backend 90", "audit 10"]);
    // Nobody serves backend (so it is TCP, and HTTP routes do not apply):
    // the TCP route sends everything to audit, as Kuma leaves out backends
    // that lead nowhere.
    let any = outbound(&tcp_route, false);
    let tcp = TcpProxy::decode(any.value.as_slice()).expect("a TCP proxy");
    assert_eq!(
        tcp.cluster_specifier,
        Some(tcp_proxy::ClusterSpecifier::Cluster("audit".to_string()))
    );
}

#[test]
fn proxies_get_their_own_configuration_whichever_alike_proxy_came_first() {
    let web = |name: &str, address: &str, labels: &str| {
        format!(
            "type: Dataplane\nname: {name}\n{labels}networking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        )
    };
    let backend = "type: Dataplane\nname: backend-1\nnetworking:\n  address: 10.0.1.1\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: backend\n      kuma.io/protocol: http\n";
    // The webs have the same tags; web-3 alone has a label.
    let mesh = |policy: &str| {
        vec![
            resource(None, "type: Mesh\nname: default"),
            resource(Some("default"), &web("web-1", "10.0.0.1", "")),
            resource(Some("default"), &web("web-2", "10.0.0.2", "")),
            resource(
                Some("default"),
                &web("web-3", "10.0.0.3", "labels:\n  team: payments\n"),
            ),
            resource(Some("default"), backend),
            resource(Some("default"), policy),
        ]
    };
    let every = ["web-1", "web-2", "web-3"];
    // Each proxy generated alone in a snapshot of its own, and after the
    // others in one snapshot (in both orders), gets the same resources.
    let check = |listing: &[Resource]| -> BTreeMap<&str, BTreeMap<(String, String), Vec<u8>>> {
        let alone: BTreeMap<&str, _> = every
            .iter()
            .map(|n| {
                let snapshot = MeshSnapshot::from_resources("default", listing.to_vec());
                (
                    *n,
                    encoded(&generate_proxy(&snapshot, n).expect("generates")),
                )
            })
            .collect();
        for order in [every, ["web-3", "web-2", "web-1"]] {
            let snapshot = MeshSnapshot::from_resources("default", listing.to_vec());
            for name in order {
                let got = encoded(&generate_proxy(&snapshot, name).expect("generates"));
                assert!(got == alone[name], "{order:?}: {name} differs");
            }
        }
        alone
    };
    let by_labels = "type: MeshCircuitBreaker\nname: payments\nspec:\n  targetRef:\n    kind: Dataplane\n    labels:\n      team: payments\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionLimits:\n        maxConnections: 7\n";
    let by_name = "type: MeshTimeout\nname: web-1-only\nspec:\n  targetRef:\n    kind: Dataplane\n    name: web-1\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 3s\n";
    // Rules per inbound, which its address names.
    let inbound = "type: MeshTimeout\nname: inbound\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      idleTimeout: 41s\n";
    let backend_cluster = |got: &BTreeMap<(String, String), Vec<u8>>| {
        got[&(type_url::CLUSTER.to_string(), "backend".to_string())].clone()
    };
    let got = check(&mesh(by_labels));
    assert!(backend_cluster(&got["web-3"]) != backend_cluster(&got["web-1"]));
    assert!(backend_cluster(&got["web-2"]) == backend_cluster(&got["web-1"]));
    let got = check(&mesh(by_name));
    assert!(backend_cluster(&got["web-1"]) != backend_cluster(&got["web-2"]));
    assert!(backend_cluster(&got["web-2"]) == backend_cluster(&got["web-3"]));
    let without = check(&mesh(by_labels));
    let got = check(&mesh(inbound));
    for name in every {
        let address = &name[4..];
        let listener = (
            type_url::LISTENER.to_string(),
            format!("inbound:10.0.0.{address}:8080"),
        );
        assert!(got[name][&listener] != without[name][&listener], "{name}");
    }
}

#[test]
fn alike_proxies_generated_on_several_threads_at_once_get_their_own_configuration() {
    let dp = |name: &str, address: &str, service: &str, version: &str| {
        format!(
            "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n      version: {version}\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        )
    };
    // v1 instances connect to backend with a timeout of their own.
    let timeout = "type: MeshTimeout\nname: v1\nspec:\n  targetRef:\n    kind: MeshSubset\n    tags:\n      version: v1\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    default:\n      connectionTimeout: 3s\n";
    let mut listing = vec![
        resource(None, "type: Mesh\nname: default"),
        resource(Some("default"), timeout),
    ];
    let mut names = Vec::new();
    for (service, base) in [("web", 1), ("api", 2), ("backend", 3)] {
        for i in 0..4 {
            let name = format!("{service}-{i}");
            let version = if i % 2 == 0 { "v1" } else { "v2" };
            let address = format!("10.0.{base}.{i}");
            listing.push(resource(
                Some("default"),
                &dp(&name, &address, service, version),
            ));
            names.push(name);
        }
    }
    let alone: BTreeMap<&str, _> = names
        .iter()
        .map(|n| {
            let snapshot = MeshSnapshot::from_resources("default", listing.clone());
            (
                n.as_str(),
                encoded(&generate_proxy(&snapshot, n).expect("generates")),
            )
        })
        .collect();
    let snapshot = MeshSnapshot::from_resources("default", listing.clone());
    std::thread::scope(|scope| {
        for turn in 0..4 {
            let (snapshot, names, alone) = (&snapshot, &names, &alone);
            scope.spawn(move || {
                // Each thread in an order of its own: rotated, and
                // backwards every other thread.
                for k in 0..names.len() {
                    let at = (k + 3 * turn) % names.len();
                    let at = if turn % 2 == 1 {
                        names.len() - 1 - at
                    } else {
                        at
                    };
                    let name = &names[at];
                    let got = encoded(&generate_proxy(snapshot, name).expect("generates"));
                    assert!(got == alone[name.as_str()], "thread {turn}: {name} differs");
                }
            });
        }
    });
    // The timeout tells v1 instances from v2 ones; alike ones share it.
    let backend =
        |name: &str| alone[name][&(type_url::CLUSTER.to_string(), "backend".to_string())].clone();
    assert!(backend("web-0") != backend("web-1"));
    assert!(backend("web-0") == backend("web-2"));
    assert!(backend("web-1") == backend("api-3"));
}
