//! `apiServer`: the REST API's listeners (HTTP 5681, HTTPS 5682) and how
//! callers are authenticated, with Kuma's names and defaults.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, EnvSource, empty_path, parse_bool, parse_num};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerConfig {
    pub http: ApiServerHttpConfig,
    pub https: ApiServerHttpsConfig,
    pub authn: ApiServerAuthn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerHttpConfig {
    pub enabled: bool,
    pub interface: String,
    /// 0 picks a free port (tests).
    pub port: u16,
}

impl Default for ApiServerHttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interface: "0.0.0.0".into(),
            port: 5681,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerHttpsConfig {
    pub enabled: bool,
    pub interface: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// PEM certificate (chain). Empty: `general.tlsCertFile`, else one
    /// generated on first start and kept in `<workDir>/api-server/`.
    #[serde(with = "empty_path")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(with = "empty_path")]
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ApiServerHttpsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interface: "0.0.0.0".into(),
            port: 5682,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerAuthn {
    /// Only `tokens` (user tokens) is supported, Kuma's default.
    #[serde(rename = "type")]
    pub authn_type: String,
    /// Direct requests from loopback act as `mesh-system:admin`.
    pub localhost_is_admin: bool,
    pub tokens: ApiServerAuthnTokens,
}

impl Default for ApiServerAuthn {
    fn default() -> Self {
        Self {
            authn_type: "tokens".into(),
            localhost_is_admin: true,
            tokens: ApiServerAuthnTokens::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerAuthnTokens {
    /// Issue the admin user token on first start and keep it as the
    /// GlobalSecret `admin-user-token`.
    pub bootstrap_admin_token: bool,
    /// Whether `POST /tokens/user` issues tokens.
    pub enable_issuer: bool,
}

impl Default for ApiServerAuthnTokens {
    fn default() -> Self {
        Self {
            bootstrap_admin_token: true,
            enable_issuer: true,
        }
    }
}

/// `KUMA_API_SERVER_*` overrides.
pub(super) fn apply_env(
    api: &mut ApiServerConfig,
    env: &(impl EnvSource + ?Sized),
) -> Result<(), ConfigError> {
    let http = &mut api.http;
    if let Some(v) = env.get("KUMA_API_SERVER_HTTP_ENABLED") {
        http.enabled = parse_bool("KUMA_API_SERVER_HTTP_ENABLED", v)?;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_HTTP_INTERFACE") {
        http.interface = v;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_HTTP_PORT") {
        http.port = parse_num("KUMA_API_SERVER_HTTP_PORT", v)?;
    }
    let https = &mut api.https;
    if let Some(v) = env.get("KUMA_API_SERVER_HTTPS_ENABLED") {
        https.enabled = parse_bool("KUMA_API_SERVER_HTTPS_ENABLED", v)?;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_HTTPS_INTERFACE") {
        https.interface = v;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_HTTPS_PORT") {
        https.port = parse_num("KUMA_API_SERVER_HTTPS_PORT", v)?;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_HTTPS_TLS_CERT_FILE") {
        https.tls_cert_file = (!v.is_empty()).then(|| PathBuf::from(v));
    }
    if let Some(v) = env.get("KUMA_API_SERVER_HTTPS_TLS_KEY_FILE") {
        https.tls_key_file = (!v.is_empty()).then(|| PathBuf::from(v));
    }
    let authn = &mut api.authn;
    if let Some(v) = env.get("KUMA_API_SERVER_AUTHN_TYPE") {
        authn.authn_type = v;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_AUTHN_LOCALHOST_IS_ADMIN") {
        authn.localhost_is_admin = parse_bool("KUMA_API_SERVER_AUTHN_LOCALHOST_IS_ADMIN", v)?;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_AUTHN_TOKENS_BOOTSTRAP_ADMIN_TOKEN") {
        authn.tokens.bootstrap_admin_token =
            parse_bool("KUMA_API_SERVER_AUTHN_TOKENS_BOOTSTRAP_ADMIN_TOKEN", v)?;
    }
    if let Some(v) = env.get("KUMA_API_SERVER_AUTHN_TOKENS_ENABLE_ISSUER") {
        authn.tokens.enable_issuer = parse_bool("KUMA_API_SERVER_AUTHN_TOKENS_ENABLE_ISSUER", v)?;
    }
    Ok(())
}

/// What serde cannot check.
pub(super) fn validate(api: &ApiServerConfig) -> Result<(), ConfigError> {
    if api.http.interface.parse::<IpAddr>().is_err() {
        return Err(ConfigError::Invalid {
            setting: "apiServer.http.interface",
            reason: format!("{:?} is not an IP address", api.http.interface),
        });
    }
    if api.https.interface.parse::<IpAddr>().is_err() {
        return Err(ConfigError::Invalid {
            setting: "apiServer.https.interface",
            reason: format!("{:?} is not an IP address", api.https.interface),
        });
    }
    if api.https.tls_cert_file.is_some() != api.https.tls_key_file.is_some() {
        return Err(ConfigError::Invalid {
            setting: "apiServer.https.tlsCertFile",
            reason:
                "apiServer.https.tlsCertFile and apiServer.https.tlsKeyFile must be set together"
                    .into(),
        });
    }
    if api.authn.authn_type != "tokens" {
        return Err(ConfigError::Invalid {
            setting: "apiServer.authn.type",
            reason: format!(
                "{:?} is not supported, only \"tokens\"",
                api.authn.authn_type
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn defaults_are_kumas() {
        let api = Config::default().api_server;
        assert!(api.https.enabled);
        assert_eq!(api.https.port, 5682);
        assert_eq!(api.https.interface, "0.0.0.0");
        assert_eq!(api.authn.authn_type, "tokens");
        assert!(api.authn.localhost_is_admin);
        assert!(api.authn.tokens.bootstrap_admin_token);
        assert!(api.authn.tokens.enable_issuer);
    }

    #[test]
    fn file_and_env_set_https_and_authn() {
        let mut c = Config::from_yaml(
            "apiServer:\n  https:\n    port: 6000\n    tlsCertFile: /c.pem\n    tlsKeyFile: /k.pem\n  authn:\n    localhostIsAdmin: false\n",
        )
        .unwrap();
        assert_eq!(c.api_server.https.port, 6000);
        assert!(!c.api_server.authn.localhost_is_admin);
        assert_eq!(
            c.api_server.https.tls_cert_file.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        c.apply_env(&[
            ("KUMA_API_SERVER_HTTPS_ENABLED", "false"),
            ("KUMA_API_SERVER_HTTPS_PORT", "6001"),
            ("KUMA_API_SERVER_AUTHN_LOCALHOST_IS_ADMIN", "true"),
            (
                "KUMA_API_SERVER_AUTHN_TOKENS_BOOTSTRAP_ADMIN_TOKEN",
                "false",
            ),
        ])
        .unwrap();
        assert!(!c.api_server.https.enabled);
        assert_eq!(c.api_server.https.port, 6001);
        assert!(c.api_server.authn.localhost_is_admin);
        assert!(!c.api_server.authn.tokens.bootstrap_admin_token);
        c.validate().unwrap();
    }

    #[test]
    fn invalid_settings_are_named() {
        let err = Config::from_sources(None, &[("KUMA_API_SERVER_HTTPS_TLS_CERT_FILE", "/c")])
            .unwrap_err();
        assert!(
            err.to_string().contains("apiServer.https.tlsCertFile"),
            "{err}"
        );
        let err = Config::from_sources(None, &[("KUMA_API_SERVER_AUTHN_TYPE", "adminClientCerts")])
            .unwrap_err();
        assert!(err.to_string().contains("apiServer.authn.type"), "{err}");
        let err =
            Config::from_sources(None, &[("KUMA_API_SERVER_HTTPS_INTERFACE", "any")]).unwrap_err();
        assert!(
            err.to_string().contains("apiServer.https.interface"),
            "{err}"
        );
    }
}
