//! `kumactl generate dataplane-token` and `kumactl generate user-token`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{Io, Session};
use crate::client::{DataplaneTokenRequest, UserTokenRequest};

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Generate Dataplane Token that is used to prove Dataplane identity
    #[command(
        name = "dataplane-token",
        after_help = "Examples:\n  kumactl generate dataplane-token --mesh demo --name demo-01 --valid-for 24h\n  kumactl generate dataplane-token --mesh demo --tag kuma.io/service=web,web-api --valid-for 24h"
    )]
    DataplaneToken(DataplaneTokenArgs),
    /// Generate User Token that is used to prove User identity
    #[command(
        name = "user-token",
        after_help = "Examples:\n  kumactl generate user-token --name john.doe@example.com --group users --valid-for 24h"
    )]
    UserToken(UserTokenArgs),
}

#[derive(Debug, Args)]
pub struct UserTokenArgs {
    /// name of the user
    #[arg(long, required = true)]
    pub name: String,
    /// group of the user (repeat or separate by comma for several)
    #[arg(long = "group", value_delimiter = ',')]
    pub groups: Vec<String>,
    /// how long the token will be valid (for example "24h")
    #[arg(long, required = true, value_parser = valid_for)]
    pub valid_for: String,
}

#[derive(Debug, Args)]
pub struct DataplaneTokenArgs {
    /// name of the Dataplane
    #[arg(long, required = true)]
    pub name: String,
    /// mesh to use
    #[arg(short, long, default_value = "default")]
    pub mesh: String,
    /// type of the Dataplane ("dataplane", "ingress")
    #[arg(long = "proxy-type", visible_alias = "type", default_value = "")]
    pub proxy_type: String,
    /// required tag values for dataplane (split values by comma to provide multiple values)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// how long the token will be valid (for example "24h")
    #[arg(long, required = true, value_parser = valid_for)]
    pub valid_for: String,
}

/// Keeps the user's Go duration text (the control plane parses it) after
/// checking that it is one.
fn valid_for(s: &str) -> Result<String, String> {
    crate::cli::parse_duration(s)?;
    Ok(s.trim().to_string())
}

/// `--tag k=v1,v2 --tag k2=v` into `{k: [v1, v2], k2: [v]}`. As Kuma's flag
/// parsing does, a comma-separated part without `=` is one more value of the
/// key before it.
pub fn parse_tags(flags: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for flag in flags {
        let mut current: Option<String> = None;
        for part in flag.split(',') {
            match part.split_once('=') {
                Some((key, value)) => {
                    tags.entry(key.to_string())
                        .or_default()
                        .push(value.to_string());
                    current = Some(key.to_string());
                }
                None => {
                    let key = current.as_ref().with_context(|| {
                        format!("--tag {flag:?} must be formatted as key=value")
                    })?;
                    tags.entry(key.clone()).or_default().push(part.to_string());
                }
            }
        }
    }
    Ok(tags)
}

pub fn run(session: &Session, command: &GenerateCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        GenerateCommand::DataplaneToken(args) => {
            let request = DataplaneTokenRequest {
                name: args.name.clone(),
                mesh: args.mesh.clone(),
                tags: parse_tags(&args.tags)?,
                proxy_type: args.proxy_type.clone(),
                valid_for: args.valid_for.clone(),
            };
            let token = session
                .client()?
                .generate_dataplane_token(&request)
                .context("failed to generate a dataplane token")?;
            io.stdout.write_all(token.as_bytes())?;
            Ok(())
        }
        GenerateCommand::UserToken(args) => {
            let request = UserTokenRequest {
                name: args.name.clone(),
                groups: args.groups.clone(),
                valid_for: args.valid_for.clone(),
            };
            let token = session
                .client()?
                .generate_user_token(&request)
                .context("failed to generate a user token")?;
            io.stdout.write_all(token.as_bytes())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_take_several_values_like_kuma() {
        let tags = parse_tags(&[
            "kuma.io/service=web,web-api".to_string(),
            "version=v1".to_string(),
        ])
        .unwrap();
        assert_eq!(tags["kuma.io/service"], vec!["web", "web-api"]);
        assert_eq!(tags["version"], vec!["v1"]);
        assert!(parse_tags(&["novalue".to_string()]).is_err());
    }

    #[test]
    fn valid_for_must_be_a_duration() {
        assert_eq!(valid_for("24h"), Ok("24h".to_string()));
        assert!(valid_for("24").is_err());
    }
}
