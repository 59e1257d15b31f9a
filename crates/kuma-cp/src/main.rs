//! `kuma-cp run` and `kuma-cp migrate up`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kuma_cp::{Config, ControlPlane, ProcessEnv};

/// jemalloc rather than the system allocator: generating configuration
/// allocates many small, short-lived values, and with jemalloc it takes
/// about a fifth less CPU at the same memory per proxy (docs/benchmarks.md,
/// "Allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "kuma-cp",
    about = "Universal Control Plane for Envoy-based Service Mesh",
    version = "2.14.0"
)]
struct Cli {
    /// Log level.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Launch Control Plane.
    Run {
        /// Configuration file (YAML); KUMA_* environment variables override it.
        #[arg(short = 'c', long)]
        config_file: Option<PathBuf>,
    },
    /// Migrate database to which Control Plane is connected.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Apply the newest schema changes to the database.
    Up {
        /// Configuration file (YAML); KUMA_* environment variables override it.
        #[arg(short = 'c', long)]
        config_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            cli.log_level.directive(),
        ))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run { config_file } => run(load(config_file)?).await,
        Command::Migrate {
            command: MigrateCommand::Up { config_file },
        } => {
            let config = load(config_file)?;
            kuma_cp::store::migrate_up(&config).await?;
            tracing::info!("database migrated");
            Ok(())
        }
    }
}

fn load(file: Option<PathBuf>) -> anyhow::Result<Config> {
    let config = Config::from_sources(file.as_deref(), &ProcessEnv)
        .context("could not load the configuration")?;
    Ok(config)
}

async fn run(config: Config) -> anyhow::Result<()> {
    let cp = ControlPlane::start(config).await?;
    tracing::info!(address = %cp.api_address(), "control plane started");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    cp.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("could not listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
