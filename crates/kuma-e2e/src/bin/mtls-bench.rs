//! What mutual TLS costs on the request path, with a real kuma-cp, two real
//! kuma-dps and Envoys on loopback: client -> web's sidecar (outbound) ->
//! backend's sidecar (inbound) -> backend's echo service, the same two
//! proxies with the mesh's mTLS off and then on (STRICT, builtin CA).
//!
//! For each load (one client sending requests back to back, then a few
//! concurrent ones), every request on a kept-alive client connection:
//! p50/p99/max latency and throughput per mode, then the latency mTLS adds
//! and the ratio. The modes alternate over `--rounds` so that a machine
//! busy with something else weighs on both alike. A run with the echo
//! service called directly (no proxy) gives the floor.
//!
//! Prints one `bench=mtls-cost ...` line per figure. Binaries come from
//! `KUMA_E2E_BIN_DIR` (scripts/bench points it at the release build).
//!
//! ```text
//! mtls-bench [--requests 4000] [--concurrency 4] [--rounds 4]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::sidecar_pair::{MESH, SidecarPair, mtls_mesh};
use kuma_e2e::traffic::{self, Connections};
use serde_json::json;

/// How long a mode switch may take to reach both Envoys.
const SWITCH: Duration = Duration::from_secs(60);
/// Requests sent before each measurement (connections, caches, JIT-free
/// but still: the first requests of a new connection cost more).
const WARMUP: usize = 200;

type BenchResult<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    requests: usize,
    concurrency: usize,
    rounds: usize,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> BenchResult<Options> {
        let mut options = Options {
            requests: 4000,
            concurrency: 4,
            rounds: 4,
        };
        let mut args = args;
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: '{value}' is not a positive number"))?;
            match flag.as_str() {
                "--requests" => options.requests = number,
                "--concurrency" => options.concurrency = number,
                "--rounds" => options.rounds = number,
                other => {
                    return Err(format!(
                        "unknown argument '{other}' (known: --requests N, --concurrency N, --rounds N)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// The mesh as a mode sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plaintext,
    Mtls,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::Mtls => "mtls",
        }
    }
}

/// One load: how many clients send requests at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Load {
    label: &'static str,
    workers: usize,
}

/// Latencies of every answered request of a load in one mode, the wall
/// time, and the requests that got no 200 (with the first such answer).
#[derive(Debug, Default, Clone)]
struct Samples {
    latencies: Vec<Duration>,
    elapsed: Duration,
    failed: usize,
    first_failure: Option<String>,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Nearest-rank percentile; zero without samples.
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let n = sorted.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        sorted[rank.clamp(1, n) - 1]
    }

    fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latencies.len() as f64 / secs
        } else {
            0.0
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn print_mode(mode: &str, load: Load, samples: &Samples) {
    println!(
        "bench=mtls-cost mode={mode} load={} clients={} requests={} failed={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} rps={:.0} cores={}",
        load.label,
        load.workers,
        samples.latencies.len(),
        samples.failed,
        ms(samples.percentile(50.0)),
        ms(samples.percentile(99.0)),
        ms(samples.percentile(100.0)),
        samples.rps(),
        cores()
    );
    if let Some(failure) = &samples.first_failure {
        eprintln!("{mode} {}: first failed request: {failure}", load.label);
    }
}

fn print_cost(load: Load, plain: &Samples, mtls: &Samples) {
    let (p50, p99) = (plain.percentile(50.0), plain.percentile(99.0));
    let (m50, m99) = (mtls.percentile(50.0), mtls.percentile(99.0));
    let ratio = |a: Duration, b: Duration| {
        if b.is_zero() {
            0.0
        } else {
            a.as_secs_f64() / b.as_secs_f64()
        }
    };
    println!(
        "bench=mtls-cost load={} clients={} added_p50_ms={:.3} added_p99_ms={:.3} ratio_p50={:.2} ratio_p99={:.2} rps_ratio={:.2} cores={}",
        load.label,
        load.workers,
        ms(m50) - ms(p50),
        ms(m99) - ms(p99),
        ratio(m50, p50),
        ratio(m99, p99),
        if plain.rps() > 0.0 {
            mtls.rps() / plain.rps()
        } else {
            0.0
        },
        cores()
    );
}

/// `total` requests to `port` spread over `workers` kept-alive clients,
/// after a warm-up. Failed requests are counted and reported, not timed.
async fn measure(port: u16, workers: usize, total: usize) -> BenchResult<Samples> {
    let per_worker = total.div_ceil(workers);
    let run = |count: usize| async move {
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                tokio::spawn(async move {
                    let client = traffic::client(Connections::Reused, Duration::from_secs(10));
                    let mut samples = Samples {
                        latencies: Vec::with_capacity(count),
                        ..Samples::default()
                    };
                    for _ in 0..count {
                        let outcome = traffic::request(&client, port).await;
                        if outcome.is_ok("backend-1") {
                            samples.latencies.push(outcome.latency);
                        } else {
                            samples.failed += 1;
                            samples
                                .first_failure
                                .get_or_insert_with(|| format!("{:?}", outcome.answer));
                        }
                    }
                    samples
                })
            })
            .collect();
        let started = Instant::now();
        let mut all = Samples::default();
        for task in tasks {
            all.add(task.await.map_err(|e| format!("worker: {e}"))?);
        }
        all.elapsed = started.elapsed();
        Ok::<_, String>(all)
    };
    run(WARMUP.div_ceil(workers)).await?;
    run(per_worker).await
}

