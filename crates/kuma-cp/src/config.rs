//! kuma-cp configuration: the subset of Kuma's `kuma-cp.conf.yml` this control
//! plane understands, read from a YAML file and overridden by `KUMA_*`
//! environment variables, with Kuma's names and defaults.
//!
//! The environment is read through [`EnvSource`] so tests pass a map instead
//! of touching the process environment.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod api_server;
mod diagnostics;
mod dp_server;

pub use api_server::{
    ApiServerAuthn, ApiServerAuthnTokens, ApiServerConfig, ApiServerHttpConfig,
    ApiServerHttpsConfig,
};
pub use diagnostics::DiagnosticsConfig;
pub use dp_server::{
    BootstrapParamsConfig, BootstrapServerConfig, DpProxyAuthn, DpProxyAuthnType, DpServerAuthn,
    DpServerConfig,
};

/// What Kuma prints in place of secrets in `GET /config`.
pub const SANITIZED_VALUE: &str = "*****";

/// Where environment variables come from.
pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl EnvSource for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        EnvSource::get(self.as_slice(), name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not parse config file {path}: {source}")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    /// An environment variable holds a value its setting cannot take.
    #[error("invalid value {value:?} of {name}: {reason}")]
    InvalidEnv {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// The merged configuration breaks a rule; `setting` is the YAML path.
    #[error("invalid configuration: {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// The effective kuma-cp configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    pub environment: Environment,
    pub mode: Mode,
    pub general: GeneralConfig,
    pub store: StoreConfig,
    pub api_server: ApiServerConfig,
    pub dp_server: DpServerConfig,
    pub bootstrap_server: BootstrapServerConfig,
    pub defaults: DefaultsConfig,
    pub diagnostics: DiagnosticsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Universal,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Zone,
    Global,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GeneralConfig {
    /// Where kuma-cp keeps its files (the embedded store's `kuma.db`).
    /// Empty means `$HOME/.kuma`, as in Kuma.
    #[serde(with = "empty_path")]
    pub work_dir: Option<PathBuf>,
    /// PEM certificate (chain) the control plane's TLS servers present.
    /// Empty: generated on first start and kept in the work dir.
    #[serde(with = "empty_path")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(with = "empty_path")]
    pub tls_key_file: Option<PathBuf>,
}

impl GeneralConfig {
    /// The working directory in effect: the configured one, else `$HOME/.kuma`.
    pub fn effective_work_dir(&self) -> PathBuf {
        match &self.work_dir {
            Some(dir) => dir.clone(),
            None => dirs::home_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join(".kuma"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreType {
    /// Durable SQLite file `<workDir>/kuma.db`: survives restarts with no setup.
    #[default]
    Embedded,
    /// Non-durable: everything is lost when the process exits.
    Memory,
    Postgres,
}

impl StoreType {
    fn parse(text: &str) -> Option<StoreType> {
        match text {
            "embedded" => Some(StoreType::Embedded),
            "memory" => Some(StoreType::Memory),
            "postgres" => Some(StoreType::Postgres),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct StoreConfig {
    #[serde(rename = "type")]
    pub store_type: StoreType,
    pub postgres: PostgresStoreConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PostgresStoreConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub db_name: String,
    /// 0 means unlimited, as in Kuma.
    pub max_open_connections: u32,
}

impl Default for PostgresStoreConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 15432,
            user: "kuma".into(),
            password: "kuma".into(),
            db_name: "kuma".into(),
            max_open_connections: 50,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DefaultsConfig {
    /// Do not create the `default` Mesh on start.
    pub skip_mesh_creation: bool,
}

/// Reads an empty string as "not set", as Kuma does for `workDir: ""`.
mod empty_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(p) => s.serialize_str(&p.to_string_lossy()),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        Ok(text.filter(|t| !t.is_empty()).map(PathBuf::from))
    }
}

impl Config {
    /// Kuma's defaults, then the YAML file (if any), then `KUMA_*` variables;
    /// the result is validated.
    pub fn from_sources(
        file: Option<&Path>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// A config file alone, without environment overrides or validation.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn from_yaml(text: &str) -> Result<Config, serde_yaml::Error> {
        // An empty file is a valid, all-defaults config.
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text)
    }

    /// Overrides settings from `KUMA_*` variables, with Kuma's names.
    pub fn apply_env(&mut self, env: &(impl EnvSource + ?Sized)) -> Result<(), ConfigError> {
        if let Some(v) = env.get("KUMA_ENVIRONMENT") {
            self.environment = match v.as_str() {
                "universal" => Environment::Universal,
                "kubernetes" => Environment::Kubernetes,
                _ => {
                    return Err(bad_env(
                        "KUMA_ENVIRONMENT",
                        v,
                        "must be one of: universal, kubernetes",
                    ));
                }
            };
        }
        if let Some(v) = env.get("KUMA_MODE") {
            self.mode = match v.as_str() {
                "zone" | "standalone" => Mode::Zone,
                "global" => Mode::Global,
                _ => return Err(bad_env("KUMA_MODE", v, "must be one of: zone, global")),
            };
        }
        if let Some(v) = env.get("KUMA_GENERAL_WORK_DIR") {
            self.general.work_dir = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = env.get("KUMA_GENERAL_TLS_CERT_FILE") {
            self.general.tls_cert_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = env.get("KUMA_GENERAL_TLS_KEY_FILE") {
            self.general.tls_key_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = env.get("KUMA_STORE_TYPE") {
            self.store.store_type = StoreType::parse(&v).ok_or_else(|| {
                bad_env(
                    "KUMA_STORE_TYPE",
                    v.clone(),
                    "must be one of: embedded, memory, postgres",
                )
            })?;
        }
        let pg = &mut self.store.postgres;
        if let Some(v) = env.get("KUMA_STORE_POSTGRES_HOST") {
            pg.host = v;
        }
        if let Some(v) = env.get("KUMA_STORE_POSTGRES_PORT") {
            pg.port = parse_num("KUMA_STORE_POSTGRES_PORT", v)?;
        }
        if let Some(v) = env.get("KUMA_STORE_POSTGRES_USER") {
            pg.user = v;
        }
        if let Some(v) = env.get("KUMA_STORE_POSTGRES_PASSWORD") {
            pg.password = v;
        }
        if let Some(v) = env.get("KUMA_STORE_POSTGRES_DB_NAME") {
            pg.db_name = v;
        }
        if let Some(v) = env.get("KUMA_STORE_POSTGRES_MAX_OPEN_CONNECTIONS") {
            pg.max_open_connections = parse_num("KUMA_STORE_POSTGRES_MAX_OPEN_CONNECTIONS", v)?;
        }
        api_server::apply_env(&mut self.api_server, env)?;
        dp_server::apply_env(&mut self.dp_server, &mut self.bootstrap_server, env)?;
        diagnostics::apply_env(&mut self.diagnostics, env)?;
        if let Some(v) = env.get("KUMA_DEFAULTS_SKIP_MESH_CREATION") {
            self.defaults.skip_mesh_creation = parse_bool("KUMA_DEFAULTS_SKIP_MESH_CREATION", v)?;
        }
        Ok(())
    }

    /// Checks what serde cannot: values this control plane does not support.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.environment != Environment::Universal {
            return Err(ConfigError::Invalid {
                setting: "environment",
                reason: "only \"universal\" is supported".into(),
            });
        }
        if self.mode != Mode::Zone {
            return Err(ConfigError::Invalid {
                setting: "mode",
                reason: "only \"zone\" is supported".into(),
            });
        }
        api_server::validate(&self.api_server)?;
        if self.dp_server.interface.parse::<IpAddr>().is_err() {
            return Err(ConfigError::Invalid {
                setting: "dpServer.interface",
                reason: format!("{:?} is not an IP address", self.dp_server.interface),
            });
        }
        diagnostics::validate(&self.diagnostics)?;
        let general = &self.general;
        if general.tls_cert_file.is_some() != general.tls_key_file.is_some() {
            return Err(ConfigError::Invalid {
                setting: "general.tlsCertFile",
                reason: "general.tlsCertFile and general.tlsKeyFile must be set together".into(),
            });
        }
        let dp = &self.dp_server;
        if dp.tls_cert_file.is_some() != dp.tls_key_file.is_some() {
            return Err(ConfigError::Invalid {
                setting: "dpServer.tlsCertFile",
                reason: "dpServer.tlsCertFile and dpServer.tlsKeyFile must be set together".into(),
            });
        }
        if self.store.store_type == StoreType::Postgres {
            let pg = &self.store.postgres;
            if pg.host.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "store.postgres.host",
                    reason: "must not be empty".into(),
                });
            }
            if pg.port == 0 {
                return Err(ConfigError::Invalid {
                    setting: "store.postgres.port",
                    reason: "must be greater than 0".into(),
                });
            }
            if pg.user.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "store.postgres.user",
                    reason: "must not be empty".into(),
                });
            }
            if pg.db_name.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "store.postgres.dbName",
                    reason: "must not be empty".into(),
                });
            }
        }
        Ok(())
    }

    /// The config as `GET /config` shows it: secrets replaced.
    pub fn sanitized(&self) -> Config {
        let mut out = self.clone();
        out.store.postgres.password = SANITIZED_VALUE.into();
        out
    }

    /// A config for tests: memory store, API on 127.0.0.1 with a free port.
    pub fn for_tests() -> Config {
        let mut config = Config::default();
        config.store.store_type = StoreType::Memory;
        config.api_server.http.interface = "127.0.0.1".into();
        config.api_server.http.port = 0;
        config.api_server.https.interface = "127.0.0.1".into();
        config.api_server.https.port = 0;
        // Issuing the admin token costs an RSA key per start; tests that
        // need it turn it on.
        config.api_server.authn.tokens.bootstrap_admin_token = false;
        config.dp_server.interface = "127.0.0.1".into();
        config.dp_server.port = 0;
        config.diagnostics.interface = "127.0.0.1".into();
        config.diagnostics.server_port = 0;
        config
    }
}

