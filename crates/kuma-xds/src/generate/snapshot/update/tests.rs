//! An updated snapshot must generate exactly what a fresh build of the same
//! resources generates, whatever sequence of changes led to it.

use std::collections::BTreeMap;

use kuma_api::kinds::dataplane::{
    BackendRef, DataplaneSpec, Health, Inbound, InboundState, Networking, Outbound,
};
use kuma_api::kinds::mesh_service::{MeshServiceSpec, Port, Selector, TargetPort};
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::{Kind, ResourceDocument, Spec};

use super::*;
use crate::generate::generate_proxy;

const SERVICES: usize = 4;

/// A small deterministic generator: the sequences are random-ish but the
/// same on every run, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % below
    }
}

fn service(i: usize) -> String {
    format!("svc-{i}")
}

fn mk_inbound(rng: &mut Lcg, port: u32) -> Inbound {
    let protocol = ["http", "tcp", "grpc", "http2"][rng.next(4)];
    let mut inbound = Inbound {
        port,
        service_port: port + 1000,
        tags: [
            (SERVICE_TAG.to_string(), service(rng.next(SERVICES))),
            ("kuma.io/protocol".to_string(), protocol.to_string()),
            ("version".to_string(), format!("v{}", rng.next(2))),
        ]
        .into(),
        ..Inbound::default()
    };
    match rng.next(6) {
        0 => inbound.health = Some(Health { ready: false }),
        1 => inbound.state = Some(InboundState::Ignored),
        _ => {}
    }
    inbound
}

fn mk_dataplane(rng: &mut Lcg, index: usize) -> (BTreeMap<String, String>, DataplaneSpec) {
    let inbounds = (0..1 + rng.next(2))
        .map(|i| mk_inbound(rng, 8080 + i as u32))
        .collect();
    let mut outbound: Vec<Outbound> = (0..SERVICES)
        .map(|i| Outbound {
            port: 10_000 + i as u32,
            tags: [(SERVICE_TAG.to_string(), service(i))].into(),
            ..Outbound::default()
        })
        .collect();
    outbound.push(Outbound {
        port: 20_000,
        backend_ref: Some(BackendRef {
            kind: "MeshService".into(),
            name: "by-tag".into(),
            port: 80,
            ..BackendRef::default()
        }),
        ..Outbound::default()
    });
    outbound.push(Outbound {
        port: 20_001,
        backend_ref: Some(BackendRef {
            kind: "MeshService".into(),
            name: "by-label".into(),
            port: 90,
            ..BackendRef::default()
        }),
        ..Outbound::default()
    });
    let labels = [("team".to_string(), format!("t{}", rng.next(2)))].into();
    let spec = DataplaneSpec {
        networking: Some(Networking {
            address: format!("10.0.{}.{}", rng.next(3), index),
            inbound: inbounds,
            outbound,
            ..Networking::default()
        }),
        ..DataplaneSpec::default()
    };
    (labels, spec)
}

fn mesh_services() -> Vec<(&'static str, BTreeMap<String, String>, MeshServiceSpec)> {
    let by_tag = MeshServiceSpec {
        selector: Some(Selector {
            dataplane_tags: Some([(SERVICE_TAG.to_string(), service(1))].into()),
            ..Selector::default()
        }),
        ports: vec![Port {
            port: 80,
            target_port: Some(TargetPort::Number(8080)),
            app_protocol: "http".into(),
            ..Port::default()
        }],
        ..MeshServiceSpec::default()
    };
    let by_label: MeshServiceSpec = serde_yaml::from_str(
        "selector:\n  dataplaneLabels:\n    matchLabels:\n      team: t1\nports:\n- port: 90\n  targetPort: 8081\n",
    )
    .expect("MeshService reads");
    vec![
        ("by-tag", BTreeMap::new(), by_tag),
        ("by-label", BTreeMap::new(), by_label),
    ]
}

type State = BTreeMap<String, (BTreeMap<String, String>, DataplaneSpec)>;

