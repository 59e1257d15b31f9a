//! mTLS changes under live traffic, on real kuma-cp, kuma-dp and Envoy: a
//! steady stream of requests through web's and backend's sidecars loses
//! nothing while proxy certificates rotate, or while the mesh goes from
//! PERMISSIVE to STRICT; switching to another CA backend reissues every
//! identity on the running proxies. No MeshTrafficPermission is created here: the
//! mesh's default `allow-all-default` is what lets web call backend.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kuma_e2e::binaries;
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::eventually;
use kuma_e2e::sidecar_pair::{SidecarPair, mtls_mesh, proxy_cert_serials};
use kuma_e2e::traffic::{self, Connections, Outcome, RequestStream};

/// How long a mesh change may take to reach both Envoys (busy machines).
const PROPAGATION: Duration = Duration::from_secs(30);
/// A short pause between one worker's requests: steady, not a flood.
const PAUSE: Duration = Duration::from_millis(5);

/// Both ways a client meets the mesh: a kept-alive connection, and a new
/// connection (so a new listener and TLS handshake upstream) per request.
fn start_streams(port: u16) -> Vec<RequestStream> {
    vec![
        RequestStream::start(port, 1, Connections::Reused, PAUSE),
        RequestStream::start(port, 1, Connections::PerRequest, PAUSE),
    ]
}

async fn stop_streams(streams: Vec<RequestStream>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for stream in streams {
        all.extend(stream.stop().await);
    }
    all
}

/// Every request answered 200 by backend-1; a few hundred at least, so the
/// stream really covered the change.
fn assert_none_lost(what: &str, outcomes: &[Outcome], at_least: usize) {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.is_ok("backend-1")).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, first ones: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        outcomes.len() >= at_least,
        "{what}: only {} requests were sent",
        outcomes.len()
    );
}

/// Waits until a request to `port` through the mesh answers backend-1
/// several times in a row.
async fn wait_for_mesh_traffic(what: &str, port: u16) {
    let client = traffic::client(Connections::PerRequest, Duration::from_secs(3));
    eventually(what, PROPAGATION, || async {
        for _ in 0..5 {
            let outcome = traffic::request(&client, port).await;
            if !outcome.is_ok("backend-1") {
                return Err(format!("answered {:?}", outcome.answer));
            }
        }
        Ok(())
    })
    .await
}

