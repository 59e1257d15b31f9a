//! MeshTLS versions and ciphers on real Envoys: a Mesh-wide `tlsVersion`
//! reaches both ends of mesh TLS, the caller's outbound cluster as well as
//! the callee's inbound, and the handshakes between sidecars use the
//! version and cipher it allows. Envoy's own `ssl.versions.*` and
//! `ssl.ciphers.*` counters tell which were negotiated.
//!
//! Envoy's clients offer at most TLS 1.2 unless told otherwise, so with TLS
//! 1.3 required at backend's inbound, web's requests get through only when
//! its outbound cluster carries the MeshTLS versions (without them: 503).

use std::time::Duration;

use kuma_e2e::binaries;
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::Dataplane;
use kuma_e2e::eventually;
use kuma_e2e::sidecar_pair::{SidecarPair, mtls_mesh};
use kuma_e2e::traffic::{self, Connections};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Envoy's counters of every `ssl.versions` stat, as `name: value` lines.
async fn ssl_versions(dp: &Dataplane) -> String {
    dp.admin("/stats?filter=ssl\\.(versions|ciphers)")
        .await
        .unwrap_or_else(|e| format!("no stats: {e}"))
}

/// The counter `name` of `dp`'s Envoy, 0 while Envoy has not created it.
async fn counter(dp: &Dataplane, name: &str) -> u64 {
    dp.stat(name).await.ok().flatten().unwrap_or(0)
}

/// Sends requests through web's outbound, each on a new connection from
/// the client, until `dp`'s counter `name` has grown past `above` with
/// every request answered by backend-1.
async fn handshake_until(pair: &SidecarPair, dp: &Dataplane, name: &str, above: u64) {
    let client = traffic::client(Connections::PerRequest, Duration::from_secs(3));
    eventually(&format!("{name} above {above}"), WAIT, || async {
        let outcome = traffic::request(&client, pair.web_outbound).await;
        if !outcome.is_ok("backend-1") {
            return Err(format!("answered {:?}", outcome.answer));
        }
        let now = counter(dp, name).await;
        if now > above {
            Ok(())
        } else {
            Err(format!("{name} = {now}; {}", ssl_versions(dp).await))
        }
    })
    .await
}

/// The `tls_params` of web's cluster for backend in its Envoy's config.
async fn backend_cluster_tls_params(web: &Dataplane) -> Result<Value, String> {
    let dump = web
        .admin("/config_dump?resource=dynamic_active_clusters")
        .await?;
    let dump: Value = serde_json::from_str(&dump).map_err(|e| format!("{e}: {dump}"))?;
    let clusters = dump["configs"].as_array().cloned().unwrap_or_default();
    let backend = clusters
        .iter()
        .map(|c| &c["cluster"])
        .find(|c| c["name"] == "backend")
        .ok_or("no backend cluster")?;
    Ok(backend["transport_socket"]["typed_config"]["common_tls_context"]["tls_params"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_tls_versions_and_ciphers_reach_both_sides() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    // The default mesh keeps its initial allow-all MeshTrafficPermission.
    cp.put("/meshes/default", &mtls_mesh("STRICT", "")).await;
    let pair = SidecarPair::start(b, &cp).await;

    // Without MeshTLS, Envoy's defaults: a client offers up to TLS 1.2.
    handshake_until(&pair, &pair.web, "cluster.backend.ssl.versions.TLSv1.2", 0).await;
    assert_eq!(
        counter(&pair.web, "cluster.backend.ssl.versions.TLSv1.3").await,
        0,
        "{}",
        ssl_versions(&pair.web).await
    );

    // TLS 1.3 only: backend's inbound refuses less, so requests get
    // through only if web's cluster offers TLS 1.3 as well.
    let policy = json!({
        "type": "MeshTLS",
        "mesh": "default",
        "name": "tls13",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "from": [{
                "targetRef": {"kind": "Mesh"},
                "default": {"tlsVersion": {"min": "TLS13", "max": "TLS13"}},
            }],
        },
    });
    cp.put("/meshes/default/meshtlses/tls13", &policy).await;
    eventually(
        "web's backend cluster to carry TLS params",
        WAIT,
        || async {
            let params = backend_cluster_tls_params(&pair.web).await?;
            match params["tls_minimum_protocol_version"].as_str() {
                Some("TLSv1_3") => Ok(()),
                _ => Err(format!("tls_params {params}")),
            }
        },
    )
    .await;
    handshake_until(&pair, &pair.web, "cluster.backend.ssl.versions.TLSv1.3", 0).await;
    // backend's inbound saw the same TLS 1.3 handshake from its side.
    let inbound = format!(
        "listener.127.0.0.1_{}.ssl.versions.TLSv1.3",
        pair.backend_inbound
    );
    assert!(
        counter(&pair.backend, &inbound).await > 0,
        "{}",
        ssl_versions(&pair.backend).await
    );

    // TLS 1.2 with one cipher (ciphers apply up to TLS 1.2), named as a
    // Kuma user with Kuma's RSA proxy keys would: the proxies' ECDSA keys
    // use its ECDSA counterpart, where Envoy on its own picks AES-128.
    let mut policy = policy;
    policy["spec"]["from"][0]["default"] = json!({
        "tlsVersion": {"min": "TLS12", "max": "TLS12"},
        "tlsCiphers": ["ECDHE-RSA-AES256-GCM-SHA384"],
    });
    cp.put("/meshes/default/meshtlses/tls13", &policy).await;
    let cipher = "ECDHE-ECDSA-AES256-GCM-SHA384";
    handshake_until(
        &pair,
        &pair.web,
        &format!("cluster.backend.ssl.ciphers.{cipher}"),
        0,
    )
    .await;
    let inbound = format!(
        "listener.127.0.0.1_{}.ssl.ciphers.{cipher}",
        pair.backend_inbound
    );
    assert!(counter(&pair.backend, &inbound).await > 0);
    // TLS 1.2 without MeshTLS (the mesh's control connection shows it)
    // negotiates AES-128.
    let default = "cluster.ads_cluster.ssl.ciphers.ECDHE-ECDSA-AES128-GCM-SHA256";
    assert!(counter(&pair.web, default).await > 0);
}
