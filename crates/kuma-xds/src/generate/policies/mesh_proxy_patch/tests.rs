use std::sync::Arc;

use kuma_api::policies::mesh_proxy_patch::Conf;
use kuma_api::{ResourceDocument, yaml_documents};
use serde_json::{Value, json};

use super::*;
use crate::generate::{MeshSnapshot, generate_proxy};

const MESH_AND_PROXIES: &str = r#"
type: Mesh
name: default
---
type: Dataplane
mesh: default
name: web-1
networking:
  address: 10.0.0.1
  inbound:
  - port: 8080
    servicePort: 18080
    tags:
      kuma.io/service: web
      kuma.io/protocol: http
  outbound:
  - port: 10002
    tags:
      kuma.io/service: db
---
type: Dataplane
mesh: default
name: db-1
networking:
  address: 10.0.0.3
  inbound:
  - port: 5432
    tags:
      kuma.io/service: db
"#;

fn mk_snapshot(patch: Option<&str>) -> MeshSnapshot {
    let mut text = MESH_AND_PROXIES.to_string();
    if let Some(p) = patch {
        text.push_str("---\n");
        text.push_str(p);
    }
    let mut builder = MeshSnapshot::builder("default");
    for value in yaml_documents(&text).unwrap() {
        let doc = ResourceDocument::from_json(value).unwrap();
        builder.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    builder.build()
}

fn mk_patch(mods_yaml: &str) -> String {
    format!(
        "type: MeshProxyPatch\nmesh: default\nname: p\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    appendModifications:\n{mods_yaml}"
    )
}

fn json_of(out: &ProxyResources, type_url: &str, full_name: &str, name: &str) -> Value {
    let r = out.by_type[type_url]
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"));
    proto_json::to_json(full_name, &r.body.value).unwrap()
}

fn filter_names(listener: &Value) -> Vec<String> {
    listener["filterChains"][0]["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn remove_takes_out_only_what_matches() {
    let snap = mk_snapshot(Some(&mk_patch(
        "    - cluster:\n        operation: Remove\n        match:\n          origin: outbound\n",
    )));
    let out = generate_proxy(&snap, "web-1").unwrap();
    let names: Vec<_> = out.by_type[type_url::CLUSTER].keys().cloned().collect();
    assert_eq!(names, vec!["localhost:18080".to_string()]);
}

#[test]
fn network_filters_go_before_and_after_the_named_one() {
    let rbac = "name: envoy.filters.network.rbac\n          typedConfig:\n            '@type': type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n            statPrefix: x";
    let snap = mk_snapshot(Some(&mk_patch(&format!(
        "    - networkFilter:\n        operation: AddBefore\n        match:\n          name: envoy.filters.network.tcp_proxy\n          listenerName: outbound:127.0.0.1:10002\n        value: |\n          {rbac}\n    - networkFilter:\n        operation: AddAfter\n        match:\n          name: envoy.filters.network.rbac\n          listenerName: outbound:127.0.0.1:10002\n        value: |\n          name: after\n          typedConfig:\n            '@type': type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n            statPrefix: y\n"
    ))));
    let out = generate_proxy(&snap, "web-1").unwrap();
    let listener = json_of(
        &out,
        type_url::LISTENER,
        LISTENER,
        "outbound:127.0.0.1:10002",
    );
    assert_eq!(
        filter_names(&listener),
        vec![
            "envoy.filters.network.rbac",
            "after",
            "envoy.filters.network.tcp_proxy"
        ]
    );
    // The inbound listener was not selected.
    let inbound = json_of(&out, type_url::LISTENER, LISTENER, "inbound:10.0.0.1:8080");
    assert_eq!(
        filter_names(&inbound),
        vec!["envoy.filters.network.http_connection_manager"]
    );
}

#[test]
fn patched_resources_are_this_proxys_own() {
    let snap = mk_snapshot(Some(&mk_patch(
        "    - cluster:\n        operation: Patch\n        match:\n          name: db\n        value: |\n          connectTimeout: 7s\n",
    )));
    let before = generate_proxy(&snap, "web-1").unwrap();
    let shared_unpatched = generate_proxy(&mk_snapshot(None), "web-1").unwrap();
    let db = json_of(&before, type_url::CLUSTER, CLUSTER, "db");
    assert_eq!(db["connectTimeout"], "7s");
    // Untouched resources stay the shared ones (same Arc as a second
    // generation from the same snapshot).
    let again = generate_proxy(&snap, "web-1").unwrap();
    let inbound = "localhost:18080";
    assert!(Arc::ptr_eq(
        &before.by_type[type_url::CLUSTER][inbound],
        &again.by_type[type_url::CLUSTER][inbound]
    ));
    let plain = json_of(&shared_unpatched, type_url::CLUSTER, CLUSTER, "db");
    assert_eq!(plain["connectTimeout"], "5s");
}

#[test]
fn a_patch_envoy_types_refuse_keeps_the_resource_as_generated() {
    // jsonPatches are not checked against Envoy's types until applied: an
    // unknown field makes the result unreadable, so the cluster is kept.
    let snap = mk_snapshot(Some(&mk_patch(
        "    - cluster:\n        operation: Patch\n        match:\n          name: db\n        jsonPatches:\n        - op: add\n          path: /noSuchField\n          value: 1\n",
    )));
    let out = generate_proxy(&snap, "web-1").unwrap();
    let plain = generate_proxy(&mk_snapshot(None), "web-1").unwrap();
    assert_eq!(
        out.by_type[type_url::CLUSTER]["db"].body,
        plain.by_type[type_url::CLUSTER]["db"].body
    );
}

#[test]
fn virtual_hosts_are_added_and_removed_by_route_table() {
    let snap = mk_snapshot(Some(&mk_patch(
        "    - virtualHost:\n        operation: Add\n        match:\n          routeConfigurationName: inbound:web\n        value: |\n          name: extra\n          domains: [\"extra.local\"]\n    - virtualHost:\n        operation: Remove\n        match:\n          name: web\n",
    )));
    let out = generate_proxy(&snap, "web-1").unwrap();
    let listener = json_of(&out, type_url::LISTENER, LISTENER, "inbound:10.0.0.1:8080");
    let hosts =
        &listener["filterChains"][0]["filters"][0]["typedConfig"]["routeConfig"]["virtualHosts"];
    assert_eq!(
        hosts,
        &json!([{"name": "extra", "domains": ["extra.local"]}])
    );
}

fn conf(yaml: &str) -> Conf {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn check_names_values_that_are_not_envoy_messages() {
    let c = conf(
        r#"
appendModifications:
- cluster:
    operation: Add
    value: |
      name: x
      connectTimeout: 1s
- cluster:
    operation: Add
    value: |
      name: x
      conectTimeout: 1s
- httpFilter:
    operation: AddFirst
    value: "name: [not, a, string]"
- virtualHost:
    operation: Patch
    jsonPatches:
    - op: frobnicate
      path: /name
"#,
    );
    let problems = check(&c);
    let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "appendModifications[1].cluster.value",
            "appendModifications[2].httpFilter.value",
            "appendModifications[3].virtualHost.jsonPatches",
        ]
    );
    assert!(problems[0].1.contains("conectTimeout"), "{}", problems[0].1);
    assert!(
        problems[0].1.contains("envoy.config.cluster.v3.Cluster"),
        "{}",
        problems[0].1
    );
}
