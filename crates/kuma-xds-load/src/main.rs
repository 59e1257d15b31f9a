//! `kuma-xds-load`: simulated Envoy proxies against a running `kuma-cp`;
//! prints one line per scenario and exits 0 only if every proxy converged.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use kuma_xds_load::{LoadConfig, Scenario, XdsVariant};

#[derive(Debug, Parser)]
#[command(
    name = "kuma-xds-load",
    about = "Times config propagation to many simulated Envoy proxies"
)]
struct Args {
    /// The data plane server (ADS).
    #[arg(
        long,
        env = "KUMA_XDS_LOAD_CP_ADDRESS",
        default_value = "https://127.0.0.1:5678"
    )]
    cp_address: String,
    /// The API server.
    #[arg(
        long,
        env = "KUMA_XDS_LOAD_API_ADDRESS",
        default_value = "http://127.0.0.1:5681"
    )]
    api_address: String,
    /// Simulated proxies, one ADS stream each.
    #[arg(long, default_value_t = 1000)]
    proxies: u32,
    /// Services the proxies are spread over.
    #[arg(long, default_value_t = 100)]
    services: u32,
    /// Comma-separated: mesh-wide (a MeshTimeout for the whole mesh: every
    /// proxy's outbound clusters change), route (alias timeout: a MeshTimeout
    /// for calls to svc-0: its callers' clusters of it change), endpoint (one
    /// more instance of svc-1), all (those three), mesh-wide-endpoint (an
    /// instance of a service every proxy calls appears), churn, reconnect.
    /// Reconnect prints a line starting with `restart-control-plane` when
    /// whoever runs this must restart kuma-cp (same addresses and data).
    #[arg(long, default_value = "all")]
    scenario: String,
    /// kuma-cp's process id: its resident memory is read from /proc before
    /// and after the proxies connect, and printed per proxy.
    #[arg(long)]
    cp_pid: Option<u32>,
    /// Seconds the converged mesh idles before its memory is read.
    #[arg(long, default_value_t = 2)]
    settle_seconds: u64,
    /// Churn: endpoint changes (Dataplane adds and removals) per second.
    #[arg(long, default_value_t = 500)]
    churn_rate: u32,
    /// Churn: for how long.
    #[arg(long, default_value_t = 20)]
    churn_seconds: u64,
    /// Incremental xDS (the default, as kuma-dp configures Envoy).
    #[arg(long, conflicts_with = "sotw")]
    delta: bool,
    /// State-of-the-world xDS.
    #[arg(long)]
    sotw: bool,
    /// CA of the data plane server (kuma-cp writes it to <workDir>/dp-server/ca.crt).
    #[arg(long, env = "KUMA_XDS_LOAD_CA_CERT_FILE")]
    ca_cert_file: Option<std::path::PathBuf>,
    /// Do not request dataplane tokens (for a control plane with
    /// KUMA_DP_SERVER_AUTHN_DP_PROXY_TYPE=none).
    #[arg(long)]
    no_tokens: bool,
    /// The mesh to create; deleted first if present, and at the end.
    #[arg(long, default_value = "xds-load")]
    mesh: String,
    /// ADS streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    streams_per_connection: u32,
    /// Seconds a phase may take before stragglers count as not converged.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let Some(scenarios) = Scenario::parse(&args.scenario) else {
        bail!(
            "unknown scenario in {:?} (known: mesh-wide, route, timeout, endpoint, all, mesh-wide-endpoint, churn, reconnect)",
            args.scenario
        );
    };
    let mut config = LoadConfig::new(
        &args.cp_address,
        &args.api_address,
        args.proxies,
        args.services,
    );
    config.scenarios = scenarios;
    config.variant = if args.sotw {
        XdsVariant::Sotw
    } else {
        XdsVariant::Delta
    };
    config.tokens = !args.no_tokens;
    config.mesh = args.mesh;
    config.streams_per_connection = args.streams_per_connection;
    config.timeout = Duration::from_secs(args.timeout_seconds);
    config.cp_pid = args.cp_pid;
    config.settle = Duration::from_secs(args.settle_seconds);
    config.churn_rate = args.churn_rate;
    config.churn_seconds = args.churn_seconds;
    let (restart, mut restart_requests) = tokio::sync::mpsc::unbounded_channel();
    config.restart = Some(restart);
    // Whoever started us restarts the control plane on this line.
    tokio::spawn(async move {
        while restart_requests.recv().await.is_some() {
            println!("restart-control-plane: every proxy is converged; restart kuma-cp now");
        }
    });
    if let Some(path) = &args.ca_cert_file {
        config.ca_cert_pem = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read --ca-cert-file {}", path.display()))?,
        );
    }
    let report = kuma_xds_load::run(&config).await?;
    let variant = if args.sotw { "sotw" } else { "delta" };
    println!(
        "machine cores={} variant={variant} proxies={} services={} setup_s={:.2}",
        report.cores,
        report.proxies,
        report.services,
        report.setup.as_secs_f64()
    );
    if let Some(m) = &report.memory {
        println!("{}", m.line(report.proxies, report.services));
    }
    for r in std::iter::once(&report.connect).chain(&report.scenarios) {
        println!("{}", r.line(report.proxies, report.services));
        for p in &r.problems {
            eprintln!("  {}: {p}", r.name);
        }
    }
    match (report.cpu_seconds, report.cpu_share()) {
        (Some(cpu), Some(share)) => println!(
            "load-generator cpu_s={cpu:.2} wall_s={:.2} cpu_share={:.1}% of one core ({:.1}% of the machine)",
            report.wall.as_secs_f64(),
            share * 100.0,
            share * 100.0 / report.cores as f64
        ),
        _ => println!(
            "load-generator cpu_s=unknown wall_s={:.2}",
            report.wall.as_secs_f64()
        ),
    }
    if !report.all_converged() {
        bail!("not every proxy converged");
    }
    Ok(())
}
