//! mTLS and MeshTrafficPermission in proxy generation, beyond the golden
//! files: when mTLS applies at all, what the secrets carry, and which
//! mesh's permissions count.

use std::path::Path;

use chrono::{DateTime, Utc};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use kuma_api::{Resource, ResourceDocument};
use kuma_xds::generate::{
    MeshSnapshot, ProxyIdentity, generate_proxy, generate_proxy_with_identity,
};
use kuma_xds::{ProxyResources, type_url};
use prost::Message;

fn resource(mesh: Option<&str>, yaml: &str) -> Resource {
    let mut doc = ResourceDocument::from_yaml(yaml).expect("parses");
    doc.mesh = mesh.map(str::to_string);
    doc.into_resource(DateTime::<Utc>::MIN_UTC)
}

fn identity() -> ProxyIdentity {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mtls");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("fixture");
    ProxyIdentity {
        cert_chain_pem: read("web.pem"),
        private_key_pem: read("web.key"),
        ca_pems: vec![read("ca.pem"), "-----BEGIN CERTIFICATE-----\nold\n".into()],
    }
}

fn mesh(name: &str, mode: Option<&str>) -> Resource {
    let mtls = mode.map_or(String::new(), |m| {
        format!(
            "mtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\n    mode: {m}\n"
        )
    });
    resource(None, &format!("type: Mesh\nname: {name}\n{mtls}"))
}

/// `backend-1` (TCP on 9090) calling `web` (HTTP), in mesh `mesh`.
fn dataplanes(mesh: &str) -> Vec<Resource> {
    let web = "type: Dataplane\nname: web-1\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n";
    let backend = "type: Dataplane\nname: backend-1\nnetworking:\n  address: 10.0.0.2\n  inbound:\n  - port: 9090\n    tags:\n      kuma.io/service: backend\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: web\n";
    vec![resource(Some(mesh), web), resource(Some(mesh), backend)]
}

fn allow_all(mesh: &str) -> Resource {
    resource(
        Some(mesh),
        "type: MeshTrafficPermission\nname: allow-all\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      action: Allow\n",
    )
}

fn decode<M: Message + Default>(p: &ProxyResources, url: &str, name: &str) -> M {
    let r = p
        .of_type(url)
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    M::decode(r.body.value.as_slice()).expect("decodes")
}

/// The network RBAC config of the proxy's TCP inbound.
fn inbound_rbac(p: &ProxyResources) -> NetworkRbac {
    let l: Listener = decode(p, type_url::LISTENER, "inbound:10.0.0.2:9090");
    let f = l.filter_chains[0]
        .filters
        .iter()
        .find(|f| f.name == "envoy.filters.network.rbac")
        .expect("rbac filter");
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("typed config");
    };
    NetworkRbac::decode(any.value.as_slice()).expect("rbac")
}

#[test]
fn mtls_needs_an_enabled_backend_and_an_identity() {
    let mut plain = vec![mesh("default", None)];
    plain.extend(dataplanes("default"));
    let plain = MeshSnapshot::from_resources("default", plain);
    let baseline = generate_proxy(&plain, "backend-1").expect("plain");

    // A mesh without mTLS ignores the identity.
    let with_identity =
        generate_proxy_with_identity(&plain, "backend-1", Some(&identity())).expect("plain");
    assert_eq!(with_identity, baseline);
    assert_eq!(baseline.of_type(type_url::SECRET).count(), 0);

    // A mesh with mTLS but no identity for the proxy (yet): plaintext, and
    // the TLS clusters of other proxies of the same snapshot do not leak in.
    let mut on = vec![mesh("default", Some("STRICT"))];
    on.extend(dataplanes("default"));
    let on = MeshSnapshot::from_resources("default", on);
    let secured = generate_proxy_with_identity(&on, "backend-1", Some(&identity())).expect("tls");
    let cluster: Cluster = decode(&secured, type_url::CLUSTER, "web");
    assert!(cluster.transport_socket.is_some());
    assert_eq!(generate_proxy(&on, "backend-1").expect("plain"), baseline);
}

