//! Mutual TLS and MeshTrafficPermission on real Envoys: the control plane
//! issues the identities, the proxies enforce STRICT / PERMISSIVE and RBAC
//! (the mesh's default allow-all permission, deny without any, per identity,
//! AllowWithShadowDeny counted but let through),
//! and permissions stop applying when mTLS is turned off on the live mesh.

use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml};
use kuma_e2e::service::TestService;
use kuma_e2e::{eventually, free_port};
use serde_json::{Value, json};

/// How long a mesh or policy change may take to reach both Envoys.
const PROPAGATION: Duration = Duration::from_secs(20);

/// The outcome of one request: the status and body, or why no answer came.
type Answer = Result<(u16, String), String>;

/// One GET to 127.0.0.1:`port` on a fresh connection, so every request sees
/// the listener configuration current at the time it connects.
async fn get(port: u16) -> Answer {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Waits until requests to `port` answer `want` (status, body) several times
/// in a row: one lucky answer during a config change proves nothing.
async fn wait_for_answer(what: &str, port: u16, want: (u16, &str)) {
    eventually(what, PROPAGATION, || async {
        for _ in 0..5 {
            let answer = get(port).await;
            match &answer {
                Ok((status, body)) if *status == want.0 && body.contains(want.1) => {}
                _ => return Err(format!("answered {answer:?}")),
            }
        }
        Ok(())
    })
    .await
}

/// Waits until plaintext requests to `port` get no successful answer several
/// times in a row; returns the last failure.
async fn wait_for_refusal(what: &str, port: u16) -> String {
    eventually(what, PROPAGATION, || async {
        let mut last = String::new();
        for _ in 0..5 {
            match get(port).await {
                Ok((status, body)) if (200..300).contains(&status) => {
                    return Err(format!("answered {status}: {body}"));
                }
                Ok((status, body)) => last = format!("{status}: {body}"),
                Err(e) => last = e,
            }
        }
        Ok(last)
    })
    .await
}

/// web (one outbound to backend) and backend-1, each with its app and proxy.
struct Mesh {
    cp: ControlPlane,
    _web: (Dataplane, TestService),
    _backend: (Dataplane, TestService),
    /// web's outbound listener for backend: traffic through both proxies.
    web_outbound: u16,
    /// backend's inbound listener: a request here skips web's proxy.
    backend_inbound: u16,
}

/// The mesh, with backend's inbound speaking `protocol` (`http` or `tcp`).
async fn start_mesh(b: &Binaries, protocol: &str) -> Mesh {
    let cp = ControlPlane::start(b).await;
    let backend_app = TestService::start("backend-1").await.expect("backend app");
    let backend_inbound = free_port();
    let backend_yaml = dataplane_yaml(
        "default",
        "backend-1",
        &[Inbound {
            port: backend_inbound,
            service_port: backend_app.port(),
            service: "backend".into(),
        }],
        &[],
    )
    .replace(
        "kuma.io/protocol: http",
        &format!("kuma.io/protocol: {protocol}"),
    );
    let backend = Dataplane::start(b, &cp, "backend-1", &backend_yaml).await;

    let web_app = TestService::start("web").await.expect("web app");
    let web_outbound = free_port();
    let web_yaml = dataplane_yaml(
        "default",
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
    let web = Dataplane::start(b, &cp, "web", &web_yaml).await;

    let mesh = Mesh {
        cp,
        _web: (web, web_app),
        _backend: (backend, backend_app),
        web_outbound,
        backend_inbound,
    };
    // Without mTLS both paths carry plaintext: what the later refusals are
    // measured against.
    mesh.expect_mesh_traffic("traffic through web's outbound without mTLS")
        .await;
    wait_for_answer(
        "a direct plaintext request to backend without mTLS",
        mesh.backend_inbound,
        (200, "backend-1"),
    )
    .await;
    mesh
}

impl Mesh {
    /// Turns on mTLS with a builtin CA in `mode` (STRICT or PERMISSIVE).
    async fn set_mtls(&self, mode: &str) {
        let body = json!({
            "type": "Mesh",
            "name": "default",
            "mtls": {
                "enabledBackend": "ca-1",
                "backends": [{"name": "ca-1", "type": "builtin", "mode": mode}],
            },
        });
        self.cp.put("/meshes/default", &body).await;
    }

    /// Creates or replaces MeshTrafficPermission `name` with `from` entries.
    async fn set_permission(&self, name: &str, from: Value) {
        let body = json!({
            "type": "MeshTrafficPermission",
            "mesh": "default",
            "name": name,
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "from": from,
            },
        });
        self.cp
            .put(
                &format!("/meshes/default/meshtrafficpermissions/{name}"),
                &body,
            )
            .await;
    }

    /// Turns mTLS off: the Mesh without an `mtls` section.
    async fn disable_mtls(&self) {
        let body = json!({"type": "Mesh", "name": "default"});
        self.cp.put("/meshes/default", &body).await;
    }

    async fn delete_permission(&self, name: &str) {
        let path = format!("/meshes/default/meshtrafficpermissions/{name}");
        self.cp.delete(&path).await;
    }

    async fn expect_mesh_traffic(&self, what: &str) {
        wait_for_answer(what, self.web_outbound, (200, "backend-1")).await;
    }
}

fn allow_all() -> Value {
    json!([{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}])
}

/// Everyone may call, except web: the more specific MeshService entry wins
/// over the Mesh one for web's identity.
fn deny_web() -> Value {
    json!([
        {"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}},
        {"targetRef": {"kind": "MeshService", "name": "web"}, "default": {"action": "Deny"}},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mtls_refuses_plaintext_and_permissive_takes_it() {
    let b = binaries::get();
    let mesh = start_mesh(b, "http").await;

    // STRICT: sidecars talk mTLS to each other; a plaintext client that
    // bypasses web's proxy is refused at backend's inbound.
    mesh.set_permission("allow-all", allow_all()).await;
    mesh.set_mtls("STRICT").await;
    mesh.expect_mesh_traffic("traffic through web's outbound under STRICT mTLS")
        .await;
    let refusal = wait_for_refusal(
        "backend's inbound to refuse plaintext under STRICT",
        mesh.backend_inbound,
    )
    .await;
    // backend's Envoy holds its SPIFFE identity with Kuma's tag SANs.
    let uris = proxy_cert_uris(&mesh._backend.0).await;
    for want in [
        "spiffe://default/backend",
        "kuma://kuma.io/service/backend",
        "kuma://kuma.io/protocol/http",
    ] {
        assert!(uris.iter().any(|u| u == want), "{want} not in {uris:?}");
    }
    // Its configuration as the API shows it (Envoy's config dump, secrets
    // included) names the identity but never carries its private key.
    let dump = mesh
        .cp
        .get_json("/meshes/default/dataplanes/backend-1/xds")
        .await
        .expect("backend's config dump")
        .to_string();
    assert!(dump.contains("identity_cert:secret:default"), "{dump}");
    assert!(
        !dump.contains("PRIVATE KEY"),
        "a private key in the config dump"
    );
    // Still carried by the mesh once plaintext is refused: the refusal is
    // about the client, not a broken backend.
    mesh.expect_mesh_traffic("traffic through web's outbound after the refusal")
        .await;
    assert!(
        !refusal.contains("backend-1"),
        "a refused request must not reach the app: {refusal}"
    );
    // Settled, not a listener caught mid-update: plaintext stays refused.
    for _ in 0..5 {
        let answer = get(mesh.backend_inbound).await;
        assert!(
            !matches!(&answer, Ok((status, _)) if (200..300).contains(status)),
            "plaintext reached backend under STRICT: {answer:?}"
        );
    }

    // PERMISSIVE: the same inbound takes plaintext and mTLS side by side.
    mesh.set_mtls("PERMISSIVE").await;
    wait_for_answer(
        "a direct plaintext request to backend under PERMISSIVE",
        mesh.backend_inbound,
        (200, "backend-1"),
    )
    .await;
    mesh.expect_mesh_traffic("traffic through web's outbound under PERMISSIVE mTLS")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_permission_denies_and_allows_web_by_identity() {
    let b = binaries::get();
    let mesh = start_mesh(b, "http").await;
    // The mesh's default allow-all-default permission is all it takes.
    mesh.set_mtls("STRICT").await;
    mesh.expect_mesh_traffic("traffic through web's outbound under STRICT mTLS")
        .await;

    // Without any permission an mTLS mesh denies by default.
    mesh.delete_permission("allow-all-default").await;
    wait_for_answer(
        "backend to answer web with 403 once no permission is left",
        mesh.web_outbound,
        (403, ""),
    )
    .await;

    // Deny web: backend's inbound (HTTP) answers web's identity with 403.
    mesh.set_permission("allow-all", deny_web()).await;
    wait_for_answer(
        "backend to answer web with 403 once web is denied",
        mesh.web_outbound,
        (403, ""),
    )
    .await;
    let (status, body) = get(mesh.web_outbound)
        .await
        .expect("a denied request is answered");
    assert_eq!(status, 403, "{body}");
    assert!(
        !body.contains("backend-1"),
        "a denied request must not reach the app: {body}"
    );

    // Allow again: web's requests reach backend once more.
    mesh.set_permission("allow-all", allow_all()).await;
    mesh.expect_mesh_traffic("traffic through web's outbound once web is allowed again")
        .await;

    // AllowWithShadowDeny: web still gets through, and backend's Envoy
    // counts what a Deny would have refused (RBAC shadow rules).
    let shadow_before = shadow_denied(&mesh._backend.0).await;
    mesh.set_permission("allow-all", shadow_deny_web()).await;
    eventually(
        "backend's RBAC to count web's requests as shadow denied",
        PROPAGATION,
        || async {
            let answer = get(mesh.web_outbound).await;
            if !matches!(&answer, Ok((200, body)) if body.contains("backend-1")) {
                return Err(format!("web was not let through: {answer:?}"));
            }
            let now = shadow_denied(&mesh._backend.0).await;
            if now > shadow_before {
                Ok(())
            } else {
                Err(format!("shadow denied stays at {now}"))
            }
        },
    )
    .await;
    mesh.expect_mesh_traffic("web's requests answered under AllowWithShadowDeny")
        .await;
}

/// Everyone may call; web is let through but counted as a shadow denial.
fn shadow_deny_web() -> Value {
    json!([
        {"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}},
        {"targetRef": {"kind": "MeshService", "name": "web"},
         "default": {"action": "AllowWithShadowDeny"}},
    ])
}

/// The sum of every RBAC `shadow_denied` counter of `dp`'s Envoy (0 when
/// none exists yet).
async fn shadow_denied(dp: &Dataplane) -> u64 {
    let text = dp
        .admin("/stats?filter=rbac\\.shadow_denied$")
        .await
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.rsplit_once(": "))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_permission_denies_web_over_tcp_with_a_reset() {
    let b = binaries::get();
    // backend's inbound is TCP: its proxy checks web's identity per
    // connection (network RBAC) and has no HTTP to answer 403 with.
    let mesh = start_mesh(b, "tcp").await;
    mesh.set_mtls("STRICT").await;
    mesh.expect_mesh_traffic("TCP traffic through web's outbound under STRICT mTLS")
        .await;

    mesh.set_permission("allow-all-default", deny_web()).await;
    let refusal = wait_for_refusal(
        "backend's TCP inbound to close web's connections once web is denied",
        mesh.web_outbound,
    )
    .await;
    assert!(
        !refusal.contains("backend-1"),
        "a denied connection must not reach the app: {refusal}"
    );
    // No HTTP answer at all: the connection is closed, not answered 403.
    for _ in 0..5 {
        let answer = get(mesh.web_outbound).await;
        assert!(
            answer.is_err(),
            "a denied TCP connection was answered: {answer:?}"
        );
    }

    mesh.set_permission("allow-all-default", allow_all()).await;
    mesh.expect_mesh_traffic("TCP traffic through web's outbound once web is allowed again")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_apply_only_with_mtls_and_mtls_turns_off_live() {
    let b = binaries::get();
    let mesh = start_mesh(b, "http").await;
    // web is denied, with mTLS STRICT: the permission is in force.
    mesh.set_mtls("STRICT").await;
    mesh.set_permission("allow-all-default", deny_web()).await;
    wait_for_answer(
        "backend to answer web with 403 under STRICT",
        mesh.web_outbound,
        (403, ""),
    )
    .await;
    wait_for_refusal(
        "backend's inbound to refuse plaintext under STRICT",
        mesh.backend_inbound,
    )
    .await;

    // mTLS off on the live mesh, nothing restarted: backend's inbound is
    // plaintext again (so its new listener is in place), and the same Deny
    // no longer applies, since without mTLS there is no identity to check.
    mesh.disable_mtls().await;
    wait_for_answer(
        "a direct plaintext request to backend once mTLS is off",
        mesh.backend_inbound,
        (200, "backend-1"),
    )
    .await;
    mesh.expect_mesh_traffic("web's requests reach backend once mTLS is off, Deny or not")
        .await;
    for _ in 0..5 {
        let answer = get(mesh.web_outbound).await;
        assert!(
            matches!(&answer, Ok((200, body)) if body.contains("backend-1")),
            "a permission applied without mTLS: {answer:?}"
        );
    }

    // And back on: the Deny applies again.
    mesh.set_mtls("STRICT").await;
    wait_for_answer(
        "backend to answer web with 403 once mTLS is back on",
        mesh.web_outbound,
        (403, ""),
    )
    .await;
}

/// The URI SANs of the identity certificates `dp`'s Envoy holds, from its
/// admin `/certs` (the certificate chains, not the trusted CAs).
async fn proxy_cert_uris(dp: &Dataplane) -> Vec<String> {
    let text = dp.admin("/certs").await.expect("Envoy admin /certs");
    let certs: Value = serde_json::from_str(&text).expect("/certs is JSON");
    certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
        .flat_map(|c| c["subject_alt_names"].as_array().into_iter().flatten())
        .filter_map(|san| san["uri"].as_str().map(str::to_string))
        .collect()
}
