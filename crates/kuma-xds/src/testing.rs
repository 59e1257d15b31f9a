//! Test support shared by this crate's tests and other crates' tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ProxyResources;

/// Each resource's encoded body by (type URL, name): what a proxy gets, to
/// compare byte for byte.
pub fn encoded(resources: &ProxyResources) -> BTreeMap<(String, String), Vec<u8>> {
    resources
        .by_type
        .iter()
        .flat_map(|(url, by_name)| {
            by_name
                .iter()
                .map(move |(name, r)| ((url.clone(), name.clone()), r.body.value.clone()))
        })
        .collect()
}

/// The Envoy binary tests run against: `ENVOY_BIN`, else `envoy` on the
/// PATH, else where `scripts/install-envoy` puts it
/// (`$KUMA_ENVOY_HOME/bin/envoy`, default `~/.kuma/envoy`), else the
/// workspace's `.venv`.
///
/// `None` when there is none, unless `KUMA_REQUIRE_ENVOY=1` (set by the
/// project's test command), where a missing Envoy fails the test instead of
/// letting it pass without checking anything.
pub fn envoy_binary() -> Option<PathBuf> {
    let found = find_envoy();
    if found.is_none() && std::env::var("KUMA_REQUIRE_ENVOY").as_deref() == Ok("1") {
        panic!("KUMA_REQUIRE_ENVOY=1 but no Envoy binary was found: run scripts/install-envoy");
    }
    if found.is_none() {
        eprintln!("NOTICE: no Envoy binary (ENVOY_BIN, PATH, ~/.kuma/envoy, .venv): check skipped");
    }
    found
}

fn find_envoy() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("envoy"));
    let envoy_home = std::env::var_os("KUMA_ENVOY_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kuma/envoy")))
        .map(|home| home.join("bin/envoy"));
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    on_path
        .chain(envoy_home)
        .chain([venv])
        .find(|p| p.is_file())
}