#[test]
fn secrets_carry_the_identity_and_every_trusted_ca() {
    let mut all = vec![mesh("default", Some("PERMISSIVE")), allow_all("default")];
    all.extend(dataplanes("default"));
    let snapshot = MeshSnapshot::from_resources("default", all);
    let id = identity();
    let p = generate_proxy_with_identity(&snapshot, "backend-1", Some(&id)).expect("tls");
    let names: Vec<&str> = p
        .of_type(type_url::SECRET)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["identity_cert:secret:default", "mesh_ca:secret:default"]
    );
    let inline = |d: Option<&envoy_types::pb::envoy::config::core::v3::DataSource>| match d
        .and_then(|d| d.specifier.clone())
    {
        Some(data_source::Specifier::InlineString(s)) => s,
        other => panic!("inline string expected, got {other:?}"),
    };
    let cert: Secret = decode(&p, type_url::SECRET, "identity_cert:secret:default");
    let Some(secret::Type::TlsCertificate(tls)) = cert.r#type else {
        panic!("tls certificate");
    };
    assert_eq!(inline(tls.certificate_chain.as_ref()), id.cert_chain_pem);
    assert_eq!(inline(tls.private_key.as_ref()), id.private_key_pem);
    let ca: Secret = decode(&p, type_url::SECRET, "mesh_ca:secret:default");
    let Some(secret::Type::ValidationContext(v)) = ca.r#type else {
        panic!("validation context");
    };
    let bundle = inline(v.trusted_ca.as_ref());
    assert!(bundle.starts_with(id.ca_pems[0].trim_end()));
    assert!(bundle.ends_with("-----BEGIN CERTIFICATE-----\nold\n"));

    // PERMISSIVE: TLS (with RBAC) and plaintext chains, told apart by the TLS inspector.
    let l: Listener = decode(&p, type_url::LISTENER, "inbound:10.0.0.2:9090");
    assert_eq!(l.filter_chains.len(), 2);
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let tls_chain = &l.filter_chains[0];
    assert_eq!(
        tls_chain
            .filter_chain_match
            .as_ref()
            .map(|m| m.transport_protocol.as_str()),
        Some("tls")
    );
    assert!(tls_chain.transport_socket.is_some());
    let plain_chain = &l.filter_chains[1];
    assert!(plain_chain.transport_socket.is_none());
    assert_eq!(plain_chain.filters.len(), 1);
    assert_eq!(
        plain_chain.filters[0].name,
        "envoy.filters.network.tcp_proxy"
    );
}

#[test]
fn only_this_meshs_permissions_apply() {
    let mut listing = vec![
        mesh("default", Some("STRICT")),
        mesh("other", Some("STRICT")),
        allow_all("other"),
    ];
    listing.extend(dataplanes("default"));
    let snapshot = MeshSnapshot::from_resources("default", listing.clone());
    let p = generate_proxy_with_identity(&snapshot, "backend-1", Some(&identity())).expect("tls");
    let rules = inbound_rbac(&p).rules.expect("rules");
    assert!(rules.policies.is_empty(), "denied by default");

    listing.push(allow_all("default"));
    let snapshot = MeshSnapshot::from_resources("default", listing);
    let p = generate_proxy_with_identity(&snapshot, "backend-1", Some(&identity())).expect("tls");
    let rules = inbound_rbac(&p).rules.expect("rules");
    assert_eq!(rules.policies.len(), 1);
    assert!(snapshot.policy_warnings().is_empty());
}

#[test]
fn builder_takes_permissions_directly() {
    let mut b = MeshSnapshot::builder("default");
    for r in dataplanes("default")
        .into_iter()
        .chain([mesh("default", Some("STRICT"))])
    {
        b.add(r.meta.mesh.as_deref(), &r.meta.name, &r.meta.labels, r.spec);
    }
    let mtp = allow_all("default");
    b.policy(&mtp.meta.name, &mtp.meta.labels, mtp.spec);
    let snapshot = b.build();
    assert_eq!(snapshot.traffic_permissions().policies().len(), 1);
    let p = generate_proxy_with_identity(&snapshot, "backend-1", Some(&identity())).expect("tls");
    assert_eq!(inbound_rbac(&p).rules.expect("rules").policies.len(), 1);
}
