//! Policy inspection through a real server on 127.0.0.1:0:
//! `/meshes/{mesh}/dataplanes/{name}/_rules` and
//! `/meshes/{mesh}/{policies}/{name}/_resources/dataplanes`.

use kuma_cp::{Config, ControlPlane};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Server {
    _cp: ControlPlane,
    http: reqwest::Client,
    base: String,
}

impl Server {
    /// A control plane with mesh `demo` (no initial policies) holding
    /// `resources`.
    async fn with(resources: &[Value]) -> Server {
        let cp = ControlPlane::start(Config::for_tests()).await.unwrap();
        let s = Server {
            base: format!("http://{}", cp.api_address()),
            _cp: cp,
            http: reqwest::Client::new(),
        };
        s.apply(&json!({"type": "Mesh", "name": "demo", "skipCreatingInitialPolicies": ["*"]}))
            .await;
        for r in resources {
            s.apply(r).await;
        }
        s
    }

    async fn apply(&self, r: &Value) {
        let path = match r["type"].as_str().unwrap() {
            "Mesh" => format!("/meshes/{}", r["name"].as_str().unwrap()),
            kind => {
                let plural = kuma_api::Kind::from_name(kind).unwrap().plural();
                format!(
                    "/meshes/{}/{plural}/{}",
                    r["mesh"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                )
            }
        };
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .json(r)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "{path}: {}",
            resp.text().await.unwrap()
        );
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn mk_dataplane(name: &str, service: &str) -> Value {
    json!({
        "type": "Dataplane", "mesh": "demo", "name": name,
        "labels": {"team": "core"},
        "networking": {"address": "127.0.0.1", "inbound": [
            {"port": 8080, "name": "http", "tags": {"kuma.io/service": service}}
        ]}
    })
}

fn mk_policy(kind: &str, name: &str, spec: Value) -> Value {
    json!({"type": kind, "mesh": "demo", "name": name, "spec": spec})
}

fn timeouts() -> Vec<Value> {
    vec![
        mk_policy(
            "MeshTimeout",
            "default",
            json!({"targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s", "connectionTimeout": "2s"}}],
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}]}),
        ),
        mk_policy(
            "MeshTimeout",
            "override",
            json!({"targetRef": {"kind": "MeshService", "name": "foo"},
                "to": [{"targetRef": {"kind": "MeshService", "name": "bar"}, "default": {"connectionTimeout": "5s"}}],
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "20s"}}]}),
        ),
        mk_policy(
            "MeshTrafficPermission",
            "allow-foo",
            json!({"targetRef": {"kind": "MeshService", "name": "foo"},
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]}),
        ),
    ]
}

fn meta(kind: &str, name: &str) -> Value {
    json!({"type": kind, "mesh": "demo", "name": name})
}

/// `v` without its `labels` (the server adds its own, like Kuma's
/// `kuma.io/origin`), so expectations can name resources briefly.
fn unlabelled(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "labels")
                .map(|(k, v)| (k.clone(), unlabelled(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(unlabelled).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn rules_show_every_policy_kind_merged_with_origins() {
    let mut resources = timeouts();
    resources.push(mk_dataplane("dp-1", "foo"));
    resources.push(mk_dataplane("dp-2", "bar"));
    let s = Server::with(&resources).await;

    let (status, body) = s.get("/meshes/demo/dataplanes/dp-1/_rules").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(unlabelled(&body["resource"]), meta("Dataplane", "dp-1"));
    assert_eq!(body["resource"]["labels"]["team"], "core");
    assert_eq!(body["httpMatches"], json!([]));
    let kinds: Vec<&str> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["MeshTrafficPermission", "MeshTimeout"]);

    let timeout = &unlabelled(&body["rules"][1]);
    let from = &timeout["fromRules"][0];
    assert_eq!(
        from["inbound"],
        json!({"name": "http", "tags": {"kuma.io/service": "foo"}, "port": 8080})
    );
    assert_eq!(
        from["rules"][0]["conf"],
        json!({"idleTimeout": "20s", "connectionTimeout": "20s"})
    );
    assert_eq!(
        from["rules"][0]["origin"],
        json!([
            meta("MeshTimeout", "default"),
            meta("MeshTimeout", "override")
        ])
    );
    let to_bar = timeout["toRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["matchers"] == json!([{"key": "kuma.io/service", "value": "bar", "not": false}])
        })
        .expect("a rule for bar");
    assert_eq!(
        to_bar["conf"],
        json!({"idleTimeout": "20s", "connectionTimeout": "5s"})
    );
    assert_eq!(
        timeout["toResourceRules"][0]["resourceMeta"],
        json!({"type": "Mesh", "mesh": "", "name": "demo"})
    );
    assert_eq!(
        timeout["inboundRules"][0]["rules"][1]["origin"][0],
        json!({"resourceMeta": meta("MeshTimeout", "override"), "ruleIndex": 0})
    );
    assert_eq!(timeout["warnings"], json!([]));

    // dp-2 is not service foo: neither the override nor the permission.
    let (_, body) = s.get("/meshes/demo/dataplanes/dp-2/_rules").await;
    let rules = unlabelled(&body["rules"]);
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["fromRules"][0]["rules"][0]["origin"],
        json!([meta("MeshTimeout", "default")])
    );
}

