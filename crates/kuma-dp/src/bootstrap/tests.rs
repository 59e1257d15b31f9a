use super::*;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn mk_envoy() -> EnvoyVersion {
    EnvoyVersion {
        version: "1.40.0".into(),
        build: "abc/1.40.0/Clean/RELEASE/BoringSSL".into(),
    }
}

fn mk_identity() -> Identity {
    Identity {
        mesh: "default".into(),
        name: "web-1".into(),
        proxy_type: "dataplane".into(),
        token: "tok".into(),
        ca_cert_pem: "PEM".into(),
        workdir: "/tmp/w".into(),
        ..Identity::default()
    }
}

#[test]
fn request_uses_kuma_field_names() {
    let request = build_request(&mk_identity(), &mk_envoy());
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(json["mesh"], "default");
    assert_eq!(json["name"], "web-1");
    assert_eq!(json["proxyType"], "dataplane");
    assert_eq!(json["dataplaneToken"], "tok");
    assert_eq!(json["caCert"], "PEM");
    assert_eq!(json["workdir"], "/tmp/w");
    assert_eq!(json["version"]["envoy"]["version"], "1.40.0");
    assert_eq!(json["version"]["envoy"]["kumaDpCompatible"], true);
    assert_eq!(json["version"]["kumaDp"]["version"], KUMA_DP_VERSION);
    assert_eq!(json["resources"]["maxHeapSizeBytes"], 0);
    // Empty optional fields stay out, as Go's omitempty leaves them.
    assert!(json.get("dataplaneResource").is_none());
    assert!(json.get("dataplaneTokenPath").is_none());
    assert!(json.get("adminPort").is_none());
}

#[test]
fn an_unsupported_envoy_is_reported_incompatible() {
    let old = EnvoyVersion {
        version: "1.20.0".into(),
        build: "x".into(),
    };
    let request = build_request(&mk_identity(), &old);
    assert!(!request.version.envoy.kuma_dp_compatible);
}

#[test]
fn response_bootstrap_is_base64_of_the_yaml() {
    let yaml = "node:\n  id: default.web-1\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(yaml);
    let body =
        format!(r#"{{"bootstrap":"{encoded}","kumaSidecarConfiguration":{{"networking":{{}}}}}}"#);
    assert_eq!(decode_response(body.as_bytes()).unwrap(), yaml.as_bytes());
    assert!(decode_response(b"node: {}").is_err());
    assert!(decode_response(br#"{"bootstrap":"%%%"}"#).is_err());
    assert!(decode_response(br#"{"bootstrap":""}"#).is_err());
}

#[test]
fn admin_port_is_rewritten_and_the_rest_kept() {
    let yaml = b"admin:\n  address:\n    socket_address:\n      address: 127.0.0.1\n      port_value: 9901\nnode:\n  id: default.web-1\n";
    let out = set_admin_port(yaml, 30123).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_slice(&out).unwrap();
    let socket = &doc["admin"]["address"]["socket_address"];
    assert_eq!(socket["port_value"].as_u64(), Some(30123));
    assert_eq!(socket["address"].as_str(), Some("127.0.0.1"));
    assert_eq!(doc["node"]["id"].as_str(), Some("default.web-1"));
    assert!(set_admin_port(b"node: {}\n", 1).is_err());
}

/// A one-connection-per-answer HTTP server on loopback: answers each request
/// with the next canned response and hands back the request bodies.
async fn serve(answers: Vec<(u16, String)>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (status, body) in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then as much body as Content-Length says.
            let request = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break text;
                    }
                }
            };
            seen.push(request);
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
        }
        seen
    });
    (address, handle)
}

fn ok_body(yaml: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(yaml);
    format!(r#"{{"bootstrap":"{encoded}"}}"#)
}

#[tokio::test]
async fn retries_while_unavailable_then_returns_the_bootstrap() {
    let (address, server) = serve(vec![
        (503, "starting".into()),
        (404, "no such dataplane".into()),
        (200, ok_body("node: {}\n")),
    ])
    .await;
    let client = BootstrapClient::new(&address, None).unwrap();
    let request = build_request(&mk_identity(), &mk_envoy());
    let mut signals = Signals::install().unwrap();
    let retry = Retry {
        backoff: Duration::from_millis(10),
        max_duration: Duration::from_secs(10),
    };
    let got = fetch(&client, &request, retry, &mut signals).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"node: {}\n"[..]));
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].starts_with("POST /bootstrap "), "{}", seen[0]);
    assert!(seen[0].contains(r#""name":"web-1""#), "{}", seen[0]);
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let (address, server) = serve(vec![(401, "invalid token".into())]).await;
    let client = BootstrapClient::new(&address, None).unwrap();
    let request = build_request(&mk_identity(), &mk_envoy());
    let mut signals = Signals::install().unwrap();
    let retry = Retry {
        backoff: Duration::from_millis(10),
        max_duration: Duration::from_secs(10),
    };
    let err = fetch(&client, &request, retry, &mut signals)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("invalid token"), "{err}");
    assert_eq!(server.await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_control_plane_is_given_up_after_the_max_duration() {
    // A port nobody listens on: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = BootstrapClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let request = build_request(&mk_identity(), &mk_envoy());
    let mut signals = Signals::install().unwrap();
    let retry = Retry {
        backoff: Duration::from_millis(20),
        max_duration: Duration::from_millis(100),
    };
    let err = fetch(&client, &request, retry, &mut signals)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gave up reaching the control plane"), "{err}");
}

#[test]
fn cp_address_must_be_http() {
    assert!(BootstrapClient::new("grpcs://x:5678", None).is_err());
    assert!(BootstrapClient::new("not a url", None).is_err());
    assert!(BootstrapClient::new("http://127.0.0.1:5678", Some("garbage")).is_err());
}
