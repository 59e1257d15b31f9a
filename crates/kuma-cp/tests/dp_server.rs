//! The data plane server against a running control plane: bootstrap
//! requests and errors, dataplane tokens, TLS identity reuse, and a real
//! ADS client (delta xDS over TLS verified with the generated CA).

use std::collections::BTreeMap;
use std::time::Duration;

use ads_client::Ads;
use base64::Engine as _;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind as PbKind};
use kuma_cp::{Config, ControlPlane};
use kuma_xds::type_url;
use prost::Message;
use serde_json::{Value, json};

#[path = "support/ads.rs"]
mod ads_client;

struct Cp {
    cp: ControlPlane,
    http: reqwest::Client,
    dp: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Cp {
    async fn start() -> Cp {
        Self::with(|_| {}).await
    }

    async fn with(edit: impl FnOnce(&mut Config)) -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests();
        config.general.work_dir = Some(dir.path().to_path_buf());
        edit(&mut config);
        let cp = ControlPlane::start(config).await.unwrap();
        let ca = reqwest::Certificate::from_pem(cp.dp_ca_cert_pem().as_bytes()).unwrap();
        let dp = reqwest::Client::builder()
            .add_root_certificate(ca)
            .no_proxy()
            .build()
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Cp {
            cp,
            http,
            dp,
            _dir: dir,
        }
    }