/// Sets `mode` on the mesh and waits until it is in force on both proxies:
/// mesh traffic flows, and backend's inbound takes plaintext exactly when
/// mTLS is off; then past the proxies' listener drain (kuma-dp
/// `--drain-time=1s` in the harness), so the switch itself is not measured.
async fn switch(cp: &ControlPlane, pair: &SidecarPair, mode: Mode) -> BenchResult<()> {
    let mesh = match mode {
        Mode::Plaintext => json!({"type": "Mesh", "name": MESH}),
        Mode::Mtls => mtls_mesh("STRICT", ""),
    };
    cp.put(&format!("/meshes/{MESH}"), &mesh).await;
    let client = traffic::client(Connections::PerRequest, Duration::from_secs(3));
    let deadline = Instant::now() + SWITCH;
    let mut settled = 0;
    while settled < 5 {
        if Instant::now() > deadline {
            return Err(format!("the mesh did not switch to {mode:?} in {SWITCH:?}"));
        }
        let through = traffic::request(&client, pair.web_outbound).await;
        let direct = traffic::request(&client, pair.backend_inbound).await;
        let plaintext_taken = direct.is_ok("backend-1");
        if through.is_ok("backend-1") && plaintext_taken == (mode == Mode::Plaintext) {
            settled += 1;
        } else {
            settled = 0;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

async fn run(options: Options, binaries: &Binaries) -> BenchResult<()> {
    let cp = ControlPlane::start(binaries).await;
    let pair = SidecarPair::start(binaries, &cp).await;
    let loads = [
        Load {
            label: "sequential",
            workers: 1,
        },
        Load {
            label: "concurrent",
            workers: options.concurrency,
        },
    ];
    let per_round = options.requests.div_ceil(options.rounds);
    let mut direct = vec![Samples::default(); loads.len()];
    let mut plain = vec![Samples::default(); loads.len()];
    let mut mtls = vec![Samples::default(); loads.len()];
    for round in 0..options.rounds {
        // Alternate which mode goes first, so neither always follows a switch.
        let order = if round % 2 == 0 {
            [Mode::Plaintext, Mode::Mtls]
        } else {
            [Mode::Mtls, Mode::Plaintext]
        };
        for mode in order {
            switch(&cp, &pair, mode).await?;
            for (i, load) in loads.iter().enumerate() {
                let samples = measure(pair.web_outbound, load.workers, per_round).await?;
                match mode {
                    Mode::Plaintext => plain[i].add(samples),
                    Mode::Mtls => mtls[i].add(samples),
                }
            }
        }
        for (i, load) in loads.iter().enumerate() {
            direct[i].add(measure(pair.backend_app_port, load.workers, per_round).await?);
        }
    }
    for (i, load) in loads.iter().enumerate() {
        print_mode("direct", *load, &direct[i]);
        print_mode(Mode::Plaintext.label(), *load, &plain[i]);
        print_mode(Mode::Mtls.label(), *load, &mtls[i]);
        print_cost(*load, &plain[i], &mtls[i]);
    }
    Ok(())
}

/// Ends the run on SIGINT or SIGTERM so that every process it started is
/// dropped, hence stopped (each kuma-dp runs in its own process group).
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
        r = run(options, binaries) => r,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_samples(ms: &[u64], elapsed_ms: u64) -> Samples {
        Samples {
            latencies: ms.iter().map(|m| Duration::from_millis(*m)).collect(),
            elapsed: Duration::from_millis(elapsed_ms),
            ..Samples::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = mk_samples(&(1..=100).rev().collect::<Vec<_>>(), 1000);
        assert_eq!(s.percentile(50.0), Duration::from_millis(50));
        assert_eq!(s.percentile(99.0), Duration::from_millis(99));
        assert_eq!(s.percentile(100.0), Duration::from_millis(100));
        assert_eq!(s.rps(), 100.0);
        assert_eq!(Samples::default().percentile(50.0), Duration::ZERO);
    }

    #[test]
    fn rounds_add_up() {
        let mut total = mk_samples(&[1, 2], 10);
        let mut failing = mk_samples(&[3], 5);
        failing.failed = 2;
        failing.first_failure = Some("503".into());
        total.add(failing);
        total.add(Samples {
            failed: 1,
            first_failure: Some("reset".into()),
            ..Samples::default()
        });
        assert_eq!(total.latencies.len(), 3);
        assert_eq!(total.elapsed, Duration::from_millis(15));
        assert_eq!(total.failed, 3);
        assert_eq!(total.first_failure.as_deref(), Some("503"));
    }

    #[test]
    fn options_parse_and_refuse_nonsense() {
        let parse = |args: &[&str]| Options::parse(args.iter().map(|a| a.to_string()));
        assert_eq!(
            parse(&[]).unwrap(),
            Options {
                requests: 4000,
                concurrency: 4,
                rounds: 4
            }
        );
        let o = parse(&["--requests", "10", "--concurrency", "2", "--rounds", "1"]).unwrap();
        assert_eq!((o.requests, o.concurrency, o.rounds), (10, 2, 1));
        assert!(parse(&["--requests", "0"]).is_err());
        assert!(parse(&["--requests"]).is_err());
        assert!(parse(&["--what", "1"]).is_err());
    }
}
