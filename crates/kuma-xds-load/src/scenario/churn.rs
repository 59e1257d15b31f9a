//! Endpoint churn: instances of the services come and go at a steady rate
//! (`churn-<k>` Dataplanes: added, and once a pool of them exists each add
//! is followed by removing the oldest), while every change is timed from
//! its API write's reply to the last of its callers' ACKs of a load
//! assignment that reflects it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use super::{Fleet, ScenarioResult};
use crate::api::ApiClient;
use crate::proxy::{Condition, ProxyEvent};
use crate::stats::percentile;
use crate::topology::Topology;
use crate::{LoadConfig, LoadError};

/// One change: `churn-<instance>` of `service` added or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub instance: u64,
    pub service: String,
    pub address: String,
    pub add: bool,
}

/// Change number `k` of a churn whose pool holds `pool` instances: first
/// `pool` adds, then an add and a removal of the oldest, in turn.
pub(crate) fn change(topology: &Topology, pool: u64, k: u64) -> Change {
    let (instance, add) = if k < pool {
        (k, true)
    } else {
        let j = k - pool;
        if j.is_multiple_of(2) {
            (pool + j / 2, true)
        } else {
            (j / 2, false)
        }
    };
    Change {
        instance,
        service: topology.service_name((instance % u64::from(topology.services)) as u32),
        address: format!(
            "172.{}.{}.{}",
            16 + ((instance >> 16) & 15),
            (instance >> 8) & 255,
            instance & 255
        ),
        add,
    }
}

/// A change waiting for its callers.
struct Pending {
    change: Change,
    remaining: BTreeSet<u32>,
    /// The API's reply to the write.
    written: Option<Instant>,
    /// The latest ACK among the callers so far.
    last_ack: Option<Instant>,
}

impl Pending {
    fn done(&self) -> Option<f64> {
        let written = self.written?;
        if !self.remaining.is_empty() {
            return None;
        }
        let last = self.last_ack.unwrap_or(written);
        Some(last.saturating_duration_since(written).as_secs_f64() * 1e3)
    }
}

