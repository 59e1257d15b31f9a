//! `kumactl delete <type> NAME`.

use anyhow::bail;
use kuma_api::{Kind, Scope};

use super::{Io, Session};
use crate::cli::DeleteArgs;
use crate::client::ClientError;

pub fn run(session: &Session, args: &DeleteArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let Some(kind) = Kind::from_cli(&args.kind) else {
        bail!(
            "unknown TYPE: {}. Allowed values: {}",
            args.kind,
            allowed_types().join(", ")
        );
    };
    let client = session.client()?;
    let mesh = match kind.scope() {
        Scope::Mesh => args.mesh.as_str(),
        Scope::Global => "",
    };
    match client.delete(kind, mesh, &args.name) {
        Ok(()) => {}
        Err(ClientError::NotFound) => {
            bail!("there is no {} with name {:?}", kind.name(), args.name)
        }
        Err(e) => bail!(
            "failed to delete {} with the name {:?}: {e}",
            kind.name(),
            args.name
        ),
    }
    writeln!(io.stdout, "deleted {} {:?}", kind.name(), args.name)?;
    Ok(())
}

/// Every singular and short name, sorted, as Kuma lists them.
fn allowed_types() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Kind::ALL
        .iter()
        .flat_map(|k| {
            let d = k.descriptor();
            std::iter::once(d.cli_singular).chain(d.short_name)
        })
        .collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_types_come_from_the_registry_sorted() {
        let names = allowed_types();
        assert!(names.contains(&"mesh") && names.contains(&"mtp"));
        assert!(names.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            names.len(),
            Kind::ALL.len()
                + Kind::ALL
                    .iter()
                    .filter(|k| k.descriptor().short_name.is_some())
                    .count()
        );
    }
}
