//! The binaries under test: built once per test run from this workspace
//! (so a test never runs a stale kuma-dp), and the Envoy they drive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct Binaries {
    pub kuma_cp: PathBuf,
    pub kuma_dp: PathBuf,
    pub kumactl: PathBuf,
    pub envoy: PathBuf,
}

static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();

/// Builds kuma-cp, kuma-dp and kumactl (quick when up to date) and finds
/// Envoy. Panics with what to do when something is missing.
pub fn get() -> &'static Binaries {
    match BINARIES.get_or_init(build_and_locate) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn build_and_locate() -> Result<Binaries, String> {
    let envoy = locate_envoy()?;
    let bin_dir = match std::env::var_os("KUMA_E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(workspace_root())
                .args(["build", "-p", "kuma-cp", "-p", "kuma-dp", "-p", "kumactl"])
                .status()
                .map_err(|e| format!("could not run cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of the binaries failed ({status})"));
            }
            target_dir().join("debug")
        }
    };
    let find = |name: &str| {
        let path = bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{} was not built", path.display()))
        }
    };
    Ok(Binaries {
        kuma_cp: find("kuma-cp")?,
        kuma_dp: find("kuma-dp")?,
        kumactl: find("kumactl")?,
        envoy,
    })
}

/// The target directory this test binary was built into (`.../target/debug/deps/<test>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Envoy as kuma-dp finds it: `ENVOY_BIN`, `envoy` on PATH, then
/// `$KUMA_ENVOY_HOME/bin/envoy` (default `~/.kuma/envoy`).
fn locate_envoy() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        candidates.push(p.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("envoy")));
    }
    if let Some(home) = std::env::var_os("KUMA_ENVOY_HOME") {
        candidates.push(PathBuf::from(home).join("bin/envoy"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".kuma/envoy/bin/envoy"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "Envoy is not installed: run scripts/install-envoy (or set ENVOY_BIN) before the end-to-end tests"
            .to_string()
    })
}
