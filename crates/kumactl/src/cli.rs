//! kumactl's command line: every command, flag and its help, in one place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use kuma_api::Kind;

use kuma_api::template::parse_var;

#[derive(Debug, Parser)]
#[command(
    name = "kumactl",
    about = "Management tool for Kuma",
    long_about = "Management tool for Kuma.",
    disable_version_flag = true
)]
pub struct Cli {
    /// path to the configuration file to use
    #[arg(long, global = true, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// context to use
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// log level: one of off|info|debug
    #[arg(long, global = true, default_value = "off", value_parser = ["off", "info", "debug"])]
    pub log_level: String,
    /// if set no config file and config directory will be created
    #[arg(long, global = true)]
    pub no_config: bool,
    /// the timeout for api calls. It includes connection time, any redirects, and reading the
    /// response body. A timeout of zero means no timeout
    #[arg(long, global = true, default_value = "1m", value_parser = parse_duration)]
    pub api_timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or modify Kuma resources
    Apply(ApplyArgs),
    /// Show Kuma resources
    Get(GetArgs),
    /// Delete Kuma resources
    Delete(DeleteArgs),
    /// Manage kumactl config
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Generate resources, tokens, etc
    Generate {
        #[command(subcommand)]
        command: crate::commands::generate::GenerateCommand,
    },
    /// Inspect Kuma resources
    Inspect {
        #[command(subcommand)]
        command: crate::commands::inspect::InspectCommand,
    },
    /// Print version
    Version(VersionArgs),
    /// Output shell completion code for bash, fish or zsh
    Completion {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kumactl apply -f resource.yaml\n  echo \"type: Mesh\nname: demo\" | kumactl apply -f -\n  kumactl apply -f resources/\n  kumactl apply -f dp.yaml --var address=10.0.0.1"
)]
pub struct ApplyArgs {
    /// Path to file or directory to apply (repeatable). When a directory is provided, all
    /// .yaml, .yml, and .json files are applied. Pass `-` to read from stdin
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<String>,
    /// Variable to replace in configuration, as key=value (repeatable)
    #[arg(short = 'v', long = "var", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Resolve variable and prints result out without actual applying
    #[arg(long)]
    pub dry_run: bool,
}

impl ApplyArgs {
    pub fn var_map(&self) -> BTreeMap<String, String> {
        self.vars.iter().cloned().collect()
    }
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Resource type, singular for one resource (`mesh NAME`), plural for a list (`meshes`)
    #[arg(value_name = "TYPE")]
    pub kind: String,
    /// Name of one resource
    pub name: Option<String>,
    /// mesh to use
    #[arg(short, long, default_value = "default")]
    pub mesh: String,
    /// output format: one of table|yaml|json
    #[arg(short, long, default_value = "table")]
    pub output: String,
    /// maximum number of elements to return
    #[arg(long)]
    pub size: Option<usize>,
    /// the offset that indicates starting element of the resources list to retrieve
    #[arg(long)]
    pub offset: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Resource type (singular)
    #[arg(value_name = "TYPE")]
    pub kind: String,
    /// Name of the resource
    pub name: String,
    /// mesh to use
    #[arg(short, long, default_value = "default")]
    pub mesh: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Manage known Control Planes
    #[command(name = "control-planes")]
    ControlPlanes {
        #[command(subcommand)]
        command: ControlPlanesCommand,
    },
    /// Show kumactl config
    View,
}

