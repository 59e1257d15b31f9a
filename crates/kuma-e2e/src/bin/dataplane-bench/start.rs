//! `dp-start`: proxies started one after another, each timed from spawning
//! kuma-dp to its Envoy being ready with its configuration ACKed.

use std::time::{Duration, Instant};

use kuma_e2e::binaries::Binaries;
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::Dataplane;

use super::{Api, BenchResult, MESH, POLL, WAIT, alive, proxy_yaml, report, settled_version};

/// kuma-dp's log line right after it spawned Envoy.
const ENVOY_STARTED: &str = "Envoy started";

/// When each milestone of one proxy's start was first seen.
struct Milestones {
    spawned: Instant,
    envoy_started: Option<Instant>,
    ready: Option<Instant>,
    acked: Option<Instant>,
}

impl Milestones {
    fn configured(&self) -> Option<Instant> {
        Some(self.ready?.max(self.acked?))
    }
}

pub async fn bench(binaries: &Binaries, proxies: usize) -> BenchResult<()> {
    let cp = ControlPlane::start(binaries).await;
    let api = Api::new(&cp)?;
    let admin = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut running = Vec::new();
    let (mut total, mut bootstrap, mut envoy) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..proxies {
        let name = format!("start-{i}");
        // Every proxy serves and calls one service: its first configuration
        // has clusters, listeners and endpoints.
        let yaml = proxy_yaml(&name, "start", "start");
        let token = cp.dataplane_token(MESH, &name).await;
        let spawned = Instant::now();
        let mut dp = Dataplane::spawn_with_token(binaries, &cp, &name, &yaml, &token);
        let m = watch_start(&api, &admin, &mut dp, spawned).await;
        running.push(dp);
        let m = m?;
        let (Some(started), Some(configured)) = (m.envoy_started, m.configured()) else {
            return Err(format!("{name}: start milestones missing"));
        };
        total.push(configured - m.spawned);
        bootstrap.push(started.saturating_duration_since(m.spawned));
        envoy.push(configured.saturating_duration_since(started));
    }
    report(
        &format!("dp-start phase=spawn-to-configured proxies={proxies}"),
        &total,
    );
    report(
        &format!("dp-start phase=spawn-to-envoy-start proxies={proxies}"),
        &bootstrap,
    );
    report(
        &format!("dp-start phase=envoy-start-to-configured proxies={proxies}"),
        &envoy,
    );
    // Ask all to stop at once, then collect them: the drains overlap.
    for dp in &running {
        dp.proc.terminate();
    }
    drop(running);
    drop(cp);
    Ok(())
}

/// Watches one starting proxy in a tight bounded loop. Envoy's admin and the
/// insight are only polled once kuma-dp has started Envoy, so that the poll
/// does not compete with the bootstrap for the CPU before it can matter.
async fn watch_start(
    api: &Api,
    admin: &reqwest::Client,
    dp: &mut Dataplane,
    spawned: Instant,
) -> BenchResult<Milestones> {
    let log = dp.dir.path().join("kuma-dp.log");
    let ready_url = format!("http://127.0.0.1:{}/ready", dp.admin_port);
    let mut m = Milestones {
        spawned,
        envoy_started: None,
        ready: None,
        acked: None,
    };
    let mut last_reason = String::from("nothing observed yet");
    while m.configured().is_none() {
        alive(dp)?;
        if spawned.elapsed() > WAIT {
            return Err(format!(
                "{} not configured {WAIT:?} after spawning kuma-dp ({last_reason}):\n{}",
                dp.name,
                dp.proc.log()
            ));
        }
        if m.envoy_started.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(ENVOY_STARTED) {
                m.envoy_started = Some(Instant::now());
            } else {
                tokio::time::sleep(POLL).await;
                continue;
            }
        }
        if m.ready.is_none() {
            match admin.get(&ready_url).send().await {
                Ok(r) if r.status().is_success() => m.ready = Some(Instant::now()),
                Ok(r) => last_reason = format!("/ready answered {}", r.status()),
                Err(e) => last_reason = format!("/ready: {e}"),
            }
        }
        if m.acked.is_none() {
            match api.overview(&dp.name).await {
                Ok(overview) => {
                    if ["cds", "lds", "eds"]
                        .iter()
                        .all(|t| settled_version(&overview, t).is_some())
                    {
                        m.acked = Some(Instant::now());
                    } else {
                        last_reason = format!("insight: {}", overview["dataplaneInsight"]);
                    }
                }
                Err(e) => last_reason = e,
            }
        }
        if m.configured().is_none() {
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(m)
}
