//! API security through real sockets: HTTPS on the API with a generated or
//! provided certificate, the bootstrapped admin user token, user tokens and
//! Kuma's access rules, with `localhostIsAdmin` off so loopback callers are
//! treated like remote ones.

use std::path::Path;

use kuma_api::{Kind, ResourceKey, Spec};
use kuma_cp::{Config, ControlPlane};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Server {
    cp: ControlPlane,
    https: reqwest::Client,
    base: String,
    _work: tempfile::TempDir,
}

fn mk_config(work: &Path, localhost_is_admin: bool) -> Config {
    let mut config = Config::for_tests();
    config.general.work_dir = Some(work.to_path_buf());
    config.api_server.authn.localhost_is_admin = localhost_is_admin;
    config.api_server.authn.tokens.bootstrap_admin_token = true;
    config
}

/// A client trusting only the PEM certificate in `ca`.
fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

impl Server {
    async fn start(localhost_is_admin: bool) -> Server {
        let work = tempfile::tempdir().unwrap();
        let cp = ControlPlane::start(mk_config(work.path(), localhost_is_admin))
            .await
            .unwrap();
        let https = client_trusting(cp.api_ca_cert_path().unwrap());
        let base = cp.api_https_url().unwrap();
        Server {
            cp,
            https,
            base,
            _work: work,
        }
    }

    /// The admin user token the control plane stored on first start.
    async fn admin_token(&self) -> String {
        let secret = self
            .cp
            .store()
            .get(&ResourceKey::global(Kind::GlobalSecret, "admin-user-token"))
            .await
            .unwrap();
        let Spec::GlobalSecret(spec) = &secret.spec else {
            panic!("admin-user-token is not a GlobalSecret")
        };
        String::from_utf8(spec.bytes().unwrap()).unwrap()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self.https.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (status, text) = self.send(reqwest::Method::GET, path, token, None).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn https_with_the_generated_ca_and_the_admin_token() {
    let s = Server::start(false).await;
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    assert!(
        s.cp.api_ca_cert_path()
            .unwrap()
            .ends_with("api-server/ca.crt")
    );

    // Anonymous: the index and non-secret reads, nothing else.
    let (status, body) = s.get("/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["product"], "Kuma");
    assert_eq!(s.get("/meshes", None).await.0, StatusCode::OK);
    let (status, body) = s.get("/global-secrets/admin-user-token", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({
            "type": "/std-errors",
            "status": 403,
            "title": "Access Denied",
            "detail": "user \"mesh-system:anonymous/mesh-system:unauthenticated\" cannot access the resource of type \"GlobalSecret\"",
            "details": "user \"mesh-system:anonymous/mesh-system:unauthenticated\" cannot access the resource of type \"GlobalSecret\""
        })
    );
    let (status, _) = s
        .send(
            reqwest::Method::PUT,
            "/meshes/demo",
            None,
            Some(json!({"type": "Mesh", "name": "demo"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The admin token reads secrets, including itself, as Kuma documents.
    let admin = s.admin_token().await;
    let (status, body) = s.get("/global-secrets", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"admin-user-token"), "{names:?}");
    assert!(names.contains(&"user-token-signing-key-1"), "{names:?}");

    // A bad token is refused outright, even for open reads.
    let (status, body) = s.get("/meshes", Some("not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["title"], "Invalid authentication data");
    assert_eq!(body["detail"], "Unauthenticated");

    // The plain HTTP port from loopback is not admin either here.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "{}/global-secrets/admin-user-token",
            s.cp.api_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn user_tokens_issued_by_the_admin_work_outside_admin_resources() {
    let s = Server::start(false).await;
    let admin = s.admin_token().await;
    let request = json!({"name": "john", "groups": ["team-a"], "validFor": "24h"});
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            "/tokens/user",
            None,
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, john) = s
        .send(
            reqwest::Method::POST,
            "/tokens/user",
            Some(&admin),
            Some(request),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{john}");

    let (status, _) = s
        .send(
            reqwest::Method::PUT,
            "/meshes/demo",
            Some(&john),
            Some(json!({"type": "Mesh", "name": "demo"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = s.get("/meshes/demo/secrets", Some(&john)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["detail"],
        "user \"john/team-a,mesh-system:authenticated\" cannot access the resource of type \"Secret\""
    );
    let dp_request = json!({"mesh": "demo", "name": "dp-1", "validFor": "1h"});
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            "/tokens/dataplane",
            Some(&john),
            Some(dp_request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, token) = s
        .send(
            reqwest::Method::POST,
            "/tokens/dataplane",
            Some(&admin),
            Some(dp_request),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token.split('.').count(), 3);
    s.cp.shutdown().await;
}

#[tokio::test]
async fn localhost_stays_admin_by_default_and_the_token_survives_restarts() {
    let work = tempfile::tempdir().unwrap();
    let mut config = mk_config(work.path(), true);
    // A durable store, so the second start finds the first one's token.
    config.store.store_type = kuma_cp::StoreType::Embedded;
    let cp = ControlPlane::start(config.clone()).await.unwrap();
    let https = client_trusting(cp.api_ca_cert_path().unwrap());
    let resp = https
        .get(format!(
            "{}/global-secrets/admin-user-token",
            cp.api_https_url().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let first: Value = resp.json().await.unwrap();
    let ca = std::fs::read(cp.api_ca_cert_path().unwrap()).unwrap();
    cp.shutdown().await;

    let cp = ControlPlane::start(config).await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/global-secrets/admin-user-token", cp.api_url()))
        .send()
        .await
        .unwrap();
    let second: Value = resp.json().await.unwrap();
    assert_eq!(first["data"], second["data"], "the admin token is kept");
    assert_eq!(
        std::fs::read(cp.api_ca_cert_path().unwrap()).unwrap(),
        ca,
        "the generated CA is kept"
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn a_provided_certificate_is_served() {
    // Any CA-signed pair will do: make one the way the control plane would.
    let certs = tempfile::tempdir().unwrap();
    let made = kuma_cp::tls::ServerTls::load_or_generate(None, certs.path(), "user CA").unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut config = mk_config(work.path(), true);
    config.api_server.authn.tokens.bootstrap_admin_token = false;
    config.api_server.https.tls_cert_file = Some(certs.path().join(kuma_cp::tls::CERT_FILE));
    config.api_server.https.tls_key_file = Some(certs.path().join(kuma_cp::tls::KEY_FILE));
    let cp = ControlPlane::start(config).await.unwrap();
    assert!(
        !work.path().join("api-server").exists(),
        "nothing is generated when a certificate is given"
    );
    let trusting = client_trusting(&made.ca_cert_path);
    let url = format!("{}/", cp.api_https_url().unwrap());
    let resp = trusting.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // A client trusting some other CA refuses the server.
    let other = tempfile::tempdir().unwrap();
    let other_ca = kuma_cp::tls::ServerTls::load_or_generate(None, other.path(), "other CA")
        .unwrap()
        .ca_cert_path;
    let err = client_trusting(&other_ca)
        .get(&url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    cp.shutdown().await;
}
