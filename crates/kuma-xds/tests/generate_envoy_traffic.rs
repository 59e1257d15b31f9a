//! Real requests through a real Envoy running what we generate for mTLS:
//! one proxy `web-1` calls its own service through its outbound, so the
//! request leaves over mutual TLS (SAN checked) and comes back in through
//! the inbound's TLS termination and RBAC, then to a small HTTP server.
//!
//! EDS and SDS need a server, so endpoints become static load assignments
//! and secrets static secrets; everything else is as generated.
//!
//! Skipped, with a notice, when no Envoy binary is around (a failure instead
//! under `KUMA_REQUIRE_ENVOY=1`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kuma_api::{Resource, ResourceDocument};
use kuma_xds::generate::{MeshSnapshot, ProxyIdentity, generate_proxy_with_identity};
use kuma_xds::golden::render_proxy;
use kuma_xds::testing::envoy_binary;
use serde_json::{Value, json};

fn resource(mesh: Option<&str>, yaml: &str) -> Resource {
    let mut doc = ResourceDocument::from_yaml(yaml).expect("parses");
    doc.mesh = mesh.map(str::to_string);
    doc.into_resource(DateTime::<Utc>::MIN_UTC)
}

fn identity() -> ProxyIdentity {
    // The fixture certificate is `spiffe://default/web`.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mtls");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("fixture");
    ProxyIdentity {
        cert_chain_pem: read("web.pem"),
        private_key_pem: read("web.key"),
        ca_pems: vec![read("ca.pem")],
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An HTTP server answering every request with 200 `ok`.
fn workload() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

struct Ports {
    inbound: u16,
    outbound: u16,
    workload: u16,
}

/// The resources `web-1` gets in a mesh with mTLS `mode` and `permissions`
/// (MeshTrafficPermission `from` entries, as YAML).
fn generate(ports: &Ports, mode: &str, from: &str) -> Value {
    let listing = vec![
        resource(
            None,
            &format!(
                "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\n    mode: {mode}\n"
            ),
        ),
        resource(
            Some("default"),
            &format!(
                "type: Dataplane\nname: web-1\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: {}\n    servicePort: {}\n    tags:\n      kuma.io/service: web\n      kuma.io/protocol: http\n  outbound:\n  - port: {}\n    tags:\n      kuma.io/service: web\n",
                ports.inbound, ports.workload, ports.outbound
            ),
        ),
        resource(
            Some("default"),
            &format!(
                "type: MeshTrafficPermission\nname: mtp\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n{from}"
            ),
        ),
    ];
    let snapshot = MeshSnapshot::from_resources("default", listing);
    let resources =
        generate_proxy_with_identity(&snapshot, "web-1", Some(&identity())).expect("generates");
    serde_yaml::from_str(&render_proxy(&resources).expect("renders")).expect("YAML")
}

fn strip_sds_config(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("sds_config");
            map.values_mut().for_each(strip_sds_config);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_sds_config),
        _ => {}
    }
}

/// A bootstrap with the generated resources made static.
fn static_config(resources: &Value) -> Value {
    let endpoints = resources["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut clusters = resources["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &mut clusters {
        let Some(map) = c.as_object_mut() else {
            continue;
        };
        if map.remove("eds_cluster_config").is_some() {
            let name = map.get("name").cloned().unwrap_or(Value::Null);
            let cla = endpoints
                .iter()
                .find(|e| e["cluster_name"] == name)
                .cloned()
                .unwrap_or_else(|| json!({ "cluster_name": name }));
            map.insert("type".into(), json!("STATIC"));
            map.insert("load_assignment".into(), cla);
        }
    }
    let mut statics = json!({
        "listeners": resources["listeners"].clone(),
        "clusters": clusters,
        "secrets": resources["secrets"].clone(),
    });
    strip_sds_config(&mut statics);
    json!({
        "node": {"id": "default.web-1", "cluster": "web"},
        "static_resources": statics,
    })
}

/// An Envoy we started, stopped when dropped.
struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(envoy: &Path, config: &Value, label: &str) -> Envoy {
    let path = std::env::temp_dir().join(format!(
        "kuma-xds-traffic-{}-{label}.json",
        std::process::id()
    ));
    std::fs::write(&path, config.to_string()).expect("config written");
    let child = Command::new(envoy)
        .args([
            "--use-dynamic-base-id",
            "--concurrency",
            "1",
            "-l",
            "error",
            "-c",
        ])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("envoy starts");
    Envoy(child)
}

/// The status line of `GET /` on `port`, or why there is none.
fn get(port: u16) -> Result<String, String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    conn.write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::to_string)
        .ok_or_else(|| format!("no HTTP response: {text:?}"))
}

/// Waits until the outbound answers at all (Envoy is up), then returns its answer.
fn get_when_up(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(port) {
            Ok(status) => return status,
            Err(e) if Instant::now() > deadline => panic!("Envoy never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

const ALLOW_ALL: &str = "  - targetRef:\n      kind: Mesh\n    default:\n      action: Allow\n";
const DENY_WEB: &str = "  - targetRef:\n      kind: Mesh\n    default:\n      action: Allow\n  - targetRef:\n      kind: MeshSubset\n      tags:\n        kuma.io/service: web\n    default:\n      action: Deny\n";

fn ports() -> Ports {
    Ports {
        inbound: free_port(),
        outbound: free_port(),
        workload: workload(),
    }
}

#[test]
fn strict_mtls_carries_allowed_requests_and_refuses_plaintext() {
    let Some(envoy) = envoy_binary() else {
        return;
    };
    let ports = ports();
    let _envoy = start(
        &envoy,
        &static_config(&generate(&ports, "STRICT", ALLOW_ALL)),
        "strict",
    );
    let status = get_when_up(ports.outbound);
    assert!(status.contains(" 200 "), "through the mesh: {status}");
    // A client without a certificate gets no HTTP answer from the inbound.
    assert!(get(ports.inbound).is_err(), "plaintext must be refused");
}

#[test]
fn a_denied_identity_gets_403() {
    let Some(envoy) = envoy_binary() else {
        return;
    };
    let ports = ports();
    let _envoy = start(
        &envoy,
        &static_config(&generate(&ports, "STRICT", DENY_WEB)),
        "deny",
    );
    let status = get_when_up(ports.outbound);
    assert!(status.contains(" 403 "), "web is denied: {status}");
}

#[test]
fn permissive_mtls_takes_tls_and_plaintext() {
    let Some(envoy) = envoy_binary() else {
        return;
    };
    let ports = ports();
    let _envoy = start(
        &envoy,
        &static_config(&generate(&ports, "PERMISSIVE", ALLOW_ALL)),
        "permissive",
    );
    let status = get_when_up(ports.outbound);
    assert!(status.contains(" 200 "), "through the mesh: {status}");
    let plain = get(ports.inbound).expect("plaintext answered");
    assert!(plain.contains(" 200 "), "plaintext: {plain}");
}
