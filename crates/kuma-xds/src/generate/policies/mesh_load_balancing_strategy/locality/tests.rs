use super::*;
use crate::generate::snapshot::Protocol;

const LOCAL: &str = "default";

/// A proxy with one inbound per tag set.
fn mk_proxy(inbounds: &[&[(&str, &str)]]) -> DataplaneSpec {
    let inbounds: Vec<serde_json::Value> = inbounds
        .iter()
        .enumerate()
        .map(|(i, tags)| {
            let mut tags: serde_json::Map<String, serde_json::Value> = tags
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect();
            tags.insert("kuma.io/service".into(), serde_json::json!("web"));
            serde_json::json!({"port": 8080 + i, "tags": tags})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "networking": {"address": "10.0.0.1", "inbound": inbounds}
    }))
    .expect("dataplane")
}

fn mk_conf(yaml: &str) -> Conf {
    serde_yaml::from_str(yaml).expect("conf")
}

fn mk_endpoint(address: &str, tags: &[(&str, &str)]) -> Endpoint {
    let mut tags: BTreeMap<String, String> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tags.insert("kuma.io/service".into(), "backend".into());
    Endpoint {
        dataplane: format!("dp-{address}"),
        address: address.into(),
        port: 8080,
        tags,
    }
}

fn mk_destination(endpoints: Vec<Endpoint>) -> Destination {
    Destination {
        endpoints,
        protocol: Protocol::Http,
    }
}

/// (zone, sub-zone, priority, weight, addresses) of each locality.
fn summary(localities: &Localities<'_>) -> Vec<(String, String, u32, u32, Vec<String>)> {
    localities
        .localities
        .iter()
        .map(|l| {
            (
                l.zone.to_string(),
                l.sub_zone.clone(),
                l.priority,
                l.weight,
                l.endpoints.iter().map(|e| e.address.clone()).collect(),
            )
        })
        .collect()
}

fn row(
    zone: &str,
    sub_zone: &str,
    priority: u32,
    weight: u32,
    addresses: &[&str],
) -> (String, String, u32, u32, Vec<String>) {
    (
        zone.to_string(),
        sub_zone.to_string(),
        priority,
        weight,
        addresses.iter().map(|a| a.to_string()).collect(),
    )
}

/// Two local endpoints (one without a zone tag) and one in `zone-2`.
fn two_zones() -> Destination {
    mk_destination(vec![
        mk_endpoint("10.0.0.2", &[]),
        mk_endpoint("10.0.0.9", &[("kuma.io/zone", "zone-2")]),
        mk_endpoint("10.0.0.1", &[("kuma.io/zone", LOCAL)]),
    ])
}

#[test]
fn without_a_policy_the_mesh_switch_decides_whether_other_zones_wait() {
    let proxy = mk_proxy(&[&[]]);
    let destination = two_zones();
    let off = LocalityPlan::new(None, &proxy, LOCAL, false);
    assert!(!off.applies_to(&destination));
    let on = LocalityPlan::new(None, &proxy, LOCAL, true);
    assert!(on.applies_to(&destination));
    let localities = on.localities(&destination);
    assert_eq!(
        summary(&localities),
        [
            row(LOCAL, "", 0, 0, &["10.0.0.1", "10.0.0.2"]),
            row("zone-2", "", 1, 0, &["10.0.0.9"]),
        ]
    );
    assert_eq!(localities.overprovisioning, None);
    // A single zone needs nothing but the shared assignment.
    let local_only = mk_destination(vec![mk_endpoint("10.0.0.2", &[])]);
    assert!(!on.applies_to(&local_only));
}

#[test]
fn a_policy_makes_other_zones_wait_unless_it_disables_awareness() {
    let proxy = mk_proxy(&[&[]]);
    let destination = two_zones();
    let any = mk_conf("loadBalancer: {type: RoundRobin}");
    let plan = LocalityPlan::new(Some(&any), &proxy, LOCAL, false);
    assert!(plan.applies_to(&destination));
    assert_eq!(
        summary(&plan.localities(&destination))[1],
        row("zone-2", "", 1, 0, &["10.0.0.9"])
    );
    // `disabled` wins over the Mesh's switch.
    let disabled = mk_conf("localityAwareness: {disabled: true}");
    let plan = LocalityPlan::new(Some(&disabled), &proxy, LOCAL, true);
    assert!(!plan.applies_to(&destination));
}

#[test]
fn affinity_tags_weigh_local_sub_zones_and_drop_other_zones() {
    let conf = mk_conf(
        "localityAwareness:
  localZone:
    affinityTags: [{key: k8s.io/node}, {key: k8s.io/az}]",
    );
    assert!(LocalityPlan::weighted(&conf));
    let proxy = mk_proxy(&[&[("k8s.io/node", "n1"), ("k8s.io/az", "a")]]);
    let plan = LocalityPlan::new(Some(&conf), &proxy, LOCAL, false);
    let destination = mk_destination(vec![
        mk_endpoint("10.0.0.3", &[("k8s.io/node", "n3"), ("k8s.io/az", "b")]),
        mk_endpoint("10.0.0.2", &[("k8s.io/node", "n2"), ("k8s.io/az", "a")]),
        mk_endpoint("10.0.0.1", &[("k8s.io/node", "n1"), ("k8s.io/az", "a")]),
        mk_endpoint(
            "10.0.0.4",
            &[("k8s.io/node", "n1"), ("kuma.io/zone", "zone-2")],
        ),
        mk_endpoint("10.0.0.5", &[]),
    ]);
    assert!(plan.applies_to(&destination));
    let localities = plan.localities(&destination);
    // Without weights: 90 for the first tag, 9 for the second, 1 for the rest.
    assert_eq!(
        summary(&localities),
        [
            row(LOCAL, "", 0, 1, &["10.0.0.3", "10.0.0.5"]),
            row(LOCAL, "k8s.io/az=a", 0, 9, &["10.0.0.2"]),
            row(LOCAL, "k8s.io/node=n1", 0, 90, &["10.0.0.1"]),
        ]
    );
    assert_eq!(localities.overprovisioning, Some(200));
}