/// Policies by kind and name.
type Policies = BTreeMap<(Kind, String), (BTreeMap<String, String>, Spec)>;

/// The `spec` of one random policy of a few kinds, aimed at the whole
/// mesh, one service, a subset of proxies or a route.
fn mk_policy_spec(rng: &mut Lcg) -> (&'static str, String) {
    let svc = service(rng.next(SERVICES));
    let other = service(rng.next(SERVICES));
    let n = 1 + rng.next(5);
    let top = match rng.next(3) {
        0 => "kind: Mesh".to_string(),
        1 => format!(
            "kind: MeshSubset\n    tags:\n      version: v{}",
            rng.next(2)
        ),
        _ => format!("kind: MeshService\n    name: {other}"),
    };
    match rng.next(9) {
        0 => (
            "MeshTimeout",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: {n}s\n      http:\n        requestTimeout: {n}s\n"
            ),
        ),
        1 => (
            "MeshTimeout",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: MeshService\n      name: {svc}\n    default:\n      idleTimeout: {n}m\n"
            ),
        ),
        2 => (
            "MeshTimeout",
            format!(
                "targetRef:\n    {top}\n  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      idleTimeout: {n}m\n"
            ),
        ),
        3 => (
            "MeshRetry",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: MeshService\n      name: {svc}\n    default:\n      http:\n        numRetries: {n}\n      tcp:\n        maxConnectAttempt: {n}\n"
            ),
        ),
        4 => (
            "MeshCircuitBreaker",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionLimits:\n        maxConnections: {n}\n"
            ),
        ),
        5 => (
            "MeshHealthCheck",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: MeshService\n      name: {svc}\n    default:\n      interval: {n}s\n      timeout: 1s\n      unhealthyThreshold: 3\n      healthyThreshold: 1\n      tcp: {{}}\n"
            ),
        ),
        6 => (
            "MeshHTTPRoute",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: MeshService\n      name: {svc}\n    rules:\n    - matches:\n      - path:\n          type: PathPrefix\n          value: /p{n}\n      default:\n        backendRefs:\n        - kind: MeshService\n          name: {other}\n          weight: 1\n"
            ),
        ),
        7 => (
            "MeshTCPRoute",
            format!(
                "targetRef:\n    {top}\n  to:\n  - targetRef:\n      kind: MeshService\n      name: {svc}\n    rules:\n    - default:\n        backendRefs:\n        - kind: MeshServiceSubset\n          name: {svc}\n          tags:\n            version: v{}\n",
                rng.next(2)
            ),
        ),
        _ => (
            "MeshTimeout",
            format!(
                "targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshHTTPRoute\n      name: p-{}\n    default:\n      http:\n        requestTimeout: {n}s\n",
                rng.next(3)
            ),
        ),
    }
}

