use kuma_api::kinds::dataplane::{BackendRef, Inbound, Networking, Outbound, TransparentProxying};
use kuma_api::kinds::mesh_service::{DataplaneRef, Selector};
use kuma_api::kinds::selector::LabelSelector;
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::mesh_timeout::MeshTimeoutSpec;
use kuma_api::{ResourceMeta, Spec};

use super::*;

fn mk_inbound(service: &str, port: u32) -> Inbound {
    Inbound {
        port,
        tags: [(SERVICE_TAG.to_string(), service.to_string())].into(),
        ..Inbound::default()
    }
}

fn mk_outbound(service: &str, port: u32) -> Outbound {
    Outbound {
        port,
        tags: [(SERVICE_TAG.to_string(), service.to_string())].into(),
        ..Outbound::default()
    }
}

fn mk_ms_outbound(mesh_service: &str, port: u32) -> Outbound {
    Outbound {
        backend_ref: Some(BackendRef {
            kind: MESH_SERVICE.into(),
            name: mesh_service.into(),
            port,
            ..BackendRef::default()
        }),
        ..Outbound::default()
    }
}

fn mk_dataplane(serves: &[&str], outbounds: Vec<Outbound>) -> DataplaneSpec {
    DataplaneSpec {
        networking: Some(Networking {
            address: "10.0.0.1".into(),
            inbound: serves.iter().map(|s| mk_inbound(s, 80)).collect(),
            outbound: outbounds,
            ..Networking::default()
        }),
        ..DataplaneSpec::default()
    }
}

fn mk_transparent(reachable: &[&str]) -> DataplaneSpec {
    let mut dp = mk_dataplane(&["tp"], vec![]);
    if let Some(n) = dp.networking.as_mut() {
        n.transparent_proxying = Some(TransparentProxying {
            redirect_port_inbound: 15006,
            redirect_port_outbound: 15001,
            reachable_services: reachable.iter().map(|s| s.to_string()).collect(),
            ..TransparentProxying::default()
        });
    }
    dp
}

fn mk_resource(name: &str, labels: &[(&str, &str)], spec: Spec) -> Resource {
    Resource {
        meta: ResourceMeta {
            mesh: Some("default".into()),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            creation_time: Default::default(),
            modification_time: Default::default(),
            version: 1,
        },
        spec,
    }
}

fn mk_mesh_service(selector: Selector) -> MeshServiceSpec {
    MeshServiceSpec {
        selector: Some(selector),
        ..MeshServiceSpec::default()
    }
}

/// A mesh: `web` calls `backend` by tag, `front` calls MeshService `api`,
/// `tp-all` is transparent reaching everything, `tp-db` reaches only `db`.
fn mk_reach() -> Reach {
    let mut reach = Reach::default();
    for (name, dp) in [
        (
            "web",
            mk_dataplane(&["web"], vec![mk_outbound("backend", 1000)]),
        ),
        (
            "front",
            mk_dataplane(&["front"], vec![mk_ms_outbound("api", 80)]),
        ),
        ("tp-all", mk_transparent(&[])),
        ("tp-db", mk_transparent(&["db"])),
        ("lonely", mk_dataplane(&["lonely"], vec![])),
    ] {
        reach.update(name, None, Some(&dp));
    }
    reach
}

fn only(names: &[&str]) -> Affected {
    Affected::Only(names.iter().map(|n| n.to_string()).collect())
}

fn dataplane_change<'a>(
    name: &'a str,
    old: Option<&'a Resource>,
    new: Option<&'a Resource>,
) -> Change<'a> {
    Change {
        kind: Kind::Dataplane,
        name,
        old,
        new,
    }
}

#[test]
fn new_instance_reaches_its_callers_and_transparent_proxies_of_everything() {
    let reach = mk_reach();
    let dp = mk_resource(
        "backend-2",
        &[],
        Spec::Dataplane(mk_dataplane(&["backend"], vec![])),
    );
    let got = affected(&dataplane_change("backend-2", None, Some(&dp)), &reach, []);
    assert_eq!(got, only(&["backend-2", "tp-all", "web"]));
}

