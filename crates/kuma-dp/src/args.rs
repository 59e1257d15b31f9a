//! `kuma-dp run` flags, named as Kuma's (and read from Kuma's environment
//! variables), and their resolution into who the proxy is.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::bootstrap::Identity;
use kuma_api::template::{parse_var, render};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// URL of the Control Plane Dataplane Server. Example: https://localhost:5678
    #[arg(
        long,
        env = "KUMA_CONTROL_PLANE_URL",
        default_value = "https://localhost:5678"
    )]
    pub cp_address: String,
    /// Path to CA cert by which connection to the Control Plane will be verified if HTTPS is used
    #[arg(long, env = "KUMA_CONTROL_PLANE_CA_CERT_FILE")]
    pub ca_cert_file: Option<PathBuf>,
    /// CA cert (PEM) by which connection to the Control Plane will be verified; wins over --ca-cert-file
    #[arg(long, env = "KUMA_CONTROL_PLANE_CA_CERT", hide = true)]
    pub ca_cert: Option<String>,
    /// Name of the Dataplane
    #[arg(long, env = "KUMA_DATAPLANE_NAME")]
    pub name: Option<String>,
    /// Mesh that Dataplane belongs to
    #[arg(long, env = "KUMA_DATAPLANE_MESH")]
    pub mesh: Option<String>,
    /// type of the Dataplane ("dataplane", "ingress", "egress")
    #[arg(long, env = "KUMA_DATAPLANE_PROXY_TYPE", default_value = "dataplane")]
    pub proxy_type: String,
    /// drain time for Envoy connections on Kuma DP shutdown
    #[arg(long, env = "KUMA_DATAPLANE_DRAIN_TIME", default_value = "30s", value_parser = parse_duration)]
    pub drain_time: Duration,
    /// Port of Envoy's admin interface (0 lets the system choose); default: what the control plane says
    #[arg(long, env = "KUMA_DATAPLANE_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Binary path of Envoy executable (default: envoy on PATH, then $KUMA_ENVOY_HOME/bin/envoy)
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_BINARY_PATH")]
    pub binary_path: Option<PathBuf>,
    /// Directory in which Envoy config will be generated (default: a temporary directory)
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Number of Envoy worker threads
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_CONCURRENCY")]
    pub concurrency: Option<u32>,
    /// Path to a file with dataplane token (use 'kumactl generate dataplane-token' to get one)
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_TOKEN_PATH")]
    pub dataplane_token_file: Option<PathBuf>,
    /// Dataplane Token
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_TOKEN")]
    pub dataplane_token: Option<String>,
    /// Dataplane template to apply (YAML or JSON)
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_RESOURCE")]
    pub dataplane: Option<String>,
    /// Path to Dataplane template to apply (YAML or JSON)
    #[arg(short = 'd', long, env = "KUMA_DATAPLANE_RUNTIME_RESOURCE_PATH")]
    pub dataplane_file: Option<PathBuf>,
    /// Variables to replace Dataplane template, as key=value (repeatable or comma separated)
    #[arg(short = 'v', long = "dataplane-var", value_parser = parse_var, value_delimiter = ',')]
    pub dataplane_vars: Vec<(String, String)>,
    /// Envoy log level: [trace][debug][info][warning|warn][error][critical][off]. By default it inherits Kuma DP logging level.
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_ENVOY_LOG_LEVEL")]
    pub envoy_log_level: Option<String>,
    /// Configures Envoy's --component-log-level
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_ENVOY_COMPONENT_LOG_LEVEL")]
    pub envoy_component_log_level: Option<String>,
    /// Time between attempts to reach the control plane
    #[arg(long, env = "KUMA_CONTROL_PLANE_RETRY_BACKOFF", default_value = "3s", value_parser = parse_duration, hide = true)]
    pub cp_retry_backoff: Duration,
    /// How long to keep trying to reach the control plane
    #[arg(long, env = "KUMA_CONTROL_PLANE_RETRY_MAX_DURATION", default_value = "5m", value_parser = parse_duration, hide = true)]
    pub cp_retry_max_duration: Duration,
}

