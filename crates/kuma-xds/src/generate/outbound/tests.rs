use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use kuma_api::ResourceDocument;
use prost::{Message, Name};

use crate::generate::{MeshSnapshot, generate_proxy};

/// A MeshService backend, callers a and b with outbounds to it, and one
/// MeshHTTPRoute per caller, equal but for their names.
fn snapshot() -> MeshSnapshot {
    let mut docs = vec![
        "type: MeshService\nmesh: default\nname: backend\nspec:\n  selector:\n    dataplaneTags:\n      app: backend\n  ports:\n  - port: 80\n    targetPort: 8080\n    appProtocol: http\n".to_string(),
        "type: Dataplane\nmesh: default\nname: backend-1\nnetworking:\n  address: 10.0.0.9\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: backend\n      app: backend\n".to_string(),
    ];
    for caller in ["a", "b"] {
        docs.push(format!(
            "type: Dataplane\nmesh: default\nname: {caller}\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {caller}\n  outbound:\n  - port: 10080\n    backendRef:\n      kind: MeshService\n      name: backend\n      port: 80\n"
        ));
        docs.push(format!(
            "type: MeshHTTPRoute\nmesh: default\nname: route-{caller}\nspec:\n  targetRef:\n    kind: MeshSubset\n    tags:\n      kuma.io/service: {caller}\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    rules:\n    - matches:\n      - path:\n          type: PathPrefix\n          value: /api\n      default: {{}}\n"
        ));
    }
    let mut b = MeshSnapshot::builder("default");
    for doc in docs {
        let doc = ResourceDocument::from_yaml(&doc).expect("valid resource");
        b.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    b.build()
}

fn route_names(snapshot: &MeshSnapshot, proxy: &str) -> Vec<String> {
    let resources = generate_proxy(snapshot, proxy).expect("generates");
    let listener = resources
        .of_type(&Listener::type_url())
        .find(|r| r.name.starts_with("outbound:"))
        .expect("an outbound listener");
    let listener = Listener::decode(listener.body.value.as_slice()).expect("listener");
    let Some(filter::ConfigType::TypedConfig(any)) =
        &listener.filter_chains[0].filters[0].config_type
    else {
        panic!("typed config expected");
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("hcm");
    let Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)) = hcm.route_specifier
    else {
        panic!("inline routes expected");
    };
    routes.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect()
}

#[test]
fn equal_routes_of_different_meshhttproutes_keep_their_own_names() {
    let snapshot = snapshot();
    // Same confs, so the same cache key but for the route names: each
    // proxy must still see its own route's name.
    let a = route_names(&snapshot, "a");
    let b = route_names(&snapshot, "b");
    assert_eq!(a[0], "kri_mhttpr_default___route-a_");
    assert_eq!(b[0], "kri_mhttpr_default___route-b_");
    assert_eq!(a.len(), 3, "/api twice and the catch-all: {a:?}");
}

