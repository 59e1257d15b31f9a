use std::collections::BTreeMap;

use kuma_api::{ResourceMeta, Spec};

use super::*;

fn mk_resource(name: &str, spec: Spec) -> Resource {
    Resource {
        meta: ResourceMeta {
            mesh: Some("default".into()),
            name: name.into(),
            labels: BTreeMap::new(),
            creation_time: Default::default(),
            modification_time: Default::default(),
            version: 1,
        },
        spec,
    }
}

fn mk_entry() -> MeshEntry {
    let mut entry = MeshEntry::default();
    let dp = mk_resource("web-1", Spec::Dataplane(Default::default()));
    entry
        .resources
        .insert((Kind::Dataplane, "web-1".into()), dp);
    entry.snapshot("default");
    entry
}

#[test]
fn endpoint_and_policy_changes_carry_the_snapshot_mesh_changes_do_not() {
    let mut entry = mk_entry();
    entry.invalidate(Kind::Dataplane, "web-1");
    assert!(entry.snapshot.is_none());
    assert!(entry.carry_from.is_some());
    // Still carried through further changes before the next build: the
    // cache keys hold the policy confs resources were built with.
    entry.invalidate(Kind::MeshService, "web-1");
    assert!(entry.carry_from.is_some());
    entry.invalidate(Kind::MeshTimeout, "web-1");
    assert!(entry.carry_from.is_some());
    // A Mesh change in the same batch rules it out.
    entry.invalidate(Kind::Mesh, "default");
    assert!(entry.carry_from.is_none());
    entry.invalidate(Kind::Dataplane, "web-1");
    assert!(entry.carry_from.is_none());
    // The next build starts afresh and is carried from again afterwards.
    entry.snapshot("default");
    assert!(entry.carry_from.is_none());
    entry.invalidate(Kind::MeshTimeout, "t");
    assert!(entry.carry_from.is_some());
    entry.snapshot("default");
    assert!(entry.carry_from.is_none());
    entry.invalidate(Kind::Mesh, "default");
    assert!(entry.carry_from.is_none());
}

fn mk_timeout(name: &str, timeout: &str) -> Resource {
    let spec = serde_yaml::from_str(&format!(
        "targetRef:\n  kind: Mesh\nto:\n- targetRef:\n    kind: Mesh\n  default:\n    connectionTimeout: {timeout}\n"
    ))
    .expect("MeshTimeout reads");
    mk_resource(name, Spec::MeshTimeout(spec))
}

#[test]
fn policy_and_mesh_changes_update_the_last_snapshot() {
    let mut entry = MeshEntry::default();
    for (name, address) in [("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")] {
        let dp = mk_resource(name, mk_serving(address));
        entry.resources.insert((Kind::Dataplane, name.into()), dp);
    }
    entry
        .resources
        .insert((Kind::MeshTimeout, "t".into()), mk_timeout("t", "3s"));
    let before = entry.snapshot("default");
    // A policy updated, another added, a Dataplane moved, the Mesh created.
    entry
        .resources
        .insert((Kind::MeshTimeout, "t".into()), mk_timeout("t", "4s"));
    entry.invalidate(Kind::MeshTimeout, "t");
    entry
        .resources
        .insert((Kind::MeshTimeout, "u".into()), mk_timeout("u", "5s"));
    entry.invalidate(Kind::MeshTimeout, "u");
    let moved = mk_resource("web-1", mk_serving("10.0.9.1"));
    entry
        .resources
        .insert((Kind::Dataplane, "web-1".into()), moved);
    entry.invalidate(Kind::Dataplane, "web-1");
    let mut mesh = mk_resource("default", Spec::Mesh(Default::default()));
    mesh.meta.mesh = None;
    entry.resources.insert((Kind::Mesh, "default".into()), mesh);
    entry.invalidate(Kind::Mesh, "default");
    let pending = entry.update_from.as_ref().map(|(_, p)| p);
    assert_eq!(
        pending.map(|p| (p.dataplanes.len(), p.policies.len(), p.mesh)),
        Some((1, 2, true))
    );
    let updated = entry.snapshot("default");
    assert!(entry.update_from.is_none());
    assert!(updated.mesh_spec().is_some());
    assert!(before.mesh_spec().is_none());
    let fresh = MeshSnapshot::from_resources("default", entry.resources.values().cloned());
    for proxy in ["web-1", "web-2"] {
        let generated =
            kuma_xds::generate::generate_proxy(&updated, proxy).expect("updated generates");
        assert_eq!(
            generated,
            kuma_xds::generate::generate_proxy(&fresh, proxy).expect("fresh generates"),
        );
        assert_ne!(
            generated,
            kuma_xds::generate::generate_proxy(&before, proxy).expect("before generates"),
        );
    }
}

