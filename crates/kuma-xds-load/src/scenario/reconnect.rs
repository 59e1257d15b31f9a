//! The reconnect storm: with every proxy converged, the control plane is
//! restarted by whoever holds [`LoadConfig::restart`]. Each proxy notices its
//! stream drop and reconnects as Envoy would (jittered backoff, the versions
//! it holds, no nonce); the phase is timed from the first drop to each
//! proxy being back in sync on a new stream.

use std::sync::Arc;

use super::{Fleet, ScenarioResult};
use crate::LoadConfig;
use crate::proxy::Condition;

pub(super) async fn run(config: &LoadConfig, fleet: &mut Fleet) -> ScenarioResult {
    let name = "reconnect";
    let Some(restart) = &config.restart else {
        return ScenarioResult::skipped(name, "nobody restarts the control plane");
    };
    let baseline: Vec<u32> = fleet
        .held
        .iter()
        .map(|h| {
            h.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .streams
        })
        .collect();
    fleet.publish(
        Condition::Resynced {
            baseline: Arc::new(baseline),
        },
        |_| true,
    );
    if restart.send(()).is_err() {
        return ScenarioResult::skipped(name, "the restart request went unheard");
    }
    fleet.collect(name, None).await
}