fn bad_env(name: &'static str, value: String, reason: &str) -> ConfigError {
    ConfigError::InvalidEnv {
        name,
        value,
        reason: reason.into(),
    }
}

fn parse_num<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse::<T>()
        .map_err(|e| ConfigError::InvalidEnv {
            name,
            reason: e.to_string(),
            value,
        })
}

fn parse_bool(name: &'static str, value: String) -> Result<bool, ConfigError> {
    // Go's strconv.ParseBool, which Kuma's envconfig uses, accepts these spellings.
    match value.as_str() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad_env(name, value, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kumas() {
        let c = Config::default();
        assert_eq!(c.store.store_type, StoreType::Embedded);
        assert_eq!(c.api_server.http.port, 5681);
        assert_eq!(c.api_server.http.interface, "0.0.0.0");
        assert!(c.api_server.http.enabled);
        assert_eq!(c.store.postgres.port, 15432);
        assert_eq!(c.store.postgres.max_open_connections, 50);
        assert!(!c.defaults.skip_mesh_creation);
        assert_eq!(c.general.work_dir, None);
        assert!(c.general.effective_work_dir().ends_with(".kuma"));
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kuma-cp.conf.yml");
        std::fs::write(
            &path,
            "environment: universal\n\
             store:\n  type: postgres\n  postgres:\n    host: db.local\n    port: 5432\n    password: secret\n\
             apiServer:\n  http:\n    port: 7000\n\
             general:\n  workDir: /var/kuma\n\
             xdsServer:\n  dataplaneConfigurationRefreshInterval: 1s\n",
        )
        .unwrap();
        let env = [
            ("KUMA_API_SERVER_HTTP_PORT", "7001"),
            ("KUMA_STORE_POSTGRES_DB_NAME", "mesh"),
            ("KUMA_DEFAULTS_SKIP_MESH_CREATION", "true"),
        ];
        let c = Config::from_sources(Some(&path), &env).unwrap();
        assert_eq!(c.store.store_type, StoreType::Postgres);
        assert_eq!(c.store.postgres.host, "db.local");
        assert_eq!(c.store.postgres.port, 5432);
        assert_eq!(c.store.postgres.user, "kuma", "unset keys keep defaults");
        assert_eq!(c.store.postgres.db_name, "mesh");
        assert_eq!(c.api_server.http.port, 7001, "env wins over the file");
        assert_eq!(c.general.work_dir, Some(PathBuf::from("/var/kuma")));
        assert!(c.defaults.skip_mesh_creation);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = Config::from_sources(None, &[("KUMA_API_SERVER_HTTP_PORT", "http")]).unwrap_err();
        assert!(
            err.to_string().contains("KUMA_API_SERVER_HTTP_PORT"),
            "{err}"
        );
        let err = Config::from_sources(None, &[("KUMA_STORE_TYPE", "etcd")]).unwrap_err();
        assert!(err.to_string().contains("KUMA_STORE_TYPE"), "{err}");
        assert!(
            err.to_string().contains("embedded, memory, postgres"),
            "{err}"
        );
        let err =
            Config::from_sources(None, &[("KUMA_DEFAULTS_SKIP_MESH_CREATION", "yes")]).unwrap_err();
        assert!(
            err.to_string().contains("KUMA_DEFAULTS_SKIP_MESH_CREATION"),
            "{err}"
        );
    }

    #[test]
    fn bad_file_values_name_the_setting() {
        let err = Config::from_yaml("store:\n  type: etcd\n").unwrap_err();
        assert!(err.to_string().contains("store.type"), "{err}");
        let err = Config::from_sources(None, &[("KUMA_API_SERVER_HTTP_INTERFACE", "localhost")])
            .unwrap_err();
        assert!(
            err.to_string().contains("apiServer.http.interface"),
            "{err}"
        );
        let err = Config::from_sources(None, &[("KUMA_ENVIRONMENT", "kubernetes")]).unwrap_err();
        assert!(err.to_string().contains("environment"), "{err}");
    }

    #[test]
    fn sanitized_hides_the_password() {
        let json = serde_json::to_value(Config::default().sanitized()).unwrap();
        assert_eq!(json["store"]["postgres"]["password"], "*****");
        assert_eq!(json["store"]["type"], "embedded");
        assert_eq!(json["apiServer"]["http"]["port"], 5681);
    }
}
