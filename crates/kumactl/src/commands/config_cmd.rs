//! `kumactl config`: the control planes kumactl knows.

use anyhow::{anyhow, bail};

use super::{Io, Session};
use crate::cli::{AddControlPlaneArgs, ControlPlanesCommand};
use crate::client::ApiClient;
use crate::config::{ApiServer, Context, ControlPlane, Coordinates, Header};
use crate::table::Table;

pub fn view(session: &Session, io: &mut Io<'_>) -> anyhow::Result<()> {
    // Kuma prints the YAML followed by an empty line.
    writeln!(io.stdout, "{}", session.config.to_yaml()?)?;
    Ok(())
}

pub fn control_planes(
    session: &mut Session,
    command: ControlPlanesCommand,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    match command {
        ControlPlanesCommand::Add(args) => add(session, &args, io),
        ControlPlanesCommand::List => list(session, io),
        ControlPlanesCommand::Switch { name } => {
            if !session.config.switch_context(&name) {
                bail!("there is no Control Plane with name {name:?}");
            }
            session.save()?;
            writeln!(io.stdout, "switched active Control Plane to {name:?}")?;
            Ok(())
        }
        ControlPlanesCommand::Remove { name } => {
            if !session.config.remove_control_plane(&name) {
                bail!("there is no Control Plane with name {name:?}");
            }
            session.save()?;
            writeln!(io.stdout, "removed Control Plane {name:?}")?;
            match session.config.current() {
                Some(ctx) => writeln!(
                    io.stdout,
                    "switched active Control Plane to {:?}",
                    ctx.control_plane
                )?,
                None => writeln!(
                    io.stdout,
                    "there is no active Control Plane left. Use `kumactl config control-planes add` to add a Control Plane and make it active"
                )?,
            }
            Ok(())
        }
    }
}

fn list(session: &Session, io: &mut Io<'_>) -> anyhow::Result<()> {
    let active = session.config.current().map(|c| c.control_plane.as_str());
    let mut table = Table::new(&["ACTIVE", "NAME", "ADDRESS"]);
    for cp in &session.config.control_planes {
        table.row(vec![
            if active == Some(cp.name.as_str()) {
                "*"
            } else {
                ""
            }
            .into(),
            cp.name.clone(),
            cp.coordinates.api_server.url.clone(),
        ]);
    }
    io.stdout.write_all(table.render().as_bytes())?;
    Ok(())
}

fn add(session: &mut Session, args: &AddControlPlaneArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let server = api_server(args)?;
    if !args.skip_check {
        check_reachable(&server, session.api_timeout)?;
    }
    let cp = ControlPlane {
        coordinates: Coordinates { api_server: server },
        name: args.name.clone(),
    };
    if !session.config.add_control_plane(cp, args.overwrite) {
        bail!(
            "Control Plane with name {:?} already exists. Use --overwrite to replace an existing one.",
            args.name
        );
    }
    let ctx = Context {
        control_plane: args.name.clone(),
        defaults: None,
        name: args.name.clone(),
    };
    if !session.config.add_context(ctx, args.overwrite) {
        bail!("Context with name {:?} already exists", args.name);
    }
    session.config.current_context = args.name.clone();
    session.save()?;
    writeln!(io.stdout, "added Control Plane {:?}", args.name)?;
    writeln!(
        io.stdout,
        "switched active Control Plane to {:?}",
        args.name
    )?;
    Ok(())
}

/// The coordinates to store, checked the way Kuma checks them.
fn api_server(args: &AddControlPlaneArgs) -> anyhow::Result<ApiServer> {
    let url = url::Url::parse(&args.address)
        .map_err(|e| anyhow!("API Server URL is invalid: parse {:?}: {e}", args.address))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "API Server URL is invalid: unsupported scheme {:?}",
            url.scheme()
        );
    }
    if args.client_cert_file.is_empty() != args.client_key_file.is_empty() {
        bail!("Both --client-cert-file and --client-key-file needs to be specified");
    }
    if !args.auth_type.is_empty() {
        if args.auth_type != "tokens" {
            bail!(
                "authentication plugin of type {:?} is not found",
                args.auth_type
            );
        }
        if !args.auth_conf.iter().any(|(k, _)| k == "token") {
            bail!("--auth-conf is not valid: provide token=YOUR_TOKEN");
        }
    }
    // Sorted so the file is stable whatever order the flags came in.
    let mut headers: Vec<Header> = args
        .headers
        .iter()
        .map(|(key, value)| Header {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    headers.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(ApiServer {
        auth_conf: args.auth_conf.iter().cloned().collect(),
        auth_type: args.auth_type.clone(),
        ca_cert_file: args.ca_cert_file.clone(),
        client_cert_file: args.client_cert_file.clone(),
        client_key_file: args.client_key_file.clone(),
        headers,
        skip_verify: args.skip_verify,
        url: args.address.clone(),
    })
}

/// `GET /` must answer as a Kuma control plane.
fn check_reachable(server: &ApiServer, timeout: std::time::Duration) -> anyhow::Result<()> {
    let timeout = (!timeout.is_zero()).then_some(timeout);
    let info = ApiClient::new(server, timeout)
        .and_then(|c| c.index())
        .map_err(|e| anyhow!("could not connect to the Control Plane API Server: {e}"))?;
    if !info.product.is_empty() && info.product != "Kuma" {
        bail!(
            "this CLI is for Kuma but the control plane you're connected to is {}. Please use the CLI for your control plane",
            info.product
        );
    }
    Ok(())
}
