//! Finding the Envoy binary and checking that we support its version.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

mod process;

pub use process::{EnvoyProcess, Exit, Launch};

/// The Envoy releases this kuma-dp is built and tested against: every
/// patch release of these `major.minor` lines. The one place to widen support.
pub const SUPPORTED_ENVOY: &[(u64, u64)] = &[(1, 40)];

/// Where `scripts/install-envoy` puts Envoy unless told otherwise.
pub const ENVOY_HOME_ENV: &str = "KUMA_ENVOY_HOME";

/// What `envoy --version` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyVersion {
    /// `1.40.0`.
    pub version: String,
    /// Everything after `version: `, e.g. `<sha>/1.40.0/Clean/RELEASE/BoringSSL`.
    pub build: String,
}

/// Parses the line Envoy prints for `--version`:
/// `envoy  version: 9e55.../1.40.0/Clean/RELEASE/BoringSSL`.
pub fn parse_version(output: &str) -> Option<EnvoyVersion> {
    let line = output.lines().find(|l| l.contains("version:"))?;
    let build = line.split_once("version:")?.1.trim();
    let version = build.split('/').nth(1)?.trim();
    let mut parts = version.split('.');
    let all_numeric = (0..3).all(|_| parts.next().is_some_and(|p| p.parse::<u64>().is_ok()));
    if !all_numeric {
        return None;
    }
    Some(EnvoyVersion {
        version: version.to_string(),
        build: build.to_string(),
    })
}

pub fn is_supported(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => SUPPORTED_ENVOY.contains(&(major, minor)),
        _ => false,
    }
}

fn supported_list() -> String {
    SUPPORTED_ENVOY
        .iter()
        .map(|(major, minor)| format!("{major}.{minor}.x"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses an Envoy version we do not support, naming the supported ones.
pub fn check_supported(v: &EnvoyVersion, binary: &Path) -> anyhow::Result<()> {
    if !is_supported(&v.version) {
        bail!(
            "Envoy {} at {} is not supported by this kuma-dp (supported: {}); \
             install a supported one with scripts/install-envoy or point --binary-path at it",
            v.version,
            binary.display(),
            supported_list()
        );
    }
    Ok(())
}

/// Where to look for Envoy, in order: `--binary-path` (a bare name is looked
/// up on `PATH`), `envoy` on `PATH`, then `$KUMA_ENVOY_HOME/bin/envoy`
/// (default `~/.kuma/envoy`). Inputs are passed in so tests need no process state.
pub fn locate(
    explicit: Option<&Path>,
    path_var: Option<&str>,
    envoy_home: Option<&Path>,
    home: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let on_path = |name: &str| -> Option<PathBuf> {
        std::env::split_paths(path_var?)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    };
    if let Some(explicit) = explicit {
        let is_bare_name = explicit.components().count() == 1 && !explicit.is_absolute();
        if is_bare_name && let Some(found) = explicit.to_str().and_then(on_path) {
            return Ok(found);
        }
        if is_executable(explicit) {
            return Ok(explicit.to_path_buf());
        }
        bail!(
            "Envoy binary {} given by --binary-path does not exist or is not executable",
            explicit.display()
        );
    }
    if let Some(found) = on_path("envoy") {
        return Ok(found);
    }
    let home_dir = envoy_home
        .map(Path::to_path_buf)
        .or_else(|| home.map(|h| h.join(".kuma/envoy")));
    if let Some(dir) = home_dir {
        let candidate = dir.join("bin/envoy");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!(
        "could not find Envoy: not given by --binary-path, no `envoy` on PATH, none in \
         ${ENVOY_HOME_ENV}/bin or ~/.kuma/envoy/bin; install it with scripts/install-envoy"
    )
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `envoy --version`.
pub async fn version_of(binary: &Path) -> anyhow::Result<EnvoyVersion> {
    let output = tokio::process::Command::new(binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("could not run {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(&text).with_context(|| {
        format!(
            "could not read the version of {} from {:?}",
            binary.display(),
            text.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_of_envoy_1_40_parses() {
        let out = "\n/root/.kuma/envoy/bin/envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n\n";
        let v = parse_version(out).unwrap();
        assert_eq!(v.version, "1.40.0");
        assert_eq!(
            v.build,
            "9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL"
        );
    }

    #[test]
    fn garbage_is_not_a_version() {
        assert_eq!(parse_version("hello"), None);
        assert_eq!(parse_version("envoy version: abc/one.two/x"), None);
    }

    #[test]
    fn only_the_supported_line_is_accepted() {
        assert!(is_supported("1.40.0"));
        assert!(is_supported("1.40.7"));
        assert!(!is_supported("1.39.2"));
        assert!(!is_supported("1.41.0"));
        assert!(!is_supported("2.40.0"));
        assert!(!is_supported("x"));
    }

    #[test]
    fn unsupported_version_message_names_the_supported_line() {
        let v = EnvoyVersion {
            version: "1.30.1".into(),
            build: "x/1.30.1/Clean".into(),
        };
        let err = check_supported(&v, Path::new("/opt/envoy")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Envoy 1.30.1"), "{text}");
        assert!(text.contains("1.40.x"), "{text}");
    }

    fn fake_envoy(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir).unwrap();
        let bin = dir.join("envoy");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn lookup_order_is_flag_then_path_then_envoy_home() {
        let tmp = tempfile::tempdir().unwrap();
        let on_path = fake_envoy(&tmp.path().join("path"));
        let in_home = fake_envoy(&tmp.path().join("home/.kuma/envoy/bin"));
        let in_custom = fake_envoy(&tmp.path().join("custom/bin"));
        let path_var = tmp.path().join("path").display().to_string();
        let home = tmp.path().join("home");

        let explicit = locate(Some(&in_custom), Some(&path_var), None, Some(&home)).unwrap();
        assert_eq!(explicit, in_custom);
        let bare = locate(Some(Path::new("envoy")), Some(&path_var), None, None).unwrap();
        assert_eq!(bare, on_path);
        let from_path = locate(None, Some(&path_var), None, Some(&home)).unwrap();
        assert_eq!(from_path, on_path);
        let from_home = locate(None, Some("/nonexistent"), None, Some(&home)).unwrap();
        assert_eq!(from_home, in_home);
        let custom_home = tmp.path().join("custom");
        let from_env = locate(None, None, Some(&custom_home), Some(&home)).unwrap();
        assert_eq!(from_env, in_custom);
    }

    #[test]
    fn missing_envoy_tells_how_to_install_it() {
        let err = locate(
            None,
            Some("/nonexistent"),
            None,
            Some(Path::new("/nonexistent")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("scripts/install-envoy"), "{err}");
        let err = locate(Some(Path::new("/no/such/envoy")), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--binary-path"), "{err}");
    }
}
