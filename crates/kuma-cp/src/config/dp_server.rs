//! Settings of the data plane server (port 5678: `POST /bootstrap` and ADS)
//! and of the Envoy bootstrap it hands out, with Kuma's names and defaults.

use serde::{Deserialize, Serialize};

use super::{ConfigError, EnvSource, bad_env, parse_num};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DpServerConfig {
    /// Not a Kuma setting (Kuma binds every interface); tests bind loopback.
    pub interface: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// PEM certificate chain; empty means `general.tlsCertFile`, then a
    /// generated one kept in `<workDir>/dp-server/`.
    #[serde(with = "super::empty_path")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    #[serde(with = "super::empty_path")]
    pub tls_key_file: Option<std::path::PathBuf>,
    pub authn: DpServerAuthn,
}

impl Default for DpServerConfig {
    fn default() -> Self {
        Self {
            interface: "0.0.0.0".into(),
            port: 5678,
            tls_cert_file: None,
            tls_key_file: None,
            authn: DpServerAuthn::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DpServerAuthn {
    pub dp_proxy: DpProxyAuthn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DpProxyAuthn {
    /// `dpToken` (also what Kuma's empty value means on Universal) or `none`.
    #[serde(rename = "type")]
    pub authn_type: DpProxyAuthnType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DpProxyAuthnType {
    /// Every proxy proves its identity with a dataplane token.
    #[default]
    #[serde(rename = "dpToken", alias = "")]
    DpToken,
    /// No authentication: any client may fetch any proxy's configuration.
    #[serde(rename = "none")]
    None,
}

impl DpProxyAuthnType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "dpToken" | "" => Some(Self::DpToken),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct BootstrapServerConfig {
    pub params: BootstrapParamsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BootstrapParamsConfig {
    pub admin_address: String,
    /// Used when neither the Dataplane nor the request names one.
    pub admin_port: u16,
    /// Empty: the host kuma-dp used to reach the control plane.
    pub xds_host: String,
    /// 0: the data plane server's port.
    pub xds_port: u16,
}

impl Default for BootstrapParamsConfig {
    fn default() -> Self {
        Self {
            admin_address: "127.0.0.1".into(),
            admin_port: 9901,
            xds_host: String::new(),
            xds_port: 0,
        }
    }
}

/// `KUMA_DP_SERVER_*` and `KUMA_BOOTSTRAP_SERVER_PARAMS_*`.
pub(super) fn apply_env(
    dp: &mut DpServerConfig,
    bootstrap: &mut BootstrapServerConfig,
    env: &(impl EnvSource + ?Sized),
) -> Result<(), ConfigError> {
    if let Some(v) = env.get("KUMA_DP_SERVER_INTERFACE") {
        dp.interface = v;
    }
    if let Some(v) = env.get("KUMA_DP_SERVER_PORT") {
        dp.port = parse_num("KUMA_DP_SERVER_PORT", v)?;
    }
    if let Some(v) = env.get("KUMA_DP_SERVER_TLS_CERT_FILE") {
        dp.tls_cert_file = (!v.is_empty()).then(|| v.into());
    }
    if let Some(v) = env.get("KUMA_DP_SERVER_TLS_KEY_FILE") {
        dp.tls_key_file = (!v.is_empty()).then(|| v.into());
    }
    if let Some(v) = env.get("KUMA_DP_SERVER_AUTHN_DP_PROXY_TYPE") {
        dp.authn.dp_proxy.authn_type = DpProxyAuthnType::parse(&v).ok_or_else(|| {
            bad_env(
                "KUMA_DP_SERVER_AUTHN_DP_PROXY_TYPE",
                v.clone(),
                "must be one of: dpToken, none",
            )
        })?;
    }
    let params = &mut bootstrap.params;
    if let Some(v) = env.get("KUMA_BOOTSTRAP_SERVER_PARAMS_ADMIN_ADDRESS") {
        params.admin_address = v;
    }
    if let Some(v) = env.get("KUMA_BOOTSTRAP_SERVER_PARAMS_ADMIN_PORT") {
        params.admin_port = parse_num("KUMA_BOOTSTRAP_SERVER_PARAMS_ADMIN_PORT", v)?;
    }
    if let Some(v) = env.get("KUMA_BOOTSTRAP_SERVER_PARAMS_XDS_HOST") {
        params.xds_host = v;
    }
    if let Some(v) = env.get("KUMA_BOOTSTRAP_SERVER_PARAMS_XDS_PORT") {
        params.xds_port = parse_num("KUMA_BOOTSTRAP_SERVER_PARAMS_XDS_PORT", v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn defaults_and_env() {
        let c = Config::default();
        assert_eq!(c.dp_server.port, 5678);
        assert_eq!(
            c.dp_server.authn.dp_proxy.authn_type,
            DpProxyAuthnType::DpToken
        );
        assert_eq!(c.bootstrap_server.params.admin_port, 9901);
        let c = Config::from_sources(
            None,
            &[
                ("KUMA_DP_SERVER_PORT", "15678"),
                ("KUMA_DP_SERVER_AUTHN_DP_PROXY_TYPE", "none"),
                ("KUMA_GENERAL_TLS_CERT_FILE", "/etc/kuma/cert.pem"),
                ("KUMA_GENERAL_TLS_KEY_FILE", "/etc/kuma/key.pem"),
            ],
        )
        .unwrap();
        assert_eq!(c.dp_server.port, 15678);
        assert_eq!(
            c.dp_server.authn.dp_proxy.authn_type,
            DpProxyAuthnType::None
        );
        assert_eq!(
            c.general.tls_cert_file.as_deref(),
            Some(std::path::Path::new("/etc/kuma/cert.pem"))
        );
        let err = Config::from_sources(None, &[("KUMA_DP_SERVER_AUTHN_DP_PROXY_TYPE", "jwt")])
            .unwrap_err();
        assert!(err.to_string().contains("dpToken, none"), "{err}");
    }

    #[test]
    fn yaml_names_are_kumas() {
        let c = Config::from_yaml(
            "dpServer:\n  port: 7000\n  authn:\n    dpProxy:\n      type: none\n\
             general:\n  tlsCertFile: /c.pem\n  tlsKeyFile: /k.pem\n",
        )
        .unwrap();
        assert_eq!(c.dp_server.port, 7000);
        assert_eq!(
            c.dp_server.authn.dp_proxy.authn_type,
            DpProxyAuthnType::None
        );
        assert!(c.general.tls_key_file.is_some());
    }
}
