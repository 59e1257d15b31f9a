use serde_json::{Value, json};

use kuma_api::kinds::dataplane::DataplaneSpec;

use super::*;
use crate::outbound::ResourceId;
use crate::rules::compute;
use crate::subset::Subset;
use crate::testing::{mk_dataplane, mk_policy, mk_resource, proxy, tags, with_labels};

const WEB: &[(&str, &str)] = &[(SERVICE_TAG, "web"), ("version", "v1")];
const ADMIN: &[(&str, &str)] = &[(SERVICE_TAG, "web-admin")];

fn web_dataplane() -> DataplaneSpec {
    mk_dataplane(&[(8080, "http", WEB), (9090, "", ADMIN)])
}

/// A gateway Dataplane of `kind` (`DELEGATED`, `BUILTIN`) with `tags`.
fn gateway_dataplane(kind: &str, tags: &[(&str, &str)]) -> DataplaneSpec {
    let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
    serde_json::from_value(json!({"networking": {
        "address": "10.0.0.2",
        "gateway": {"type": kind, "tags": tags}
    }}))
    .unwrap()
}

fn ctx() -> MeshContext {
    MeshContext {
        mesh: "default".into(),
        ..MeshContext::default()
    }
}

fn mtp(name: &str, top: Value, action: &str) -> Policy {
    mk_policy(
        Kind::MeshTrafficPermission,
        name,
        json!({"targetRef": top, "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": action}}]}),
    )
}

fn selected_ports(top: Value, name: &str, labels: &BTreeMap<String, String>) -> Vec<u32> {
    let index = PolicyIndex::new(
        Kind::MeshTrafficPermission,
        vec![mtp("p", top, "Allow")],
        &ctx(),
    );
    let spec = web_dataplane();
    let rules = index.rules_for(&proxy(name, labels, &spec), &ctx());
    rules.from.keys().map(|k| k.port).collect()
}

#[test]
fn each_top_level_kind_selects_its_inbounds() {
    let none = BTreeMap::new();
    let labelled = tags(&[("team", "a")]);
    type Case<'a> = (Value, &'a str, &'a BTreeMap<String, String>, Vec<u32>);
    let cases: Vec<Case<'_>> = vec![
        (json!({"kind": "Mesh"}), "dp", &none, vec![8080, 9090]),
        (
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            "dp",
            &none,
            vec![8080],
        ),
        (
            json!({"kind": "MeshSubset", "tags": {"version": "*"}}),
            "dp",
            &none,
            vec![8080],
        ),
        (
            json!({"kind": "MeshSubset", "tags": {"version": "v2"}}),
            "dp",
            &none,
            vec![],
        ),
        (
            json!({"kind": "MeshService", "name": "web-admin"}),
            "dp",
            &none,
            vec![9090],
        ),
        (
            json!({"kind": "MeshService", "name": "other"}),
            "dp",
            &none,
            vec![],
        ),
        (
            json!({"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v1"}}),
            "dp",
            &none,
            vec![8080],
        ),
        (
            json!({"kind": "MeshServiceSubset", "name": "web", "tags": {"version": "v2"}}),
            "dp",
            &none,
            vec![],
        ),
        (json!({"kind": "Dataplane"}), "dp", &none, vec![8080, 9090]),
        (
            json!({"kind": "Dataplane", "name": "dp"}),
            "dp",
            &none,
            vec![8080, 9090],
        ),
        (
            json!({"kind": "Dataplane", "name": "dp"}),
            "other",
            &none,
            vec![],
        ),
        (
            json!({"kind": "Dataplane", "labels": {"team": "a"}}),
            "dp",
            &labelled,
            vec![8080, 9090],
        ),
        (
            json!({"kind": "Dataplane", "labels": {"team": "a"}}),
            "dp",
            &none,
            vec![],
        ),
        // sectionName picks one inbound by name, or by port when unnamed.
        (
            json!({"kind": "Dataplane", "sectionName": "http"}),
            "dp",
            &none,
            vec![8080],
        ),
        (
            json!({"kind": "Dataplane", "name": "dp", "sectionName": "9090"}),
            "dp",
            &none,
            vec![9090],
        ),
        (
            json!({"kind": "Dataplane", "sectionName": "8080"}),
            "dp",
            &none,
            vec![],
        ),
        // proxyTypes filter sidecars from gateways.
        (
            json!({"kind": "Mesh", "proxyTypes": ["Gateway"]}),
            "dp",
            &none,
            vec![],
        ),
        (
            json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}),
            "dp",
            &none,
            vec![8080, 9090],
        ),
    ];
    for (top, name, labels, want) in cases {
        assert_eq!(selected_ports(top.clone(), name, labels), want, "{top}");
    }
}