fn mk_serving(address: &str) -> Spec {
    let yaml = format!(
        "networking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: web\n  outbound:\n  - port: 10001\n    tags:\n      kuma.io/service: web\n"
    );
    Spec::Dataplane(serde_yaml::from_str(&yaml).expect("Dataplane reads"))
}

#[test]
fn dataplane_and_mesh_service_changes_update_the_last_snapshot_others_rebuild() {
    let mut entry = MeshEntry::default();
    for (name, address) in [("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")] {
        let dp = mk_resource(name, mk_serving(address));
        entry.resources.insert((Kind::Dataplane, name.into()), dp);
    }
    entry.snapshot("default");
    // Two changes before the next build: both are in the update.
    let moved = mk_resource("web-1", mk_serving("10.0.9.1"));
    entry
        .resources
        .insert((Kind::Dataplane, "web-1".into()), moved);
    entry.invalidate(Kind::Dataplane, "web-1");
    entry.resources.remove(&(Kind::Dataplane, "web-2".into()));
    entry.invalidate(Kind::Dataplane, "web-2");
    let changed = entry
        .update_from
        .as_ref()
        .map(|(_, pending)| pending.dataplanes.len());
    assert_eq!(changed, Some(2));
    let updated = entry.snapshot("default");
    assert!(entry.update_from.is_none());
    let fresh = MeshSnapshot::from_resources("default", entry.resources.values().cloned());
    assert_eq!(updated.dataplane_names().collect::<Vec<_>>(), ["web-1"]);
    assert_eq!(updated.service("web"), fresh.service("web"));
    assert_eq!(
        kuma_xds::generate::generate_proxy(&updated, "web-1").expect("updated generates"),
        kuma_xds::generate::generate_proxy(&fresh, "web-1").expect("fresh generates"),
    );
    // A MeshService change updates the snapshot too: its ports indexed
    // from the Dataplanes, the policies indexed again without reading.
    let yaml = "selector:\n  dataplaneTags:\n    kuma.io/service: web\nports:\n- port: 80\n  targetPort: 8080\n  appProtocol: http\n";
    let web = Spec::MeshService(serde_yaml::from_str(yaml).expect("MeshService reads"));
    entry
        .resources
        .insert((Kind::MeshService, "web".into()), mk_resource("web", web));
    entry.invalidate(Kind::MeshService, "web");
    let pending = entry
        .update_from
        .as_ref()
        .map(|(_, p)| p.mesh_services.len());
    assert_eq!(pending, Some(1));
    let updated = entry.snapshot("default");
    let fresh = MeshSnapshot::from_resources("default", entry.resources.values().cloned());
    let port = updated.mesh_service_port("web", 80);
    assert_eq!(port.map(|d| d.endpoints.len()), Some(1));
    assert_eq!(port, fresh.mesh_service_port("web", 80));
    // A change of a kind snapshots are not updated for means a fresh build.
    entry.invalidate(Kind::Dataplane, "web-1");
    assert!(entry.update_from.is_some());
    entry.invalidate(Kind::MeshGateway, "gateway");
    assert!(entry.update_from.is_none());
    entry.invalidate(Kind::Dataplane, "web-1");
    assert!(entry.update_from.is_none());
}

fn mk_xds(name: &str, body: &[u8]) -> Arc<kuma_xds::XdsResource> {
    Arc::new(kuma_xds::XdsResource::new(
        name,
        envoy_types::pb::google::protobuf::Any {
            type_url: kuma_xds::type_url::CLUSTER.into(),
            value: body.to_vec(),
        },
    ))
}

#[test]
fn resource_sets_compare_by_name_and_content() {
    let mut a = ProxyResources::default();
    a.insert(mk_xds("web", b"one"));
    let mut same = ProxyResources::default();
    same.insert(mk_xds("web", b"one"));
    assert!(same_resources(&a, &same));

    let mut changed = ProxyResources::default();
    changed.insert(mk_xds("web", b"two"));
    assert!(!same_resources(&a, &changed));

    let mut renamed = ProxyResources::default();
    renamed.insert(mk_xds("api", b"one"));
    assert!(!same_resources(&a, &renamed));

    let mut more = same.clone();
    more.insert(mk_xds("api", b"one"));
    assert!(!same_resources(&a, &more));
    assert!(!same_resources(&a, &ProxyResources::default()));
}