#[test]
fn a_service_in_reachable_services_reaches_that_transparent_proxy() {
    let reach = mk_reach();
    let dp = mk_resource("db-1", &[], Spec::Dataplane(mk_dataplane(&["db"], vec![])));
    let got = affected(&dataplane_change("db-1", Some(&dp), None), &reach, []);
    assert_eq!(got, only(&["db-1", "tp-all", "tp-db"]));
}

#[test]
fn an_instance_changing_service_reaches_callers_of_both() {
    let reach = mk_reach();
    let old = mk_resource(
        "x",
        &[],
        Spec::Dataplane(mk_dataplane(&["backend"], vec![])),
    );
    let new = mk_resource("x", &[], Spec::Dataplane(mk_dataplane(&["db"], vec![])));
    let got = affected(&dataplane_change("x", Some(&old), Some(&new)), &reach, []);
    assert_eq!(got, only(&["tp-all", "tp-db", "web", "x"]));
}

#[test]
fn a_proxy_changing_only_its_outbounds_reaches_itself() {
    let mut reach = mk_reach();
    let old_spec = mk_dataplane(&[], vec![mk_outbound("backend", 1000)]);
    let new_spec = mk_dataplane(&[], vec![mk_outbound("db", 2000)]);
    let old = mk_resource("caller", &[], Spec::Dataplane(old_spec.clone()));
    let new = mk_resource("caller", &[], Spec::Dataplane(new_spec.clone()));
    reach.update("caller", Some(&old_spec), Some(&new_spec));
    let got = affected(
        &dataplane_change("caller", Some(&old), Some(&new)),
        &reach,
        [],
    );
    assert_eq!(got, only(&["caller"]));

    // The reverse index follows: `caller` now hears about `db`, not `backend`.
    let backend = mk_resource(
        "b",
        &[],
        Spec::Dataplane(mk_dataplane(&["backend"], vec![])),
    );
    let got = affected(&dataplane_change("b", None, Some(&backend)), &reach, []);
    assert_eq!(got, only(&["b", "tp-all", "web"]));
    let db = mk_resource("d", &[], Spec::Dataplane(mk_dataplane(&["db"], vec![])));
    let got = affected(&dataplane_change("d", None, Some(&db)), &reach, []);
    assert_eq!(got, only(&["caller", "d", "tp-all", "tp-db"]));
}

#[test]
fn removed_proxy_leaves_the_reverse_index() {
    let mut reach = mk_reach();
    let web = mk_dataplane(&["web"], vec![mk_outbound("backend", 1000)]);
    reach.update("web", Some(&web), None);
    let tp = mk_transparent(&[]);
    reach.update("tp-all", Some(&tp), None);
    let backend = mk_resource(
        "b",
        &[],
        Spec::Dataplane(mk_dataplane(&["backend"], vec![])),
    );
    let got = affected(&dataplane_change("b", None, Some(&backend)), &reach, []);
    assert_eq!(got, only(&["b"]));
    assert!(!reach.by_service.contains_key("backend"));
    assert!(reach.everything.is_empty());
}