/// A random policy under one of a few names, so that later ones replace
/// earlier ones.
fn mk_policy(rng: &mut Lcg) -> ((Kind, String), (BTreeMap<String, String>, Spec)) {
    let (kind, spec) = mk_policy_spec(rng);
    let name = format!("p-{}", rng.next(3));
    let yaml = format!("type: {kind}\nmesh: default\nname: {name}\nspec:\n  {spec}");
    let doc = ResourceDocument::from_yaml(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    ((doc.spec.kind(), name), (doc.labels, doc.spec))
}

fn fresh(state: &State) -> MeshSnapshot {
    fresh_with(state, &Policies::new())
}

fn fresh_with(state: &State, policies: &Policies) -> MeshSnapshot {
    fresh_full(state, policies, &mesh_services_by_name())
}

/// MeshServices by name.
type MeshServices = BTreeMap<String, (BTreeMap<String, String>, MeshServiceSpec)>;

/// [`mesh_services`] by name.
fn mesh_services_by_name() -> MeshServices {
    mesh_services()
        .into_iter()
        .map(|(name, labels, spec)| (name.to_string(), (labels, spec)))
        .collect()
}

fn fresh_full(state: &State, policies: &Policies, services: &MeshServices) -> MeshSnapshot {
    let mut b = MeshSnapshot::builder("default");
    for (name, (labels, spec)) in services {
        b.add(
            Some("default"),
            name,
            labels,
            Spec::MeshService(spec.clone()),
        );
    }
    for (name, (labels, spec)) in state {
        b.add(Some("default"), name, labels, Spec::Dataplane(spec.clone()));
    }
    for ((_, name), (labels, spec)) in policies {
        b.add(Some("default"), name, labels, spec.clone());
    }
    b.build()
}

/// One to three changes of policies: adds, updates and removes.
fn policy_changes(
    rng: &mut Lcg,
    policies: &mut Policies,
) -> Vec<(Kind, String, super::PolicyState)> {
    let mut changes = Vec::new();
    for _ in 0..1 + rng.next(3) {
        let (key, policy) = mk_policy(rng);
        let change = if rng.next(4) == 0 {
            policies.remove(&key);
            None
        } else {
            policies.insert(key.clone(), policy.clone());
            Some(policy)
        };
        changes.push((key.0, key.1, change));
    }
    changes
}

/// Every proxy's configuration and every destination of both snapshots agree.
fn assert_same(updated: &MeshSnapshot, built: &MeshSnapshot, step: usize) {
    assert_eq!(
        updated.dataplane_names().collect::<Vec<_>>(),
        built.dataplane_names().collect::<Vec<_>>(),
        "step {step}: dataplanes"
    );
    assert_eq!(
        updated.service_names().collect::<Vec<_>>(),
        built.service_names().collect::<Vec<_>>(),
        "step {step}: services"
    );
    for name in built.service_names() {
        assert_eq!(
            updated.service(name),
            built.service(name),
            "step {step}: {name}"
        );
    }
    for (svc, port) in [("by-tag", 80), ("by-label", 90)] {
        assert_eq!(
            updated.mesh_service_port(svc, port),
            built.mesh_service_port(svc, port),
            "step {step}: MeshService {svc}"
        );
    }
    assert_eq!(
        updated.policy_kinds().collect::<Vec<_>>(),
        built.policy_kinds().collect::<Vec<_>>(),
        "step {step}: policy kinds"
    );
    assert_eq!(
        updated.policy_warnings(),
        built.policy_warnings(),
        "step {step}: policy warnings"
    );
    for name in built.dataplane_names() {
        assert_eq!(
            updated.dataplane_labels(name),
            built.dataplane_labels(name),
            "step {step}: labels of {name}"
        );
        let a = generate_proxy(updated, name).expect("updated generates");
        let b = generate_proxy(built, name).expect("fresh generates");
        assert_eq!(a, b, "step {step}: configuration of {name}");
    }
}

#[test]
fn updates_generate_what_fresh_builds_generate() {
    for seed in [1_u64, 7, 42, 99] {
        let mut rng = Lcg(seed);
        let mut state: State = (0..8)
            .map(|i| (format!("dp-{i}"), mk_dataplane(&mut rng, i)))
            .collect();
        let mut policies = Policies::new();
        let mut snapshot = fresh(&state);
        for step in 0..40 {
            // Dataplane changes, policy changes, or both in one batch.
            let what = rng.next(3);
            if what != 1 {
                // One to three changes per step: adds, updates and removes.
                let mut changes = Vec::new();
                for _ in 0..1 + rng.next(3) {
                    let index = rng.next(12);
                    let name = format!("dp-{index}");
                    let change = if rng.next(4) == 0 {
                        state.remove(&name);
                        None
                    } else {
                        let dp = mk_dataplane(&mut rng, index);
                        state.insert(name.clone(), dp.clone());
                        Some(dp)
                    };
                    changes.push((name, change));
                }
                snapshot = snapshot.with_dataplane_changes(changes);
            }
            if what != 0 {
                let changes = policy_changes(&mut rng, &mut policies);
                snapshot = snapshot.with_policy_changes(changes);
            }
            assert_same(&snapshot, &fresh_with(&state, &policies), step);
        }
    }
}

#[test]
fn a_policy_update_indexes_again_only_the_kinds_it_changes() {
    let mut rng = Lcg(11);
    let state: State = (0..4)
        .map(|i| (format!("dp-{i}"), mk_dataplane(&mut rng, i)))
        .collect();
    let read = |yaml: &str| {
        let doc = ResourceDocument::from_yaml(yaml).expect("policy reads");
        (doc.labels, doc.spec)
    };
    let timeout = "type: MeshTimeout\nmesh: default\nname: t\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 3s\n";
    let retry = "type: MeshRetry\nmesh: default\nname: r\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      tcp:\n        maxConnectAttempt: 2\n";
    let route = "type: MeshHTTPRoute\nmesh: default\nname: h\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      name: svc-0\n    rules:\n    - matches:\n      - path:\n          type: PathPrefix\n          value: /a\n      default: {}\n";
    let mut policies = Policies::new();
    for (name, yaml) in [("t", timeout), ("r", retry)] {
        let (labels, spec) = read(yaml);
        policies.insert((spec.kind(), name.into()), (labels, spec));
    }
    let before = fresh_with(&state, &policies);
    let (labels, spec) = read(&timeout.replace("3s", "4s"));
    let after = before.with_policy_changes([(Kind::MeshTimeout, "t".into(), Some((labels, spec)))]);
    assert!(
        !after
            .policies
            .shares_index(&before.policies, Kind::MeshTimeout)
    );
    assert!(
        after
            .policies
            .shares_index(&before.policies, Kind::MeshRetry)
    );
    // Indexes memoize per context: a shared index needs the same one.
    assert!(std::ptr::eq(
        after.policy_context(),
        before.policy_context()
    ));
    // Dataplanes and destinations are shared whole, not copied.
    assert!(Arc::ptr_eq(&before.dataplanes, &after.dataplanes));
    assert!(Arc::ptr_eq(&before.services, &after.services));
    for name in state.keys() {
        assert!(Arc::ptr_eq(
            &before.dataplanes[name],
            &after.dataplanes[name]
        ));
    }
    for service in before.services.keys() {
        assert!(Arc::ptr_eq(
            &before.services[service],
            &after.services[service]
        ));
    }
    // Policies may target routes: a route change indexes every kind again.
    let (labels, spec) = read(route);
    let routed =
        after.with_policy_changes([(Kind::MeshHTTPRoute, "h".into(), Some((labels, spec)))]);
    assert!(
        !routed
            .policies
            .shares_index(&after.policies, Kind::MeshRetry)
    );
    assert_eq!(routed.policy_context().http_routes.len(), 1);
    // Deleting the last policy of a kind removes the kind.
    let gone = routed.with_policy_changes([(Kind::MeshRetry, "r".into(), None)]);
    assert!(!gone.policy_kinds().any(|k| k == Kind::MeshRetry));
    // The routes' confs, read, go along with updates of other kinds, and
    // a route change reads only the routes that changed.
    assert!(Arc::ptr_eq(&gone.policies.routes, &routed.policies.routes));
    let h = routed.policy_context().http_routes[0].clone();
    let read_h =
        |s: &MeshSnapshot| std::ptr::from_ref(s.route_confs().get(&h.to[0].conf).expect("read"));
    let (labels, spec) = read(route);
    let rerouted =
        gone.with_policy_changes([(Kind::MeshHTTPRoute, "h2".into(), Some((labels, spec)))]);
    assert_eq!(rerouted.policy_context().http_routes.len(), 2);
    assert_eq!(read_h(&rerouted), read_h(&routed));
}

#[test]
fn an_update_shares_what_it_does_not_touch() {
    let mut rng = Lcg(3);
    let state: State = (0..8)
        .map(|i| (format!("dp-{i}"), mk_dataplane(&mut rng, i)))
        .collect();
    let before = fresh(&state);
    let (name, (labels, mut spec)) = state
        .iter()
        .next()
        .map(|(n, d)| (n.clone(), d.clone()))
        .expect("a dataplane");
    let served: Vec<String> = index::served_services(&spec).map(str::to_string).collect();
    if let Some(n) = spec.networking.as_mut() {
        n.address = "192.168.7.7".into();
    }
    let after = before.with_dataplane_changes([(name.clone(), Some((labels, spec)))]);
    assert!(Arc::ptr_eq(&before.policies, &after.policies));
    assert!(Arc::ptr_eq(&before.mesh_services, &after.mesh_services));
    for other in state.keys().filter(|n| **n != name) {
        assert!(Arc::ptr_eq(
            &before.dataplanes[other],
            &after.dataplanes[other]
        ));
    }
    for service in before.services.keys() {
        let shared = Arc::ptr_eq(&before.services[service], &after.services[service]);
        assert_eq!(
            shared,
            !served.contains(service),
            "{service}: re-indexed only when the changed Dataplane serves it"
        );
    }
}

#[test]
fn removing_the_last_instance_removes_the_service() {
    let mut rng = Lcg(5);
    let (labels, mut spec) = mk_dataplane(&mut rng, 0);
    if let Some(n) = spec.networking.as_mut() {
        n.inbound = vec![Inbound {
            port: 8080,
            tags: [(SERVICE_TAG.to_string(), "lonely".to_string())].into(),
            ..Inbound::default()
        }];
    }
    let state: State = [("dp-0".to_string(), (labels, spec))].into();
    let before = fresh(&state);
    assert!(before.service("lonely").is_some());
    let after = before.with_dataplane_changes([("dp-0".to_string(), None)]);
    assert!(after.service("lonely").is_none());
    assert_eq!(after.service_names().count(), 0);
    assert!(after.dataplane("dp-0").is_none());
}

/// Carrying encoded resources over policy and Dataplane changes gives every
/// proxy byte for byte what a fresh build generates. Half of the runs keep
/// route policies out, since a route anywhere carries inbound clusters only.
#[test]
fn carried_resources_are_what_fresh_builds_encode() {
    let mut carried_outbound = 0;
    for (seed, routes) in [(3_u64, false), (17, false), (23, true), (31, false)] {
        let mut rng = Lcg(seed);
        let mut state: State = (0..8)
            .map(|i| (format!("dp-{i}"), mk_dataplane(&mut rng, i)))
            .collect();
        let mut policies = Policies::new();
        let mut snapshot = fresh(&state);
        for name in state.keys() {
            generate_proxy(&snapshot, name).expect("generates");
        }
        for step in 0..30 {
            let mut next = None;
            if rng.next(3) == 0 {
                let index = rng.next(12);
                let name = format!("dp-{index}");
                let dp = mk_dataplane(&mut rng, index);
                state.insert(name.clone(), dp.clone());
                next = Some(snapshot.with_dataplane_changes([(name, Some(dp))]));
            }
            let mut changes = policy_changes(&mut rng, &mut policies);
            if !routes {
                changes.retain(|(kind, name, _)| {
                    let route = matches!(kind, Kind::MeshHTTPRoute | Kind::MeshTCPRoute);
                    if route {
                        policies.remove(&(*kind, name.clone()));
                    }
                    !route
                });
            }
            let next = next
                .as_ref()
                .unwrap_or(&snapshot)
                .with_policy_changes(changes);
            let carried = next.carry_shared_from(&snapshot);
            let outbound = {
                let shared = next.shared.lock().expect("cache");
                shared
                    .keys()
                    .filter(|k| {
                        !matches!(
                            k,
                            crate::generate::snapshot::CacheKey::InboundCluster { .. }
                        )
                    })
                    .count()
            };
            assert!(carried >= outbound, "step {step}");
            carried_outbound += outbound;
            let built = fresh_with(&state, &policies);
            for name in state.keys() {
                let a = generate_proxy(&next, name).expect("carried generates");
                let b = generate_proxy(&built, name).expect("fresh generates");
                assert_eq!(a, b, "seed {seed} step {step}: configuration of {name}");
            }
            snapshot = next;
        }
    }
    // Clusters, endpoints and listeners were carried, not only inbounds.
    assert!(carried_outbound > 0);
}

/// A MeshTimeout whose `to` entry selects MeshServices by their labels:
/// which destinations it reaches changes with the MeshServices.
fn mk_policy_by_labels(rng: &mut Lcg) -> ((Kind, String), (BTreeMap<String, String>, Spec)) {
    let team = rng.next(2);
    let n = 1 + rng.next(5);
    let name = format!("by-labels-{}", rng.next(2));
    let yaml = format!(
        "type: MeshTimeout\nmesh: default\nname: {name}\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n  - targetRef:\n      kind: MeshService\n      labels:\n        team: t{team}\n    default:\n      connectionTimeout: {n}s\n"
    );
    let doc = ResourceDocument::from_yaml(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    ((doc.spec.kind(), name), (doc.labels, doc.spec))
}

/// One MeshService changed: removed, or (again) present with other labels
/// and, for `by-tag`, another target port.
fn mesh_service_change(
    rng: &mut Lcg,
    services: &mut MeshServices,
) -> (String, super::MeshServiceState) {
    let (name, _, mut spec) = mesh_services().swap_remove(rng.next(2));
    if rng.next(4) == 0 {
        services.remove(name);
        return (name.to_string(), None);
    }
    if name == "by-tag" && rng.next(2) == 0 {
        spec.ports[0].target_port = Some(TargetPort::Number(8081));
    }
    let labels: BTreeMap<String, String> =
        [("team".to_string(), format!("t{}", rng.next(2)))].into();
    services.insert(name.to_string(), (labels.clone(), spec.clone()));
    (name.to_string(), Some((labels, spec)))
}

#[test]
fn mesh_service_updates_generate_what_fresh_builds_generate() {
    for seed in [3_u64, 11, 58] {
        let mut rng = Lcg(seed);
        let mut state: State = (0..8)
            .map(|i| (format!("dp-{i}"), mk_dataplane(&mut rng, i)))
            .collect();
        let mut policies = Policies::new();
        let mut services = mesh_services_by_name();
        let mut snapshot = fresh_full(&state, &policies, &services);
        for step in 0..30 {
            // MeshService changes, with policy or Dataplane changes or both
            // in the same batch, applied in the order kuma-cp applies them.
            let what = rng.next(3);
            if what == 0 {
                let index = rng.next(10);
                let name = format!("dp-{index}");
                let dp = mk_dataplane(&mut rng, index);
                state.insert(name.clone(), dp.clone());
                snapshot = snapshot.with_dataplane_changes([(name, Some(dp))]);
            }
            let changes: Vec<_> = (0..1 + rng.next(2))
                .map(|_| mesh_service_change(&mut rng, &mut services))
                .collect();
            snapshot = snapshot.with_mesh_service_changes(changes);
            if what != 0 {
                let (key, policy) = if rng.next(2) == 0 {
                    mk_policy_by_labels(&mut rng)
                } else {
                    mk_policy(&mut rng)
                };
                policies.insert(key.clone(), policy.clone());
                snapshot = snapshot.with_policy_changes([(key.0, key.1, Some(policy))]);
            }
            let built = fresh_full(&state, &policies, &services);
            assert_same(&snapshot, &built, step);
        }
    }
}

#[test]
fn a_mesh_service_update_reads_no_policy_again() {
    let mut rng = Lcg(5);
    let state: State = (0..4)
        .map(|i| (format!("dp-{i}"), mk_dataplane(&mut rng, i)))
        .collect();
    let mut policies = Policies::new();
    let (key, policy) = mk_policy_by_labels(&mut rng);
    policies.insert(key, policy);
    let before = fresh_with(&state, &policies);
    let mut services = MeshServices::new();
    let change = mesh_service_change(&mut rng, &mut services);
    let after = before.with_mesh_service_changes([change]);
    // The same policies as read, indexed again (new context).
    assert!(before.policies.same_sources(&after.policies));
    assert!(!before.same_policies(&after));
    assert!(Arc::ptr_eq(&before.dataplanes, &after.dataplanes));
    assert!(Arc::ptr_eq(&before.services, &after.services));
}
