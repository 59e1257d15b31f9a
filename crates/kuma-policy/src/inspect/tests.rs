use serde_json::{Value, json};

use kuma_api::{Resource, ResourceDocument, ResourceMeta};

use super::*;

/// A resource from its Universal document (mesh `default` unless given).
fn mk(mut doc: Value) -> Resource {
    if doc.get("mesh").is_none() {
        doc["mesh"] = json!("default");
    }
    let doc = ResourceDocument::from_json(doc).unwrap();
    Resource {
        meta: ResourceMeta {
            mesh: doc.mesh,
            name: doc.name,
            labels: doc.labels,
            creation_time: Default::default(),
            modification_time: Default::default(),
            version: 0,
        },
        spec: doc.spec,
    }
}

fn mk_dataplane(name: &str, service: &str) -> Resource {
    mk(json!({
        "type": "Dataplane", "name": name,
        "networking": {"address": "127.0.0.1", "inbound": [
            {"port": 8080, "tags": {"kuma.io/service": service}}
        ]}
    }))
}

fn mk_timeout(name: &str, spec: Value) -> Resource {
    mk(json!({"type": "MeshTimeout", "name": name, "spec": spec}))
}

fn meta(kind: &str, name: &str) -> Value {
    json!({"type": kind, "mesh": "default", "name": name, "labels": {}})
}

fn origin(kind: &str, name: &str, index: usize) -> Value {
    json!({"resourceMeta": meta(kind, name), "ruleIndex": index})
}

fn inspect(resources: &[Resource], dp: &Resource) -> Value {
    let rules = MeshInspector::new("default", false, resources)
        .rules(dp)
        .unwrap();
    serde_json::to_value(rules).unwrap()
}

/// Two MeshTimeouts: a mesh-wide one and one for service foo overriding
/// parts of it, in the legacy to/from form.
fn overriding_timeouts() -> Vec<Resource> {
    vec![
        mk_timeout(
            "default",
            json!({
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {
                    "idleTimeout": "20s", "connectionTimeout": "2s", "http": {"requestTimeout": "10s"}}}],
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {
                    "idleTimeout": "20s", "connectionTimeout": "2s", "http": {"requestTimeout": "5s"}}}]
            }),
        ),
        mk_timeout(
            "override",
            json!({
                "targetRef": {"kind": "MeshService", "name": "foo"},
                "to": [
                    {"targetRef": {"kind": "MeshService", "name": "foo"}, "default": {"http": {"requestTimeout": "15s"}}},
                    {"targetRef": {"kind": "MeshService", "name": "bar"}, "default": {"http": {"requestTimeout": "20s"}}}
                ],
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "20s"}}]
            }),
        ),
    ]
}

