//! MeshLoadBalancingStrategy's locality awareness with real Envoys: web runs
//! on node `n1`; backend has an instance on `n1`, one on `n2` and one tagged
//! into another zone (`kuma.io/zone: zone-2`).
//!
//! - No policy: round robin over all three.
//! - Affinity to the node: the `n1` instance takes about 90% of the calls,
//!   the `n2` one the rest, the other zone's none (no failover allowed).
//! - Failover to zone-2 allowed: still none there while local instances
//!   are up; once they are gone, everything goes there.

use std::collections::BTreeMap;
use std::time::Duration;

use kuma_e2e::binaries;
use kuma_e2e::eventually;
use kuma_e2e::sidecar_pair::{PairOptions, SidecarPair, mesh_wide_policy};
use kuma_e2e::traffic::{self, Connections};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const MESH: &str = "locality";
const POLICY: &str = "/meshes/locality/meshloadbalancingstrategies/near-first";

/// How many of `n` calls through web's outbound each instance answered.
async fn spread(
    client: &reqwest::Client,
    port: u16,
    n: usize,
) -> Result<BTreeMap<String, usize>, String> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        match traffic::request(client, port).await.answer {
            Ok((200, instance)) => *seen.entry(instance).or_insert(0) += 1,
            other => return Err(format!("{other:?}")),
        }
    }
    Ok(seen)
}

/// Waits until `n` calls reach exactly the instances `want`.
async fn until_reached(client: &reqwest::Client, port: u16, n: usize, want: &[&str]) {
    eventually(&format!("calls to reach only {want:?}"), WAIT, || async {
        let seen = spread(client, port, n).await?;
        let names: Vec<&str> = seen.keys().map(String::as_str).collect();
        if names == want {
            Ok(())
        } else {
            Err(format!("reached {seen:?}"))
        }
    })
    .await;
}

fn near_first(locality_awareness: Value) -> Value {
    mesh_wide_policy(
        "MeshLoadBalancingStrategy",
        MESH,
        "near-first",
        json!({ "localityAwareness": locality_awareness }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_awareness_prefers_the_callers_node_and_fails_over_by_zone() {
    let b = binaries::get();
    let cp = kuma_e2e::control_plane::ControlPlane::start(b).await;
    let options = PairOptions::bare_mesh(MESH)
        .tagged_backends(&[
            ("backend-n1", &[("k8s.io/node", "n1")]),
            ("backend-n2", &[("k8s.io/node", "n2")]),
            ("backend-zone-2", &[("kuma.io/zone", "zone-2")]),
        ])
        .web_tags(&[("k8s.io/node", "n1")]);
    let mut pair = SidecarPair::start_with(b, &cp, &options).await;
    let port = pair.web_outbound;
    let client = traffic::client(Connections::Reused, Duration::from_secs(3));

    // No policy: every instance, the other zone's included.
    until_reached(
        &client,
        port,
        30,
        &["backend-n1", "backend-n2", "backend-zone-2"],
    )
    .await;

    // Affinity to web's node, no failover: zone-2 is out, n1 is preferred.
    let affinity = json!({"localZone": {"affinityTags": [{"key": "k8s.io/node"}]}});
    cp.put(POLICY, &near_first(affinity.clone())).await;
    until_reached(&client, port, 60, &["backend-n1", "backend-n2"]).await;
    let seen = spread(&client, port, 400).await.expect("calls answered");
    let near = seen.get("backend-n1").copied().unwrap_or_default();
    let far = seen.get("backend-n2").copied().unwrap_or_default();
    assert_eq!(near + far, 400, "only local instances answer: {seen:?}");
    // Weights 9 and 1: 90% expected; the bounds are over 4 standard
    // deviations away for 400 calls.
    let share = near as f64 / 400.0;
    assert!(
        (0.82..=0.97).contains(&share),
        "n1 got {share:.3}: {seen:?}"
    );

    // Failover to zone-2 allowed: it waits while local instances are up.
    let mut with_failover = affinity;
    with_failover["crossZone"] =
        json!({"failover": [{"to": {"type": "Only", "zones": ["zone-2"]}}]});
    cp.put(POLICY, &near_first(with_failover)).await;
    eventually(
        "web's backend endpoints to list zone-2 at priority 1",
        WAIT,
        || async {
            let clusters = pair.web.admin("/clusters?format=json").await?;
            let parsed: Value = serde_json::from_str(&clusters).map_err(|e| e.to_string())?;
            let backend = parsed["cluster_statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == "backend")
                .ok_or("no backend cluster")?;
            let zone_2 = backend["host_statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|h| h["locality"]["zone"] == "zone-2")
                .ok_or_else(|| format!("no zone-2 host: {backend}"))?;
            match zone_2["priority"].as_u64() {
                Some(1) => Ok(()),
                other => Err(format!("zone-2 at priority {other:?}")),
            }
        },
    )
    .await;
    let seen = spread(&client, port, 100).await.expect("calls answered");
    assert!(!seen.contains_key("backend-zone-2"), "{seen:?}");

    // The local instances go away (their proxies stop, their Dataplanes
    // are deleted): the calls fail over to zone-2.
    drop(pair.backend);
    drop(pair.more_backends.remove(0));
    until_reached(&client, port, 20, &["backend-zone-2"]).await;
}
