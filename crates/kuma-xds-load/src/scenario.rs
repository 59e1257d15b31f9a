//! One load run: build the mesh, connect every proxy, wait for it to be
//! configured, then time each scenario's change from API write to ACK.

mod churn;
mod policy;
mod reconnect;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::api::ApiClient;
use crate::proxy::{Condition, Expectation, Held, Probe, ProxyEvent, run_delta, run_sotw};
use crate::stats::{cores, percentile, process_cpu_seconds, rss_kib};
use crate::topology::{MESH_WIDE_SERVICE, Topology};
use crate::{LoadConfig, LoadError, XdsVariant, connect};

/// A change whose propagation is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A MeshTimeout for every destination of every proxy gets a new
    /// connect timeout: every proxy receives every outbound cluster again.
    MeshWide,
    /// A MeshTimeout for calls to `svc-0` gets a new connect timeout: only
    /// its callers receive its cluster again.
    Route,
    /// One more instance of `svc-1`: its callers receive the endpoint.
    Endpoint,
    /// An instance of the service every proxy declares an outbound to
    /// appears: every proxy receives its new endpoint.
    MeshWideEndpoint,
    /// The control plane restarts (someone else restarts it when asked
    /// through [`LoadConfig::restart`]); every proxy reconnects as Envoy
    /// would and must be back in sync.
    Reconnect,
    /// Instances of services come and go at a steady rate; each change is
    /// timed to the last of its callers' ACKs.
    Churn,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::MeshWide, Scenario::Route, Scenario::Endpoint];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::MeshWide => "mesh-wide",
            Scenario::Route => "route",
            Scenario::Endpoint => "endpoint",
            Scenario::MeshWideEndpoint => "mesh-wide-endpoint",
            Scenario::Reconnect => "reconnect",
            Scenario::Churn => "churn",
        }
    }

    /// A comma-separated list of `mesh-wide`, `route` (or `timeout`),
    /// `endpoint`, `mesh-wide-endpoint`, `reconnect`, `churn`, and `all`
    /// (the first three).
    pub fn parse(names: &str) -> Option<Vec<Scenario>> {
        let mut out = Vec::new();
        for name in names.split(',').map(str::trim) {
            match name {
                "mesh-wide" => out.push(Scenario::MeshWide),
                "route" | "timeout" => out.push(Scenario::Route),
                "endpoint" => out.push(Scenario::Endpoint),
                "mesh-wide-endpoint" => out.push(Scenario::MeshWideEndpoint),
                "reconnect" => out.push(Scenario::Reconnect),
                "churn" => out.push(Scenario::Churn),
                "all" => out.extend(Scenario::ALL),
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// How one phase went: per targeted proxy, time from the API write being
/// acknowledged to the proxy's ACK of the change.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub name: String,
    pub targets: usize,
    pub converged: usize,
    /// Sorted, milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Some of what went wrong (stream failures, NACKs, stragglers).
    pub problems: Vec<String>,
    /// Streams the control plane refused as unavailable and the proxy reopened.
    pub retries: u64,
    /// Responses a proxy could not apply (each also a problem).
    pub nacks: u64,
    /// More figures of the scenario, printed after the common ones.
    pub extra: Vec<(String, String)>,
}

impl ScenarioResult {
    pub fn all_converged(&self) -> bool {
        self.converged == self.targets && self.problems.is_empty()
    }

    /// The benchmark's output line.
    pub fn line(&self, proxies: u32, services: u32) -> String {
        let l = &self.latencies_ms;
        format!(
            "scenario={} proxies={proxies} services={services} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} targets={} converged={} retries={} nacks={}{}",
            self.name,
            percentile(l, 50.0),
            percentile(l, 99.0),
            percentile(l, 100.0),
            self.targets,
            self.converged,
            self.retries,
            self.nacks,
            self.extra
                .iter()
                .map(|(k, v)| format!(" {k}={v}"))
                .collect::<String>(),
        )
    }

    fn skipped(name: &str, why: &str) -> ScenarioResult {
        ScenarioResult {
            name: name.to_string(),
            targets: 0,
            converged: 0,
            latencies_ms: Vec::new(),
            problems: vec![format!("skipped: {why}")],
            retries: 0,
            nacks: 0,
            extra: Vec::new(),
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub proxies: u32,
    pub services: u32,
    /// Creating the mesh, Dataplanes and tokens through the API.
    pub setup: Duration,
    /// From opening the streams to each proxy being configured.
    pub connect: ScenarioResult,
    pub scenarios: Vec<ScenarioResult>,
    pub cores: usize,
    pub wall: Duration,
    /// CPU the load generator's process used during the run.
    pub cpu_seconds: Option<f64>,
    /// The control plane's memory, when its process id was given.
    pub memory: Option<Memory>,
}

/// Resident memory of the control plane with the mesh built, before and
/// after every proxy connected and converged (the mesh idle both times).
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub base_kib: u64,
    pub steady_kib: u64,
}

impl Memory {
    /// What each connected proxy costs the control plane, in KiB.
    pub fn per_proxy_kib(&self, proxies: u32) -> f64 {
        self.steady_kib.saturating_sub(self.base_kib) as f64 / f64::from(proxies.max(1))
    }

    pub fn line(&self, proxies: u32, services: u32) -> String {
        format!(
            "memory proxies={proxies} services={services} base_rss_mib={:.1} rss_mib={:.1} per_proxy_kb={:.1}",
            self.base_kib as f64 / 1024.0,
            self.steady_kib as f64 / 1024.0,
            self.per_proxy_kib(proxies),
        )
    }
}

impl Report {
    pub fn all_converged(&self) -> bool {
        self.connect.all_converged() && self.scenarios.iter().all(ScenarioResult::all_converged)
    }

    /// CPU time over wall time (1.0 = one core busy throughout).
    pub fn cpu_share(&self) -> Option<f64> {
        Some(self.cpu_seconds? / self.wall.as_secs_f64().max(f64::EPSILON))
    }
}

/// The proxies, as the runner sees them.
struct Fleet {
    topology: Arc<Topology>,
    expect: watch::Sender<Arc<Expectation>>,
    events: mpsc::UnboundedReceiver<ProxyEvent>,
    held: Vec<Arc<Mutex<Held>>>,
    tasks: JoinSet<()>,
    next_id: u64,
    timeout: Duration,
    /// Services whose callers' connect timeout a policy aimed at them
    /// decides, whatever a mesh-wide one says.
    timeout_overrides: BTreeSet<String>,
}

pub async fn run(config: &LoadConfig) -> Result<Report, LoadError> {
    if config.proxies == 0 || config.services == 0 {
        return Err(LoadError::Settings(
            "--proxies and --services must be at least 1".into(),
        ));
    }
    if config.proxies >= 1 << 24 {
        return Err(LoadError::Settings(
            "at most 16,777,215 proxies (one 10.0.0.0/8 address each)".into(),
        ));
    }
    let started = Instant::now();
    let cpu_start = process_cpu_seconds();
    let api = ApiClient::new(&config.api_address)?;
    let topology = Arc::new(Topology {
        mesh: config.mesh.clone(),
        proxies: config.proxies,
        services: config.services,
    });
    let tokens = build_mesh(config, &api, &topology).await?;
    let setup = started.elapsed();
    let base_kib = config.cp_pid.and_then(rss_kib);

    let per = config.streams_per_connection.max(1);
    let channels = connect(config, config.proxies.div_ceil(per)).await?;
    let mut fleet = Fleet::start(config, topology.clone(), channels, tokens);
    let connect_started = Instant::now();
    // The expectation published at start: every proxy fully configured.
    let connect = fleet.collect("connect", Some(connect_started)).await;
    let memory = match (base_kib, config.cp_pid) {
        (Some(base_kib), Some(pid)) if connect.all_converged() => {
            // Let the control plane finish what the connections started.
            tokio::time::sleep(config.settle).await;
            rss_kib(pid).map(|steady_kib| Memory {
                base_kib,
                steady_kib,
            })
        }
        _ => None,
    };

    let mut scenarios = Vec::new();
    for scenario in &config.scenarios {
        let result = if connect.all_converged() {
            run_scenario(*scenario, config, &api, &mut fleet).await?
        } else {
            // Timing a change against half-configured proxies means nothing.
            ScenarioResult::skipped(scenario.name(), "not every proxy was configured")
        };
        scenarios.push(result);
    }
    fleet.tasks.abort_all();
    while fleet.tasks.join_next().await.is_some() {}
    let wall = started.elapsed();
    let cpu_seconds = match (cpu_start, process_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    // Leave the control plane as it was; a failure here changes no figure.
    if let Err(e) = api.delete_mesh(&config.mesh).await {
        tracing::warn!(error = %e, "could not delete the load mesh");
    }
    Ok(Report {
        proxies: config.proxies,
        services: config.services,
        setup,
        connect,
        scenarios,
        cores: cores(),
        wall,
        cpu_seconds,
        memory,
    })
}

/// Creates the mesh and every simulated proxy's Dataplane; returns their
/// tokens (when tokens are on).
async fn build_mesh(
    config: &LoadConfig,
    api: &ApiClient,
    topology: &Topology,
) -> Result<Vec<Option<String>>, LoadError> {
    let mesh = &config.mesh;
    api.delete_mesh(mesh).await?;
    api.put(
        &format!("/meshes/{mesh}"),
        &json!({"type": "Mesh", "name": mesh}),
    )
    .await?;
    futures::stream::iter(0..config.proxies)
        .map(|i| async move {
            let dp = topology.dataplane(i, "tcp");
            api.put(
                &format!("/meshes/{mesh}/dataplanes/{}", topology.proxy_name(i)),
                &dp,
            )
            .await
        })
        .buffer_unordered(config.api_concurrency)
        .try_collect::<()>()
        .await?;
    if !config.tokens {
        return Ok(vec![None; config.proxies as usize]);
    }
    futures::stream::iter(0..config.proxies)
        .map(|i| async move {
            api.dataplane_token(mesh, &topology.proxy_name(i))
                .await
                .map(Some)
        })
        .buffered(config.api_concurrency)
        .try_collect()
        .await
}

async fn run_scenario(
    scenario: Scenario,
    config: &LoadConfig,
    api: &ApiClient,
    fleet: &mut Fleet,
) -> Result<ScenarioResult, LoadError> {
    let topology = fleet.topology.clone();
    let mesh = &config.mesh;
    let name = scenario.name();
    Ok(match scenario {
        Scenario::MeshWide => policy::mesh_wide(config, api, fleet).await?,
        Scenario::Route => policy::destination(config, api, fleet).await?,
        Scenario::Endpoint => {
            let service = topology.service_name(1 % topology.services);
            let address = "192.168.1.1";
            let condition = Condition::Endpoint {
                cluster: service.clone(),
                address: address.to_string(),
            };
            fleet.publish(condition, |i| topology.calls(i, &service));
            let dp = topology.extra_dataplane("endpoint-1", address, &service);
            api.put(&format!("/meshes/{mesh}/dataplanes/endpoint-1"), &dp)
                .await?;
            fleet.collect(name, Some(Instant::now())).await
        }
        Scenario::MeshWideEndpoint => {
            let address = "192.168.0.1";
            let condition = Condition::Endpoint {
                cluster: MESH_WIDE_SERVICE.to_string(),
                address: address.to_string(),
            };
            fleet.publish(condition, |_| true);
            let dp = topology.extra_dataplane("mesh-wide-1", address, MESH_WIDE_SERVICE);
            api.put(&format!("/meshes/{mesh}/dataplanes/mesh-wide-1"), &dp)
                .await?;
            fleet.collect(name, Some(Instant::now())).await
        }
        Scenario::Reconnect => reconnect::run(config, fleet).await,
        Scenario::Churn => churn::run(config, api, fleet).await?,
    })
}

impl Fleet {
    fn start(
        config: &LoadConfig,
        topology: Arc<Topology>,
        channels: Vec<tonic::transport::Channel>,
        tokens: Vec<Option<String>>,
    ) -> Fleet {
        let (expect, expect_rx) = watch::channel(Arc::new(Expectation {
            id: 0,
            condition: Condition::Configured,
            targets: Vec::new(),
        }));
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut fleet = Fleet {
            topology: topology.clone(),
            expect,
            events,
            held: Vec::with_capacity(config.proxies as usize),
            tasks: JoinSet::new(),
            next_id: 1,
            timeout: config.timeout,
            timeout_overrides: BTreeSet::new(),
        };
        // Publish before any stream opens so no early ACK goes unseen.
        fleet.publish(Condition::Configured, |_| true);
        let per = config.streams_per_connection.max(1) as usize;
        for (i, token) in tokens.into_iter().enumerate() {
            let held = Arc::new(Mutex::new(Held::default()));
            fleet.held.push(held.clone());
            let probe = Probe {
                proxy: i as u32,
                topology: topology.clone(),
                expect: expect_rx.clone(),
                events: events_tx.clone(),
                held,
                reported: 0,
            };
            let channel = channels[(i / per) % channels.len()].clone();
            match config.variant {
                XdsVariant::Delta => fleet.tasks.spawn(run_delta(channel, token, probe)),
                XdsVariant::Sotw => fleet.tasks.spawn(run_sotw(channel, token, probe)),
            };
        }
        fleet
    }

    /// Tells every proxy what the next phase waits for.
    fn publish(&mut self, condition: Condition, targets: impl Fn(u32) -> bool) {
        let id = self.next_id;
        self.next_id += 1;
        let targets = (0..self.topology.proxies).map(targets).collect();
        self.expect.send_replace(Arc::new(Expectation {
            id,
            condition,
            targets,
        }));
    }

    /// Collects the current expectation's reports, timed from `since`, until
    /// every target met it, failed, or the timeout passed; then checks what
    /// each target holds now. With no `since`, streams are expected to drop
    /// (the control plane restarts) and times start at the first drop.
    async fn collect(&mut self, name: &str, since: Option<Instant>) -> ScenarioResult {
        let restarting = since.is_none();
        let mut since = since;
        let mut nacks = 0u64;
        let mut disconnects = 0u64;
        let expectation = self.expect.borrow().clone();
        let targets: Vec<u32> = (0..self.topology.proxies)
            .filter(|i| expectation.targets[*i as usize])
            .collect();
        let mut met: BTreeMap<u32, Duration> = BTreeMap::new();
        let mut failed: BTreeMap<u32, String> = BTreeMap::new();
        let mut others_failed = Vec::new();
        let mut retries = 0u64;
        let deadline = tokio::time::Instant::now() + self.timeout;
        while met.len() + failed.len() < targets.len() {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) | Err(_) => break,
            };
            match event {
                ProxyEvent::Met { proxy, id, at } if id == expectation.id => {
                    // An ACK racing the API reply counts as immediate.
                    let from = since.unwrap_or(at);
                    met.entry(proxy)
                        .or_insert_with(|| at.saturating_duration_since(from));
                }
                ProxyEvent::Met { .. } | ProxyEvent::Endpoints { .. } => {}
                ProxyEvent::Retried { .. } => retries += 1,
                ProxyEvent::Disconnected { at, .. } if restarting => {
                    disconnects += 1;
                    since.get_or_insert(at);
                }
                ProxyEvent::Disconnected { proxy, .. } => {
                    let error = format!("{}: the stream dropped", self.topology.proxy_name(proxy));
                    if expectation.targets.get(proxy as usize).copied() == Some(true)
                        && !met.contains_key(&proxy)
                    {
                        failed.entry(proxy).or_insert(error);
                    } else {
                        others_failed.push(error);
                    }
                }
                ProxyEvent::Nacked { proxy, error } => {
                    nacks += 1;
                    let error = format!("{}: NACK: {error}", self.topology.proxy_name(proxy));
                    if expectation.targets.get(proxy as usize).copied() == Some(true)
                        && !met.contains_key(&proxy)
                    {
                        failed.entry(proxy).or_insert(error);
                    } else {
                        others_failed.push(error);
                    }
                }
                ProxyEvent::Failed { proxy, error } => {
                    let error = format!("{}: {error}", self.topology.proxy_name(proxy));
                    if expectation.targets.get(proxy as usize).copied() == Some(true)
                        && !met.contains_key(&proxy)
                    {
                        failed.insert(proxy, error);
                    } else {
                        // A proxy outside the scenario failing is still a failure.
                        others_failed.push(error);
                    }
                }
            }
        }
        let failed_proxies: BTreeSet<u32> = failed.keys().copied().collect();
        let mut problems: Vec<String> = failed.into_values().chain(others_failed).take(5).collect();
        // Converged means holding the change now, not only having held it.
        let mut converged = 0;
        for &p in &targets {
            let held = self.held[p as usize]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if met.contains_key(&p) && expectation.condition.holds(&held, &self.topology, p) {
                converged += 1;
            } else if problems.len() < 5 && !failed_proxies.contains(&p) {
                let why = if met.contains_key(&p) {
                    "no longer holds the change"
                } else {
                    "did not ACK the change in time"
                };
                problems.push(format!("{}: {why}", self.topology.proxy_name(p)));
            }
        }
        let mut latencies_ms: Vec<f64> = met.values().map(|d| d.as_secs_f64() * 1e3).collect();
        latencies_ms.sort_by(f64::total_cmp);
        let mut extra = Vec::new();
        if restarting {
            // The first proxy back shows when the restarted control plane
            // began serving; the rest is the proxies' backoff and the storm.
            let first = latencies_ms.first().copied().unwrap_or_default();
            extra.push(("first_ms".to_string(), format!("{first:.2}")));
            extra.push(("disconnects".to_string(), disconnects.to_string()));
            extra.push((
                "unconfigured".to_string(),
                (targets.len() - converged).to_string(),
            ));
        }
        ScenarioResult {
            name: name.to_string(),
            targets: targets.len(),
            converged,
            latencies_ms,
            problems,
            retries,
            nacks,
            extra,
        }
    }
}