#[test]
fn merges_several_policies_and_lists_their_origins_in_every_form() {
    let dp = mk_dataplane("dp-1", "foo");
    let mut resources = overriding_timeouts();
    resources.push(dp.clone());
    let got = inspect(&resources, &dp);
    let inbound = json!({"tags": {"kuma.io/service": "foo"}, "port": 8080});
    let both = json!([
        meta("MeshTimeout", "default"),
        meta("MeshTimeout", "override")
    ]);
    let expected = json!({
        "resource": {"type": "Dataplane", "mesh": "default", "name": "dp-1", "labels": {}},
        "httpMatches": [],
        "rules": [{
            "type": "MeshTimeout",
            "toRules": [
                {
                    "matchers": [{"key": "kuma.io/service", "value": "foo", "not": false}],
                    "conf": {"connectionTimeout": "2s", "idleTimeout": "20s", "http": {"requestTimeout": "15s"}},
                    "origin": both
                },
                {
                    "matchers": [{"key": "kuma.io/service", "value": "bar", "not": false}],
                    "conf": {"connectionTimeout": "2s", "idleTimeout": "20s", "http": {"requestTimeout": "20s"}},
                    "origin": both
                },
                {
                    "matchers": [],
                    "conf": {"connectionTimeout": "2s", "idleTimeout": "20s", "http": {"requestTimeout": "10s"}},
                    "origin": [meta("MeshTimeout", "default")]
                }
            ],
            "toResourceRules": [{
                "resourceMeta": {"type": "Mesh", "mesh": "", "name": "default", "labels": {}},
                "resourceSectionName": "",
                "conf": [{"connectionTimeout": "2s", "idleTimeout": "20s", "http": {"requestTimeout": "10s"}}],
                "origin": [origin("MeshTimeout", "default", 0)]
            }],
            "fromRules": [{
                "inbound": inbound,
                "rules": [{
                    "matchers": [],
                    "conf": {"connectionTimeout": "20s", "idleTimeout": "20s", "http": {"requestTimeout": "5s"}},
                    "origin": both
                }]
            }],
            "inboundRules": [{
                "inbound": inbound,
                "rules": [
                    {
                        "conf": [{"connectionTimeout": "2s", "idleTimeout": "20s", "http": {"requestTimeout": "5s"}}],
                        "origin": [origin("MeshTimeout", "default", 0)]
                    },
                    {
                        "conf": [{"connectionTimeout": "20s"}],
                        "origin": [origin("MeshTimeout", "override", 0)]
                    }
                ]
            }],
            "warnings": []
        }]
    });
    assert_eq!(
        got,
        expected,
        "{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}

#[test]
fn a_proxy_no_policy_selects_gets_no_rules() {
    let dp = mk_dataplane("dp-2", "bar");
    let other = mk_timeout(
        "only-foo",
        json!({"targetRef": {"kind": "MeshService", "name": "foo"},
               "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}),
    );
    let got = inspect(&[other, dp.clone()], &dp);
    assert_eq!(got["rules"], json!([]));
    assert_eq!(got["resource"]["name"], "dp-2");
}

#[test]
fn single_item_policies_fold_into_the_proxy_rule() {
    let dp = mk_dataplane("dp-1", "foo");
    let trace = |name: &str, top: Value, default: Value| {
        mk(
            json!({"type": "MeshTrace", "name": name, "spec": {"targetRef": top, "default": default}}),
        )
    };
    let resources = vec![
        trace(
            "default",
            json!({"kind": "Mesh"}),
            json!({"sampling": {"overall": 10}, "tags": [{"name": "team", "literal": "core"}]}),
        ),
        trace(
            "override",
            json!({"kind": "Dataplane"}),
            json!({"sampling": {"overall": 50}}),
        ),
    ];
    let got = inspect(&resources, &dp);
    let rule = &got["rules"][0];
    assert_eq!(rule["type"], "MeshTrace");
    assert_eq!(
        rule["proxyRule"]["conf"]["sampling"]["overall"], 50,
        "the more specific policy wins"
    );
    assert_eq!(rule["proxyRule"]["conf"]["tags"][0]["literal"], "core");
    assert_eq!(
        rule["proxyRule"]["origin"],
        json!([meta("MeshTrace", "default"), meta("MeshTrace", "override")])
    );
    assert_eq!(rule["inboundRules"], json!([]));
}

#[test]
fn inbound_rules_keep_each_entry_with_its_match_and_index() {
    let dp = mk(json!({
        "type": "Dataplane", "name": "dp-1",
        "networking": {"address": "127.0.0.1", "inbound": [
            {"port": 8080, "name": "http", "tags": {"kuma.io/service": "foo"}}
        ]}
    }));
    let mtp = mk(
        json!({"type": "MeshTrafficPermission", "name": "allow-web", "labels": {"team": "a"}, "spec": {
            "targetRef": {"kind": "Dataplane"},
            "rules": [
                {"default": {"allow": [{"spiffeId": {"type": "Exact", "value": "spiffe://default/web"}}]}},
                {"default": {"deny": [{"spiffeId": {"type": "Prefix", "value": "spiffe://default/"}}]}}
            ]
        }}),
    );
    let got = inspect(&[mtp, dp.clone()], &dp);
    let entry = &got["rules"][0]["inboundRules"][0];
    assert_eq!(
        entry["inbound"],
        json!({"name": "http", "tags": {"kuma.io/service": "foo"}, "port": 8080})
    );
    let rules = entry["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    let indices: Vec<&Value> = rules.iter().map(|r| &r["origin"][0]["ruleIndex"]).collect();
    assert_eq!(indices, [&json!(0), &json!(1)]);
    assert_eq!(
        rules[0]["origin"][0]["resourceMeta"]["labels"],
        json!({"team": "a"}),
        "origins carry the policy's labels"
    );
    assert!(rules[1]["conf"][0]["deny"].is_array());
}

#[test]
fn resource_rules_name_the_destination_and_the_entry_that_reached_it() {
    let dp = mk_dataplane("dp-1", "foo");
    let backend = mk(json!({"type": "MeshService", "name": "backend",
        "labels": {"kuma.io/display-name": "backend"},
        "spec": {"selector": {"dataplaneTags": {"kuma.io/service": "backend"}},
                 "ports": [{"port": 80, "targetPort": 8080, "appProtocol": "http"}]}}));
    let timeout = mk_timeout(
        "to-backend",
        json!({"targetRef": {"kind": "Mesh"}, "to": [
            {"targetRef": {"kind": "MeshService", "name": "other"}, "default": {"idleTimeout": "1s"}},
            {"targetRef": {"kind": "MeshService", "labels": {"kuma.io/display-name": "backend"}},
             "default": {"idleTimeout": "2s"}}
        ]}),
    );
    let resources = vec![backend, timeout, dp.clone()];
    let exclusive = MeshInspector::new("default", true, &resources)
        .rules(&dp)
        .unwrap();
    let rule = &exclusive.rules[0];
    assert!(
        rule.to_rules.is_empty(),
        "Exclusive meshes have no tag rules"
    );
    assert_eq!(rule.to_resource_rules.len(), 1);
    let r = &rule.to_resource_rules[0];
    assert_eq!(r.resource_meta.kind, "MeshService");
    assert_eq!(r.resource_meta.mesh, "default");
    assert_eq!(
        r.resource_meta
            .labels
            .get("kuma.io/display-name")
            .map(String::as_str),
        Some("backend")
    );
    assert_eq!(r.conf, vec![json!({"idleTimeout": "2s"})]);
    assert_eq!(r.origin[0].rule_index, 1);
}

#[test]
fn policies_select_dataplanes_by_their_top_level_target_ref() {
    let dps = vec![
        mk_dataplane("dp-1", "foo"),
        mk_dataplane("dp-2", "bar"),
        mk(
            json!({"type": "Dataplane", "name": "dp-3", "labels": {"team": "a"},
            "networking": {"address": "127.0.0.2", "inbound": [
                {"port": 8080, "tags": {"kuma.io/service": "bar"}}]}}),
        ),
    ];
    let inspector = MeshInspector::new("default", false, &dps);
    let names = |policy: &Resource| -> Vec<String> {
        inspector
            .selected_by(policy, &dps)
            .unwrap()
            .iter()
            .map(|d| d.meta.name.clone())
            .collect()
    };
    let mtp = |top: Value| {
        mk(
            json!({"type": "MeshTrafficPermission", "name": "p", "spec": {"targetRef": top,
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]}}),
        )
    };
    assert_eq!(
        names(&mtp(json!({"kind": "MeshService", "name": "foo"}))),
        ["dp-1"]
    );
    assert_eq!(
        names(&mtp(json!({"kind": "Mesh"}))),
        ["dp-1", "dp-2", "dp-3"]
    );
    assert_eq!(
        names(&mtp(json!({"kind": "Dataplane", "labels": {"team": "a"}}))),
        ["dp-3"]
    );
    let shadow = mk(
        json!({"type": "MeshTimeout", "name": "s", "labels": {"kuma.io/effect": "shadow"},
        "spec": {"targetRef": {"kind": "MeshService", "name": "bar"},
                 "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}]}}),
    );
    assert_eq!(
        names(&shadow),
        ["dp-2", "dp-3"],
        "shadow policies are previewed"
    );
    let not_policy = mk_dataplane("x", "y");
    assert!(inspector.selected_by(&not_policy, &dps).is_err());
}

#[test]
fn a_mesh_gateway_is_inspected_as_the_builtin_gateway_it_describes() {
    let gateway = mk(json!({"type": "MeshGateway", "name": "edge",
        "selectors": [{"match": {"kuma.io/service": "edge"}}],
        "conf": {"listeners": [{"port": 8080, "protocol": "HTTP", "tags": {"port": "http"}}]}}));
    let timeout = mk_timeout(
        "gw",
        json!({"targetRef": {"kind": "MeshGateway", "name": "edge"},
               "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "7s"}}]}),
    );
    let other = mk_timeout(
        "other-gw",
        json!({"targetRef": {"kind": "MeshGateway", "name": "nope"},
               "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "9s"}}]}),
    );
    let resources = vec![gateway.clone(), timeout, other];
    let inspector = MeshInspector::new("default", false, &resources);
    let got = serde_json::to_value(inspector.gateway_rules(&gateway).unwrap()).unwrap();
    assert_eq!(got["resource"]["type"], "MeshGateway");
    assert_eq!(got["rules"][0]["type"], "MeshTimeout");
    let origins = &got["rules"][0]["toResourceRules"][0]["origin"];
    assert_eq!(origins, &json!([origin("MeshTimeout", "gw", 0)]));
    assert_eq!(
        got["rules"][0]["toResourceRules"][0]["conf"],
        json!([{"idleTimeout": "7s"}])
    );

    let no_selector = mk(json!({"type": "MeshGateway", "name": "bare",
        "conf": {"listeners": [{"port": 8080, "protocol": "HTTP"}]}}));
    assert!(inspector.gateway_rules(&no_selector).is_none());
}

/// Kuma's own `_rules` example of a MeshHTTPRoute: two routes from svc-1
/// with the same `/api` match, a MeshTimeout aimed at one of the routes and
/// one aimed at the route's destination service.
fn routes_and_route_timeouts() -> Vec<Resource> {
    let route = |name: &str, service: &str| {
        mk(json!({"type": "MeshHTTPRoute", "name": name, "spec": {
            "targetRef": {"kind": "MeshService", "name": "svc-1"},
            "to": [{"targetRef": {"kind": "MeshService", "name": service}, "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "default": {"backendRefs": [
                    {"kind": "MeshServiceSubset", "name": service, "tags": {"version": "1.0"}}
                ]}
            }]}]
        }}))
    };
    vec![
        mk_timeout(
            "on-route",
            json!({"targetRef": {"kind": "MeshHTTPRoute", "name": "the-http-route"},
                   "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "15s"}}}]}),
        ),
        mk_timeout(
            "on-service",
            json!({"targetRef": {"kind": "Mesh"},
                   "to": [{"targetRef": {"kind": "MeshService", "name": "backend"},
                           "default": {"http": {"requestTimeout": "20s"}}}]}),
        ),
        route("the-http-route", "backend"),
        route("the-other-http-route", "other-svc"),
    ]
}

/// The hash Kuma 2.14 gives `[{"path": {"value": "/api", "type": "PathPrefix"}}]`
/// (from its own api-server golden file).
const API_PREFIX_HASH: &str = "waFsoIISmZDTfFWYqxvY265/GASHYEWvHQTwMh/bpuU=";

#[test]
fn http_matches_list_each_route_rule_match_once_by_kumas_hash() {
    let dp = mk_dataplane("dp-1", "svc-1");
    let mut resources = routes_and_route_timeouts();
    resources.push(dp.clone());
    let got = inspect(&resources, &dp);
    assert_eq!(
        got["httpMatches"],
        json!([{"hash": API_PREFIX_HASH,
                "match": [{"path": {"value": "/api", "type": "PathPrefix"}}]}]),
        "both routes share the match: one entry"
    );

    // A proxy no route selects gets none.
    let other = mk_dataplane("dp-2", "svc-2");
    resources.push(other.clone());
    assert_eq!(inspect(&resources, &other)["httpMatches"], json!([]));
}

#[test]
fn http_matches_are_sorted_by_hash_and_spelled_typed() {
    let dp = mk_dataplane("dp-1", "svc-1");
    let route = mk(json!({"type": "MeshHTTPRoute", "name": "r", "spec": {
        "targetRef": {"kind": "Mesh"},
        "to": [{"targetRef": {"kind": "MeshService", "name": "backend"}, "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/a"}, "method": "GET"}],
             "default": {}},
            {"matches": [
                {"headers": [{"name": "x-v", "value": "2"}],
                 "queryParams": [{"type": "Exact", "name": "q", "value": "1"}]},
                {"path": {"value": "/b", "type": "PathPrefix"}}
             ],
             "default": {}}
        ]}]
    }}));
    let got = inspect(&[route, dp.clone()], &dp);
    let matches = got["httpMatches"].as_array().unwrap();
    assert_eq!(matches.len(), 2);
    let hashes: Vec<&str> = matches
        .iter()
        .map(|m| m["hash"].as_str().unwrap())
        .collect();
    let mut sorted = hashes.clone();
    sorted.sort();
    assert_eq!(hashes, sorted);
    let typed = |v: &Value| {
        serde_json::from_value::<Vec<kuma_api::policies::mesh_http_route::Match>>(v.clone())
            .unwrap()
    };
    for m in matches {
        assert_eq!(
            m["hash"].as_str().unwrap(),
            hash_matches(&typed(&m["match"]))
        );
    }
    let second_rule = matches
        .iter()
        .find(|m| m["match"].as_array().unwrap().len() == 2)
        .unwrap();
    assert_eq!(
        second_rule["match"][0],
        json!({"headers": [{"name": "x-v", "value": "2"}],
               "queryParams": [{"type": "Exact", "name": "q", "value": "1"}]})
    );
}

#[test]
fn the_hash_is_that_of_the_json_go_writes() {
    let path = |kind: &str, value: &str| kuma_api::policies::mesh_http_route::Match {
        path: Some(kuma_api::policies::mesh_http_route::PathMatch {
            value: value.to_string(),
            kind: kind.to_string(),
        }),
        ..Default::default()
    };
    assert_eq!(hash_matches(&[path("PathPrefix", "/api")]), API_PREFIX_HASH);
    // Go escapes `&`, `<` and `>`: the hash of `/a&b` is that of
    // `[{"path":{"value":"/a\u0026b","type":"RegularExpression"}}]`.
    assert_eq!(
        hash_matches(&[path("RegularExpression", "/a&b")]),
        "DMtjwhTvTyCMF5zBd1pF2dGhMgcL1Q6PiYdRXcNKYHU="
    );
}

#[test]
fn a_policy_aimed_at_a_route_shows_as_to_rules_on_the_rule_hash() {
    let dp = mk_dataplane("dp-1", "svc-1");
    let mut resources = routes_and_route_timeouts();
    resources.push(dp.clone());
    let got = inspect(&resources, &dp);
    let timeout = got["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "MeshTimeout")
        .unwrap();
    let hash =
        |not: bool| json!({"key": RULE_MATCHES_HASH_TAG, "value": API_PREFIX_HASH, "not": not});
    let service = json!({"key": "kuma.io/service", "value": "backend", "not": false});
    assert_eq!(
        timeout["toRules"],
        json!([
            {
                "matchers": [hash(false), service],
                "conf": {"http": {"requestTimeout": "15s"}},
                "origin": [meta("MeshTimeout", "on-service"), meta("MeshTimeout", "on-route")]
            },
            {
                "matchers": [hash(true), service],
                "conf": {"http": {"requestTimeout": "20s"}},
                "origin": [meta("MeshTimeout", "on-service")]
            }
        ]),
        "{}",
        serde_json::to_string_pretty(&timeout).unwrap()
    );
}

#[test]
fn a_route_aimed_at_the_mesh_gives_a_hash_only_subset() {
    let dp = mk_dataplane("dp-1", "svc-1");
    let route = mk(
        json!({"type": "MeshHTTPRoute", "name": "everywhere", "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "default": {}}
            ]}]
        }}),
    );
    let timeout = mk_timeout(
        "on-route",
        json!({"targetRef": {"kind": "MeshHTTPRoute", "name": "everywhere"},
               "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "3s"}}]}),
    );
    let got = inspect(&[route, timeout, dp.clone()], &dp);
    let timeout = &got["rules"][0];
    assert_eq!(timeout["type"], "MeshTimeout");
    assert_eq!(
        timeout["toRules"],
        json!([{
            "matchers": [{"key": RULE_MATCHES_HASH_TAG, "value": API_PREFIX_HASH, "not": false}],
            "conf": {"idleTimeout": "3s"},
            "origin": [meta("MeshTimeout", "on-route")]
        }])
    );
}
