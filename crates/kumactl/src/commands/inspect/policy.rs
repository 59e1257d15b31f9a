//! `kumactl inspect <policy-kind> NAME`: the data plane proxies a policy
//! selects, as Kuma's `--new-api` table (Type, Mesh, Name, then the total).

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use kuma_api::Kind;
use serde_json::Value;

use crate::client::ClientError;
use crate::commands::{Io, Session};
use crate::output::{self, Format};
use crate::table::Table;

#[derive(Debug, Parser)]
pub struct InspectPolicyArgs {
    /// Name of the policy
    pub name: String,
    /// mesh to use
    #[arg(short, long, default_value = "default")]
    pub mesh: String,
    /// output format: one of table|yaml|json
    #[arg(short, long, default_value = "table")]
    pub output: String,
    /// the offset for pagination
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// maximum number of elements to return
    #[arg(long)]
    pub size: Option<usize>,
    /// use the newer version of the inspect api (the only one served here)
    #[arg(long, hide = true)]
    pub new_api: bool,
}

/// The policy kind a kumactl user names (`meshtimeout`, `mt`, ...).
pub fn policy_kind(word: &str) -> Option<Kind> {
    Kind::from_cli(word).filter(|k| k.is_policy())
}

/// Runs `kumactl inspect WORD ARGS...` for a policy kind `WORD`.
pub fn run(session: &Session, words: &[String], io: &mut Io<'_>) -> anyhow::Result<()> {
    let Some((word, rest)) = words.split_first() else {
        bail!("a policy type is required");
    };
    let Some(kind) = policy_kind(word) else {
        bail!("unknown command {word:?} for \"kumactl inspect\"");
    };
    let bin = format!("kumactl inspect {}", kind.descriptor().cli_singular);
    let args = match InspectPolicyArgs::try_parse_from(std::iter::once(&bin).chain(rest)) {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help: print it like any other command's help.
            io.stdout.write_all(e.render().to_string().as_bytes())?;
            return Ok(());
        }
        Err(e) => bail!("{}", e.render().to_string().trim_end()),
    };
    let format: Format = args.output.parse().map_err(|e: String| anyhow!(e))?;
    let client = session.client()?;
    let page = match client.dataplanes_for_policy(
        kind,
        &args.mesh,
        &args.name,
        args.size,
        Some(args.offset),
    ) {
        Ok(page) => page,
        Err(ClientError::NotFound) => {
            bail!(
                "{} {} not found in mesh {}",
                kind.name(),
                args.name,
                args.mesh
            )
        }
        Err(e) => return Err(e).context("failed to inspect the policy"),
    };
    let text = match format {
        Format::Table => table(&page).render(),
        Format::Yaml => output::to_yaml(&page)?,
        Format::Json => output::to_json(&page)?,
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// Kuma's table: one row per Dataplane, the total in the footer.
pub fn table(page: &Value) -> Table {
    let mut table = Table::new(&["Type", "Mesh", "Name"]);
    for item in page["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let cell = |k: &str| item[k].as_str().unwrap_or_default().to_string();
        table.row(vec![cell("type"), cell("mesh"), cell("name")]);
    }
    table.footer = Some(format!("Total: {}", page["total"].as_u64().unwrap_or(0)));
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_kumas_table_with_the_total() {
        let page = json!({"total": 3, "items": [
            {"type": "Dataplane", "mesh": "default", "name": "foo", "labels": {}},
            {"type": "Dataplane", "mesh": "default", "name": "bar", "labels": {}},
            {"type": "Dataplane", "mesh": "default", "name": "baz", "labels": {}}
        ]});
        assert_eq!(
            table(&page).render(),
            "Type        Mesh      Name\nDataplane   default   foo\nDataplane   default   bar\nDataplane   default   baz\n\nTotal: 3\n"
        );
    }

    #[test]
    fn only_policy_kinds_are_inspected_this_way() {
        assert_eq!(policy_kind("mt"), Some(Kind::MeshTimeout));
        assert_eq!(
            policy_kind("meshtrafficpermission"),
            Some(Kind::MeshTrafficPermission)
        );
        assert_eq!(policy_kind("meshservice"), None);
        assert_eq!(policy_kind("nothing"), None);
    }
}
