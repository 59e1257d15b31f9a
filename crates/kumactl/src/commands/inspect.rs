//! `kumactl inspect dataplanes` and `kumactl inspect dataplane NAME`.

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{Io, Session};
use crate::client::ClientError;
use crate::output::{self, Format};

mod overview;

pub use overview::dataplanes_table;

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Inspect Dataplanes
    Dataplanes(InspectDataplanesArgs),
    /// Inspect Dataplane
    Dataplane(InspectDataplaneArgs),
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
}

pub fn run(session: &Session, command: &InspectCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        InspectCommand::Dataplanes(args) => dataplanes(session, args, io),
        InspectCommand::Dataplane(args) => dataplane(session, args, io),
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
        "policies" | "stats" | "clusters" | "config" => {
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
