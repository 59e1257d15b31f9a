use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use kuma_api::ResourceDocument;
use prost::{Message, Name};

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
