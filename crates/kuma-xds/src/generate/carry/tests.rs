use std::collections::BTreeMap;
use std::sync::Arc;

use kuma_api::kinds::dataplane::{DataplaneSpec, Inbound, Networking, Outbound};
use kuma_api::kinds::tags::SERVICE_TAG;

use super::*;
use crate::generate::generate_proxy;
use crate::{ProxyResources, XdsResource, type_url};

fn mk_tags(service: &str) -> BTreeMap<String, String> {
    [(SERVICE_TAG.to_string(), service.to_string())].into()
}

fn mk_dataplane(address: &str, serves: &str, calls: &[&str]) -> DataplaneSpec {
    DataplaneSpec {
        networking: Some(Networking {
            address: address.into(),
            inbound: vec![Inbound {
                port: 8080,
                service_port: 80,
                tags: mk_tags(serves),
                ..Inbound::default()
            }],
            outbound: calls
                .iter()
                .enumerate()
                .map(|(i, s)| Outbound {
                    port: 10000 + i as u32,
                    tags: mk_tags(s),
                    ..Outbound::default()
                })
                .collect(),
            ..Networking::default()
        }),
        ..DataplaneSpec::default()
    }
}

/// `caller` reaches `web` and `backend`; `backend` has `backends` instances.
fn mk_snapshot(backends: usize) -> MeshSnapshot {
    let mut b = MeshSnapshot::builder("default");
    b.dataplane(
        "caller",
        mk_dataplane("10.0.0.1", "caller", &["web", "backend"]),
    );
    b.dataplane("web-1", mk_dataplane("10.0.0.2", "web", &[]));
    for i in 0..backends {
        b.dataplane(
            &format!("backend-{i}"),
            mk_dataplane(&format!("10.0.1.{i}"), "backend", &[]),
        );
    }
    b.build()
}

fn find<'a>(r: &'a ProxyResources, type_url: &str, name: &str) -> &'a Arc<XdsResource> {
    r.of_type(type_url)
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("{type_url} {name} generated"))
}

#[test]
fn unchanged_destinations_are_carried_changed_ones_built_again() {
    let before = mk_snapshot(1);
    let old = generate_proxy(&before, "caller").expect("generate");
    let after = mk_snapshot(2);
    assert!(after.carry_shared_from(&before) > 0);
    let new = generate_proxy(&after, "caller").expect("generate");

    // `web` did not change: the very same encoded resources are reused.
    for type_url in [type_url::CLUSTER, type_url::ENDPOINT] {
        assert!(Arc::ptr_eq(
            find(&old, type_url, "web"),
            find(&new, type_url, "web")
        ));
    }
    // `backend` gained an instance: its endpoints are built again.
    let old_backend = find(&old, type_url::ENDPOINT, "backend");
    let new_backend = find(&new, type_url::ENDPOINT, "backend");
    assert!(!Arc::ptr_eq(old_backend, new_backend));
    assert_ne!(old_backend.hash, new_backend.hash);

    // Carrying changes nothing a proxy receives.
    let fresh = mk_snapshot(2);
    assert_eq!(new, generate_proxy(&fresh, "caller").expect("generate"));
}

#[test]
fn nothing_is_carried_across_meshes() {
    let before = mk_snapshot(1);
    generate_proxy(&before, "caller").expect("generate");
    let other = MeshSnapshot::builder("other").build();
    assert_eq!(other.carry_shared_from(&before), 0);
}

fn mk_timeout(seconds: u32) -> (BTreeMap<String, String>, kuma_api::Spec) {
    let yaml = format!(
        "type: MeshTimeout\nmesh: default\nname: t\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: {seconds}s\n"
    );
    let doc = kuma_api::ResourceDocument::from_yaml(&yaml).expect("MeshTimeout reads");
    (doc.labels, doc.spec)
}

#[test]
fn resources_of_confs_nobody_has_any_more_are_not_carried() {
    let mut snapshot = mk_snapshot(1);
    generate_proxy(&snapshot, "caller").expect("generate");
    let mut sizes = Vec::new();
    // The first change gives the mesh confs it had none of (and with them
    // cluster templates, carried for one more change each): sizes are
    // compared from the second change on.
    for seconds in 1..=5 {
        let next = snapshot.with_policy_changes([(
            Kind::MeshTimeout,
            "t".to_string(),
            Some(mk_timeout(seconds)),
        )]);
        assert!(next.carry_shared_from(&snapshot) > 0);
        let carried = generate_proxy(&next, "caller").expect("generate");
        // Carried across the change: the same as a fresh build gives.
        let mut fresh = MeshSnapshot::builder("default");
        fresh.dataplane(
            "caller",
            mk_dataplane("10.0.0.1", "caller", &["web", "backend"]),
        );
        fresh.dataplane("web-1", mk_dataplane("10.0.0.2", "web", &[]));
        fresh.dataplane("backend-0", mk_dataplane("10.0.1.0", "backend", &[]));
        let (labels, spec) = mk_timeout(seconds);
        fresh.policy("t", &labels, spec);
        let fresh = fresh.build();
        assert_eq!(carried, generate_proxy(&fresh, "caller").expect("generate"));
        if seconds > 1 {
            sizes.push(next.shared.lock().expect("cache").len());
        }
        snapshot = next;
    }
    // Each change replaces the clusters and listeners built with the old
    // timeout; the cache does not grow with every change.
    assert!(sizes.windows(2).all(|w| w[0] == w[1]), "{sizes:?}");
}
