//! `kuma-xds-load`: many simulated Envoy proxies on ADS streams against a
//! running control plane, measuring how long a change made through the API
//! takes to reach (and be ACKed by) every proxy it concerns.
//!
//! [`run`] builds the mesh through the API ([`topology`]), opens one ADS
//! stream per proxy over a few shared HTTP/2 connections, waits for every
//! proxy to be configured, then runs each [`Scenario`]: publish what the
//! targeted proxies must end up holding, make the API write, and collect
//! the moment each proxy ACKs a response after which it holds it.

pub mod api;
pub mod proxy;
mod scenario;
pub mod stats;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

pub use scenario::{Memory, Report, Scenario, ScenarioResult, run};

/// The largest xDS response a simulated proxy accepts (Envoy has no small limit).
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Which xDS variant the simulated proxies speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsVariant {
    Delta,
    Sotw,
}

/// Everything one load run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The data plane server, e.g. `https://127.0.0.1:5678`.
    pub cp_address: String,
    /// The API server, e.g. `http://127.0.0.1:5681`.
    pub api_address: String,
    pub proxies: u32,
    pub services: u32,
    pub scenarios: Vec<Scenario>,
    pub variant: XdsVariant,
    /// CA that signed the data plane server's certificate (PEM).
    pub ca_cert_pem: Option<String>,
    /// Whether each proxy presents its own dataplane token.
    pub tokens: bool,
    /// The mesh the run creates (and first deletes, if present).
    pub mesh: String,
    /// ADS streams sharing one HTTP/2 connection; below the server's
    /// concurrent-stream limit (hyper's default is 200).
    pub streams_per_connection: u32,
    /// How long a phase may take before its stragglers count as not converged.
    pub timeout: Duration,
    /// Concurrent API requests while building the mesh.
    pub api_concurrency: usize,
    /// The control plane's process: its resident memory is read (Linux
    /// `/proc/<pid>/status`) before and after the proxies connect.
    pub cp_pid: Option<u32>,
    /// How long the mesh idles before the steady-state memory is read.
    pub settle: Duration,
    /// The reconnect scenario sends one message here when every proxy is
    /// converged and the control plane should now be restarted (on the same
    /// addresses and data); without it that scenario is skipped.
    pub restart: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    /// Churn: endpoint changes per second to attempt, and for how long.
    pub churn_rate: u32,
    pub churn_seconds: u64,
}

impl LoadConfig {
    pub fn new(cp_address: &str, api_address: &str, proxies: u32, services: u32) -> Self {
        LoadConfig {
            cp_address: cp_address.to_string(),
            api_address: api_address.to_string(),
            proxies,
            services,
            scenarios: Scenario::ALL.to_vec(),
            variant: XdsVariant::Delta,
            ca_cert_pem: None,
            tokens: true,
            mesh: "xds-load".to_string(),
            streams_per_connection: 100,
            timeout: Duration::from_secs(300),
            api_concurrency: 32,
            cp_pid: None,
            settle: Duration::from_secs(2),
            restart: None,
            churn_rate: 500,
            churn_seconds: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("{what}: {message}")]
    Api { what: String, message: String },
    #[error("could not connect to the data plane server at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A streaming request carrying the proxy's token the way Envoy does (as
/// the bootstrap's gRPC initial metadata).
pub(crate) fn stream_request<S>(
    stream: S,
    token: Option<&str>,
) -> Result<tonic::Request<S>, String> {
    let mut request = tonic::Request::new(stream);
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the dataplane token is not a valid header value".to_string())?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Opens `count` HTTP/2 connections to the data plane server.
pub(crate) async fn connect(
    config: &LoadConfig,
    count: u32,
) -> Result<Vec<tonic::transport::Channel>, LoadError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let connect_error = |source| LoadError::Connect {
        address: config.cp_address.clone(),
        source,
    };
    let url = url::Url::parse(&config.cp_address)
        .map_err(|e| LoadError::Settings(format!("--cp-address: {e}")))?;
    let mut endpoint = Endpoint::from_shared(config.cp_address.clone())
        .map_err(connect_error)?
        .connect_timeout(Duration::from_secs(10))
        // Envoy's windows are far larger than HTTP/2's 64 KiB default;
        // small ones would stall big responses on a shared connection.
        .initial_stream_window_size(Some(4 * 1024 * 1024))
        .initial_connection_window_size(Some(64 * 1024 * 1024));
    if url.scheme() == "https" {
        let mut tls = ClientTlsConfig::new();
        if let Some(pem) = &config.ca_cert_pem {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some(host) = url.host_str() {
            tls = tls.domain_name(host.trim_start_matches('[').trim_end_matches(']'));
        }
        endpoint = endpoint.tls_config(tls).map_err(connect_error)?;
    }
    let endpoint = Arc::new(endpoint);
    let mut channels = Vec::with_capacity(count as usize);
    for _ in 0..count {
        channels.push(endpoint.connect().await.map_err(connect_error)?);
    }
    Ok(channels)
}
