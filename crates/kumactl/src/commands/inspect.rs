//! `kumactl inspect dataplanes`, `kumactl inspect dataplane NAME` (the
//! policies that apply to it, or its Envoy config) and
//! `kumactl inspect <policy-kind> NAME` (the proxies a policy selects).

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{Io, Session};
use crate::client::ClientError;
use crate::output::{self, Format};

mod overview;
mod policy;
mod rules;

pub use overview::dataplanes_table;

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Inspect Dataplanes
    Dataplanes(InspectDataplanesArgs),
    /// Inspect Dataplane
    Dataplane(InspectDataplaneArgs),
    /// Inspect a policy: `kumactl inspect meshtimeout NAME` lists the data
    /// plane proxies it selects (every policy kind, see `kumactl inspect --help`)
    #[command(external_subcommand)]
    Policy(Vec<String>),
}

#[derive(Debug, Args)]
pub struct InspectDataplanesArgs {
    /// mesh to use
    #[arg(short, long, default_value = "default")]
    pub mesh: String,
    /// output format: one of table|yaml|json
    #[arg(short, long, default_value = "table")]
    pub output: String,
}

#[derive(Debug, Args)]
pub struct InspectDataplaneArgs {
    /// Name of the Dataplane
    pub name: String,
    /// mesh to use
    #[arg(short, long, default_value = "default")]
    pub mesh: String,
    /// inspection type: one of policies|config-dump|stats|clusters|config
    #[arg(long = "type", default_value = "policies")]
    pub inspection_type: String,
    /// if set then the command returns envoy config dump for provided dataplane
    #[arg(long, hide = true)]
    pub config_dump: bool,
    /// output format of --type=policies: one of table|yaml|json
    #[arg(short, long, default_value = "table")]
    pub output: String,
}

pub fn run(session: &Session, command: &InspectCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        InspectCommand::Dataplanes(args) => dataplanes(session, args, io),
        InspectCommand::Dataplane(args) => dataplane(session, args, io),
        InspectCommand::Policy(words) => policy::run(session, words, io),
    }
}

fn dataplanes(
    session: &Session,
    args: &InspectDataplanesArgs,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let format: Format = args.output.parse().map_err(|e: String| anyhow!(e))?;
    let items = session.client()?.dataplane_overviews(&args.mesh)?;
    let text = match format {
        Format::Table => dataplanes_table(&items, session.now).render(),
        Format::Yaml | Format::Json => {
            let list = json!({ "total": items.len(), "items": items, "next": null });
            if format == Format::Yaml {
                output::to_yaml(&list)?
            } else {
                output::to_json(&list)?
            }
        }
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(())
}

fn dataplane(
    session: &Session,
    args: &InspectDataplaneArgs,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let kind = if args.config_dump {
        "config-dump"
    } else {
        args.inspection_type.as_str()
    };
    match kind {
        "config-dump" => {}
        "policies" => return dataplane_policies(session, args, io),
        "stats" | "clusters" | "config" => {
            bail!("inspection type {kind:?} is not supported yet; use --type=config-dump")
        }
        other => bail!("invalid inspection type {other:?}"),
    }
    let dump = match session.client()?.dataplane_xds(&args.mesh, &args.name) {
        Ok(dump) => dump,
        Err(ClientError::NotFound) => {
            bail!("Dataplane {} not found in mesh {}", args.name, args.mesh)
        }
        Err(e) => return Err(e).context("failed to get the config dump"),
    };
    io.stdout.write_all(dump.as_bytes())?;
    Ok(())
}

/// The rules of every policy kind that applies to the proxy: a tree, or
/// the API's `_rules` answer as YAML/JSON.
fn dataplane_policies(
    session: &Session,
    args: &InspectDataplaneArgs,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let format: Format = args.output.parse().map_err(|e: String| anyhow!(e))?;
    let response = match session.client()?.dataplane_rules(&args.mesh, &args.name) {
        Ok(response) => response,
        Err(ClientError::NotFound) => {
            bail!("Dataplane {} not found in mesh {}", args.name, args.mesh)
        }
        Err(e) => return Err(e).context("failed to get the policies of the Dataplane"),
    };
    let text = match format {
        Format::Table => rules::render(&response),
        Format::Yaml => output::to_yaml(&response)?,
        Format::Json => output::to_json(&response)?,
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// Help text naming the policy kinds `kumactl inspect` takes.
pub fn policy_kinds_help() -> String {
    let kinds: Vec<&str> = kuma_api::Kind::ALL
        .iter()
        .filter(|k| k.is_policy())
        .map(|k| k.descriptor().cli_singular)
        .collect();
    format!(
        "Policies (`kumactl inspect <policy> NAME [-m MESH]` lists the data plane proxies a policy selects):\n  {}",
        kinds.join("\n  ")
    )
}