pub(super) async fn run(
    config: &LoadConfig,
    api: &ApiClient,
    fleet: &mut Fleet,
) -> Result<ScenarioResult, LoadError> {
    let topology = fleet.topology.clone();
    let rate = config.churn_rate.max(1);
    let total = u64::from(rate) * config.churn_seconds.max(1);
    // Each instance lives about 10 s, far longer than a change takes to land,
    // so no change is overtaken by its own undoing.
    let pool = (u64::from(rate) * 5).max(10);
    let mut callers: HashMap<String, Vec<u32>> = HashMap::new();
    for i in 0..topology.proxies {
        for o in topology.outbounds(i) {
            callers.entry(o.service).or_default().push(i);
        }
    }
    fleet.publish(Condition::Observe, |_| true);

    let (written_tx, mut written_rx) =
        mpsc::unbounded_channel::<(u64, Result<Instant, LoadError>)>();
    let permits = Arc::new(Semaphore::new(config.api_concurrency.max(1)));
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut by_service: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let mut latencies_ms = Vec::new();
    let mut problems = Vec::new();
    let (mut retries, mut nacks, mut writes_done, mut last_write) = (0u64, 0u64, 0u64, None);
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let mut deadline = None;
    let mut next = 0u64;
    loop {
        if next >= total && writes_done >= total {
            let d = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + fleet.timeout);
            if pending.is_empty() || tokio::time::Instant::now() >= d {
                break;
            }
        }
        let due = start + Duration::from_secs_f64(next as f64 / f64::from(rate));
        tokio::select! {
            biased;
            event = fleet.events.recv() => {
                let Some(event) = event else { break };
                match event {
                    ProxyEvent::Endpoints { proxy, at, clusters } => {
                        for (cluster, addresses) in clusters {
                            let Some(ids) = by_service.get(&cluster) else { continue };
                            let mut finished = Vec::new();
                            for id in ids {
                                let Some(p) = pending.get_mut(id) else { continue };
                                let holds = addresses
                                    .as_ref()
                                    .is_some_and(|a| a.contains(&p.change.address));
                                if holds == p.change.add && p.remaining.remove(&proxy) {
                                    p.last_ack = Some(p.last_ack.map_or(at, |l| l.max(at)));
                                    if let Some(ms) = p.done() {
                                        latencies_ms.push(ms);
                                        finished.push(*id);
                                    }
                                }
                            }
                            for id in finished {
                                forget(&mut pending, &mut by_service, id);
                            }
                        }
                    }
                    ProxyEvent::Retried { .. } => retries += 1,
                    ProxyEvent::Nacked { proxy, error } => {
                        nacks += 1;
                        problems.push(format!("{}: NACK: {error}", topology.proxy_name(proxy)));
                    }
                    ProxyEvent::Disconnected { proxy, .. } => {
                        problems.push(format!("{}: the stream dropped", topology.proxy_name(proxy)));
                    }
                    ProxyEvent::Failed { proxy, error } => {
                        problems.push(format!("{}: {error}", topology.proxy_name(proxy)));
                    }
                    ProxyEvent::Met { .. } => {}
                }
            }
            written = written_rx.recv() => {
                let Some((id, result)) = written else { break };
                writes_done += 1;
                match result {
                    Ok(at) => {
                        last_write = Some(at);
                        if let Some(p) = pending.get_mut(&id) {
                            p.written = Some(at);
                            if let Some(ms) = p.done() {
                                latencies_ms.push(ms);
                                forget(&mut pending, &mut by_service, id);
                            }
                        }
                    }
                    Err(e) => {
                        problems.push(e.to_string());
                        forget(&mut pending, &mut by_service, id);
                    }
                }
            }
            _ = tokio::time::sleep_until(due), if next < total => {
                let c = change(&topology, pool, next);
                let remaining: BTreeSet<u32> =
                    callers.get(&c.service).into_iter().flatten().copied().collect();
                by_service.entry(c.service.clone()).or_default().insert(next);
                pending.insert(next, Pending { change: c.clone(), remaining, written: None, last_ack: None });
                let (api, topology, permits, tx) =
                    (api.clone(), topology.clone(), permits.clone(), written_tx.clone());
                let id = next;
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let result = write(&api, &topology, &c).await.map(|()| Instant::now());
                    let _ = tx.send((id, result));
                });
                next += 1;
            }
            // Wakes the drain check above while waiting for the last ACKs.
            _ = tokio::time::sleep(Duration::from_millis(50)), if next >= total => {}
        }
    }
    let elapsed = last_write.map_or(Duration::ZERO, |l| l.saturating_duration_since(started));
    let achieved = writes_done as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let unconfirmed = pending.len();
    for p in pending.values().take(5usize.saturating_sub(problems.len())) {
        problems.push(format!(
            "churn-{} ({}) not confirmed by {} of its callers",
            p.change.instance,
            if p.change.add { "added" } else { "removed" },
            p.remaining.len()
        ));
    }
    problems.truncate(5);
    latencies_ms.sort_by(f64::total_cmp);
    Ok(ScenarioResult {
        name: "churn".to_string(),
        targets: total as usize,
        converged: latencies_ms.len(),
        extra: vec![
            ("rate".into(), rate.to_string()),
            ("changes_per_s".into(), format!("{achieved:.0}")),
            ("seconds".into(), format!("{:.1}", elapsed.as_secs_f64())),
            ("unconfirmed".into(), unconfirmed.to_string()),
            (
                "p999_ms".into(),
                format!("{:.2}", percentile(&latencies_ms, 99.9)),
            ),
        ],
        latencies_ms,
        problems,
        retries,
        nacks,
    })
}

fn forget(
    pending: &mut HashMap<u64, Pending>,
    by_service: &mut HashMap<String, BTreeSet<u64>>,
    id: u64,
) {
    if let Some(p) = pending.remove(&id)
        && let Some(ids) = by_service.get_mut(&p.change.service)
    {
        ids.remove(&id);
    }
}

async fn write(api: &ApiClient, topology: &Topology, c: &Change) -> Result<(), LoadError> {
    let name = format!("churn-{}", c.instance);
    let path = format!("/meshes/{}/dataplanes/{name}", topology.mesh);
    if c.add {
        api.put(
            &path,
            &topology.extra_dataplane(&name, &c.address, &c.service),
        )
        .await
    } else {
        api.delete(&path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_fills_then_each_add_retires_the_oldest() {
        let t = Topology {
            mesh: "m".into(),
            proxies: 10,
            services: 4,
        };
        let ops: Vec<(u64, bool)> = (0..8)
            .map(|k| change(&t, 3, k))
            .map(|c| (c.instance, c.add))
            .collect();
        assert_eq!(
            ops,
            [
                (0, true),
                (1, true),
                (2, true),
                (3, true),
                (0, false),
                (4, true),
                (1, false),
                (5, true)
            ]
        );
        let c = change(&t, 3, 5);
        assert_eq!(c.service, "svc-0");
        assert_eq!(c.address, "172.16.0.4");
        assert_ne!(change(&t, 3, 0).address, change(&t, 3, 1).address);
    }
}
