use kuma_api::ResourceDocument;

use super::*;

fn mk_resource(yaml: &str) -> Resource {
    let doc = ResourceDocument::from_yaml(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    Resource {
        meta: kuma_api::ResourceMeta {
            mesh: doc.mesh,
            name: doc.name,
            labels: doc.labels,
            creation_time: Default::default(),
            modification_time: Default::default(),
            version: 1,
        },
        spec: doc.spec,
    }
}

fn mk_dataplane(name: &str, serves: &str, labels: &str, outbounds: &str) -> Resource {
    mk_resource(&format!(
        "type: Dataplane\nmesh: default\nname: {name}\nlabels:\n  team: {labels}\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - port: 80\n    tags:\n      kuma.io/service: {serves}\n  outbound:\n{outbounds}"
    ))
}

/// `web` calls `backend` by tag, `front` calls MeshService `api`, `tp-all`
/// is transparent and reaches everything, `backend` calls nobody.
fn mk_mesh() -> (Vec<Resource>, Reach) {
    let dataplanes = vec![
        mk_dataplane(
            "web",
            "web",
            "a",
            "  - port: 1000\n    tags:\n      kuma.io/service: backend\n",
        ),
        mk_dataplane(
            "front",
            "front",
            "b",
            "  - port: 1001\n    backendRef:\n      kind: MeshService\n      name: api\n      port: 80\n",
        ),
        mk_resource(
            "type: Dataplane\nmesh: default\nname: tp-all\nnetworking:\n  address: 10.0.0.2\n  inbound:\n  - port: 80\n    tags:\n      kuma.io/service: tp\n  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n",
        ),
        mk_dataplane("backend", "backend", "a", "    []\n"),
    ];
    let mut reach = Reach::default();
    for dp in &dataplanes {
        if let kuma_api::Spec::Dataplane(spec) = &dp.spec {
            reach.update(&dp.meta.name, None, Some(spec));
        }
    }
    (dataplanes, reach)
}

fn mk_policy(kind: &str, spec: &str) -> Resource {
    mk_resource(&format!(
        "type: {kind}\nmesh: default\nname: p\nspec:\n{spec}"
    ))
}

fn reached_by(old: Option<&Resource>, new: Option<&Resource>) -> Affected {
    reached_in(false, old, new)
}

fn reached_in(routes: bool, old: Option<&Resource>, new: Option<&Resource>) -> Affected {
    let (dataplanes, reach) = mk_mesh();
    let kind = new.or(old).map_or(Kind::MeshTimeout, Resource::kind);
    let change = Change {
        kind,
        name: "p",
        old,
        new,
    };
    affected(&change, &reach, dataplanes.iter(), routes)
}

fn only(names: &[&str]) -> Affected {
    Affected::Only(names.iter().map(|n| n.to_string()).collect())
}

const TO_BACKEND: &str = "  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    default:\n      connectionTimeout: 3s\n";

#[test]
fn a_mesh_policy_to_one_service_reaches_only_that_services_callers() {
    let timeout = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: Mesh\n{TO_BACKEND}"),
    );
    assert_eq!(reached_by(None, Some(&timeout)), only(&["tp-all", "web"]));
    assert_eq!(reached_by(Some(&timeout), None), only(&["tp-all", "web"]));
    // A MeshService by name: its callers by backendRef too.
    let api = mk_policy(
        "MeshRetry",
        "  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: api\n    default:\n      tcp:\n        maxConnectAttempt: 2\n",
    );
    assert_eq!(reached_by(None, Some(&api)), only(&["front", "tp-all"]));
}

#[test]
fn with_routes_in_the_mesh_to_entries_are_not_narrowed() {
    // A route may send traffic of any selected proxy to `backend`.
    let timeout = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: Mesh\n{TO_BACKEND}"),
    );
    assert_eq!(reached_in(true, None, Some(&timeout)), Affected::Everyone);
    let from_front = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: MeshService\n    name: front\n{TO_BACKEND}"),
    );
    assert_eq!(reached_in(true, None, Some(&from_front)), only(&["front"]));
}

