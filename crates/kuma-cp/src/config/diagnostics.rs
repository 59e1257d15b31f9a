//! Settings of the diagnostics server (port 5680: `/healthy`, `/ready`,
//! `/metrics`), with Kuma's names and defaults.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, EnvSource, parse_num};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DiagnosticsConfig {
    /// 0 picks a free port (tests).
    pub server_port: u16,
    /// Not a Kuma setting (Kuma binds every interface); tests bind loopback.
    pub interface: String,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        Self {
            server_port: 5680,
            interface: "0.0.0.0".into(),
        }
    }
}

pub(super) fn apply_env(
    diagnostics: &mut DiagnosticsConfig,
    env: &(impl EnvSource + ?Sized),
) -> Result<(), ConfigError> {
    if let Some(v) = env.get("KUMA_DIAGNOSTICS_SERVER_PORT") {
        diagnostics.server_port = parse_num("KUMA_DIAGNOSTICS_SERVER_PORT", v)?;
    }
    if let Some(v) = env.get("KUMA_DIAGNOSTICS_INTERFACE") {
        diagnostics.interface = v;
    }
    Ok(())
}

pub(super) fn validate(diagnostics: &DiagnosticsConfig) -> Result<(), ConfigError> {
    if diagnostics.interface.parse::<IpAddr>().is_err() {
        return Err(ConfigError::Invalid {
            setting: "diagnostics.interface",
            reason: format!("{:?} is not an IP address", diagnostics.interface),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn defaults_are_kumas() {
        let c = Config::default();
        assert_eq!(c.diagnostics.server_port, 5680);
        assert_eq!(c.diagnostics.interface, "0.0.0.0");
    }

    #[test]
    fn file_then_env() {
        let c = Config::from_yaml("diagnostics:\n  serverPort: 6680\n  debugEndpoints: true\n")
            .unwrap();
        assert_eq!(c.diagnostics.server_port, 6680, "unknown keys are ignored");
        let c = Config::from_sources(None, &[("KUMA_DIAGNOSTICS_SERVER_PORT", "7680")]).unwrap();
        assert_eq!(c.diagnostics.server_port, 7680);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["diagnostics"]["serverPort"], 7680);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::from_sources(None, &[("KUMA_DIAGNOSTICS_SERVER_PORT", "x")]).unwrap_err();
        assert!(
            err.to_string().contains("KUMA_DIAGNOSTICS_SERVER_PORT"),
            "{err}"
        );
        let err =
            Config::from_sources(None, &[("KUMA_DIAGNOSTICS_INTERFACE", "localhost")]).unwrap_err();
        assert!(err.to_string().contains("diagnostics.interface"), "{err}");
    }
}
