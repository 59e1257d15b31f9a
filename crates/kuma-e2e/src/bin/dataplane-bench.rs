//! Data plane benchmarks against a real kuma-cp, real kuma-dps and real
//! Envoys on loopback:
//!
//! - `dp-start`: from spawning kuma-dp (bootstrap request included) until its
//!   Envoy is ready (admin `/ready` 200) and the control plane has recorded
//!   ACKs of its clusters, listeners and endpoints; also split at the moment
//!   kuma-dp logs that it started Envoy.
//! - `apply-to-ack`: with a web proxy and N backend proxies running, from the
//!   REST API answering a change (a new backend Dataplane: one endpoint more;
//!   its delete: one endpoint less) until every affected proxy's insight
//!   shows the new endpoints version ACKed.
//!
//! Prints one `bench=...` line per figure. Binaries come from
//! `KUMA_E2E_BIN_DIR` (scripts/bench points it at the release build).
//!
//! ```text
//! dataplane-bench [--start-proxies 10] [--runs 30] [--backends 1,10]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml};
use kuma_e2e::free_port;
use serde_json::Value;

const MESH: &str = "default";
/// How often the bounded waits look again: tight enough that the figures
/// are not the poll interval.
const POLL: Duration = Duration::from_millis(1);
/// The longest any single start or propagation may take before the run fails.
const WAIT: Duration = Duration::from_secs(30);

type BenchResult<T> = Result<T, String>;

#[derive(Debug)]
struct Options {
    start_proxies: usize,
    runs: usize,
    backends: Vec<usize>,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> BenchResult<Options> {
        let mut options = Options {
            start_proxies: 10,
            runs: 30,
            backends: vec![1, 10],
        };
        let mut args = args;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |v: &str| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{flag}: '{v}' is not a positive number"))
            };
            match flag.as_str() {
                "--start-proxies" => options.start_proxies = number(&value()?)?,
                "--runs" => options.runs = number(&value()?)?,
                "--backends" => {
                    options.backends = value()?
                        .split(',')
                        .map(number)
                        .collect::<BenchResult<_>>()?;
                }
                other => {
                    return Err(format!(
                        "unknown argument '{other}' (known: --start-proxies N, --runs N, --backends N,M)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// p50, p99 and max of a set of latencies, as the benchmark line prints them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    /// Nearest-rank percentiles; `None` for no samples.
    fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: f64| {
            let n = sorted.len();
            let r = ((p / 100.0) * n as f64).ceil() as usize;
            sorted[r.clamp(1, n) - 1]
        };
        let max = *sorted.last()?;
        Some(Summary {
            p50: rank(50.0),
            p99: rank(99.0),
            max,
        })
    }

    fn line(&self, labels: &str, runs: usize) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        format!(
            "bench={labels} runs={runs} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} cores={cores}",
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

fn report(labels: &str, samples: &[Duration]) {
    if let Some(summary) = Summary::of(samples) {
        println!("{}", summary.line(labels, samples.len()));
    }
}

/// The newest ADS subscription's stats of one xDS type (`cds`, `lds`, `eds`).
fn type_status<'a>(overview: &'a Value, short_type: &str) -> Option<&'a Value> {
    let subscriptions = overview["dataplaneInsight"]["subscriptions"].as_array()?;
    let newest = subscriptions.last()?;
    if newest.get("disconnectTime").is_some() {
        return None;
    }
    newest["status"].get(short_type)
}

/// The version of `short_type` the proxy last ACKed, when it has ACKed the
/// last one sent (nothing of that type is awaiting an answer).
fn settled_version(overview: &Value, short_type: &str) -> Option<String> {
    let status = type_status(overview, short_type)?;
    let acked = status["lastAckedVersion"].as_str()?;
    (status["lastSentVersion"].as_str() == Some(acked)).then(|| acked.to_string())
}

/// A thin client over the control plane's REST API for the timed requests.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(cp: &ControlPlane) -> BenchResult<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Api {
            http,
            base: cp.api(""),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> BenchResult<String> {
        let response = request.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{what}: {e}"))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("{what} answered {status}: {text}"))
        }
    }

    async fn put_dataplane(&self, name: &str, yaml: &str) -> BenchResult<()> {
        let body: Value = serde_yaml::from_str(yaml).map_err(|e| format!("{name}: {e}"))?;
        let path = format!("/meshes/{MESH}/dataplanes/{name}");
        let request = self.http.put(format!("{}{path}", self.base)).json(&body);
        self.send(request, &format!("PUT {path}")).await.map(drop)
    }

    async fn delete_dataplane(&self, name: &str) -> BenchResult<()> {
        let path = format!("/meshes/{MESH}/dataplanes/{name}");
        let request = self.http.delete(format!("{}{path}", self.base));
        self.send(request, &format!("DELETE {path}"))
            .await
            .map(drop)
    }

    /// Every DataplaneOverview of the mesh, by name: one request per poll
    /// however many proxies are watched.
    async fn overviews(&self) -> BenchResult<Vec<Value>> {
        let path = format!("/meshes/{MESH}/dataplanes+insights");
        let request = self.http.get(format!("{}{path}", self.base));
        let text = self.send(request, &format!("GET {path}")).await?;
        let mut list: Value =
            serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))?;
        match list["items"].take() {
            Value::Array(items) => Ok(items),
            other => Err(format!("GET {path}: no items in {other}")),
        }
    }

    async fn overview(&self, name: &str) -> BenchResult<Value> {
        let path = format!("/meshes/{MESH}/dataplanes+insights/{name}");
        let request = self.http.get(format!("{}{path}", self.base));
        let text = self.send(request, &format!("GET {path}")).await?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }
}