#[test]
fn a_policy_to_the_whole_mesh_reaches_everyone() {
    let timeout = mk_policy(
        "MeshTimeout",
        "  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 3s\n",
    );
    assert_eq!(reached_by(None, Some(&timeout)), Affected::Everyone);
}

#[test]
fn a_policy_reaches_only_the_proxies_its_top_level_target_ref_selects() {
    let from = "  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      idleTimeout: 1m\n";
    let subset = mk_policy(
        "MeshTimeout",
        &format!(
            "  targetRef:\n    kind: MeshSubset\n    tags:\n      kuma.io/service: web\n{from}"
        ),
    );
    assert_eq!(reached_by(None, Some(&subset)), only(&["web"]));
    let service = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: MeshService\n    name: front\n{from}"),
    );
    assert_eq!(reached_by(None, Some(&service)), only(&["front"]));
    let by_labels = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: Dataplane\n    labels:\n      team: a\n{from}"),
    );
    assert_eq!(
        reached_by(None, Some(&by_labels)),
        only(&["backend", "web"])
    );
    let by_name = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: Dataplane\n    name: backend\n{from}"),
    );
    assert_eq!(reached_by(None, Some(&by_name)), only(&["backend"]));
}

#[test]
fn selected_proxies_that_do_not_call_the_service_are_left_out() {
    let from_web = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: MeshService\n    name: web\n{TO_BACKEND}"),
    );
    assert_eq!(reached_by(None, Some(&from_web)), only(&["web"]));
    let from_front = mk_policy(
        "MeshTimeout",
        &format!("  targetRef:\n    kind: MeshService\n    name: front\n{TO_BACKEND}"),
    );
    assert!(reached_by(None, Some(&from_front)).is_empty());
}

#[test]
fn both_the_old_and_the_new_version_count() {
    let subset = |service: &str| {
        mk_policy(
            "MeshTimeout",
            &format!(
                "  targetRef:\n    kind: MeshSubset\n    tags:\n      kuma.io/service: {service}\n  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      idleTimeout: 1m\n"
            ),
        )
    };
    let (old, new) = (subset("web"), subset("front"));
    assert_eq!(reached_by(Some(&old), Some(&new)), only(&["front", "web"]));
}

#[test]
fn what_is_not_read_narrowly_reaches_every_proxy_selected() {
    // A route also shapes what other policies may target.
    let route = mk_policy(
        "MeshHTTPRoute",
        "  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: backend\n    rules:\n    - matches:\n      - path:\n          type: PathPrefix\n          value: /a\n      default: {}\n",
    );
    assert_eq!(reached_by(None, Some(&route)), Affected::Everyone);
    // Aimed at a route: whoever the route selects.
    let on_route = mk_policy(
        "MeshTimeout",
        "  targetRef:\n    kind: MeshHTTPRoute\n    name: r\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 3s\n",
    );
    assert_eq!(reached_by(None, Some(&on_route)), Affected::Everyone);
    // A proxy-wide `default`: every proxy selected.
    let patch = mk_policy(
        "MeshProxyPatch",
        "  targetRef:\n    kind: MeshService\n    name: backend\n  default:\n    appendModifications:\n    - cluster:\n        operation: Add\n        value: 'name: extra'\n",
    );
    assert_eq!(reached_by(None, Some(&patch)), only(&["backend"]));
    // Nothing known about the policy.
    assert_eq!(reached_by(None, None), Affected::Everyone);
}

#[test]
fn a_fault_injection_appearing_or_going_reaches_every_caller() {
    let faults = mk_policy(
        "MeshFaultInjection",
        "  targetRef:\n    kind: MeshService\n    name: backend\n  from:\n  - targetRef:\n      kind: MeshSubset\n      tags:\n        kuma.io/service: web\n    default:\n      http:\n      - abort:\n          httpStatus: 503\n          percentage: 100\n",
    );
    // Its callers start or stop sending their tags, so they change too.
    assert_eq!(reached_by(None, Some(&faults)), Affected::Everyone);
    assert_eq!(reached_by(Some(&faults), None), Affected::Everyone);
    // An update leaves that as it was: only the proxies it selects.
    assert_eq!(reached_by(Some(&faults), Some(&faults)), only(&["backend"]));
}
