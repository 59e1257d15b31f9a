//! The REST API through a real server on 127.0.0.1:0.

use kuma_cp::{Config, ControlPlane};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Server {
    cp: ControlPlane,
    http: reqwest::Client,
    base: String,
}

impl Server {
    async fn start() -> Server {
        Self::with_config(Config::for_tests()).await
    }

    async fn with_config(config: Config) -> Server {
        let cp = ControlPlane::start(config).await.unwrap();
        let base = format!("http://{}", cp.api_address());
        Server {
            cp,
            http: reqwest::Client::new(),
            base,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        read(resp).await
    }

    async fn get_url(&self, url: &str) -> (StatusCode, Value) {
        read(self.http.get(url).send().await.unwrap()).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        read(resp).await
    }

    async fn put_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        read(resp).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        read(resp).await
    }
}

async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn mk_dataplane(mesh: &str, name: &str, service: &str) -> Value {
    json!({
        "type": "Dataplane", "mesh": mesh, "name": name,
        "networking": {"address": "127.0.0.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": service}}]}
    })
}

fn mk_timeout(mesh: &str, name: &str) -> Value {
    json!({
        "type": "MeshTimeout", "mesh": mesh, "name": name,
        "spec": {"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}]}
    })
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn index_config_and_type_lists() {
    let s = Server::start().await;
    let (status, index) = s.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index["product"], "Kuma");
    assert_eq!(index["tagline"], "Kuma");
    assert!(index["version"].as_str().unwrap().starts_with("2.14"));
    assert!(
        index["hostname"].is_string()
            && index["instanceId"].is_string()
            && index["clusterId"].is_string()
    );

    let (status, config) = s.get("/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["store"]["type"], "memory");
    assert_eq!(config["store"]["postgres"]["password"], "*****");

    let (_, types) = s.get("/_resources").await;
    let mt = types["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "MeshTimeout")
        .unwrap();
    assert_eq!(mt["path"], "meshtimeouts");
    assert_eq!(mt["scope"], "Mesh");
    assert_eq!(mt["shortName"], "mt");
    let (_, policies) = s.get("/policies").await;
    let list = policies["policies"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|p| p["name"] == "MeshRetry" && p["path"] == "meshretries")
    );
    assert!(list.iter().all(|p| p["name"] != "Dataplane"));
    s.cp.shutdown().await;
}

#[tokio::test]
async fn default_mesh_and_its_policies_are_created() {
    let s = Server::start().await;
    let (status, mesh) = s.get("/meshes/default").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mesh["type"], "Mesh");
    let (_, timeouts) = s.get("/meshes/default/meshtimeouts").await;
    assert_eq!(
        names(&timeouts),
        vec![
            "mesh-gateways-timeout-all-default",
            "mesh-timeout-all-default"
        ]
    );
    let (_, cb) = s
        .get("/meshes/default/meshcircuitbreakers/mesh-circuit-breaker-all-default")
        .await;
    assert_eq!(
        cb["spec"]["to"][0]["default"]["connectionLimits"]["maxConnections"],
        1024
    );
    let (status, _) = s
        .get("/meshes/default/meshretries/mesh-retry-all-default")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mtps) = s.get("/meshes/default/meshtrafficpermissions").await;
    assert_eq!(names(&mtps), vec!["allow-all-default"]);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn default_mesh_is_skipped_when_configured() {
    let mut config = Config::for_tests();
    config.defaults.skip_mesh_creation = true;
    let s = Server::with_config(config).await;
    let (status, body) = s.get("/meshes").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"total": 0, "items": [], "next": null}));
    s.cp.shutdown().await;
}

