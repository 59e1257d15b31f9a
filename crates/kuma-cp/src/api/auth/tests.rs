//! The auth layer through the real router, with the peer address given
//! explicitly (as the listeners do) so remote callers can be simulated.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use super::*;
use crate::api::{ApiState, router};
use crate::config::Config;

const LOCAL: &str = "127.0.0.1:50000";
const REMOTE: &str = "10.1.2.3:50000";

struct Api {
    state: ApiState,
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Api {
    async fn start(localhost_is_admin: bool) -> Api {
        let store: Arc<dyn kuma_store::ResourceStore> =
            Arc::new(kuma_store::SqliteStore::in_memory().await.unwrap());
        crate::defaults::ensure_default_mesh(store.as_ref())
            .await
            .unwrap();
        let mut config = Config::for_tests();
        config.api_server.authn.localhost_is_admin = localhost_is_admin;
        Api {
            state: ApiState::new(store, config),
        }
    }

    async fn token(&self, name: &str, groups: &[&str], valid_for: Duration) -> String {
        let user = User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        self.state
            .user_tokens
            .issue(&user, valid_for)
            .await
            .unwrap()
    }

    async fn call(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost:5681");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, peer: &str, path: &str, token: Option<&str>) -> Reply {
        self.call(peer, Method::GET, path, token, None).await
    }
}

fn secret(name: &str) -> Value {
    serde_json::json!({"type": "Secret", "mesh": "default", "name": name, "data": "c2VjcmV0"})
}

#[tokio::test]
async fn localhost_is_admin_by_default_and_remote_is_anonymous() {
    let api = Api::start(true).await;
    let r = api
        .call(
            LOCAL,
            Method::PUT,
            "/meshes/default/secrets/s1",
            None,
            Some(secret("s1")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        api.get(LOCAL, "/meshes/default/secrets/s1", None)
            .await
            .status,
        StatusCode::OK
    );

    let r = api.get(REMOTE, "/meshes/default/secrets", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["title"], "Access Denied");
    assert_eq!(
        r.body["detail"],
        "user \"mesh-system:anonymous/mesh-system:unauthenticated\" cannot access the resource of type \"Secret\""
    );
    assert_eq!(r.body["details"], r.body["detail"]);
    // Non-secret reads stay open, as in Kuma.
    let r = api.get(REMOTE, "/meshes", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 1);
}

#[tokio::test]
async fn localhost_is_not_admin_when_configured_off() {
    let api = Api::start(false).await;
    let r = api.get(LOCAL, "/global-secrets", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"GlobalSecret\""),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn anonymous_remote_callers_cannot_write() {
    let api = Api::start(true).await;
    let mesh = serde_json::json!({"type": "Mesh", "name": "demo"});
    let r = api
        .call(
            REMOTE,
            Method::PUT,
            "/meshes/demo",
            None,
            Some(mesh.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["title"], "Access Denied");
    let r = api
        .call(REMOTE, Method::DELETE, "/meshes/default", None, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With any valid user token the same write goes through.
    let token = api
        .token("john", &["team-a"], Duration::from_secs(60))
        .await;
    let r = api
        .call(
            REMOTE,
            Method::PUT,
            "/meshes/demo",
            Some(&token),
            Some(mesh),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn users_outside_the_admin_group_cannot_touch_secrets() {
    let api = Api::start(true).await;
    let token = api
        .token("john", &["team-a"], Duration::from_secs(60))
        .await;
    for path in [
        "/meshes/default/secrets",
        "/meshes/default/secrets/s1",
        "/secrets",
        "/global-secrets",
        "/global-secrets/admin-user-token",
    ] {
        let r = api.get(REMOTE, path, Some(&token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .starts_with("user \"john/team-a,mesh-system:authenticated\" cannot access"),
            "{}",
            r.text
        );
    }
    let r = api
        .call(
            REMOTE,
            Method::PUT,
            "/meshes/default/secrets/s1",
            Some(&token),
            Some(secret("s1")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Percent-encoding the type does not slip past the check.
    let r = api
        .get(REMOTE, "/meshes/default/secret%73", Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn admin_group_members_are_admins() {
    let api = Api::start(false).await;
    let token = api
        .token("ops", &["mesh-system:admin"], Duration::from_secs(60))
        .await;
    let r = api
        .call(
            REMOTE,
            Method::PUT,
            "/meshes/default/secrets/s1",
            Some(&token),
            Some(secret("s1")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api
        .get(REMOTE, "/meshes/default/secrets", Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["total"], 1);
}

#[tokio::test]
async fn invalid_and_expired_tokens_get_401() {
    let api = Api::start(true).await;
    let expired = forge_expired(&api).await;
    for token in ["garbage", expired.as_str()] {
        let r = api.get(REMOTE, "/meshes", Some(token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.body["title"], "Invalid authentication data");
        assert_eq!(r.body["detail"], "Unauthenticated");
        assert_eq!(r.body["type"], "/std-errors");
    }
    // Kuma keeps a localhost caller admin whatever token it sends.
    let r = api.get(LOCAL, "/meshes", Some("garbage")).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A token signed by the real key whose `exp` is in the past.
async fn forge_expired(api: &Api) -> String {
    let good = api.token("john", &[], Duration::from_secs(60)).await;
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    assert_eq!(kid, "1");
    let secret = api
        .state
        .store
        .get(&kuma_api::ResourceKey::global(
            Kind::GlobalSecret,
            "user-token-signing-key-1",
        ))
        .await
        .unwrap();
    let kuma_api::Spec::GlobalSecret(spec) = &secret.spec else {
        panic!("not a GlobalSecret")
    };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&spec.bytes().unwrap()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "Name": "john", "Groups": [], "jti": "j1",
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn token_endpoints_are_admin_only() {
    let api = Api::start(true).await;
    let body = serde_json::json!({"name": "jane", "groups": ["team-b"], "validFor": "24h"});
    let token = api
        .token("john", &["team-a"], Duration::from_secs(60))
        .await;

    let r = api
        .call(
            REMOTE,
            Method::POST,
            "/tokens/user",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["detail"], "action not allowed");
    let r = api
        .call(
            REMOTE,
            Method::POST,
            "/tokens/dataplane",
            None,
            Some(serde_json::json!({"mesh": "default", "name": "dp-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body["detail"],
        "user \"mesh-system:anonymous/mesh-system:unauthenticated\" cannot access generate dataplane token"
    );

    // The local admin issues a user token that then authenticates.
    let r = api
        .call(LOCAL, Method::POST, "/tokens/user", None, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let user = api.state.user_tokens.validate(&r.text).await.unwrap();
    assert_eq!(user.name, "jane");
    assert_eq!(user.groups, vec!["team-b"]);
}

#[tokio::test]
async fn user_token_requests_are_validated_like_kuma() {
    let api = Api::start(true).await;
    let r = api
        .call(
            LOCAL,
            Method::POST,
            "/tokens/user",
            None,
            Some(serde_json::json!({"groups": ["g"], "validFor": "0s"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["title"], "Invalid request");
    assert_eq!(
        r.body["invalid_parameters"],
        serde_json::json!([
            {"field": "name", "reason": "cannot be empty"},
            {"field": "validFor", "reason": "cannot be empty or nil"}
        ])
    );
    let r = api
        .call(
            LOCAL,
            Method::POST,
            "/tokens/user",
            None,
            Some(serde_json::json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        r.body["invalid_parameters"],
        serde_json::json!([{"field": "validFor", "reason": "cannot be empty"}])
    );
}

#[tokio::test]
async fn the_issuer_can_be_disabled_and_the_config_names_the_settings() {
    let mut api = Api::start(true).await;
    let r = api.get(LOCAL, "/config", None).await;
    assert_eq!(r.body["apiServer"]["https"]["port"], 0, "{}", r.text);
    assert_eq!(r.body["apiServer"]["authn"]["type"], "tokens");
    assert_eq!(r.body["apiServer"]["authn"]["localhostIsAdmin"], true);

    let mut config = (*api.state.config).clone();
    config.api_server.authn.tokens.enable_issuer = false;
    api.state.config = Arc::new(config);
    let body = serde_json::json!({"name": "jane", "validFor": "24h"});
    let r = api
        .call(LOCAL, Method::POST, "/tokens/user", None, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["title"], "Could not issue a token");
    assert_eq!(
        r.body["detail"],
        "issuing tokens using the control plane is disabled."
    );
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn direct_loopback_is_judged_like_kuma() {
    let local = Some(LOCAL.parse().unwrap());
    let local6 = Some("[::1]:1".parse().unwrap());
    let remote = Some(REMOTE.parse().unwrap());
    assert!(is_direct_loopback(
        local,
        &headers(&[("host", "localhost:5681")]),
        None
    ));
    assert!(is_direct_loopback(
        local6,
        &headers(&[("host", "[::1]:5681")]),
        None
    ));
    assert!(is_direct_loopback(
        local,
        &headers(&[("host", "127.0.0.1")]),
        None
    ));
    assert!(!is_direct_loopback(
        None,
        &headers(&[("host", "localhost")]),
        None
    ));
    assert!(!is_direct_loopback(
        remote,
        &headers(&[("host", "localhost")]),
        None
    ));
    // Through a proxy on this machine.
    assert!(!is_direct_loopback(
        local,
        &headers(&[("host", "localhost"), ("x-forwarded-for", "10.0.0.1")]),
        None
    ));
    // A name that resolves here but is not a loopback name (DNS rebinding).
    assert!(!is_direct_loopback(
        local,
        &headers(&[("host", "evil.example.com")]),
        None
    ));
    // HTTP/2: the authority is in the URI.
    assert!(is_direct_loopback(
        local,
        &headers(&[]),
        Some("127.0.0.1:5682")
    ));
    assert!(!is_direct_loopback(
        local,
        &headers(&[]),
        Some("evil.example.com:5682")
    ));
    // A browser sent it for another site.
    assert!(!is_direct_loopback(
        local,
        &headers(&[("host", "localhost:5681"), ("sec-fetch-site", "cross-site")]),
        None
    ));
    assert!(!is_direct_loopback(
        local,
        &headers(&[
            ("host", "localhost:5681"),
            ("origin", "http://evil.example.com")
        ]),
        None
    ));
    assert!(!is_direct_loopback(
        local,
        &headers(&[
            ("host", "localhost:5681"),
            ("origin", "http://localhost:3000")
        ]),
        None
    ));
    assert!(is_direct_loopback(
        local,
        &headers(&[
            ("host", "localhost:5681"),
            ("origin", "http://localhost:5681")
        ]),
        None
    ));
}

#[test]
fn users_print_and_classify_like_kuma() {
    assert_eq!(
        User::anonymous().to_string(),
        "mesh-system:anonymous/mesh-system:unauthenticated"
    );
    assert!(User::admin().authenticated().is_admin());
    assert!(!User::anonymous().is_admin());
    assert!(User::anonymous().is_anonymous());
    let john = User {
        name: "john".into(),
        groups: vec!["mesh-system:admin".into()],
    };
    assert!(john.is_admin());
    assert!(
        check(
            &User::anonymous(),
            &Method::GET,
            "/meshes/{mesh}/{plural}",
            Some("meshtimeouts")
        )
        .is_ok()
    );
    assert!(
        check(
            &User::anonymous(),
            &Method::POST,
            "/meshes/{mesh}/{plural}/{name}",
            Some("meshtimeouts")
        )
        .is_err()
    );
}