/// Whether a plaintext request straight to `port` gets a successful answer.
async fn plaintext_answered(port: u16) -> Result<bool, String> {
    let client = traffic::client(Connections::PerRequest, Duration::from_secs(3));
    let outcome = traffic::request(&client, port).await;
    Ok(matches!(outcome.answer, Ok((status, _)) if (200..300).contains(&status)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_steady_traffic_loses_no_request() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    // Renewed at four fifths of 8s: about every 6.4s.
    cp.put("/meshes/default", &mtls_mesh("STRICT", "8s")).await;
    let pair = SidecarPair::start(b, &cp).await;
    wait_for_mesh_traffic(
        "traffic through both sidecars under mTLS",
        pair.web_outbound,
    )
    .await;

    let mut seen_web = BTreeSet::new();
    let mut seen_backend = BTreeSet::new();
    let streams = start_streams(pair.web_outbound);
    // Initial certificate plus two renewals on each side, within a bound.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    while seen_web.len() < 3 || seen_backend.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "certificates did not rotate twice: web {seen_web:?}, backend {seen_backend:?}"
        );
        let before = (seen_web.len(), seen_backend.len());
        if let Ok(serials) = proxy_cert_serials(&pair.web).await {
            seen_web.extend(serials);
        }
        if let Ok(serials) = proxy_cert_serials(&pair.backend).await {
            seen_backend.extend(serials);
        }
        if before != (seen_web.len(), seen_backend.len()) {
            eprintln!(
                "{:?}: certificates seen: web {}, backend {}",
                started.elapsed(),
                seen_web.len(),
                seen_backend.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A little more traffic on the last certificates before stopping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcomes = stop_streams(streams).await;
    assert_none_lost("across certificate rotations", &outcomes, 100);
    // Rotation really replaced the certificates Envoy serves.
    assert!(seen_web.len() >= 3, "{seen_web:?}");
    assert!(seen_backend.len() >= 3, "{seen_backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_to_strict_under_steady_traffic_loses_no_request() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    cp.put("/meshes/default", &mtls_mesh("PERMISSIVE", ""))
        .await;
    let pair = SidecarPair::start(b, &cp).await;
    wait_for_mesh_traffic(
        "traffic through both sidecars under PERMISSIVE",
        pair.web_outbound,
    )
    .await;
    // PERMISSIVE takes plaintext too: what STRICT's refusal is measured against.
    eventually(
        "plaintext to backend under PERMISSIVE",
        PROPAGATION,
        || async {
            match plaintext_answered(pair.backend_inbound).await? {
                true => Ok(()),
                false => Err("refused".to_string()),
            }
        },
    )
    .await;

    let streams = start_streams(pair.web_outbound);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cp.put("/meshes/default", &mtls_mesh("STRICT", "")).await;
    eventually(
        "backend to refuse plaintext under STRICT",
        PROPAGATION,
        || async {
            for _ in 0..3 {
                if plaintext_answered(pair.backend_inbound).await? {
                    return Err("plaintext still answered".to_string());
                }
            }
            Ok(())
        },
    )
    .await;
    // Keep the stream going past the listener change settling.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcomes = stop_streams(streams).await;
    assert_none_lost("across PERMISSIVE -> STRICT", &outcomes, 100);

    // Settled: plaintext stays refused while mesh traffic flows.
    for _ in 0..5 {
        assert!(
            !plaintext_answered(pair.backend_inbound).await.unwrap(),
            "plaintext reached backend under STRICT"
        );
    }
    wait_for_mesh_traffic(
        "traffic through both sidecars under STRICT",
        pair.web_outbound,
    )
    .await;
}

/// The `default` Mesh, STRICT, with its one builtin backend named `backend`
/// (Kuma allows a single backend per mesh: switching CAs replaces it).
fn strict_mesh_with_backend(backend: &str) -> serde_json::Value {
    let mut mesh = mtls_mesh("STRICT", "");
    mesh["mtls"]["enabledBackend"] = backend.into();
    mesh["mtls"]["backends"][0]["name"] = backend.into();
    mesh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_ca_backend_live_reissues_identities_and_traffic_resumes() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    cp.put("/meshes/default", &strict_mesh_with_backend("ca-1"))
        .await;
    let pair = SidecarPair::start(b, &cp).await;
    wait_for_mesh_traffic(
        "traffic through both sidecars under ca-1",
        pair.web_outbound,
    )
    .await;
    let serials = || async {
        let web = proxy_cert_serials(&pair.web).await?;
        let backend = proxy_cert_serials(&pair.backend).await?;
        if web.is_empty() || backend.is_empty() {
            return Err(format!(
                "no certificate yet: web {web:?}, backend {backend:?}"
            ));
        }
        Ok((web, backend))
    };
    let (web_ca1, backend_ca1) =
        eventually("both proxies' ca-1 identities", PROPAGATION, &serials).await;

    cp.put("/meshes/default", &strict_mesh_with_backend("ca-2"))
        .await;
    // Identities live for the default five days here, so new certificates
    // on both sides are the switch's reissue, not a renewal.
    eventually(
        "both proxies to serve identities issued after the switch",
        PROPAGATION,
        || async {
            let (web, backend) = serials().await?;
            if web.iter().any(|s| web_ca1.contains(s))
                || backend.iter().any(|s| backend_ca1.contains(s))
            {
                return Err(format!(
                    "still the ca-1 identities: web {web:?}, backend {backend:?}"
                ));
            }
            Ok(())
        },
    )
    .await;
    // The same processes carry traffic under the new root: nothing was
    // restarted. (While one proxy has the new root and the other the old,
    // their handshakes fail: with one backend per mesh, as in Kuma, there is
    // no window where both roots are trusted.)
    wait_for_mesh_traffic(
        "traffic through both sidecars under ca-2",
        pair.web_outbound,
    )
    .await;
    let streams = start_streams(pair.web_outbound);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcomes = stop_streams(streams).await;
    assert_none_lost("under ca-2 once both proxies switched", &outcomes, 50);
}