#[test]
fn instance_selected_by_a_mesh_service_reaches_its_callers() {
    let reach = mk_reach();
    let by_tags = mk_mesh_service(Selector {
        dataplane_tags: Some([(SERVICE_TAG.to_string(), "api".to_string())].into()),
        ..Selector::default()
    });
    let by_labels = mk_mesh_service(Selector {
        dataplane_labels: Some(LabelSelector {
            match_labels: Some([("app".to_string(), "api".to_string())].into()),
        }),
        ..Selector::default()
    });
    let by_ref = mk_mesh_service(Selector {
        dataplane_ref: Some(DataplaneRef {
            name: "api-by-name".into(),
        }),
        ..Selector::default()
    });
    for (ms_name, dp_name, serves, labels, ms) in [
        ("api", "api-1", "api", vec![], &by_tags),
        ("api", "api-2", "other", vec![("app", "api")], &by_labels),
        ("api", "api-by-name", "other", vec![], &by_ref),
    ] {
        let dp = mk_resource(
            dp_name,
            &labels,
            Spec::Dataplane(mk_dataplane(&[serves], vec![])),
        );
        let got = affected(
            &dataplane_change(dp_name, None, Some(&dp)),
            &reach,
            [(ms_name, ms)],
        );
        assert!(got.contains("front"), "{dp_name}: {got:?}");
        assert!(got.contains(dp_name));
        assert!(!got.contains("web"));
    }
    // Selected by nothing: the MeshService's callers are left alone.
    let dp = mk_resource(
        "x",
        &[("app", "web")],
        Spec::Dataplane(mk_dataplane(&["web"], vec![])),
    );
    let got = affected(
        &dataplane_change("x", None, Some(&dp)),
        &reach,
        [("api", &by_labels)],
    );
    assert!(!got.contains("front"));
}

#[test]
fn instance_leaving_a_mesh_service_reaches_its_callers() {
    let reach = mk_reach();
    let ms = mk_mesh_service(Selector {
        dataplane_labels: Some(LabelSelector {
            match_labels: Some([("app".to_string(), "api".to_string())].into()),
        }),
        ..Selector::default()
    });
    let spec = Spec::Dataplane(mk_dataplane(&["api"], vec![]));
    let old = mk_resource("api-1", &[("app", "api")], spec.clone());
    let new = mk_resource("api-1", &[("app", "gone")], spec);
    let got = affected(
        &dataplane_change("api-1", Some(&old), Some(&new)),
        &reach,
        [("api", &ms)],
    );
    assert!(got.contains("front"));
}

#[test]
fn mesh_service_change_reaches_only_its_callers() {
    let reach = mk_reach();
    let ms = mk_resource("api", &[], Spec::MeshService(MeshServiceSpec::default()));
    let change = Change {
        kind: Kind::MeshService,
        name: "api",
        old: None,
        new: Some(&ms),
    };
    assert_eq!(affected(&change, &reach, []), only(&["front"]));
    // Callers of the `kuma.io/service` of the same name are included too.
    let change = Change {
        kind: Kind::MeshService,
        name: "backend",
        old: Some(&ms),
        new: Some(&ms),
    };
    assert_eq!(affected(&change, &reach, []), only(&["web"]));
    let change = Change {
        kind: Kind::MeshService,
        name: "nobody-calls",
        old: Some(&ms),
        new: None,
    };
    assert!(affected(&change, &reach, []).is_empty());
}

#[test]
fn mesh_and_every_policy_kind_reach_everyone() {
    let reach = mk_reach();
    let timeout = mk_resource("t", &[], Spec::MeshTimeout(MeshTimeoutSpec::default()));
    let change = Change {
        kind: Kind::MeshTimeout,
        name: "t",
        old: None,
        new: Some(&timeout),
    };
    assert_eq!(affected(&change, &reach, []), Affected::Everyone);
    for kind in Kind::ALL.iter().filter(|k| k.is_policy()) {
        let change = Change {
            kind: *kind,
            name: "p",
            old: None,
            new: None,
        };
        assert_eq!(
            affected(&change, &reach, []),
            Affected::Everyone,
            "{kind:?}"
        );
    }
    let change = Change {
        kind: Kind::Mesh,
        name: "default",
        old: None,
        new: None,
    };
    assert_eq!(affected(&change, &reach, []), Affected::Everyone);
}

#[test]
fn merge_widens() {
    let mut a = only(&["a"]);
    a.merge(only(&["b"]));
    assert_eq!(a, only(&["a", "b"]));
    a.merge(Affected::Everyone);
    assert_eq!(a, Affected::Everyone);
    a.merge(only(&["c"]));
    assert_eq!(a, Affected::Everyone);
    assert!(a.contains("anything"));
    assert!(Affected::default().is_empty());
}