/// Inputs read from files, so that resolving flags stays a pure function.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub template: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
}

impl RunArgs {
    pub fn load_files(&self) -> anyhow::Result<Loaded> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read the {what} {}", path.display()))
        };
        Ok(Loaded {
            template: self
                .dataplane_file
                .as_ref()
                .map(|p| read(p, "Dataplane file"))
                .transpose()?,
            token_file: self
                .dataplane_token_file
                .as_ref()
                .map(|p| read(p, "dataplane token file"))
                .transpose()?,
            ca_file: self
                .ca_cert_file
                .as_ref()
                .map(|p| read(p, "CA certificate file"))
                .transpose()?,
        })
    }

    /// Who the proxy is: from the rendered Dataplane template when one is
    /// given (its name and mesh win, as in Kuma), else from --name and --mesh.
    pub fn identity(&self, loaded: &Loaded, workdir: &str) -> anyhow::Result<Identity> {
        if self.dataplane.is_some() && self.dataplane_file.is_some() {
            bail!("--dataplane and --dataplane-file cannot be used together");
        }
        let template = self.dataplane.clone().or_else(|| loaded.template.clone());
        let (mut name, mut mesh) = (self.name.clone(), self.mesh.clone());
        let mut proxy_type = self.proxy_type.clone();
        let mut dataplane_json = String::new();
        if let Some(template) = template {
            let vars: BTreeMap<String, String> = self.dataplane_vars.iter().cloned().collect();
            let rendered = render(&template, &vars);
            let doc: serde_json::Value = serde_yaml::from_str(&rendered)
                .context("the Dataplane template is not valid YAML or JSON once rendered")?;
            let field = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_string);
            proxy_type = match field("type").as_deref() {
                Some("Dataplane") => "dataplane".to_string(),
                Some("ZoneIngress") => "ingress".to_string(),
                Some("ZoneEgress") => "egress".to_string(),
                Some(other) => {
                    bail!("the Dataplane template has type {other:?}; expected Dataplane")
                }
                None => bail!("the Dataplane template has no type; expected `type: Dataplane`"),
            };
            name = field("name").or(name);
            mesh = field("mesh").or(mesh);
            dataplane_json = serde_json::to_string(&doc)?;
        }
        if !matches!(proxy_type.as_str(), "dataplane" | "ingress" | "egress") {
            bail!("--proxy-type {proxy_type:?} is not supported; use dataplane, ingress or egress");
        }
        let name = name.filter(|n| !n.is_empty()).context(
            "the Dataplane name is not set: pass --name (KUMA_DATAPLANE_NAME) or a --dataplane-file with a name",
        )?;
        let mesh = match mesh.filter(|m| !m.is_empty()) {
            Some(mesh) => mesh,
            // Zone proxies belong to no mesh.
            None if proxy_type != "dataplane" => String::new(),
            None => bail!(
                "the mesh is not set: pass --mesh (KUMA_DATAPLANE_MESH) or a --dataplane-file with a mesh"
            ),
        };
        if name.contains(['$', '(', ')', '{', '}']) {
            bail!("the Dataplane name {name:?} contains invalid characters");
        }
        let token = match (&self.dataplane_token, &loaded.token_file) {
            (Some(_), Some(_)) => {
                bail!("--dataplane-token and --dataplane-token-file cannot be used together")
            }
            (Some(token), None) => token.trim().to_string(),
            (None, Some(file)) => file.trim().to_string(),
            (None, None) => String::new(),
        };
        let ca_cert_pem = self
            .ca_cert
            .clone()
            .or_else(|| loaded.ca_file.clone())
            .unwrap_or_default();
        Ok(Identity {
            mesh,
            name,
            proxy_type,
            token,
            token_path: self
                .dataplane_token_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            dataplane_json,
            ca_cert_pem,
            workdir: workdir.to_string(),
            admin_port: self.admin_port,
        })
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `0`), the spelling Kuma's flags take.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    kuma_api::duration::parse_duration(s.trim())
        .map_err(|e| format!("{e} (examples: 30s, 1m30s, 500ms)"))
}

#[cfg(test)]
mod tests;