#[tokio::test]
async fn rules_of_a_missing_dataplane_or_mesh_are_404() {
    let s = Server::with(&[mk_dataplane("dp-1", "foo")]).await;
    let (status, body) = s.get("/meshes/demo/dataplanes/nope/_rules").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "Could not retrieve Dataplane");
    assert_eq!(body["detail"], "Not found");
    let (status, body) = s.get("/meshes/nope/dataplanes/dp-1/_rules").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "Failed to retrieve Mesh");
    let (status, body) = s.get("/meshes/demo/dataplanes/dp-1/_rules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rules"], json!([]), "no policies, no rules");
}

#[tokio::test]
async fn dataplanes_a_policy_selects_are_listed_and_paged() {
    let mut resources = timeouts();
    for (name, service) in [
        ("dp-1", "foo"),
        ("dp-2", "bar"),
        ("dp-3", "foo"),
        ("other", "foo"),
    ] {
        resources.push(mk_dataplane(name, service));
    }
    let s = Server::with(&resources).await;

    let (status, body) = s
        .get("/meshes/demo/meshtrafficpermissions/allow-foo/_resources/dataplanes")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(unlabelled(&body["items"][0]), meta("Dataplane", "dp-1"));
    assert_eq!(body["items"][0]["labels"]["team"], "core");
    assert!(body.get("next").is_none(), "no next on the last page");

    let (_, body) = s
        .get("/meshes/demo/meshtimeouts/default/_resources/dataplanes?name=dp-&size=2")
        .await;
    assert_eq!(body["total"], 3);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dp-1", "dp-2"]);
    let next = body["next"].as_str().unwrap();
    assert!(
        next.ends_with(
            "/meshes/demo/meshtimeouts/default/_resources/dataplanes?name=dp-&offset=2&size=2"
        ),
        "{next}"
    );
    let (_, body) = s
        .get("/meshes/demo/meshtimeouts/default/_resources/dataplanes?name=dp-&offset=2&size=2")
        .await;
    assert_eq!(body["items"][0]["name"], "dp-3");
    assert!(body.get("next").is_none());
}

