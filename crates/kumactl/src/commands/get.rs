//! `kumactl get <type> [NAME]`.

use anyhow::{anyhow, bail};
use kuma_api::{Kind, Scope};

use super::{Io, Session};
use crate::cli::GetArgs;
use crate::client::ClientError;
use crate::output::{self, Format};

/// Whether the user's spelling of a kind names one resource, a list, or
/// either (short names and type names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    One,
    List,
    Either,
}

/// Resolves a kind as `get` and `delete` accept it.
pub fn resolve(arg: &str) -> Option<(Kind, Arity)> {
    let kind = Kind::from_cli(arg)?;
    let d = kind.descriptor();
    // Exact spellings only: `MeshTimeout` or `mt` may mean either.
    let arity = if arg == d.cli_singular {
        Arity::One
    } else if arg == d.cli_plural || arg == d.plural {
        Arity::List
    } else {
        Arity::Either
    };
    Some((kind, arity))
}

pub fn run(session: &Session, args: &GetArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let Some((kind, arity)) = resolve(&args.kind) else {
        bail!(
            "unknown command {:?} for \"kumactl get\"\nRun 'kumactl get --help' for usage.",
            args.kind
        );
    };
    let format: Format = args.output.parse().map_err(|e: String| anyhow!(e))?;
    match (arity, &args.name) {
        (Arity::One, None) => bail!("accepts 1 arg(s), received 0"),
        (Arity::List, Some(_)) => bail!("accepts 0 arg(s), received 1"),
        (_, Some(name)) => get_one(session, kind, name, &args.mesh, format, io),
        (_, None) => get_list(session, kind, args, format, io),
    }
}

fn get_one(
    session: &Session,
    kind: Kind,
    name: &str,
    mesh: &str,
    format: Format,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let client = session.client()?;
    let item = match client.get(kind, mesh, name) {
        Ok(item) => item,
        Err(ClientError::NotFound) => match kind.scope() {
            Scope::Global => bail!("No resources found"),
            Scope::Mesh => bail!("No resources found in {mesh} mesh"),
        },
        Err(e) => match kind.scope() {
            Scope::Global => bail!("failed to get {name}: {e}"),
            Scope::Mesh => bail!("failed to get {name} in mesh {mesh}: {e}"),
        },
    };
    let text = match format {
        Format::Table => {
            output::list_table(kind, std::slice::from_ref(&item), None, session.now).render()
        }
        Format::Yaml => output::to_yaml(&item)?,
        Format::Json => output::to_json(&item)?,
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(())
}

fn get_list(
    session: &Session,
    kind: Kind,
    args: &GetArgs,
    format: Format,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let client = session.client()?;
    // With --size or --offset the user pages by hand; otherwise every page is fetched.
    let paged = args.size.is_some() || args.offset.is_some();
    let page = if paged {
        client.list_page(kind, &args.mesh, args.size, args.offset.as_deref())
    } else {
        client.list_all(kind, &args.mesh)
    }
    .map_err(|e| anyhow!("failed to list {}: {e}", kind.name()))?;
    let text = match format {
        Format::Table => {
            let next_offset = page.next.as_deref().and_then(offset_of);
            output::list_table(kind, &page.items, next_offset.as_deref(), session.now).render()
        }
        Format::Yaml => output::to_yaml(&output::list_value(&page))?,
        Format::Json => output::to_json(&output::list_value(&page))?,
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// The `offset` query parameter of a `next` link.
fn offset_of(next: &str) -> Option<String> {
    let base = url::Url::parse("http://localhost/").ok()?;
    let url = base.join(next).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "offset")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_plural_and_short_names_resolve_with_their_arity() {
        assert_eq!(resolve("mesh"), Some((Kind::Mesh, Arity::One)));
        assert_eq!(resolve("meshes"), Some((Kind::Mesh, Arity::List)));
        assert_eq!(
            resolve("mtp"),
            Some((Kind::MeshTrafficPermission, Arity::Either))
        );
        assert_eq!(
            resolve("MeshTimeout"),
            Some((Kind::MeshTimeout, Arity::Either))
        );
        assert_eq!(
            resolve("zone-ingresses"),
            Some((Kind::ZoneIngress, Arity::List))
        );
        assert_eq!(
            resolve("zoneingresses"),
            Some((Kind::ZoneIngress, Arity::List))
        );
        assert_eq!(resolve("bogus"), None);
    }

    #[test]
    fn next_links_give_the_offset_to_resume_from() {
        assert_eq!(
            offset_of("http://cp:5681/meshes/default/meshtimeouts?offset=10&size=10"),
            Some("10".to_string())
        );
        assert_eq!(offset_of("/meshes?size=1"), None);
    }
}
