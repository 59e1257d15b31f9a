//! Policy changes: a MeshTimeout every proxy's outbound clusters take
//! (`mesh-wide`), and one aimed at a single destination that only its
//! callers take (`route`). Each write sets a connect timeout no proxy holds
//! yet, so repeating a scenario in one process still times a real change.
//!
//! Both policies target the whole mesh, as does the default
//! `mesh-timeout-all-<mesh>` the control plane creates with the mesh. Among
//! policies with the same top-level targetRef Kuma applies the
//! alphabetically first name last, so it wins: the names below sort before
//! `mesh-timeout-all-*`, and the per-destination one before the mesh-wide
//! one, so that each write decides what its targets end up holding. (Kuma
//! also applies `to` entries naming a MeshService after those naming the
//! Mesh; the names agree with that order rather than rely on it.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Fleet, ScenarioResult};
use crate::api::ApiClient;
use crate::proxy::{Condition, Outbounds};
use crate::{LoadConfig, LoadError};

/// The mesh-wide MeshTimeout.
pub const MESH_WIDE_POLICY: &str = "load-timeout-mesh-wide";

/// The MeshTimeout aimed at one destination (`<prefix>-<service>`); sorts
/// before [`MESH_WIDE_POLICY`].
pub const DESTINATION_POLICY_PREFIX: &str = "load-timeout-for";

/// Connect timeouts handed out so far in this process.
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// A connect timeout no earlier write of this process used, and neither
/// default (5 s outbound, 10 s inbound) nor Envoy's 5 s.
fn unique_timeout() -> Duration {
    let n = TIMEOUTS.fetch_add(1, Ordering::Relaxed) + 1;
    Duration::from_millis(20_000 + n)
}

/// The MeshTimeout named `name` giving the outbounds to `to` (a `to`
/// targetRef) `timeout` as their connection timeout.
pub fn mesh_timeout(mesh: &str, name: &str, to: Value, timeout: Duration) -> Value {
    json!({
        "type": "MeshTimeout", "mesh": mesh, "name": name,
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{
                "targetRef": to,
                "default": {"connectionTimeout": format!("{}ms", timeout.as_millis())},
            }],
        }
    })
}

/// Every proxy's every outbound cluster takes a new connect timeout, but
/// the destinations a per-destination policy decides.
pub(super) async fn mesh_wide(
    config: &LoadConfig,
    api: &ApiClient,
    fleet: &mut Fleet,
) -> Result<ScenarioResult, LoadError> {
    let timeout = unique_timeout();
    let except = fleet.timeout_overrides.iter().cloned().collect();
    fleet.publish(
        Condition::ConnectTimeout {
            to: Outbounds::AllExcept(except),
            timeout,
        },
        |_| true,
    );
    let policy = mesh_timeout(
        &config.mesh,
        MESH_WIDE_POLICY,
        json!({"kind": "Mesh"}),
        timeout,
    );
    put(api, &config.mesh, MESH_WIDE_POLICY, &policy).await?;
    Ok(fleet.collect("mesh-wide", Some(Instant::now())).await)
}

/// `svc-0`'s callers' clusters of it take a new connect timeout; only they
/// are waited for.
pub(super) async fn destination(
    config: &LoadConfig,
    api: &ApiClient,
    fleet: &mut Fleet,
) -> Result<ScenarioResult, LoadError> {
    let topology = fleet.topology.clone();
    let service = topology.service_name(0);
    let timeout = unique_timeout();
    fleet.publish(
        Condition::ConnectTimeout {
            to: Outbounds::To(service.clone()),
            timeout,
        },
        |i| topology.calls(i, &service),
    );
    let name = format!("{DESTINATION_POLICY_PREFIX}-{service}");
    // In universal mode with no MeshService resources a MeshService named
    // in `to` is the `kuma.io/service` of that name.
    let policy = mesh_timeout(
        &config.mesh,
        &name,
        json!({"kind": "MeshService", "name": service}),
        timeout,
    );
    fleet.timeout_overrides.insert(service);
    put(api, &config.mesh, &name, &policy).await?;
    Ok(fleet.collect("route", Some(Instant::now())).await)
}

async fn put(api: &ApiClient, mesh: &str, name: &str, policy: &Value) -> Result<(), LoadError> {
    api.put(&format!("/meshes/{mesh}/meshtimeouts/{name}"), policy)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_never_handed_out_twice() {
        let a = unique_timeout();
        let b = unique_timeout();
        assert_ne!(a, b);
        assert!(a > Duration::from_secs(10) && b > Duration::from_secs(10));
    }

    #[test]
    fn the_policies_win_over_the_mesh_default_and_the_destination_one_over_the_mesh_wide_one() {
        let destination = format!("{DESTINATION_POLICY_PREFIX}-svc-0");
        // Alphabetically first is applied last and wins.
        assert!(MESH_WIDE_POLICY < "mesh-timeout-all-");
        assert!(destination.as_str() < MESH_WIDE_POLICY);
    }

    #[test]
    fn the_policy_names_its_destination_and_a_go_duration() {
        let p = mesh_timeout(
            "m",
            "p",
            json!({"kind": "MeshService", "name": "svc-0"}),
            Duration::from_millis(20_001),
        );
        assert_eq!(p["spec"]["targetRef"]["kind"], "Mesh");
        assert_eq!(p["spec"]["to"][0]["targetRef"]["name"], "svc-0");
        assert_eq!(
            p["spec"]["to"][0]["default"]["connectionTimeout"],
            "20001ms"
        );
    }
}