#[tokio::test]
async fn dataplanes_for_an_unknown_policy_mesh_or_kind_are_refused() {
    let s = Server::with(&timeouts()).await;
    let (status, body) = s
        .get("/meshes/demo/meshtimeouts/nope/_resources/dataplanes")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "Could not retrieve policy");
    let (status, body) = s
        .get("/meshes/nope/meshtimeouts/default/_resources/dataplanes")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "Failed to retrieve Mesh");
    let (status, _) = s
        .get("/meshes/demo/meshservices/default/_resources/dataplanes")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .get("/meshes/demo/nothings/default/_resources/dataplanes")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .get("/meshes/demo/meshtimeouts/default/_resources/dataplanes?size=0")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_default_mesh_shows_its_initial_policies() {
    let s = Server::with(&[]).await;
    s.apply(&json!({
        "type": "Dataplane", "mesh": "default", "name": "web",
        "networking": {"address": "127.0.0.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]}
    }))
    .await;
    let (status, body) = s.get("/meshes/default/dataplanes/web/_rules").await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for kind in ["MeshTimeout", "MeshRetry", "MeshCircuitBreaker"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn a_mesh_gateway_has_rules_too() {
    let gateway = json!({"type": "MeshGateway", "mesh": "demo", "name": "edge",
        "selectors": [{"match": {"kuma.io/service": "edge"}}],
        "conf": {"listeners": [{"port": 8080, "protocol": "HTTP"}]}});
    let bare = json!({"type": "MeshGateway", "mesh": "demo", "name": "bare",
        "selectors": [{"match": {"kuma.io/service": "bare"}}],
        "conf": {"listeners": [{"port": 8080, "protocol": "HTTP"}]}});
    let timeout = mk_policy(
        "MeshTimeout",
        "gw",
        json!({"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "edge"}},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "7s"}}]}),
    );
    let s = Server::with(&[gateway, bare, timeout]).await;
    let (status, body) = s.get("/meshes/demo/meshgateways/edge/_rules").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(unlabelled(&body["resource"]), meta("MeshGateway", "edge"));
    assert_eq!(
        body["rules"][0]["toResourceRules"][0]["conf"],
        json!([{"idleTimeout": "7s"}])
    );
    let (_, body) = s.get("/meshes/demo/meshgateways/bare/_rules").await;
    assert_eq!(body["rules"], json!([]));
    let (status, _) = s.get("/meshes/demo/meshgateways/nope/_rules").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rules_list_the_http_matches_of_routes_and_the_policies_aimed_at_them() {
    let route = mk_policy(
        "MeshHTTPRoute",
        "api-route",
        json!({"targetRef": {"kind": "MeshService", "name": "foo"},
        "to": [{"targetRef": {"kind": "MeshService", "name": "bar"}, "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
             "default": {"backendRefs": [{"kind": "MeshService", "name": "bar"}]}},
            {"matches": [{"path": {"type": "Exact", "value": "/health"}, "method": "GET"}],
             "default": {}}
        ]}]}),
    );
    let on_route = mk_policy(
        "MeshTimeout",
        "on-route",
        json!({"targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "MeshHTTPRoute", "name": "api-route"},
                    "default": {"http": {"requestTimeout": "3s"}}}]}),
    );
    let s = Server::with(&[
        route,
        on_route,
        mk_dataplane("dp-1", "foo"),
        mk_dataplane("dp-2", "bar"),
    ])
    .await;

    let (status, body) = s.get("/meshes/demo/dataplanes/dp-1/_rules").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Kuma's hashes of the two rules' matches, in hash order.
    assert_eq!(
        body["httpMatches"],
        json!([
            {"hash": "vCW1tzx24OhpP/iUVzx5VX0NKeB6nn4TRfYjrQsVivA=",
             "match": [{"path": {"value": "/health", "type": "Exact"}, "method": "GET"}]},
            {"hash": "waFsoIISmZDTfFWYqxvY265/GASHYEWvHQTwMh/bpuU=",
             "match": [{"path": {"value": "/api", "type": "PathPrefix"}}]}
        ])
    );
    // The timeout aimed at the route is an outbound rule naming it.
    let timeout = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "MeshTimeout")
        .unwrap_or_else(|| panic!("a MeshTimeout entry: {body}"));
    let to_route = timeout["toResourceRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resourceMeta"]["type"] == "MeshHTTPRoute")
        .unwrap_or_else(|| panic!("a rule for the route: {timeout}"));
    assert_eq!(to_route["resourceMeta"]["name"], "api-route");
    assert_eq!(
        to_route["conf"],
        json!([{"http": {"requestTimeout": "3s"}}])
    );

    // dp-2 is not selected by the route: no matches.
    let (_, body) = s.get("/meshes/demo/dataplanes/dp-2/_rules").await;
    assert_eq!(body["httpMatches"], json!([]), "{body}");
}
