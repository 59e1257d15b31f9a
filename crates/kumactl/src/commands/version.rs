//! `kumactl version`: this client's version and, when reachable, the server's.

use super::{Io, Session};
use crate::cli::VersionArgs;

const PRODUCT: &str = "Kuma";
const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(session: &Session, args: &VersionArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    if args.detailed {
        writeln!(io.stdout, "Product:    {PRODUCT}\nVersion:    {VERSION}")?;
    } else {
        writeln!(io.stdout, "Client: {PRODUCT} {VERSION}")?;
    }
    let server = session
        .client()
        .and_then(|c| c.index().map_err(anyhow::Error::from));
    match server {
        Ok(info) if args.detailed => {
            let mut all = info.rest.clone();
            all.insert("product".into(), info.product.clone().into());
            all.insert("version".into(), info.version.clone().into());
            let text = serde_json::to_string_pretty(&all)?;
            writeln!(io.stdout, "Server: {text}")?;
        }
        Ok(info) => writeln!(io.stdout, "Server: {} {}", info.product, info.version)?,
        // The client's version is still worth printing: not an error.
        Err(e) => writeln!(io.stderr, "Unable to connect to control plane: {e:#}")?,
    }
    Ok(())
}