/// backend, and callers web-1, web-2 (service web) and other-1 with a
/// tag outbound to it; with `faults`, a MeshFaultInjection on backend.
fn callers(faults: bool) -> MeshSnapshot {
    let dataplane = |name: &str, service: &str, ip: &str, outbound: bool| {
        let out = if outbound {
            "  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        } else {
            ""
        };
        format!(
            "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n{out}"
        )
    };
    let mut docs = vec![
        dataplane("backend-1", "backend", "10.0.0.9", false),
        dataplane("web-1", "web", "10.0.0.1", true),
        dataplane("web-2", "web", "10.0.0.2", true),
        dataplane("other-1", "other", "10.0.0.3", true),
    ];
    if faults {
        docs.push("type: MeshFaultInjection\nmesh: default\nname: f\nspec:\n  targetRef:\n    kind: MeshService\n    name: backend\n  from:\n  - targetRef:\n      kind: MeshSubset\n      tags:\n        kuma.io/service: web\n    default:\n      http:\n      - abort:\n          httpStatus: 503\n          percentage: 100\n".to_string());
    }
    let mut b = MeshSnapshot::builder("default");
    for doc in docs {
        let doc = ResourceDocument::from_yaml(&doc).expect("valid resource");
        b.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    b.build()
}

fn outbound_listener(snapshot: &MeshSnapshot, proxy: &str) -> std::sync::Arc<crate::XdsResource> {
    let resources = generate_proxy(snapshot, proxy).expect("generates");
    resources
        .of_type(&Listener::type_url())
        .find(|r| r.name == "outbound:127.0.0.1:10001")
        .cloned()
        .expect("the outbound listener")
}

#[test]
fn callers_send_their_tags_only_while_the_mesh_has_fault_injections() {
    use std::sync::Arc;
    let with = callers(true);
    let web = outbound_listener(&with, "web-1");
    // The tags are part of the shared listener's key: callers with the
    // same tags share it, others get their own.
    assert!(Arc::ptr_eq(&web, &outbound_listener(&with, "web-2")));
    let other = outbound_listener(&with, "other-1");
    assert!(!Arc::ptr_eq(&web, &other));
    let text = |r: &crate::XdsResource| crate::golden::render_any(&r.body).expect("renders");
    assert!(text(&other).contains("&kuma.io/service=other&"));
    assert!(!text(&other).contains("kuma.io/service=web"));

    let without = callers(false);
    let web = outbound_listener(&without, "web-1");
    assert!(Arc::ptr_eq(&web, &outbound_listener(&without, "other-1")));
    assert!(!text(&web).contains("x-kuma-tags"));
}

/// MeshTLS `max` (or none) in an mTLS mesh where caller-1 and caller-2
/// reach backend, and client-1 (no inbound, so no MeshTLS conf) too.
fn mk_tls_docs(max: Option<&str>) -> Vec<String> {
    let caller = |name: &str, ip: &str, inbound: bool| {
        let inbound = if inbound {
            "  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: caller\n"
        } else {
            ""
        };
        format!(
            "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n{inbound}  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: backend\n"
        )
    };
    let mut docs = vec![
        "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\n".to_string(),
        "type: Dataplane\nmesh: default\nname: backend-1\nnetworking:\n  address: 10.0.0.9\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: backend\n".to_string(),
        caller("caller-1", "10.0.0.1", true),
        caller("caller-2", "10.0.0.2", true),
        caller("client-1", "10.0.0.3", false),
    ];
    if let Some(max) = max {
        docs.push(mk_mesh_tls(max));
    }
    docs
}

fn mk_mesh_tls(max: &str) -> String {
    format!(
        "type: MeshTLS\nmesh: default\nname: versions\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      tlsVersion:\n        max: {max}\n      tlsCiphers:\n      - ECDHE-RSA-AES128-GCM-SHA256\n"
    )
}

fn mk_snapshot_of(docs: &[String]) -> MeshSnapshot {
    let mut b = MeshSnapshot::builder("default");
    for doc in docs {
        let doc = ResourceDocument::from_yaml(doc).expect("valid resource");
        b.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    b.build()
}

fn mk_identity() -> crate::generate::ProxyIdentity {
    // Generation only names the secrets' content; it does not parse it.
    crate::generate::ProxyIdentity {
        cert_chain_pem: "CERT".into(),
        private_key_pem: "KEY".into(),
        ca_pems: vec!["CA".into()],
    }
}

/// The backend cluster `proxy` gets, and the TLS params of its upstream
/// TLS context.
fn backend_cluster(
    snapshot: &MeshSnapshot,
    proxy: &str,
) -> (
    std::sync::Arc<crate::XdsResource>,
    Option<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsParameters>,
) {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    let identity = mk_identity();
    let resources = crate::generate::generate_proxy_with_identity(snapshot, proxy, Some(&identity))
        .expect("generates");
    let resource = resources
        .of_type(&Cluster::type_url())
        .find(|r| r.name == "backend")
        .cloned()
        .expect("the backend cluster");
    let cluster = Cluster::decode(resource.body.value.as_slice()).expect("cluster");
    let socket = cluster.transport_socket.expect("mesh TLS");
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(ConfigType::TypedConfig(any)) = socket.config_type else {
        panic!("typed config expected");
    };
    let tls = UpstreamTlsContext::decode(any.value.as_slice()).expect("upstream TLS");
    let params = tls.common_tls_context.expect("common context").tls_params;
    (resource, params)
}

#[test]
fn meshtls_versions_and_ciphers_go_on_outbound_clusters() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
    let snapshot = mk_snapshot_of(&mk_tls_docs(Some("TLS12")));
    let (one, params) = backend_cluster(&snapshot, "caller-1");
    let params = params.expect("MeshTLS params");
    assert_eq!(
        params.tls_maximum_protocol_version,
        TlsProtocol::TlSv12 as i32
    );
    assert_eq!(
        params.tls_minimum_protocol_version,
        TlsProtocol::TlsAuto as i32
    );
    assert_eq!(
        params.cipher_suites,
        vec![
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256"
        ]
    );
    // Proxies with the same params share one cluster...
    let (two, _) = backend_cluster(&snapshot, "caller-2");
    assert!(std::sync::Arc::ptr_eq(&one, &two));
    // ...but a proxy no MeshTLS conf reaches (no inbound) keeps Envoy's
    // defaults in a cluster of its own.
    let (other, params) = backend_cluster(&snapshot, "client-1");
    assert_eq!(params, None);
    assert!(!std::sync::Arc::ptr_eq(&one, &other));
    assert_ne!(one.hash, other.hash);

    // Without MeshTLS, no params.
    let plain = mk_snapshot_of(&mk_tls_docs(None));
    assert_eq!(backend_cluster(&plain, "caller-1").1, None);
}

#[test]
fn a_meshtls_change_builds_outbound_clusters_again() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
    let before = mk_snapshot_of(&mk_tls_docs(Some("TLS12")));
    let (old, _) = backend_cluster(&before, "caller-1");
    let doc = ResourceDocument::from_yaml(&mk_mesh_tls("TLS13")).expect("valid MeshTLS");
    let after = before.with_policy_changes([(
        kuma_api::Kind::MeshTLS,
        doc.name.clone(),
        Some((doc.labels, doc.spec)),
    )]);
    after.carry_shared_from(&before);
    let (new, params) = backend_cluster(&after, "caller-1");
    assert_eq!(
        params.map(|p| p.tls_maximum_protocol_version),
        Some(TlsProtocol::TlSv13 as i32)
    );
    assert_ne!(old.hash, new.hash);
}
