//! The control plane's bootstrap endpoint: `POST /bootstrap` with Kuma's
//! request JSON, answered by `{bootstrap: <base64 YAML>, kumaSidecarConfiguration}`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::envoy::EnvoyVersion;
use crate::signals::Signals;

/// Kuma's `BootstrapRequest`, field for field as Kuma's kuma-dp sends it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRequest {
    pub mesh: String,
    pub name: String,
    pub proxy_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dataplane_token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dataplane_token_path: String,
    /// The Dataplane (rendered template) as JSON, when kuma-dp registers it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dataplane_resource: String,
    pub version: Version,
    pub ca_cert: String,
    pub dynamic_metadata: BTreeMap<String, String>,
    pub operating_system: String,
    pub features: Vec<String>,
    pub resources: ProxyResources,
    pub workdir: String,
    pub metrics_resources: MetricsResources,
    pub system_ca_path: String,
    /// Not in Kuma's request: the Envoy admin port asked for with `--admin-port`.
    /// kuma-dp also writes it into the bootstrap itself, so a control plane
    /// that ignores this field still gets its way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub kuma_dp: KumaDpVersion,
    pub envoy: EnvoyVersionInfo,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KumaDpVersion {
    pub version: String,
    pub git_tag: String,
    pub git_commit: String,
    pub build_date: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyVersionInfo {
    pub version: String,
    pub build: String,
    pub kuma_dp_compatible: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProxyResources {
    pub max_heap_size_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResources {
    pub cert_path: String,
    pub key_path: String,
}

/// The version kuma-dp reports: the Kuma release it is compatible with.
pub const KUMA_DP_VERSION: &str = "2.14.0";

/// Features this kuma-dp announces to the control plane.
const FEATURES: &[&str] = &["feature-delta-xds"];

/// Who the proxy is and where its pieces are, as resolved from flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub mesh: String,
    pub name: String,
    pub proxy_type: String,
    pub token: String,
    pub token_path: String,
    pub dataplane_json: String,
    pub ca_cert_pem: String,
    pub workdir: String,
    pub admin_port: Option<u16>,
}

pub fn build_request(id: &Identity, envoy: &EnvoyVersion) -> BootstrapRequest {
    BootstrapRequest {
        mesh: id.mesh.clone(),
        name: id.name.clone(),
        proxy_type: id.proxy_type.clone(),
        dataplane_token: id.token.clone(),
        dataplane_token_path: id.token_path.clone(),
        dataplane_resource: id.dataplane_json.clone(),
        version: Version {
            kuma_dp: KumaDpVersion {
                version: KUMA_DP_VERSION.to_string(),
                git_tag: format!("v{KUMA_DP_VERSION}"),
                git_commit: String::new(),
                build_date: String::new(),
            },
            envoy: EnvoyVersionInfo {
                version: envoy.version.clone(),
                build: envoy.build.clone(),
                kuma_dp_compatible: crate::envoy::is_supported(&envoy.version),
            },
        },
        ca_cert: id.ca_cert_pem.clone(),
        dynamic_metadata: BTreeMap::new(),
        operating_system: std::env::consts::OS.to_string(),
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        resources: ProxyResources::default(),
        workdir: id.workdir.clone(),
        metrics_resources: MetricsResources::default(),
        system_ca_path: String::new(),
        admin_port: id.admin_port,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapResponse {
    /// Go's `[]byte` travels as standard base64.
    bootstrap: String,
}

/// The Envoy bootstrap (YAML or JSON bytes) out of the response body.
pub fn decode_response(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let response: BootstrapResponse = serde_json::from_slice(body)
        .context("the control plane's /bootstrap answer is not Kuma's BootstrapResponse JSON")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response.bootstrap.trim())
        .context("the bootstrap field of the control plane's answer is not base64")?;
    if bytes.is_empty() {
        bail!("the control plane answered /bootstrap with an empty bootstrap");
    }
    Ok(bytes)
}

/// Puts Envoy's admin interface on `port` (keeping the address the control
/// plane chose), so several proxies on one host do not collide.
pub fn set_admin_port(bootstrap: &[u8], port: u16) -> anyhow::Result<Vec<u8>> {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_slice(bootstrap).context("the bootstrap is not valid YAML")?;
    let socket = doc
        .get_mut("admin")
        .and_then(|a| a.get_mut("address"))
        .and_then(|a| a.get_mut("socket_address"))
        .and_then(serde_yaml::Value::as_mapping_mut)
        .context("the bootstrap has no admin.address.socket_address to set the admin port on")?;
    socket.insert("port_value".into(), u64::from(port).into());
    Ok(serde_yaml::to_string(&doc)?.into_bytes())
}

/// Why one attempt failed, and so whether to try again.
#[derive(Debug)]
pub enum AttemptError {
    /// The control plane is down, restarting or not ready: try again.
    Unavailable(String),
    /// The control plane said no (bad token, invalid Dataplane...): give up.
    Rejected(String),
}

pub struct BootstrapClient {
    http: reqwest::Client,
    url: Url,
}

impl BootstrapClient {
    /// `ca_pem` verifies the control plane's certificate; without it the
    /// connection is encrypted but not verified, as Kuma's kuma-dp does.
    pub fn new(cp_address: &str, ca_pem: Option<&str>) -> anyhow::Result<Self> {
        let base = Url::parse(cp_address)
            .with_context(|| format!("--cp-address {cp_address:?} is not a valid URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--cp-address {cp_address:?} must be an http:// or https:// URL");
        }
        let url = base.join("/bootstrap")?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("kuma-dp/", env!("CARGO_PKG_VERSION")));
        match ca_pem {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .context("the control plane CA certificate is not valid PEM")?;
                if certs.is_empty() {
                    bail!("the control plane CA certificate holds no PEM certificate");
                }
                builder = builder.tls_built_in_root_certs(false);
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            None if base.scheme() == "https" => {
                tracing::warn!(
                    "no --ca-cert-file given: the control plane's certificate will not be verified"
                );
                builder = builder.danger_accept_invalid_certs(true);
            }
            None => {}
        }
        Ok(Self {
            http: builder.build().context("could not build the HTTP client")?,
            url,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub async fn attempt(&self, request: &BootstrapRequest) -> Result<Vec<u8>, AttemptError> {
        let response = self
            .http
            .post(self.url.clone())
            .json(request)
            .send()
            .await
            .map_err(|e| AttemptError::Unavailable(error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AttemptError::Unavailable(error_chain(&e)))?;
        if status.is_success() {
            return decode_response(&body).map_err(|e| AttemptError::Rejected(format!("{e:#}")));
        }
        let text = String::from_utf8_lossy(&body).trim().to_string();
        let message = format!("the control plane answered {status}: {text}");
        // 404: the Dataplane may not be applied yet; 5xx: the control plane is
        // starting or overloaded. Both may heal by themselves.
        if status.is_server_error() || status == reqwest::StatusCode::NOT_FOUND {
            Err(AttemptError::Unavailable(message))
        } else {
            Err(AttemptError::Rejected(message))
        }
    }
}

/// Every cause of a request error: "error sending request" alone says nothing.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// How long to keep trying while the control plane is unreachable.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub backoff: Duration,
    pub max_duration: Duration,
}

/// Fetches the bootstrap, retrying while the control plane is unavailable
/// and saying so each time. `Ok(None)` means a signal asked us to stop.
pub async fn fetch(
    client: &BootstrapClient,
    request: &BootstrapRequest,
    retry: Retry,
    signals: &mut Signals,
) -> anyhow::Result<Option<Vec<u8>>> {
    let started = Instant::now();
    let mut attempt = 1u32;
    loop {
        match client.attempt(request).await {
            Ok(bootstrap) => return Ok(Some(bootstrap)),
            Err(AttemptError::Rejected(message)) => {
                bail!("the control plane refused to bootstrap this proxy: {message}")
            }
            Err(AttemptError::Unavailable(message)) => {
                if started.elapsed() >= retry.max_duration {
                    bail!(
                        "gave up reaching the control plane at {} after {attempt} attempts in {:?}: {message}",
                        client.url(),
                        retry.max_duration
                    );
                }
                tracing::warn!(
                    "could not get the bootstrap from the control plane at {} (attempt {attempt}): {message}; retrying in {:?}",
                    client.url(),
                    retry.backoff
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(retry.backoff) => {}
            signal = signals.recv() => {
                tracing::info!("received {signal} while waiting for the control plane; stopping");
                return Ok(None);
            }
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests;