    fn dp_url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{path}",
            self.cp.dp_server_address().port()
        )
    }

    async fn put(&self, path: &str, body: Value) {
        let r = self
            .http
            .put(format!("{}{path}", self.cp.api_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "PUT {path}: {}",
            r.text().await.unwrap()
        );
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.cp.api_url()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, mesh: &str, name: &str) -> String {
        let r = self
            .http
            .post(format!("{}/tokens/dataplane", self.cp.api_url()))
            .json(&json!({"mesh": mesh, "name": name, "validFor": "1h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    async fn bootstrap(&self, body: Value) -> (u16, String) {
        let r = self
            .dp
            .post(self.dp_url("/bootstrap"))
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn mk_dataplane(
    mesh: &str,
    name: &str,
    address: &str,
    service: &str,
    outbound: Option<(&str, u32)>,
) -> Value {
    let mut dp = json!({
        "type": "Dataplane", "mesh": mesh, "name": name,
        "networking": {
            "address": address,
            "inbound": [{"port": 8080, "servicePort": 18080, "tags": {"kuma.io/service": service, "kuma.io/protocol": "tcp"}}],
        }
    });
    if let Some((svc, port)) = outbound {
        dp["networking"]["outbound"] = json!([{"port": port, "tags": {"kuma.io/service": svc}}]);
    }
    dp
}

fn decode_bootstrap(body: &str) -> serde_yaml::Value {
    let v: Value = serde_json::from_str(body).unwrap();
    assert!(
        v["kumaSidecarConfiguration"]["networking"].is_object(),
        "{v}"
    );
    let yaml = base64::engine::general_purpose::STANDARD
        .decode(v["bootstrap"].as_str().unwrap())
        .unwrap();
    serde_yaml::from_slice(&yaml).unwrap()
}

/// A delta ADS client, subscribed to clusters, endpoints and listeners.
async fn ads(
    cp: &Cp,
    node_id: &str,
    token: Option<&str>,
    metadata: Option<Struct>,
) -> Result<Ads, tonic::Status> {
    let node = Node {
        id: node_id.to_string(),
        metadata,
        ..Node::default()
    };
    let wildcard = || vec!["*".to_string()];
    let subscriptions = vec![
        (type_url::CLUSTER, wildcard()),
        (type_url::ENDPOINT, wildcard()),
        (type_url::LISTENER, wildcard()),
    ];
    ads_client::connect(&cp.cp, node, token, subscriptions).await
}

/// How long a test waits for the control plane to push what it expects.
const WAIT: Duration = Duration::from_secs(10);

impl Ads {
    fn endpoints(&self) -> Vec<String> {
        let mut out = Vec::new();
        for body in self
            .have
            .get(type_url::ENDPOINT)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let cla = ClusterLoadAssignment::decode(body.as_slice()).unwrap();
            for group in cla.endpoints {
                for lb in group.lb_endpoints {
                    let text = format!("{lb:?}");
                    out.push(text);
                }
            }
        }
        out
    }

    fn count(&self, t: &str) -> usize {
        self.have.get(t).map_or(0, BTreeMap::len)
    }
}

#[tokio::test]
async fn bootstrap_indirect_mode_returns_kumas_shape() {
    let cp = Cp::start().await;
    let mut dp = mk_dataplane("default", "web-1", "127.0.0.1", "web", None);
    dp["networking"]["admin"] = json!({"port": 19901});
    cp.put("/meshes/default/dataplanes/web-1", dp).await;
    let token = cp.token("default", "web-1").await;
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "web-1", "proxyType": "dataplane", "dataplaneToken": token,
            "version": {"kumaDp": {"version": "2.14.0"}, "envoy": {"version": "1.36.0", "kumaDpCompatible": true}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let yaml = decode_bootstrap(&body);
    assert_eq!(yaml["node"]["id"].as_str(), Some("default.web-1"));
    assert_eq!(yaml["node"]["cluster"].as_str(), Some("web"));
    assert_eq!(
        yaml["admin"]["address"]["socket_address"]["port_value"].as_u64(),
        Some(19901)
    );
    let text = serde_yaml::to_string(&yaml).unwrap();
    assert!(
        text.contains(&format!("Bearer {token}")),
        "token travels as gRPC metadata"
    );
    assert!(
        text.contains(cp.cp.dp_ca_cert_pem().lines().nth(1).unwrap()),
        "CA is inlined"
    );
    assert!(text.contains(&cp.cp.dp_server_address().port().to_string()));
    assert!(cp.cp.dp_ca_cert_path().exists());
}

#[tokio::test]
async fn bootstrap_errors_follow_kuma() {
    let cp = Cp::start().await;
    cp.put(
        "/meshes/default/dataplanes/web-1",
        mk_dataplane("default", "web-1", "127.0.0.1", "web", None),
    )
    .await;
    let (status, _) = cp.bootstrap(json!("not an object")).await;
    assert_eq!(status, 400);
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "web-1"}))
        .await;
    assert_eq!(status, 422);
    assert!(body.contains("Dataplane Token is required"), "{body}");
    let token = cp.token("default", "web-1").await;
    let (status, _) = cp
        .bootstrap(json!({"mesh": "default", "name": "nope", "dataplaneToken": token}))
        .await;
    assert_eq!(status, 404);
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "web-1", "dataplaneToken": "garbage"}))
        .await;
    assert_eq!(status, 401, "{body}");
    cp.put(
        "/meshes/default/dataplanes/web-2",
        mk_dataplane("default", "web-2", "127.0.0.1", "web", None),
    )
    .await;
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "web-2", "dataplaneToken": token}))
        .await;
    assert_eq!(
        status, 403,
        "a token for web-1 does not admit web-2: {body}"
    );
    assert!(body.contains("different than in token"), "{body}");
    // A token of another mesh is signed with another key.
    cp.put("/meshes/other", json!({"type": "Mesh", "name": "other"}))
        .await;
    cp.put(
        "/meshes/other/dataplanes/web-1",
        mk_dataplane("other", "web-1", "127.0.0.1", "web", None),
    )
    .await;
    let (status, _) = cp
        .bootstrap(json!({"mesh": "other", "name": "web-1", "dataplaneToken": token}))
        .await;
    assert_eq!(status, 401);
    // Direct mode: the Dataplane is validated with field paths.
    let bad =
        json!({"type": "Dataplane", "mesh": "default", "name": "d", "networking": {"address": ""}});
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "d", "dataplaneToken": token, "dataplaneResource": bad.to_string()}))
        .await;
    assert_eq!(status, 422);
    assert!(body.contains("networking"), "{body}");
}

