//! Two services in the `default` mesh, each behind its own kuma-dp and
//! Envoy: `web` calls `backend` through its outbound listener, so a request
//! to `web_outbound` crosses both sidecars before reaching backend's app.
//! What the mTLS tests and the mTLS benchmark run on.

use serde_json::{Value, json};

use crate::binaries::Binaries;
use crate::control_plane::ControlPlane;
use crate::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml};
use crate::free_port;
use crate::service::TestService;

pub const MESH: &str = "default";

pub struct SidecarPair {
    pub web: Dataplane,
    pub backend: Dataplane,
    /// web's outbound listener for backend: traffic through both proxies.
    pub web_outbound: u16,
    /// backend's inbound listener: a request here skips web's proxy.
    pub backend_inbound: u16,
    /// backend's application itself: no proxy at all.
    pub backend_app_port: u16,
    _apps: (TestService, TestService),
}

impl SidecarPair {
    /// Starts backend-1 (answering its name) and web with their proxies,
    /// and waits until both Envoys are ready. Does not wait for traffic.
    pub async fn start(binaries: &Binaries, cp: &ControlPlane) -> SidecarPair {
        let backend_app = TestService::start("backend-1").await.expect("backend app");
        let backend_inbound = free_port();
        let backend_yaml = dataplane_yaml(
            MESH,
            "backend-1",
            &[Inbound {
                port: backend_inbound,
                service_port: backend_app.port(),
                service: "backend".into(),
            }],
            &[],
        );
        let backend = Dataplane::start(binaries, cp, "backend-1", &backend_yaml).await;

        let web_app = TestService::start("web").await.expect("web app");
        let web_outbound = free_port();
        let web_yaml = dataplane_yaml(
            MESH,
            "web",
            &[Inbound {
                port: free_port(),
                service_port: web_app.port(),
                service: "web".into(),
            }],
            &[Outbound {
                port: web_outbound,
                service: "backend".into(),
            }],
        );
        let web = Dataplane::start(binaries, cp, "web", &web_yaml).await;
        SidecarPair {
            web,
            backend,
            web_outbound,
            backend_inbound,
            backend_app_port: backend_app.port(),
            _apps: (web_app, backend_app),
        }
    }
}

/// The `default` Mesh with mTLS on: one builtin backend `ca-1` in `mode`
/// (STRICT or PERMISSIVE), proxy certificates valid for `dp_cert_expiration`
/// (Kuma's duration format; empty for the default).
pub fn mtls_mesh(mode: &str, dp_cert_expiration: &str) -> Value {
    let mut backend = json!({"name": "ca-1", "type": "builtin", "mode": mode});
    if !dp_cert_expiration.is_empty() {
        backend["dpCert"] = json!({"rotation": {"expiration": dp_cert_expiration}});
    }
    json!({
        "type": "Mesh",
        "name": MESH,
        "mtls": {"enabledBackend": "ca-1", "backends": [backend]},
    })
}

/// Serial numbers of the proxy certificates an Envoy holds now, from its
/// admin `/certs` (`cert_chain` entries only, not the trusted CAs).
pub async fn proxy_cert_serials(dp: &Dataplane) -> Result<Vec<String>, String> {
    let text = dp.admin("/certs").await?;
    let certs: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let mut serials: Vec<String> = certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
        .filter_map(|c| c["serial_number"].as_str().map(str::to_string))
        .collect();
    serials.sort();
    serials.dedup();
    Ok(serials)
}
