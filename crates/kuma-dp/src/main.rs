//! kuma-dp: fetches the Envoy bootstrap from the control plane, runs Envoy
//! with it and supervises it until asked to stop.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

mod args;
mod bootstrap;
mod envoy;
mod signals;

use args::RunArgs;
use envoy::{EnvoyProcess, Exit};
use signals::Signals;

#[derive(Debug, Parser)]
#[command(
    name = "kuma-dp",
    about = "Dataplane manager for Envoy-based Service Mesh",
    version = bootstrap::KUMA_DP_VERSION
)]
struct Cli {
    /// log level
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Launch Dataplane (Envoy)
    Run(Box<RunArgs>),
    /// Print version
    Version,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Off,
    Info,
    Debug,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            cli.log_level.directive(),
        ))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Version => {
            println!("kuma-dp {}", bootstrap::KUMA_DP_VERSION);
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("Error: could not start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(*args, cli.log_level)) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("Error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(args: RunArgs, log_level: LogLevel) -> anyhow::Result<ExitCode> {
    // Before anything slow: a stop request while waiting for the control
    // plane must be honoured.
    let mut signals = Signals::install()?;

    let binary = locate_envoy(&args)?;
    let version = envoy::version_of(&binary).await?;
    envoy::check_supported(&version, &binary)?;
    tracing::info!(binary = %binary.display(), version = %version.version, "found Envoy");

    // Without --config-dir the bootstrap lives in a temporary directory that
    // goes away with kuma-dp.
    let temp_dir;
    let config_dir: PathBuf = match &args.config_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create --config-dir {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp_dir = tempfile::Builder::new()
                .prefix("kuma-dp-")
                .tempdir()
                .context("could not create a temporary config directory")?;
            temp_dir.path().to_path_buf()
        }
    };

    let loaded = args.load_files()?;
    let identity = args.identity(&loaded, &config_dir.display().to_string())?;
    tracing::info!(mesh = %identity.mesh, name = %identity.name, cp = %args.cp_address, "fetching the Envoy bootstrap");
    let request = bootstrap::build_request(&identity, &version);
    let ca = (!identity.ca_cert_pem.is_empty()).then_some(identity.ca_cert_pem.as_str());
    let client = bootstrap::BootstrapClient::new(&args.cp_address, ca)?;
    let retry = bootstrap::Retry {
        backoff: args.cp_retry_backoff,
        max_duration: args.cp_retry_max_duration,
    };
    let Some(mut config) = bootstrap::fetch(&client, &request, retry, &mut signals).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(port) = args.admin_port {
        config = bootstrap::set_admin_port(&config, port)?;
    }
    let bootstrap_file = config_dir.join("bootstrap.yaml");
    std::fs::write(&bootstrap_file, &config)
        .with_context(|| format!("could not write {}", bootstrap_file.display()))?;
    tracing::info!(file = %bootstrap_file.display(), "wrote the Envoy bootstrap");

    let launch = envoy::Launch {
        binary,
        bootstrap_file,
        admin_address_file: config_dir.join("admin-address"),
        drain_time: args.drain_time,
        log_level: args
            .envoy_log_level
            .clone()
            .unwrap_or_else(|| log_level.directive().to_string()),
        component_log_level: args.envoy_component_log_level.clone(),
        concurrency: args.concurrency,
    };
    let exit = EnvoyProcess::spawn(launch)?.supervise(&mut signals).await?;
    Ok(match exit {
        Exit::Requested(status) => {
            tracing::info!("Envoy stopped ({status})");
            exit_code(status, 0)
        }
        Exit::Unexpected(status) => {
            tracing::error!("Envoy exited unexpectedly ({status}); stopping kuma-dp");
            eprintln!("Error: Envoy exited unexpectedly ({status})");
            // Whatever Envoy said, an unrequested exit is a failure.
            exit_code(status, 1)
        }
    })
}

fn locate_envoy(args: &RunArgs) -> anyhow::Result<PathBuf> {
    let path_var = std::env::var("PATH").ok();
    let envoy_home = std::env::var_os(envoy::ENVOY_HOME_ENV).map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    envoy::locate(
        args.binary_path.as_deref(),
        path_var.as_deref(),
        envoy_home.as_deref(),
        home.as_deref(),
    )
}

/// Envoy's exit code, or 128+signal when a signal ended it; `floor` is what
/// a zero status becomes.
fn exit_code(status: std::process::ExitStatus, floor: u8) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    };
    ExitCode::from(if code == 0 { floor } else { code })
}
