//! MeshProxyPatch values are checked against Envoy's API when applied.

use kuma_cp::{Config, ControlPlane};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn put(http: &reqwest::Client, base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = http
        .put(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn mk_patch(value: &str) -> Value {
    json!({
        "type": "MeshProxyPatch", "mesh": "default", "name": "p",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "default": {"appendModifications": [
                {"cluster": {"operation": "Patch", "match": {"origin": "outbound"},
                             "value": "connectTimeout: 1s"}},
                {"listener": {"operation": "Add", "value": value}}
            ]}
        }
    })
}

#[tokio::test]
async fn a_value_envoy_cannot_read_is_refused_with_its_field_path() {
    let cp = ControlPlane::start(Config::for_tests()).await.unwrap();
    let base = format!("http://{}", cp.api_address());
    let http = reqwest::Client::new();
    let (status, _) = put(
        &http,
        &base,
        "/meshes/default",
        json!({"type": "Mesh", "name": "default"}),
    )
    .await;
    assert!(status.is_success(), "{status}");

    let path = "/meshes/default/meshproxypatches/p";
    let (status, body) = put(&http, &base, path, mk_patch("name: l\nnotAField: true")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let params = body["invalid_parameters"].as_array().unwrap();
    assert_eq!(params.len(), 1, "{body}");
    assert_eq!(
        params[0]["field"],
        "spec.default.appendModifications[1].listener.value"
    );
    let reason = params[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("envoy.config.listener.v3.Listener"),
        "{reason}"
    );
    assert!(reason.contains("notAField"), "{reason}");

    // The same policy with a value Envoy's API reads is stored.
    let (status, body) = put(
        &http,
        &base,
        path,
        mk_patch("name: l\nperConnectionBufferLimitBytes: 1024"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