#[tokio::test]
async fn tokens_can_be_turned_off() {
    let cp = Cp::with(|c| {
        c.dp_server.authn.dp_proxy.authn_type = kuma_cp::config::DpProxyAuthnType::None;
    })
    .await;
    cp.put(
        "/meshes/default/dataplanes/web-1",
        mk_dataplane("default", "web-1", "127.0.0.1", "web", None),
    )
    .await;
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "web-1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut stream = ads(&cp, "default.web-1", None, None).await.unwrap();
    stream
        .until("listeners", WAIT, |a| a.count(type_url::LISTENER) > 0)
        .await;
}

#[tokio::test]
async fn tls_identity_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests();
    config.general.work_dir = Some(dir.path().to_path_buf());
    let first = ControlPlane::start(config.clone()).await.unwrap();
    let ca = first.dp_ca_cert_pem().to_string();
    let path = first.dp_ca_cert_path().to_path_buf();
    first.shutdown().await;
    let second = ControlPlane::start(config).await.unwrap();
    assert_eq!(second.dp_ca_cert_pem(), ca);
    assert_eq!(std::fs::read_to_string(path).unwrap(), ca);
    second.shutdown().await;
}

#[tokio::test]
async fn tokens_are_signed_by_a_stored_per_mesh_key() {
    let cp = Cp::start().await;
    let token = cp.token("default", "web-1").await;
    assert_eq!(token.split('.').count(), 3);
    let (status, secret) = cp
        .get("/meshes/default/secrets/dataplane-token-signing-key-default-1")
        .await;
    assert_eq!(status, 200, "{secret}");
    let identity = cp.cp.tokens().verify(&token, "default").await.unwrap();
    assert_eq!(
        (identity.mesh.as_str(), identity.name.as_str()),
        ("default", "web-1")
    );
    let r = cp
        .http
        .post(format!("{}/tokens/dataplane", cp.cp.api_url()))
        .json(&json!({"name": "x", "validFor": "forever"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let fields: Vec<&str> = body["invalid_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mesh", "validFor"]);
}

#[tokio::test]
async fn ads_serves_each_proxy_its_own_config_and_follows_changes() {
    let cp = Cp::start().await;
    cp.put(
        "/meshes/default/dataplanes/web",
        mk_dataplane(
            "default",
            "web",
            "10.0.0.1",
            "web",
            Some(("backend", 10001)),
        ),
    )
    .await;
    cp.put("/meshes/other", json!({"type": "Mesh", "name": "other"}))
        .await;
    cp.put(
        "/meshes/other/dataplanes/lone",
        mk_dataplane(
            "other",
            "lone",
            "10.1.0.1",
            "lone",
            Some(("backend", 10001)),
        ),
    )
    .await;

    // A token for web does not open web's neighbour's stream, nor web's in another mesh.
    let token = cp.token("default", "web").await;
    let err = ads(&cp, "other.lone", Some(&token), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let err = ads(&cp, "default.web", None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");

    let mut web = ads(&cp, "default.web", Some(&token), None).await.unwrap();
    web.until("listeners and clusters", WAIT, |a| {
        a.count(type_url::LISTENER) >= 2 && a.count(type_url::CLUSTER) >= 2
    })
    .await;
    assert!(web.endpoints().iter().all(|e| !e.contains("10.0.0.2")));

    let other_token = cp.token("other", "lone").await;
    let mut lone = ads(&cp, "other.lone", Some(&other_token), None)
        .await
        .unwrap();
    lone.until("listeners", WAIT, |a| a.count(type_url::LISTENER) >= 2)
        .await;
    while lone.next(Duration::from_millis(300), None).await.is_some() {}

    // The destination appears: web learns its endpoint, the other mesh hears nothing.
    cp.put(
        "/meshes/default/dataplanes/backend-1",
        mk_dataplane("default", "backend-1", "10.0.0.2", "backend", None),
    )
    .await;
    web.until("the backend endpoint", WAIT, |a| {
        a.endpoints().iter().any(|e| e.contains("10.0.0.2"))
    })
    .await;
    assert!(
        lone.next(Duration::from_millis(500), None).await.is_none(),
        "another mesh's change reached this proxy"
    );

    // Insights: online, with ACKed versions.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, overview) = cp.get("/meshes/default/dataplanes+insights/web").await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["type"], "DataplaneOverview");
    assert_eq!(overview["dataplane"]["networking"]["address"], "10.0.0.1");
    let sub = &overview["dataplaneInsight"]["subscriptions"][0];
    let (_, info) = cp.get("/").await;
    assert_eq!(sub["controlPlaneInstanceId"], info["instanceId"], "{sub}");
    assert!(sub.get("disconnectTime").is_none());
    assert!(
        sub["status"]["eds"]["responsesAcknowledged"]
            .as_str()
            .is_some(),
        "{sub}"
    );
    assert!(
        sub["status"]["eds"]["lastAckedVersion"].as_str().is_some(),
        "{sub}"
    );
    cp.put(
        "/meshes/default/dataplanes/web-2",
        mk_dataplane("default", "web-2", "10.0.0.5", "web", None),
    )
    .await;
    let err = ads(&cp, "default.web-2", Some(&token), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let (_, list) = cp.get("/meshes/default/dataplanes/_overview").await;
    assert_eq!(list["total"], 3);

    // A NACK is recorded with its error.
    cp.put(
        "/meshes/default/dataplanes/backend-2",
        mk_dataplane("default", "backend-2", "10.0.0.3", "backend", None),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = web
            .next(Duration::from_secs(10), Some("bad endpoint"))
            .await
            .expect("an update");
        if r.type_url == type_url::ENDPOINT || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, overview) = cp.get("/meshes/default/dataplanes+insights/web").await;
    let status = &overview["dataplaneInsight"]["subscriptions"][0]["status"];
    assert_eq!(
        status["lastNack"]["errorDetail"], "bad endpoint",
        "{status}"
    );
    assert_eq!(status["eds"]["responsesRejected"], "1", "{status}");

    // After the stream ends the proxy shows offline.
    drop(web);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, overview) = cp.get("/meshes/default/dataplanes+insights/web").await;
    assert!(
        overview["dataplaneInsight"]["subscriptions"][0]["disconnectTime"].is_string(),
        "{overview}"
    );
}

#[tokio::test]
async fn direct_mode_registers_on_bootstrap_and_unregisters_on_disconnect() {
    let cp = Cp::start().await;
    let token = cp.token("default", "direct-1").await;
    let dp = mk_dataplane("default", "direct-1", "10.0.0.9", "direct", None);
    let (status, body) = cp
        .bootstrap(json!({"mesh": "default", "name": "direct-1", "dataplaneToken": token, "dataplaneResource": dp.to_string()}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = cp.get("/meshes/default/dataplanes/direct-1").await;
    assert_eq!(status, 200, "created on bootstrap");
    let yaml = decode_bootstrap(&body);
    let resource = yaml["node"]["metadata"]["dataplane.resource"]
        .as_str()
        .unwrap()
        .to_string();
    let metadata = Struct {
        fields: [(
            "dataplane.resource".to_string(),
            PbValue {
                kind: Some(PbKind::StringValue(resource)),
            },
        )]
        .into(),
    };
    let mut stream = ads(&cp, "default.direct-1", Some(&token), Some(metadata))
        .await
        .unwrap();
    stream
        .until("listeners", WAIT, |a| a.count(type_url::LISTENER) >= 1)
        .await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = cp.get("/meshes/default/dataplanes/direct-1").await;
        if status == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Dataplane outlived its proxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
