use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use kuma_api::ResourceDocument;
use prost::{Message, Name};

use crate::XdsResource;
use crate::generate::{MeshSnapshot, generate_proxy};

const DATAPLANE: &str = "type: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n    ipFamilyMode: IPv4\n";

fn snapshot(mesh: &str, extra: &[&str]) -> MeshSnapshot {
    let mut b = MeshSnapshot::builder("default");
    for doc in [mesh, DATAPLANE].iter().chain(extra) {
        let doc = ResourceDocument::from_yaml(doc).expect("valid resource");
        b.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    b.build()
}

fn names<T: Message + Name + Default>(snapshot: &MeshSnapshot) -> Vec<String> {
    let resources = generate_proxy(snapshot, "web-1").expect("generates");
    resources
        .of_type(&T::type_url())
        .map(|r| r.name.clone())
        .filter(|n| n.contains("passthrough"))
        .collect()
}

fn outbound_chains(snapshot: &MeshSnapshot) -> Vec<String> {
    let resources = generate_proxy(snapshot, "web-1").expect("generates");
    let listener = resources
        .of_type(&Listener::type_url())
        .find(|r| r.name == "outbound:passthrough:ipv4")
        .expect("outbound passthrough listener");
    let listener = Listener::decode(listener.body.value.as_slice()).expect("listener");
    listener
        .filter_chains
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

const MESH: &str = "type: Mesh\nname: default\n";

#[test]
fn mesh_passthrough_on_by_default_gives_original_destination_clusters() {
    let s = snapshot(MESH, &[]);
    let mut listeners = names::<Listener>(&s);
    listeners.sort();
    assert_eq!(
        listeners,
        vec!["inbound:passthrough:ipv4", "outbound:passthrough:ipv4"]
    );
    let mut clusters = names::<Cluster>(&s);
    clusters.sort();
    assert_eq!(
        clusters,
        vec!["inbound:passthrough:ipv4", "outbound:passthrough:ipv4"]
    );
}

#[test]
fn mesh_without_passthrough_keeps_the_listener_but_not_its_cluster() {
    let s = snapshot(
        "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n",
        &[],
    );
    assert!(names::<Listener>(&s).contains(&"outbound:passthrough:ipv4".to_string()));
    assert_eq!(names::<Cluster>(&s), vec!["inbound:passthrough:ipv4"]);
}

#[test]
fn dual_stack_adds_ipv6_listeners() {
    let dp = DATAPLANE.replace("    ipFamilyMode: IPv4\n", "");
    let mut b = MeshSnapshot::builder("default");
    for doc in [MESH, dp.as_str()] {
        let doc = ResourceDocument::from_yaml(doc).expect("valid resource");
        b.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    let s = b.build();
    assert_eq!(names::<Listener>(&s).len(), 4);
    assert!(names::<Cluster>(&s).contains(&"outbound:passthrough:ipv6".to_string()));
}

fn policy(mode: &str) -> String {
    format!(
        "type: MeshPassthrough\nmesh: default\nname: mp\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    passthroughMode: {mode}\n    appendMatch:\n    - type: Domain\n      value: httpbin.org\n      protocol: tls\n      port: 443\n"
    )
}

#[test]
fn matched_mode_replaces_the_catch_all_with_its_matches() {
    let p = policy("Matched");
    let s = snapshot(MESH, &[&p]);
    assert_eq!(
        outbound_chains(&s),
        vec!["meshpassthrough_tls_httpbin.org_443"]
    );
    let clusters = names::<Cluster>(&s);
    assert!(!clusters.contains(&"outbound:passthrough:ipv4".to_string()));
    assert!(clusters.contains(&"meshpassthrough_tls_httpbin.org_443".to_string()));
}

#[test]
fn all_mode_passes_everything_even_when_the_mesh_says_no() {
    let p = policy("All");
    let s = snapshot(
        "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n",
        &[&p],
    );
    assert_eq!(outbound_chains(&s), vec![String::new()]);
    assert!(names::<Cluster>(&s).contains(&"outbound:passthrough:ipv4".to_string()));
}

#[test]
fn none_mode_removes_the_original_destination_cluster() {
    let p = policy("None");
    let s = snapshot(MESH, &[&p]);
    assert_eq!(outbound_chains(&s), vec![String::new()]);
    assert_eq!(names::<Cluster>(&s), vec!["inbound:passthrough:ipv4"]);
}

#[test]
fn proxies_without_transparent_proxying_get_no_passthrough() {
    let dp = DATAPLANE.replace("name: web-1", "name: other").replace(
        "  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n    ipFamilyMode: IPv4\n",
        "",
    );
    let mut b = MeshSnapshot::builder("default");
    for doc in [MESH, dp.as_str()] {
        let doc = ResourceDocument::from_yaml(doc).expect("valid resource");
        b.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    let s = b.build();
    let resources = generate_proxy(&s, "other").expect("generates");
    assert!(
        resources
            .of_type(&Listener::type_url())
            .all(|r| !r.name.contains("passthrough"))
    );
}

/// The passthrough resources of `proxy`, by type and name.
fn passthrough_of(
    snapshot: &MeshSnapshot,
    proxy: &str,
) -> BTreeMap<(String, String), Arc<XdsResource>> {
    let resources = generate_proxy(snapshot, proxy).expect("generates");
    resources
        .by_type
        .values()
        .flat_map(|by_name| by_name.values())
        .filter(|r| r.name.contains("passthrough"))
        .map(|r| ((r.type_url().to_string(), r.name.clone()), r.clone()))
        .collect()
}

/// web-1, a twin `web-2` (same ports, labels `team: a`), and `web-3` with
/// another outbound redirect port.
fn three_proxies(extra: &[&str]) -> MeshSnapshot {
    let twin = DATAPLANE
        .replace("name: web-1", "name: web-2\nlabels:\n  team: a")
        .replace("10.0.0.1", "10.0.0.2");
    let other_port = DATAPLANE
        .replace("name: web-1", "name: web-3")
        .replace("10.0.0.1", "10.0.0.3")
        .replace("redirectPortOutbound: 15001", "redirectPortOutbound: 15002");
    let mut docs = vec![twin.as_str(), other_port.as_str()];
    docs.extend(extra);
    snapshot(MESH, &docs)
}

#[test]
fn proxies_with_the_same_inputs_share_one_passthrough_resource() {
    let s = three_proxies(&[]);
    let one = passthrough_of(&s, "web-1");
    let twin = passthrough_of(&s, "web-2");
    // Two listeners and two clusters (IPv4 only).
    assert_eq!(one.len(), 4, "{:?}", one.keys());
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        twin.keys().collect::<Vec<_>>()
    );
    for (key, resource) in &one {
        assert!(
            Arc::ptr_eq(resource, &twin[key]),
            "{key:?} is built twice for proxies with the same inputs"
        );
    }
    // Another outbound redirect port: its own outbound listener; the
    // inbound side, which does not depend on it, is still its own copy
    // (all inputs are in the key) but equal in content.
    let other = passthrough_of(&s, "web-3");
    let listener = (
        Listener::type_url(),
        "outbound:passthrough:ipv4".to_string(),
    );
    assert!(!Arc::ptr_eq(&one[&listener], &other[&listener]));
    assert_ne!(one[&listener].body, other[&listener].body);
    let inbound = (Listener::type_url(), "inbound:passthrough:ipv4".to_string());
    assert!(!Arc::ptr_eq(&one[&inbound], &other[&inbound]));
    assert_eq!(one[&inbound].body, other[&inbound].body);
}

#[test]
fn a_meshpassthrough_for_some_proxies_gives_them_their_own_resources() {
    // Matched mode for team a only (web-2): it loses the original
    // destination cluster and gets a chain per match.
    let p = policy("Matched").replace(
        "  targetRef:\n    kind: Mesh\n",
        "  targetRef:\n    kind: Dataplane\n    labels:\n      team: a\n",
    );
    let s = three_proxies(&[&p]);
    let one = passthrough_of(&s, "web-1");
    let twin = passthrough_of(&s, "web-2");
    let listener = (
        Listener::type_url(),
        "outbound:passthrough:ipv4".to_string(),
    );
    assert!(!Arc::ptr_eq(&one[&listener], &twin[&listener]));
    assert_ne!(one[&listener].body, twin[&listener].body);
    let original_dst = (Cluster::type_url(), "outbound:passthrough:ipv4".to_string());
    assert!(one.contains_key(&original_dst));
    assert!(!twin.contains_key(&original_dst));
    // Generated again, each gets the same shared copies.
    let again = passthrough_of(&s, "web-2");
    for (key, resource) in &twin {
        assert!(Arc::ptr_eq(resource, &again[key]), "{key:?}");
    }
}