#[test]
fn delegated_gateway_is_selected_by_its_tags_and_proxy_type() {
    let spec = gateway_dataplane("DELEGATED", &[(SERVICE_TAG, "edge")]);
    let labels = BTreeMap::new();
    let to = |top: Value| {
        mk_policy(
            Kind::MeshTimeout,
            "t",
            json!({"targetRef": top, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}),
        )
    };
    for (top, selected) in [
        (json!({"kind": "Mesh"}), true),
        (json!({"kind": "Mesh", "proxyTypes": ["Gateway"]}), true),
        (json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}), false),
        (json!({"kind": "MeshService", "name": "edge"}), true),
        (json!({"kind": "MeshService", "name": "web"}), false),
    ] {
        let index = PolicyIndex::new(Kind::MeshTimeout, vec![to(top.clone())], &ctx());
        let rules = index.rules_for(&proxy("gw", &labels, &spec), &ctx());
        assert_eq!(rules.policies.len(), usize::from(selected), "{top}");
        assert_eq!(rules.to.len(), usize::from(selected), "{top}");
    }
}

#[test]
fn builtin_gateway_listeners_are_selected_through_the_mesh_gateway() {
    let spec = gateway_dataplane("BUILTIN", &[(SERVICE_TAG, "edge")]);
    let gateway: kuma_api::kinds::mesh_gateway::MeshGatewaySpec = serde_json::from_value(json!({
        "selectors": [{"match": {"kuma.io/service": "edge"}}],
        "conf": {"listeners": [
            {"port": 80, "protocol": "HTTP", "tags": {"port": "http"}},
            {"port": 443, "protocol": "HTTPS", "tags": {"port": "https"}},
        ]}
    }))
    .unwrap();
    let labels = BTreeMap::new();
    let gw_proxy = Proxy {
        name: "gw-1",
        labels: &labels,
        spec: &spec,
        gateway: Some(("edge-gateway", &gateway)),
    };
    for (top, ports) in [
        (
            json!({"kind": "MeshGateway", "name": "edge-gateway"}),
            vec![80, 443],
        ),
        (
            json!({"kind": "MeshGateway", "name": "edge-gateway", "tags": {"port": "https"}}),
            vec![443],
        ),
        (json!({"kind": "MeshGateway", "name": "other"}), vec![]),
        (json!({"kind": "Mesh"}), vec![80, 443]),
        (json!({"kind": "Dataplane"}), vec![]),
    ] {
        let p = mk_policy(
            Kind::MeshTimeout,
            "t",
            json!({"targetRef": top, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}),
        );
        let index = PolicyIndex::new(Kind::MeshTimeout, vec![p], &ctx());
        let matched = index.matching(&gw_proxy);
        let got: Vec<u32> = matched
            .iter()
            .flat_map(|(_, s)| s.inbounds.iter().map(|k| k.port))
            .collect();
        assert_eq!(got, ports, "{top}");
    }
}