#[derive(Debug, Subcommand)]
pub enum ControlPlanesCommand {
    /// Add a Control Plane
    Add(AddControlPlaneArgs),
    /// List Control Planes
    List,
    /// Switch active Control Plane
    Switch {
        /// reference name for the Control Plane (required)
        #[arg(long, required = true)]
        name: String,
    },
    /// Remove a Control Plane
    Remove {
        /// reference name for the Control Plane (required)
        #[arg(long, required = true)]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AddControlPlaneArgs {
    /// reference name for the Control Plane (required)
    #[arg(long, required = true)]
    pub name: String,
    /// URL of the Control Plane API Server (required). Example: http://localhost:5681 or
    /// https://localhost:5682
    #[arg(long, required = true)]
    pub address: String,
    /// overwrite existing Control Plane with the same reference name
    #[arg(long)]
    pub overwrite: bool,
    /// path to the certificate of a client that is authorized to use the Admin operations of
    /// the Control Plane (kumactl stores only a reference to this file)
    #[arg(long, default_value = "")]
    pub client_cert_file: String,
    /// path to the certificate key of a client that is authorized to use the Admin operations
    /// of the Control Plane (kumactl stores only a reference to this file)
    #[arg(long, default_value = "")]
    pub client_key_file: String,
    /// path to the certificate authority which will be used to verify the Control Plane
    /// certificate (kumactl stores only a reference to this file)
    #[arg(long, default_value = "")]
    pub ca_cert_file: String,
    /// skip CA verification
    #[arg(long)]
    pub skip_verify: bool,
    /// add these headers while communicating to control plane, format key=value
    #[arg(long, value_parser = parse_var, value_delimiter = ',')]
    pub headers: Vec<(String, String)>,
    /// authentication type (for example: "tokens")
    #[arg(long, default_value = "")]
    pub auth_type: String,
    /// authentication configuration for defined authentication type format key=value
    #[arg(long, value_parser = parse_var, value_delimiter = ',')]
    pub auth_conf: Vec<(String, String)>,
    /// skip checking if we can connect to the CP
    #[arg(long)]
    pub skip_check: bool,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print detailed version
    #[arg(short = 'a', long)]
    pub detailed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Fish,
    Zsh,
}

/// The full command, with help listing every kind the registry knows.
pub fn command() -> clap::Command {
    let kinds = kinds_help();
    Cli::command()
        .mut_subcommand("get", |c| {
            c.after_help(format!("Available types:\n{kinds}"))
        })
        .mut_subcommand("delete", |c| {
            c.after_help(format!("Available types:\n{kinds}"))
        })
        .mut_subcommand("inspect", |c| {
            c.after_help(crate::commands::inspect::policy_kinds_help())
        })
}

pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// One line per kind: singular, plural and short name.
pub fn kinds_help() -> String {
    Kind::ALL
        .iter()
        .map(|k| {
            let d = k.descriptor();
            match d.short_name {
                Some(short) => format!("  {:<30} {:<32} ({short})\n", d.cli_singular, d.cli_plural),
                None => format!("  {:<30} {}\n", d.cli_singular, d.cli_plural),
            }
        })
        .collect()
}

/// Parses a Go-style duration (`1m`, `30s`, `1m30s`, `500ms`, `0`), the
/// spelling Kuma's `--api-timeout` takes.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    kuma_api::duration::parse_duration(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn help_lists_every_kind_from_the_registry() {
        let help = kinds_help();
        for kind in Kind::ALL {
            assert!(
                help.contains(kind.descriptor().cli_plural),
                "{kind} missing"
            );
        }
        assert!(help.contains("(mtp)"));
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn apply_takes_repeated_files_and_vars() {
        let cli = parse_from([
            "kumactl", "apply", "-f", "a.yaml", "-f", "-", "-v", "x=1", "--var", "y.z=2",
        ])
        .unwrap();
        let Command::Apply(args) = cli.command else {
            panic!("not apply")
        };
        assert_eq!(args.files, vec!["a.yaml", "-"]);
        assert_eq!(args.var_map().get("y.z").map(String::as_str), Some("2"));
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse_from([
            "kumactl",
            "get",
            "meshes",
            "--config-file",
            "/tmp/c",
            "--api-timeout",
            "5s",
        ])
        .unwrap();
        assert_eq!(cli.config_file, Some(PathBuf::from("/tmp/c")));
        assert_eq!(cli.api_timeout, Duration::from_secs(5));
    }
}