fn find<'a>(overviews: &'a [Value], name: &str) -> Option<&'a Value> {
    overviews.iter().find(|o| o["name"] == name)
}

/// A proxy of `service` that also calls `service` (so every proxy of the
/// benchmark receives that service's endpoints). No application listens
/// behind the inbound: configuration does not depend on one.
fn proxy_yaml(name: &str, service: &str, outbound_service: &str) -> String {
    dataplane_yaml(
        MESH,
        name,
        &[Inbound {
            port: free_port(),
            service_port: free_port(),
            service: service.into(),
        }],
        &[Outbound {
            port: free_port(),
            service: outbound_service.into(),
        }],
    )
}

// Beside this file rather than in src/bin/, where Cargo would take each for a binary.
#[path = "dataplane-bench/propagation.rs"]
mod propagation;
#[path = "dataplane-bench/start.rs"]
mod start;

async fn run(options: &Options, binaries: &Binaries) -> BenchResult<()> {
    start::bench(binaries, options.start_proxies).await?;
    for &backends in &options.backends {
        propagation::bench(binaries, backends, options.runs).await?;
    }
    Ok(())
}

/// Ends the run on SIGINT or SIGTERM so that every process it started is
/// dropped, hence stopped (each kuma-dp runs in its own process group, which
/// a signal to this process alone would not reach).
async fn interrupted() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted".into(),
        _ = term.recv() => "terminated".into(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::var_os("KUMA_E2E_BIN_DIR").is_none() {
        eprintln!(
            "note: KUMA_E2E_BIN_DIR is not set; benchmarking debug builds (scripts/bench uses release)"
        );
    }
    let binaries = binaries::get();
    let outcome = tokio::select! {
        r = run(&options, binaries) => r,
        reason = interrupted() => Err(reason),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Fails when a proxy's kuma-dp has exited, with its log.
fn alive(dp: &mut Dataplane) -> BenchResult<()> {
    match dp.proc.try_status() {
        Some(status) => Err(format!(
            "kuma-dp {} exited ({status}):\n{}",
            dp.name,
            dp.proc.log()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (ms(50), ms(99), ms(100)));
        let one = Summary::of(&[ms(7)]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(Summary::of(&[]), None);
        let line = s.line("apply-to-ack change=endpoint-added", 100);
        assert!(
            line.starts_with(
                "bench=apply-to-ack change=endpoint-added runs=100 p50_ms=50.00 p99_ms=99.00 max_ms=100.00 cores="
            ),
            "{line}"
        );
    }

    #[test]
    fn options_parse_and_refuse_nonsense() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = Options::parse(args("--runs 5 --backends 2,3").into_iter()).unwrap();
        assert_eq!((o.runs, o.backends, o.start_proxies), (5, vec![2, 3], 10));
        assert!(Options::parse(args("--runs 0").into_iter()).is_err());
        assert!(Options::parse(args("--runs").into_iter()).is_err());
        assert!(Options::parse(args("--proxies 3").into_iter()).is_err());
    }

    #[test]
    fn a_version_is_settled_only_when_the_last_sent_one_is_acked() {
        let overview = |eds: Value, disconnected: bool| {
            let mut sub = json!({ "id": "1", "status": { "eds": eds } });
            if disconnected {
                sub["disconnectTime"] = json!("2026-01-01T00:00:00Z");
            }
            json!({ "dataplaneInsight": { "subscriptions": [ { "id": "0" }, sub ] } })
        };
        let acked = json!({ "lastSentVersion": "b", "lastAckedVersion": "b" });
        let pending = json!({ "lastSentVersion": "c", "lastAckedVersion": "b" });
        assert_eq!(
            settled_version(&overview(acked.clone(), false), "eds").as_deref(),
            Some("b")
        );
        assert_eq!(settled_version(&overview(pending, false), "eds"), None);
        assert_eq!(settled_version(&overview(acked.clone(), true), "eds"), None);
        assert_eq!(settled_version(&overview(acked, false), "cds"), None);
    }
}