#[test]
fn selects_answers_as_select_does_and_shared_rules_match_without_inbounds() {
    let delegated = gateway_dataplane("DELEGATED", &[(SERVICE_TAG, "edge"), ("version", "v1")]);
    let builtin = gateway_dataplane("BUILTIN", &[(SERVICE_TAG, "edge")]);
    let gateway: kuma_api::kinds::mesh_gateway::MeshGatewaySpec = serde_json::from_value(json!({
        "selectors": [{"match": {"kuma.io/service": "edge"}}],
        "conf": {"listeners": [{"port": 80, "protocol": "HTTP", "tags": {"version": "v2"}}]}
    }))
    .unwrap();
    let sidecar = web_dataplane();
    let no_inbounds = mk_dataplane(&[]);
    let no_labels = BTreeMap::new();
    let east = tags(&[("kuma.io/origin", "zone"), ("kuma.io/zone", "east")]);
    let in_a = tags(&[("k8s.kuma.io/namespace", "ns-a")]);
    let mut proxies = Vec::new();
    for labels in [&no_labels, &east, &in_a] {
        for spec in [&sidecar, &delegated, &no_inbounds] {
            proxies.push(proxy("dp", labels, spec));
        }
        proxies.push(Proxy {
            name: "gw",
            labels,
            spec: &builtin,
            gateway: Some(("edge-gateway", &gateway)),
        });
    }
    let tops = [
        json!({"kind": "Mesh"}),
        json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}),
        json!({"kind": "Mesh", "proxyTypes": ["Gateway"]}),
        json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
        json!({"kind": "MeshSubset", "tags": {"version": "v2"}}),
        json!({"kind": "MeshSubset", "tags": {"version": "*"}}),
        json!({"kind": "MeshSubset"}),
        json!({"kind": "MeshSubset", "tags": {"version": "v1", "kuma.io/service": "web"}}),
        json!({"kind": "MeshSubset", "tags": {"version": "v2", "kuma.io/service": "web"}}),
        json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "edge"}}),
        json!({"kind": "MeshSubset", "proxyTypes": ["Gateway"], "tags": {"version": "v1"}}),
        json!({"kind": "MeshService", "name": "web"}),
        json!({"kind": "Dataplane", "name": "dp"}),
    ];
    let label_sets: [&[(&str, &str)]; 6] = [
        &[],
        &[("kuma.io/origin", "zone"), ("kuma.io/zone", "east")],
        &[("kuma.io/origin", "zone"), ("kuma.io/zone", "west")],
        &[
            ("kuma.io/policy-role", "consumer"),
            ("k8s.kuma.io/namespace", "ns-a"),
        ],
        &[
            ("kuma.io/policy-role", "consumer"),
            ("k8s.kuma.io/namespace", "ns-b"),
        ],
        &[("kuma.io/origin", "global"), ("kuma.io/zone", "west")],
    ];
    let mut policies = Vec::new();
    for top in &tops {
        for labels in label_sets {
            let name = format!("p-{}", policies.len());
            let timeout = mk_policy(
                Kind::MeshTimeout,
                &name,
                json!({"targetRef": top,
                       "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}),
            );
            policies.push(with_labels(timeout, labels));
        }
    }
    let mut selected = 0;
    for p in &proxies {
        for policy in &policies {
            let listed = !select(policy, &policy.target_ref, p).is_empty();
            assert_eq!(
                selects(policy, &policy.target_ref, p),
                listed,
                "{} ({:?}) on {}",
                policy.name,
                policy.labels,
                p.name
            );
            selected += usize::from(listed);
        }
    }
    assert!(selected > 20 && selected < proxies.len() * policies.len());
    // A kind with `to` entries only: its shared rules skip the inbounds.
    let index = PolicyIndex::new(Kind::MeshTimeout, policies, &ctx());
    for p in &proxies {
        assert_same_rules(
            &index.shared_rules_for(p, &ctx()),
            &index.rules_for(p, &ctx()),
        );
    }
}

#[test]
fn more_specific_policies_fold_last_and_win() {
    let policies = vec![
        mtp(
            "svc",
            json!({"kind": "MeshService", "name": "web"}),
            "Allow",
        ),
        mtp("b-mesh", json!({"kind": "Mesh"}), "AllowWithShadowDeny"),
        mtp("a-mesh", json!({"kind": "Mesh"}), "Deny"),
        mtp(
            "dp",
            json!({"kind": "Dataplane", "sectionName": "9090"}),
            "Allow",
        ),
    ];
    let index = PolicyIndex::new(Kind::MeshTrafficPermission, policies, &ctx());
    let names: Vec<&str> = index.policies().iter().map(|p| p.name.as_str()).collect();
    // Kuma ranks Dataplane refs between Mesh and MeshSubset.
    assert_eq!(names, vec!["b-mesh", "a-mesh", "dp", "svc"]);
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let rules = index.rules_for(&proxy("dp", &labels, &spec), &ctx());
    let at = |port: u32| {
        let key = InboundKey {
            address: "10.0.0.1".into(),
            port,
        };
        let rule = compute(&rules.from[&key], &BTreeMap::new()).unwrap();
        (
            rule.conf["action"].clone(),
            rule.origins
                .iter()
                .map(|o| o.name.clone())
                .collect::<Vec<_>>(),
        )
    };
    // a-mesh wins the tie with b-mesh (alphabetically first applies last),
    // MeshService beats both.
    assert_eq!(
        at(8080),
        (
            json!("Allow"),
            vec!["b-mesh".into(), "a-mesh".into(), "svc".into()]
        )
    );
    assert_eq!(at(9090).0, json!("Allow"));
    assert_eq!(
        at(9090).1,
        vec![Arc::<str>::from("b-mesh"), "a-mesh".into(), "dp".into()]
    );
    assert_eq!(rules.policies.len(), 4);
}

#[test]
fn to_rules_per_service_tag_and_per_real_destination() {
    let policies = vec![
        mk_policy(
            Kind::MeshTimeout,
            "base",
            json!({"to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1h", "connectionTimeout": "5s"}}]}),
        ),
        mk_policy(
            Kind::MeshTimeout,
            "backend",
            json!({"to": [
                {"targetRef": {"kind": "MeshService", "name": "backend"}, "default": {"idleTimeout": "10s"}},
                {"targetRef": {"kind": "MeshService", "name": "backend", "sectionName": "grpc"}, "default": {"connectionTimeout": "1s"}},
            ]}),
        ),
    ];
    let mut ctx = ctx();
    ctx.destinations = [
        mk_resource(
            Kind::MeshService,
            "backend",
            json!({"ports": [{"port": 80, "name": "grpc"}]}),
        ),
        mk_resource(Kind::MeshService, "db", json!({"ports": [{"port": 5432}]})),
    ]
    .iter()
    .filter_map(Destination::from_resource)
    .collect();
    let index = PolicyIndex::new(Kind::MeshTimeout, policies, &ctx);
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let rules = index.rules_for(&proxy("dp", &labels, &spec), &ctx);

    let by_tag = |service: &str| {
        compute(&rules.to, &tags(&[(SERVICE_TAG, service)])).map(|r| r.conf.clone())
    };
    // Tag rules know services, not ports: a port entry counts for the
    // whole service there, as in Kuma.
    assert_eq!(
        by_tag("backend"),
        Some(json!({"idleTimeout": "10s", "connectionTimeout": "1s"}))
    );
    assert_eq!(
        by_tag("db"),
        Some(json!({"idleTimeout": "1h", "connectionTimeout": "5s"}))
    );

    let by_resource = |name: &str, section: Option<&str>| {
        rules
            .to_resources
            .compute(&ResourceId::new("MeshService", name, section), "default")
            .map(|r| (r.conf.clone(), r.origins.len()))
    };
    assert_eq!(
        by_resource("backend", Some("grpc")),
        Some((json!({"idleTimeout": "10s", "connectionTimeout": "1s"}), 2))
    );
    assert_eq!(
        by_resource("backend", None),
        Some((json!({"idleTimeout": "10s", "connectionTimeout": "5s"}), 2))
    );
    assert_eq!(
        by_resource("db", Some("5432")),
        Some((json!({"idleTimeout": "1h", "connectionTimeout": "5s"}), 1))
    );
    // Typed access to a folded conf.
    let typed: kuma_api::policies::mesh_timeout::Conf = rules
        .to_resources
        .compute(
            &ResourceId::new("MeshService", "backend", Some("grpc")),
            "default",
        )
        .unwrap()
        .conf_as()
        .unwrap();
    assert_eq!(typed.connection_timeout.unwrap().0, "1s");
}