#[tokio::test]
async fn mesh_created_through_the_api_gets_policies_unless_skipped() {
    let s = Server::start().await;
    let (status, body) = s
        .put("/meshes/m1", json!({"type": "Mesh", "name": "m1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, retries) = s.get("/meshes/m1/meshretries").await;
    assert_eq!(names(&retries), vec!["mesh-retry-all-m1"]);

    let (status, _) = s
        .put(
            "/meshes/m2",
            json!({"type": "Mesh", "name": "m2", "skipCreatingInitialPolicies": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, retries) = s.get("/meshes/m2/meshretries").await;
    assert_eq!(retries["total"], 0);

    let (status, _) = s
        .put(
            "/meshes/m3",
            json!({"type": "Mesh", "name": "m3", "skipCreatingInitialPolicies": ["MeshRetry"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, retries) = s.get("/meshes/m3/meshretries").await;
    assert_eq!(retries["total"], 0);
    let (_, timeouts) = s.get("/meshes/m3/meshtimeouts").await;
    assert_eq!(timeouts["total"], 2);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn crud_mesh_dataplane_and_policy() {
    let s = Server::start().await;
    // Mesh: create, read, update.
    let (status, body) = s
        .put(
            "/meshes/demo",
            json!({"type": "Mesh", "name": "demo", "labels": {"team": "a"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({}));
    let (_, mesh) = s.get("/meshes/demo").await;
    assert_eq!(mesh["labels"]["team"], "a");
    let created = mesh["creationTime"].clone();
    let (status, _) = s
        .put(
            "/meshes/demo",
            json!({"type": "Mesh", "name": "demo", "labels": {"team": "b"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mesh) = s.get("/meshes/demo").await;
    assert_eq!(mesh["labels"]["team"], "b");
    assert_eq!(mesh["creationTime"], created);

    // Dataplane.
    let (status, body) = s
        .put(
            "/meshes/demo/dataplanes/dp-1",
            mk_dataplane("demo", "dp-1", "web"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, dp) = s.get("/meshes/demo/dataplanes/dp-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        dp["networking"]["inbound"][0]["tags"]["kuma.io/service"],
        "web"
    );
    assert_eq!(dp["labels"]["kuma.io/mesh"], "demo");
    let (status, _) = s
        .put(
            "/meshes/demo/dataplanes/dp-1",
            mk_dataplane("demo", "dp-1", "api"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, dp) = s.get("/meshes/demo/dataplanes/dp-1").await;
    assert_eq!(
        dp["networking"]["inbound"][0]["tags"]["kuma.io/service"],
        "api"
    );

    // Policy.
    let (status, body) = s
        .put("/meshes/demo/meshtimeouts/t1", mk_timeout("demo", "t1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, t) = s.get("/meshes/demo/meshtimeouts/t1").await;
    assert_eq!(t["spec"]["to"][0]["default"]["idleTimeout"], "20s");

    // Delete.
    let (status, body) = s.delete("/meshes/demo/meshtimeouts/t1").await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, _) = s.get("/meshes/demo/meshtimeouts/t1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.delete("/meshes/demo/dataplanes/dp-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.delete("/meshes/demo").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get("/meshes/demo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn mesh_delete_cascades() {
    let s = Server::start().await;
    s.put("/meshes/gone", json!({"type": "Mesh", "name": "gone"}))
        .await;
    s.put(
        "/meshes/gone/dataplanes/dp",
        mk_dataplane("gone", "dp", "web"),
    )
    .await;
    let (_, all) = s.get("/dataplanes").await;
    assert_eq!(all["total"], 1);
    let (status, _) = s.delete("/meshes/gone").await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = s.get("/dataplanes").await;
    assert_eq!(all["total"], 0);
    let (_, retries) = s.get("/meshretries").await;
    assert_eq!(names(&retries), vec!["mesh-retry-all-default"]);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn not_found_errors_have_kumas_body() {
    let s = Server::start().await;
    let (status, body) = s.get("/meshes/default/meshtrafficpermissions/mtp-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"type": "/std-errors", "status": 404, "title": "Could not retrieve a resource",
               "detail": "Not found", "details": "Not found"})
    );
    let (status, body) = s.get("/meshes/not-a-mesh/meshtrafficpermissions").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "Failed to retrieve Mesh");
    assert_eq!(body["detail"], "Not found");

    // Mesh-scoped PUT into a mesh that does not exist.
    let (status, body) = s
        .put(
            "/meshes/nope/dataplanes/dp",
            mk_dataplane("nope", "dp", "web"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["invalid_parameters"],
        json!([{"field": "mesh", "reason": "mesh of name nope is not found"}])
    );
    let (status, _) = s.get("/meshes/nope/dataplanes/dp").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");

    // Unknown kinds and paths.
    let (status, body) = s.get("/meshes/default/unicorns").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "/std-errors");
    assert!(body["detail"].as_str().unwrap().contains("unicorns"));
    let (status, _) = s.get("/unicorns").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get("/a/b/c/d/e/f").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A mesh-scoped kind has no global item path; a global kind no mesh path.
    let (status, _) = s.get("/dataplanes/dp").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get("/meshes/default/zones").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.delete("/meshes/default/dataplanes/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let resp = s
        .http
        .post(format!("{}/meshes/default", s.base))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["status"], 405);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn bad_requests_name_every_problem() {
    let s = Server::start().await;
    // Body that does not match the URL.
    let (status, body) = s
        .put("/meshes/default/meshtimeouts/t1", mk_timeout("other", "t2"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "/std-errors");
    assert_eq!(body["title"], "Could not process a resource");
    assert_eq!(body["detail"], "Resource is not valid");
    assert_eq!(body["details"], "Resource is not valid");
    assert_eq!(
        body["invalid_parameters"],
        json!([
            {"field": "name", "reason": "name from the URL has to be the same as in body"},
            {"field": "mesh", "reason": "mesh from the URL has to be the same as in body"}
        ])
    );
    assert_eq!(
        body["causes"],
        json!([
            {"field": "name", "message": "name from the URL has to be the same as in body"},
            {"field": "mesh", "message": "mesh from the URL has to be the same as in body"}
        ])
    );
    let (status, body) = s
        .put(
            "/meshes/default/meshretries/t1",
            mk_timeout("default", "t1"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["invalid_parameters"][0]["field"], "type");

    // Malformed JSON and YAML, non-objects, empty bodies.
    let (status, body) = s
        .put_raw("/meshes/x", "application/json", b"{\"type\": ".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("could not parse"),
        "{body}"
    );
    let (status, _) = s
        .put_raw("/meshes/x", "application/yaml", b"type: [".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .put_raw("/meshes/x", "application/json", b"[1]".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.put_raw("/meshes/x", "application/json", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // YAML is accepted when the client says so.
    let (status, body) = s
        .put_raw(
            "/meshes/x",
            "application/yaml",
            b"type: Mesh\nname: x\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Wrong field types are reported with their path.
    let (status, body) = s
        .put("/meshes/default/dataplanes/dp", json!({"type": "Dataplane", "mesh": "default", "name": "dp", "labels": {"a": 1}, "networking": {"address": "1.1.1.1", "inbound": [{"port": 1, "tags": {"kuma.io/service": "a"}}]}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["invalid_parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["field"] == "labels[\"a\"]"),
        "{body}"
    );

    // Oversized bodies.
    let big = format!(
        "{{\"type\": \"Mesh\", \"name\": \"big\", \"x\": \"{}\"}}",
        "a".repeat(3 * 1024 * 1024)
    );
    let (status, body) = s
        .put_raw("/meshes/big", "application/json", big.into_bytes())
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["status"], 413);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn invalid_specs_list_every_violation() {
    let s = Server::start().await;
    let (status, body) = s
        .put(
            "/meshes/default/dataplanes/BAD_NAME",
            json!({"type": "Dataplane", "mesh": "default", "name": "BAD_NAME"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["detail"], "Resource is not valid");
    let params = body["invalid_parameters"].as_array().unwrap();
    assert!(!params.is_empty());
    assert_eq!(params.len(), body["causes"].as_array().unwrap().len());
    s.cp.shutdown().await;
}

#[tokio::test]
async fn paging_follows_next_to_the_end() {
    let s = Server::start().await;
    for i in 0..7 {
        let name = format!("dp-{i}");
        let (status, _) = s
            .put(
                &format!("/meshes/default/dataplanes/{name}"),
                mk_dataplane("default", &name, "web"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let (status, mut page) = s.get("/meshes/default/dataplanes?size=3").await;
    assert_eq!(status, StatusCode::OK);
    let mut pages = 1;
    loop {
        assert_eq!(page["total"], 7);
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&s.base), "{next}");
                page = s.get_url(next).await.1;
                pages += 1;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("dp-{i}")).collect::<Vec<_>>());

    let (status, body) = s.get("/meshes/default/dataplanes?size=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["invalid_parameters"][0]["field"], "size");
    let (status, body) = s.get("/meshes/default/dataplanes?size=1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["invalid_parameters"][0]["reason"],
        "invalid page size of 1001. Maximum page size is 1000"
    );
    s.cp.shutdown().await;
}

#[tokio::test]
async fn label_filters_and_cross_mesh_lists() {
    let s = Server::start().await;
    s.put("/meshes/other", json!({"type": "Mesh", "name": "other"}))
        .await;
    let mut dp = mk_dataplane("default", "a", "web");
    dp["labels"] = json!({"team": "x"});
    s.put("/meshes/default/dataplanes/a", dp).await;
    s.put(
        "/meshes/default/dataplanes/b",
        mk_dataplane("default", "b", "web"),
    )
    .await;
    let mut dp = mk_dataplane("other", "c", "web");
    dp["labels"] = json!({"team": "x"});
    s.put("/meshes/other/dataplanes/c", dp).await;

    let (_, all) = s.get("/dataplanes").await;
    assert_eq!(all["total"], 3);
    let meshes: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["mesh"].as_str().unwrap())
        .collect();
    assert_eq!(meshes, vec!["default", "default", "other"]);

    let (_, team) = s.get("/dataplanes?filter[label.team]=x").await;
    assert_eq!(names(&team), vec!["a", "c"]);
    let (_, team) = s
        .get("/meshes/default/dataplanes?filter%5Blabel.team%5D=x")
        .await;
    assert_eq!(names(&team), vec!["a"]);
    let (_, by_mesh) = s.get("/dataplanes?filter[label.kuma.io/mesh]=other").await;
    assert_eq!(names(&by_mesh), vec!["c"]);

    let (status, body) = s
        .get("/meshes/default/dataplanes?filter[labelds.team]=x")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["title"], "Could not retrieve resources");
    assert_eq!(
        body["invalid_parameters"],
        json!([{"field": "/meshes/{mesh}/dataplanes.filter[labelds.team]", "reason": "filters are only supported on labels"}])
    );
    s.cp.shutdown().await;
}

#[tokio::test]
async fn concurrent_writers_do_not_lose_updates() {
    let s = Server::start().await;
    let store = s.cp.store().clone();
    let key = kuma_api::ResourceKey::global(kuma_api::Kind::Mesh, "default");
    let stale = store.get(&key).await.unwrap();
    // Someone else updates through the API in between.
    let (status, _) = s
        .put(
            "/meshes/default",
            json!({"type": "Mesh", "name": "default", "labels": {"v": "2"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let err = store.update(stale).await.unwrap_err();
    assert!(matches!(err, kuma_store::StoreError::Conflict(_)), "{err}");
    s.cp.shutdown().await;
}

#[tokio::test]
async fn embedded_store_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests();
    config.store.store_type = kuma_cp::StoreType::Embedded;
    config.general.work_dir = Some(dir.path().to_path_buf());

    let s = Server::with_config(config.clone()).await;
    let (status, _) = s
        .put("/meshes/kept", json!({"type": "Mesh", "name": "kept"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    s.cp.shutdown().await;
    assert!(dir.path().join("kuma.db").exists());

    let s = Server::with_config(config).await;
    let (status, mesh) = s.get("/meshes/kept").await;
    assert_eq!(status, StatusCode::OK, "{mesh}");
    let (_, meshes) = s.get("/meshes").await;
    assert_eq!(names(&meshes), vec!["default", "kept"]);
    s.cp.shutdown().await;
}

fn deeply_nested(depth: usize) -> Value {
    (0..depth).fold(json!([]), |inner, _| json!([inner]))
}

/// Every way of breaking a valid document: each field replaced by a value of
/// another shape, at every depth.
fn mutations(doc: &Value) -> Vec<Value> {
    let replacements = [
        Value::Null,
        json!(-1),
        json!(1e308),
        json!(""),
        json!("x".repeat(5000)),
        json!([]),
        json!({}),
        json!(true),
        deeply_nested(64),
    ];
    let mut out = Vec::new();
    fn walk(current: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        match current {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut paths = Vec::new();
    walk(doc, &mut Vec::new(), &mut paths);
    for path in paths.iter().filter(|p| !p.is_empty()) {
        for replacement in &replacements {
            let mut broken = doc.clone();
            let pointer = format!("/{}", path.join("/"));
            if let Some(slot) = broken.pointer_mut(&pointer) {
                *slot = replacement.clone();
                out.push(broken);
            }
        }
    }
    out
}

#[tokio::test]
async fn hostile_input_gets_4xx_and_never_breaks_the_server() {
    let s = Server::start().await;
    let cases = [
        (
            "/meshes/default/dataplanes/dp-1",
            mk_dataplane("default", "dp-1", "web"),
        ),
        (
            "/meshes/default/meshtimeouts/t-1",
            mk_timeout("default", "t-1"),
        ),
        (
            "/meshes/m-1",
            json!({"type": "Mesh", "name": "m-1",
                   "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}}),
        ),
    ];
    let mut sent = 0;
    for (path, doc) in &cases {
        for broken in mutations(doc) {
            let (status, body) = s.put(path, broken.clone()).await;
            sent += 1;
            assert!(
                status.is_success() || status.is_client_error(),
                "PUT {path} with {broken} answered {status}: {body}"
            );
            if status.is_client_error() {
                assert_eq!(body["status"], status.as_u16(), "{body}");
                assert!(body["title"].is_string(), "{body}");
            }
        }
    }
    // Bytes that are not a document at all: a fixed pseudo-random sequence.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for len in [1usize, 7, 64, 513, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        for content_type in ["application/json", "application/yaml"] {
            let (status, _) = s
                .put_raw(
                    "/meshes/default/meshtimeouts/t-2",
                    content_type,
                    bytes.clone(),
                )
                .await;
            sent += 1;
            assert!(status.is_client_error(), "{len} random bytes got {status}");
        }
    }
    assert!(sent > 100, "only {sent} hostile requests were generated");
    let (status, _) = s.get("/").await;
    assert_eq!(status, StatusCode::OK, "the server still answers");
    let (status, _) = s.get("/meshes/default/meshtimeouts/t-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "garbage wrote nothing");
}
