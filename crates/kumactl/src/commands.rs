//! Running a parsed command line: load the configuration, pick the control
//! plane, dispatch to one command.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command, CompletionShell, ConfigCommand};
use crate::client::ApiClient;
use crate::config::Configuration;

mod apply;
mod config_cmd;
mod delete;
pub mod generate;
mod get;
pub mod inspect;
mod version;

/// Where a command reads and writes; tests pass buffers.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// What every command may need: the configuration and the global flags.
pub struct Session {
    pub cli_context: Option<String>,
    pub api_timeout: std::time::Duration,
    pub config: Configuration,
    /// `None` when nothing may be written (`--no-config`, no home directory).
    pub config_path: Option<PathBuf>,
    pub now: DateTime<Utc>,
}

const NO_ACTIVE: &str = "active Control Plane is not set. Use `kumactl config control-planes add` to add a Control Plane and make it active";
const BROKEN: &str = "apparently, configuration is broken. Use `kumactl config control-planes add` to add a Control Plane and make it active";

impl Session {
    /// Loads the configuration the way Kuma does: with no file yet, the
    /// default one (control plane `local`) is written and used.
    pub fn load(cli: &Cli) -> anyhow::Result<Session> {
        let mut session = Session {
            cli_context: cli.context.clone(),
            api_timeout: cli.api_timeout,
            config: Configuration::default_local(),
            config_path: None,
            now: Utc::now(),
        };
        if cli.no_config {
            return Ok(session);
        }
        let Some(path) = cli.config_file.clone().or_else(crate::config::default_path) else {
            return Ok(session);
        };
        if path.exists() {
            session.config = Configuration::load(&path)?;
        } else {
            session.config.save(&path)?;
        }
        session.config_path = Some(path);
        Ok(session)
    }

    pub fn save(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.config_path {
            self.config.save(path)?;
        }
        Ok(())
    }

    /// A client of the active control plane.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        if self.config.current_context.is_empty() {
            return Err(anyhow!(NO_ACTIVE));
        }
        let ctx = self.config.current().ok_or_else(|| anyhow!(BROKEN))?;
        // `--context` names the control plane to use instead, as in Kuma.
        let cp_name = self.cli_context.as_deref().unwrap_or(&ctx.control_plane);
        let cp = self
            .config
            .control_plane(cp_name)
            .ok_or_else(|| anyhow!(BROKEN))?;
        let timeout = (!self.api_timeout.is_zero()).then_some(self.api_timeout);
        ApiClient::new(&cp.coordinates.api_server, timeout)
            .with_context(|| format!("failed to create a client for Control Plane {:?}", cp.name))
    }
}

pub fn run(cli: Cli, io: &mut Io<'_>) -> anyhow::Result<()> {
    let mut session = Session::load(&cli)?;
    match cli.command {
        Command::Apply(args) => apply::run(&session, &args, io),
        Command::Get(args) => get::run(&session, &args, io),
        Command::Delete(args) => delete::run(&session, &args, io),
        Command::Config { command } => match command {
            ConfigCommand::View => config_cmd::view(&session, io),
            ConfigCommand::ControlPlanes { command } => {
                config_cmd::control_planes(&mut session, command, io)
            }
        },
        Command::Version(args) => version::run(&session, &args, io),
        Command::Generate { command } => generate::run(&session, &command, io),
        Command::Inspect { command } => inspect::run(&session, &command, io),
        Command::Completion { shell } => {
            completion(shell, io.stdout);
            Ok(())
        }
    }
}

fn completion(shell: CompletionShell, out: &mut dyn Write) {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Fish => clap_complete::Shell::Fish,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
    };
    let mut cmd = crate::cli::command();
    clap_complete::generate(shell, &mut cmd, "kumactl", out);
}