#[test]
fn policies_targeting_a_route_select_through_the_route() {
    let route = mk_policy(
        Kind::MeshHTTPRoute,
        "web-route",
        json!({"targetRef": {"kind": "MeshService", "name": "web-admin"}, "to": [{"targetRef": {"kind": "MeshService", "name": "backend"}, "rules": []}]}),
    );
    let mut ctx = ctx();
    ctx.http_routes = vec![Arc::new(route)];
    let timeout = mk_policy(
        Kind::MeshTimeout,
        "on-route",
        json!({"targetRef": {"kind": "MeshHTTPRoute", "name": "web-route"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "1s"}}}]}),
    );
    let missing = mk_policy(
        Kind::MeshTimeout,
        "on-missing",
        json!({"targetRef": {"kind": "MeshHTTPRoute", "name": "nope"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "2s"}}}]}),
    );
    let index = PolicyIndex::new(Kind::MeshTimeout, vec![timeout, missing], &ctx);
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let rules = index.rules_for(&proxy("dp", &labels, &spec), &ctx);
    let names: Vec<&str> = rules.policies.iter().map(|o| &*o.name).collect();
    assert_eq!(names, vec!["on-route"]);
    assert!(
        rules.warnings[0].contains("couldn't resolve MeshHTTPRoute targetRef with name 'nope'")
    );
    // Route-targeted confs are applied per route, not as plain to rules.
    assert!(rules.to.is_empty());
    assert!(rules.to_resources.0.is_empty());
}

