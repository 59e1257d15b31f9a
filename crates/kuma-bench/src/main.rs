//! Benchmarks against a running control plane.
//!
//! `kuma-bench api-writes` drives the REST API with concurrent clients, each
//! creating its own MeshTimeout policies, and prints throughput and latency.
//! `kuma-bench generation` times Envoy config generation in process (CPU time);
//! `kuma-bench generation-phase` runs one phase of it for an instruction counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod cpu;
mod generation;

/// The allocator kuma-cp runs with: `generation` times kuma-cp's own code,
/// and allocation is a good part of what generation costs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "kuma-bench", about = "Benchmarks of the control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Concurrent API writes: throughput and latency.
    ApiWrites(ApiWrites),
    /// CPU time to generate one proxy's config: cold, encode-only, after a change.
    Generation(generation::Args),
    /// One phase of the whole-mesh generation, once, for an instruction
    /// counter (see `scripts/bench instructions`).
    GenerationPhase(generation::phase::Args),
}

#[derive(clap::Args)]
struct ApiWrites {
    /// The control plane's REST API.
    #[arg(long, default_value = "http://127.0.0.1:5681")]
    api_address: String,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Writes in the measured phase, shared among the clients.
    #[arg(long, default_value_t = 20_000)]
    writes: usize,
    /// Writes before measuring (warms connections and the store).
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Mesh the policies are written into; created if missing.
    #[arg(long, default_value = "bench")]
    mesh: String,
    /// A word printed with the figures, e.g. the store type.
    #[arg(long, default_value = "")]
    label: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::ApiWrites(args) => api_writes(args).await,
        Command::Generation(args) => generation::run(args),
        Command::GenerationPhase(args) => generation::phase::run(args),
    }
}

async fn api_writes(args: ApiWrites) -> anyhow::Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let base = args.api_address.trim_end_matches('/').to_string();
    let setup = reqwest::Client::new();
    let mesh = serde_json::json!({"type": "Mesh", "name": args.mesh, "skipCreatingInitialPolicies": ["*"]});
    let resp = setup
        .put(format!("{base}/meshes/{}", args.mesh))
        .json(&mesh)
        .send()
        .await
        .with_context(|| format!("control plane at {base} does not answer"))?;
    if !resp.status().is_success() {
        bail!(
            "creating mesh {} failed: {} {}",
            args.mesh,
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }

    run_phase(&base, &args, "warmup", args.warmup).await?;
    let started = Instant::now();
    let mut latencies = run_phase(&base, &args, "run", args.writes).await?;
    let elapsed = started.elapsed();

    latencies.sort_unstable();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench=api-writes store={} clients={} writes={} writes_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} cores={}",
        if args.label.is_empty() {
            "-"
        } else {
            &args.label
        },
        args.clients,
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        cores,
    );

    let resp = setup
        .delete(format!("{base}/meshes/{}", args.mesh))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("deleting mesh {} failed: {}", args.mesh, resp.status());
    }
    Ok(())
}

/// Runs `writes` PUTs spread over the clients; returns every write's latency.
async fn run_phase(
    base: &str,
    args: &ApiWrites,
    phase: &str,
    writes: usize,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let next = next.clone();
        let url = format!("{base}/meshes/{}/meshtimeouts", args.mesh);
        let mesh = args.mesh.clone();
        let phase = phase.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= writes {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let name = format!("{phase}-{i}");
                let body = timeout_policy(&mesh, &name, i);
                let t = Instant::now();
                let resp = client
                    .put(format!("{url}/{name}"))
                    .json(&body)
                    .send()
                    .await?;
                let status = resp.status();
                // Read the body so the connection is reused.
                let text = resp.text().await?;
                latencies.push(t.elapsed());
                if !status.is_success() {
                    bail!("PUT {name} failed: {status} {text}");
                }
            }
        }));
    }
    let mut all = Vec::with_capacity(writes);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

fn timeout_policy(mesh: &str, name: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "type": "MeshTimeout",
        "mesh": mesh,
        "name": name,
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{
                "targetRef": {"kind": "MeshService", "name": format!("svc-{}", i % 1000)},
                "default": {"idleTimeout": "20s", "connectionTimeout": "2s",
                            "http": {"requestTimeout": "15s"}}
            }]
        }
    })
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