#[test]
fn affinity_groups_need_the_proxys_value_and_take_given_weights() {
    let conf = mk_conf(
        "localityAwareness:
  localZone:
    affinityTags: [{key: rack, weight: 70}, {key: row, weight: 30}]",
    );
    // No `rack` on the proxy: only `row` groups; of two values, the first.
    let proxy = mk_proxy(&[&[("row", "r2")], &[("row", "r1")]]);
    let plan = LocalityPlan::new(Some(&conf), &proxy, LOCAL, false);
    let destination = mk_destination(vec![
        mk_endpoint("10.0.0.1", &[("rack", "x"), ("row", "r1")]),
        mk_endpoint("10.0.0.2", &[("row", "r2")]),
    ]);
    assert_eq!(
        summary(&plan.localities(&destination)),
        [
            row(LOCAL, "", 0, 1, &["10.0.0.2"]),
            row(LOCAL, "row=r1", 0, 30, &["10.0.0.1"]),
        ]
    );
    // Proxies alike share a plan; the tags beside the affinity ones do not count.
    let twin = mk_proxy(&[&[("row", "r1"), ("version", "v2")]]);
    assert_eq!(plan, LocalityPlan::new(Some(&conf), &twin, LOCAL, false));
    let other = mk_proxy(&[&[("row", "r2")]]);
    assert_ne!(plan, LocalityPlan::new(Some(&conf), &other, LOCAL, false));
}

#[test]
fn failover_rules_give_priorities_by_position() {
    let conf = mk_conf(
        "localityAwareness:
  crossZone:
    failover:
    - from: {zones: [elsewhere]}
      to: {type: Any}
    - to: {type: Only, zones: [zone-2]}
    - to: {type: None}
    - to: {type: AnyExcept, zones: [zone-3]}
    failoverThreshold: {percentage: 50}",
    );
    assert!(!LocalityPlan::weighted(&conf));
    let proxy = mk_proxy(&[&[]]);
    let plan = LocalityPlan::new(Some(&conf), &proxy, LOCAL, false);
    let destination = mk_destination(vec![
        mk_endpoint("10.0.0.4", &[("kuma.io/zone", "zone-4")]),
        mk_endpoint("10.0.0.3", &[("kuma.io/zone", "zone-3")]),
        mk_endpoint("10.0.0.2", &[("kuma.io/zone", "zone-2")]),
        mk_endpoint("10.0.0.1", &[]),
    ]);
    let localities = plan.localities(&destination);
    // The first rule is not for this zone but still counts in positions;
    // zone-3 matches no rule and is left out.
    assert_eq!(
        summary(&localities),
        [
            row(LOCAL, "", 0, 1, &["10.0.0.1"]),
            row("zone-2", "", 2, 0, &["10.0.0.2"]),
            row("zone-4", "", 4, 0, &["10.0.0.4"]),
        ]
    );
    assert_eq!(localities.overprovisioning, Some(200));
}

#[test]
fn failover_threshold_sets_overprovisioning_as_kuma_computes_it() {
    assert_eq!(overprovisioning(None), 200);
    assert_eq!(overprovisioning(Some(0.0)), 200);
    assert_eq!(overprovisioning(Some(50.0)), 200);
    assert_eq!(overprovisioning(Some(30.0)), 300);
    assert_eq!(overprovisioning(Some(70.0)), 100);
    assert_eq!(overprovisioning(Some(100.0)), 100);
    assert_eq!(default_weight(0), 9);
    assert_eq!(default_weight(2), 900);
    assert_eq!(default_weight(12), u32::MAX);
}

#[test]
fn an_affinity_to_the_service_tag_groups_nothing_but_keeps_the_next_tags_weight() {
    // Endpoints carry no `kuma.io/service` in their metadata, so that tag
    // never matches; the tag after it keeps its place's default weight.
    let conf = mk_conf(
        "localityAwareness:
  localZone:
    affinityTags: [{key: kuma.io/service}, {key: rack}]",
    );
    let proxy = mk_proxy(&[&[("rack", "r1")]]);
    let plan = LocalityPlan::new(Some(&conf), &proxy, LOCAL, false);
    // A proxy calling its own service: the values would be equal.
    let mut own_service = mk_endpoint("10.0.0.2", &[]);
    own_service
        .tags
        .insert("kuma.io/service".into(), "web".into());
    let destination = mk_destination(vec![
        mk_endpoint("10.0.0.1", &[("rack", "r1")]),
        own_service,
    ]);
    assert_eq!(
        summary(&plan.localities(&destination)),
        [
            row(LOCAL, "", 0, 1, &["10.0.0.2"]),
            row(LOCAL, "rack=r1", 0, 9, &["10.0.0.1"]),
        ]
    );
}