#[test]
fn inbound_rules_keep_entries_and_order_precise_matches_first() {
    let narrow = mk_policy(
        Kind::MeshTimeout,
        "narrow",
        json!({"targetRef": {"kind": "MeshService", "name": "web"}, "rules": [
            {"default": {"idleTimeout": "2s"}},
            {"matches": [{"spiffeID": {"type": "Prefix", "value": "spiffe://default/"}}], "default": {"http": {"requestTimeout": "3s"}}},
        ]}),
    );
    let broad = mk_policy(
        Kind::MeshTimeout,
        "broad",
        json!({"rules": [
            {"matches": [{"spiffeID": {"type": "Exact", "value": "spiffe://default/a"}}], "default": {"http": {"requestTimeout": "1s"}}},
        ]}),
    );
    let legacy = mk_policy(
        Kind::MeshTimeout,
        "legacy",
        json!({"from": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "9s"}}]}),
    );
    let index = PolicyIndex::new(Kind::MeshTimeout, vec![narrow, broad, legacy], &ctx());
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let rules = index.rules_for(&proxy("dp", &labels, &spec), &ctx());
    let key = InboundKey {
        address: "10.0.0.1".into(),
        port: 8080,
    };
    let got: Vec<(&str, Option<&str>)> = rules.inbound[&key]
        .iter()
        .map(|r| {
            (
                &*r.origin.name,
                r.matches
                    .as_ref()
                    .and_then(|m| m.spiffe_id.as_ref())
                    .map(|s| s.kind.as_str()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("broad", Some("Exact")),
            ("narrow", Some("Prefix")),
            ("legacy", None),
            ("narrow", None),
        ]
    );
    let all = inbound::matches_all_incoming(&rules.inbound[&key], index.source.strategy).unwrap();
    assert_eq!(all, json!({"idleTimeout": "2s"}));
}

#[test]
fn single_item_policies_fold_their_default() {
    let policies = vec![
        mk_policy(
            Kind::MeshTrace,
            "all",
            json!({"default": {"sampling": {"overall": 10, "random": 5}}}),
        ),
        mk_policy(
            Kind::MeshTrace,
            "web",
            json!({"targetRef": {"kind": "MeshService", "name": "web"}, "default": {"sampling": {"overall": 80}}}),
        ),
        mk_policy(
            Kind::MeshTrace,
            "other",
            json!({"targetRef": {"kind": "MeshService", "name": "other"}, "default": {"sampling": {"overall": 1}}}),
        ),
    ];
    let index = PolicyIndex::new(Kind::MeshTrace, policies, &ctx());
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let rules = index.rules_for(&proxy("dp", &labels, &spec), &ctx());
    assert_eq!(rules.single_item.len(), 1);
    assert_eq!(rules.single_item[0].subset, Subset::mesh());
    assert_eq!(
        rules.single_item[0].conf,
        json!({"sampling": {"overall": 80, "random": 5}})
    );
    let names: Vec<&str> = rules.single_item[0]
        .origins
        .iter()
        .map(|o| &*o.name)
        .collect();
    assert_eq!(names, vec!["all", "web"]);
}

#[test]
fn shadow_and_other_namespace_policies_do_not_apply() {
    let mut shadow = mtp("shadow", json!({"kind": "Mesh"}), "Deny");
    shadow
        .labels
        .insert("kuma.io/effect".into(), "shadow".into());
    let mut consumer = mtp("consumer", json!({"kind": "Mesh"}), "Deny");
    consumer
        .labels
        .insert("kuma.io/policy-role".into(), "consumer".into());
    consumer
        .labels
        .insert("k8s.kuma.io/namespace".into(), "ns-a".into());
    let index = PolicyIndex::new(Kind::MeshTrafficPermission, vec![shadow, consumer], &ctx());
    let spec = web_dataplane();
    let in_b = tags(&[("k8s.kuma.io/namespace", "ns-b")]);
    assert!(
        index
            .rules_for(&proxy("dp", &in_b, &spec), &ctx())
            .policies
            .is_empty()
    );
    let in_a = tags(&[("k8s.kuma.io/namespace", "ns-a")]);
    let names: Vec<String> = index
        .rules_for(&proxy("dp", &in_a, &spec), &ctx())
        .policies
        .into_iter()
        .map(|o| o.name.to_string())
        .collect();
    assert_eq!(names, vec!["consumer".to_string()]);
}

#[test]
fn index_gives_the_same_answer_as_checking_every_policy() {
    // Many policies, few matching: the index must neither miss nor add.
    let mut policies = Vec::new();
    for i in 0..300 {
        let top = match i % 5 {
            0 => json!({"kind": "MeshService", "name": format!("svc-{i}")}),
            1 => json!({"kind": "MeshSubset", "tags": {"version": format!("v{}", i % 7)}}),
            2 => json!({"kind": "Dataplane", "name": format!("dp-{}", i % 11)}),
            3 => {
                json!({"kind": "MeshServiceSubset", "name": "web", "tags": {"version": format!("v{}", i % 3)}})
            }
            _ => json!({"kind": "Mesh", "proxyTypes": ["Sidecar"]}),
        };
        policies.push(mtp(&format!("p-{i:03}"), top, "Allow"));
    }
    let index = PolicyIndex::new(Kind::MeshTrafficPermission, policies, &ctx());
    let spec = web_dataplane();
    let labels = BTreeMap::new();
    let p = proxy("dp-3", &labels, &spec);
    let fast: Vec<usize> = index.matching(&p).into_iter().map(|(i, _)| i).collect();
    let slow: Vec<usize> = (0..index.policies().len())
        .filter(|&i| !select(&index.policies()[i], &index.policies()[i].target_ref, &p).is_empty())
        .collect();
    assert_eq!(fast, slow);
    assert!(fast.len() > 60 && fast.len() < 300, "{}", fast.len());
}

fn timeout(name: &str, top: Value, to: &str, idle: &str) -> Policy {
    mk_policy(
        Kind::MeshTimeout,
        name,
        json!({"targetRef": top,
               "to": [{"targetRef": {"kind": "MeshService", "name": to}, "default": {"idleTimeout": idle}}],
               "from": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": idle}}]}),
    )
}

fn assert_same_rules(shared: &SharedProxyRules, fresh: &ProxyRules) {
    assert_eq!(**shared.policies, *fresh.policies);
    assert_eq!(shared.to.rules(), fresh.to);
    assert_eq!(*shared.to_resources, fresh.to_resources);
    assert_eq!(*shared.single_item, fresh.single_item);
    assert_eq!(shared.warnings, fresh.warnings);
    // Inbounds without rules may be left out of the shared rules.
    fn with_rules<T: Clone>(
        rules: impl IntoIterator<Item = (InboundKey, Vec<T>)>,
    ) -> BTreeMap<InboundKey, Vec<T>> {
        rules.into_iter().filter(|(_, v)| !v.is_empty()).collect()
    }
    let shared_from = shared.from.iter().map(|(k, v)| (k.clone(), v.to_vec()));
    assert_eq!(with_rules(shared_from), with_rules(fresh.from.clone()));
    let shared_inbound = shared.inbound.iter().map(|(k, v)| (k.clone(), v.to_vec()));
    assert_eq!(
        with_rules(shared_inbound),
        with_rules(fresh.inbound.clone())
    );
}

#[test]
fn shared_rules_are_the_rules_and_shared_between_alike_proxies() {
    let policies = vec![
        timeout("all", json!({"kind": "Mesh"}), "backend", "1s"),
        timeout(
            "web",
            json!({"kind": "MeshService", "name": "web"}),
            "db",
            "2s",
        ),
        timeout(
            "v1",
            json!({"kind": "MeshSubset", "tags": {"version": "v1"}}),
            "backend",
            "3s",
        ),
        timeout(
            "admin",
            json!({"kind": "MeshService", "name": "web-admin"}),
            "db",
            "4s",
        ),
    ];
    let context = ctx();
    let index = PolicyIndex::new(Kind::MeshTimeout, policies, &context);
    let labels = BTreeMap::new();
    let first = web_dataplane();
    let mut second = web_dataplane();
    if let Some(n) = second.networking.as_mut() {
        n.address = "10.0.0.2".into();
    }
    let p1 = proxy("dp-1", &labels, &first);
    let p2 = proxy("dp-2", &labels, &second);
    let a = index.shared_rules_for(&p1, &context);
    let b = index.shared_rules_for(&p2, &context);
    assert_same_rules(&a, &index.rules_for(&p1, &context));
    assert_same_rules(&b, &index.rules_for(&p2, &context));
    // Asking again gives the same, from the memo.
    assert_same_rules(
        &index.shared_rules_for(&p1, &context),
        &index.rules_for(&p1, &context),
    );

    // Same tags, other addresses: the parts are computed once.
    assert!(Arc::ptr_eq(&a.to, &b.to));
    assert!(Arc::ptr_eq(&a.to_resources, &b.to_resources));
    let port = |r: &SharedProxyRules, port: u32| {
        r.from
            .iter()
            .find(|(k, _)| k.port == port)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert!(Arc::ptr_eq(&port(&a, 8080), &port(&b, 8080)));
    assert!(!Arc::ptr_eq(&port(&a, 8080), &port(&a, 9090)));
    assert_ne!(a.from.keys().next(), b.from.keys().next());
    // The destination lookup answers as the rules do.
    for service in ["backend", "db", "other"] {
        let element = BTreeMap::from([(SERVICE_TAG.to_string(), service.to_string())]);
        let rule = compute(a.to.rules(), &element);
        assert_eq!(a.to_service(service), rule.map(|r| &r.conf), "{service}");
    }
    assert_eq!(
        a.to_service("backend").unwrap(),
        &json!({"idleTimeout": "3s"})
    );
}

#[test]
fn shared_rules_with_another_context_are_not_mixed_up() {
    let policies = vec![timeout("all", json!({"kind": "Mesh"}), "backend", "1s")];
    let empty = ctx();
    let index = PolicyIndex::new(Kind::MeshTimeout, policies, &empty);
    let labels = BTreeMap::new();
    let spec = web_dataplane();
    let p = proxy("dp", &labels, &spec);
    let first = index.shared_rules_for(&p, &empty);
    assert!(first.to_resources.0.is_empty());
    // A context that knows the MeshService `backend`: its rules resolve.
    let with_service = MeshContext {
        destinations: vec![Destination {
            kind: TargetRefKind::MeshService,
            name: "backend".into(),
            labels: BTreeMap::new(),
        }],
        ..ctx()
    };
    let other = index.shared_rules_for(&p, &with_service);
    assert_same_rules(&other, &index.rules_for(&p, &with_service));
    assert_eq!(other.to_resources.0.len(), 1);
    assert!(index.shared_rules_for(&p, &empty).to_resources.0.is_empty());
}

#[test]
fn policies_alike_but_for_their_zone_are_selected_apart() {
    let zoned = |name: &str, zone: &str| {
        with_labels(
            mtp(name, json!({"kind": "Mesh"}), "Allow"),
            &[("kuma.io/origin", "zone"), ("kuma.io/zone", zone)],
        )
    };
    let policies = vec![
        mtp("global", json!({"kind": "Mesh"}), "Allow"),
        zoned("east-1", "east"),
        zoned("west", "west"),
        zoned("east-2", "east"),
    ];
    let index = PolicyIndex::new(Kind::MeshTrafficPermission, policies, &ctx());
    let spec = web_dataplane();
    let labels = tags(&[("kuma.io/origin", "zone"), ("kuma.io/zone", "east")]);
    let p = proxy("dp", &labels, &spec);
    let matched: Vec<usize> = index.matching(&p).into_iter().map(|(i, _)| i).collect();
    let slow: Vec<usize> = (0..index.policies().len())
        .filter(|&i| !select(&index.policies()[i], &index.policies()[i].target_ref, &p).is_empty())
        .collect();
    assert_eq!(matched, slow);
    let mut names: Vec<&str> = matched
        .iter()
        .map(|&i| index.policies()[i].name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["east-1", "east-2", "global"]);
}

mod random;

#[test]
fn a_rules_conf_is_read_into_its_typed_form_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Idle {
        idle_timeout: String,
    }
    let index = PolicyIndex::new(
        Kind::MeshTimeout,
        vec![
            timeout("backend", json!({"kind": "Mesh"}), "backend", "1s"),
            timeout("db", json!({"kind": "Mesh"}), "db", "2s"),
        ],
        &ctx(),
    );
    let spec = web_dataplane();
    let rules = index.shared_rules_for(&proxy("dp", &BTreeMap::new(), &spec), &ctx());
    let reads = AtomicUsize::new(0);
    let read = |conf: &Value| {
        reads.fetch_add(1, Ordering::Relaxed);
        serde_json::from_value::<Idle>(conf.clone()).ok()
    };
    let (backend, db) = (
        rules.to.for_service("backend").expect("backend"),
        rules.to.for_service("db").expect("db"),
    );
    let first = rules.to.typed(backend, read).expect("reads");
    assert_eq!(first.idle_timeout, "1s");
    let again = rules.to.typed(backend, read).expect("reads");
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(reads.load(Ordering::Relaxed), 1);
    assert_eq!(rules.to.typed(db, read).expect("reads").idle_timeout, "2s");
    assert_eq!(reads.load(Ordering::Relaxed), 2);
    // Another type is read every time; the first stays kept.
    let as_value = |conf: &Value| Some(conf.clone());
    assert_eq!(
        rules.to.typed(backend, as_value).as_deref(),
        rules.to.conf(backend)
    );
    let again = rules.to.typed(backend, read).expect("reads");
    assert!(Arc::ptr_eq(&first, &again));
    // A conf that does not read stays unread, and is not read again.
    let fails = |_: &Value| {
        reads.fetch_add(1, Ordering::Relaxed);
        None::<u8>
    };
    let other = PolicyIndex::new(
        Kind::MeshTimeout,
        vec![timeout("backend", json!({"kind": "Mesh"}), "backend", "1s")],
        &ctx(),
    );
    let other = other.shared_rules_for(&proxy("dp", &BTreeMap::new(), &spec), &ctx());
    let at = other.to.for_service("backend").expect("backend");
    let before = reads.load(Ordering::Relaxed);
    assert!(other.to.typed(at, fails).is_none());
    assert!(other.to.typed(at, fails).is_none());
    assert_eq!(reads.load(Ordering::Relaxed), before + 1);
}
