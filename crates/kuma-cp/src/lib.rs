//! The Kuma control plane: configuration, store wiring, the REST API and the
//! data plane server (bootstrap + ADS for Envoy proxies).
//!
//! [`ControlPlane::start`] runs everything in the current Tokio runtime; tests
//! use it with a memory store and port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use kuma_store::ResourceStore;
use tokio::sync::watch;

pub mod api;
pub mod config;
pub mod defaults;
pub mod dp_server;
pub mod index;
pub mod insights;
pub mod labels;
pub mod metrics;
pub mod mtls;
pub mod store;
pub mod tls;
pub mod tokens;

pub use config::{Config, ConfigError, EnvSource, ProcessEnv, StoreType};

/// A running control plane.
pub struct ControlPlane {
    api: api::listeners::ApiListeners,
    store: Arc<dyn ResourceStore>,
    stop: watch::Sender<bool>,
    dp_server: dp_server::DpServer,
    metrics: metrics::Metrics,
    diagnostics: metrics::DiagnosticsServer,
}

impl ControlPlane {
    /// Opens the store, creates the default Mesh (unless configured not to)
    /// and starts serving the API. Returns once the API socket is bound.
    pub async fn start(config: Config) -> anyhow::Result<ControlPlane> {
        config.validate()?;
        let store = store::open(&config).await?;
        Self::start_with_store(config, store).await
    }

    /// Like [`ControlPlane::start`], with a store the caller opened.
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn ResourceStore>,
    ) -> anyhow::Result<ControlPlane> {
        let metrics = metrics::Metrics::new();
        let store: Arc<dyn ResourceStore> =
            Arc::new(store::MeteredStore::new(store, metrics.clone()));
        if !config.defaults.skip_mesh_creation {
            defaults::ensure_default_mesh(store.as_ref())
                .await
                .context("could not create the default Mesh")?;
        }
        let (stop, stopped) = watch::channel(false);
        let readiness = metrics::Readiness::default();
        let diagnostics =
            start_diagnostics(&config, metrics.clone(), readiness.clone(), stopped.clone()).await?;
        let info = Arc::new(api::ServerInfo::detect());
        let tokens = Arc::new(tokens::DataplaneTokens::new(store.clone()));
        let insights = Arc::new(insights::Insights::new(info.instance_id.clone()));
        // Listen for proxies before loading the index: after a restart they
        // reconnect at once, and a connection that waits while the index
        // loads costs them nothing, where a refused one sends each into a
        // longer backoff (up to 30 s for Envoy).
        let dp_listener = bind_dp_server(&config).await?;
        let index = index::MeshIndex::start(store.clone(), metrics.clone(), stopped.clone())
            .await
            .context("could not load the mesh index")?;
        let dp_server = start_dp_server(
            dp_listener,
            store.clone(),
            index,
            tokens.clone(),
            insights.clone(),
            Arc::new(metrics.clone()),
            stopped.clone(),
        )
        .await?;
        let user_tokens = Arc::new(api::auth::UserTokens::new(store.clone()));
        if config.api_server.authn.tokens.bootstrap_admin_token {
            bootstrap_admin_token(&user_tokens, &config).await;
        }
        let state = api::ApiState {
            store: store.clone(),
            config: Arc::new(config.clone()),
            info,
            tokens,
            user_tokens,
            insights,
        };
        let api = api::listeners::ApiListeners::start(&config, state, stopped).await?;
        // Store open, mesh index loaded, every server listening.
        readiness.set_ready();
        Ok(ControlPlane {
            api,
            store,
            stop,
            dp_server,
            metrics,
            diagnostics,
        })
    }

    /// Where the diagnostics server (`/healthy`, `/ready`, `/metrics`) listens.
    pub fn diagnostics_address(&self) -> SocketAddr {
        self.diagnostics.address
    }

    /// The control plane's metrics, as `/metrics` exposes them.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Where the data plane server (bootstrap + ADS, TLS) listens.
    pub fn dp_server_address(&self) -> SocketAddr {
        self.dp_server.address
    }

    /// The CA proxies should trust for the data plane server (PEM).
    pub fn dp_ca_cert_pem(&self) -> &str {
        &self.dp_server.state.tls.ca_cert_pem
    }

    /// The file holding that CA, for `kuma-dp --ca-cert-file`.
    pub fn dp_ca_cert_path(&self) -> &std::path::Path {
        &self.dp_server.state.tls.ca_cert_path
    }

    /// The in-memory view of meshes and connected proxies.
    pub fn mesh_index(&self) -> &index::MeshIndex {
        &self.dp_server.state.index
    }

    /// ADS stream insights of the proxies served by this instance.
    pub fn insights(&self) -> &Arc<insights::Insights> {
        &self.dp_server.state.insights
    }

    /// Issues and verifies dataplane tokens.
    pub fn tokens(&self) -> &Arc<tokens::DataplaneTokens> {
        &self.dp_server.state.tokens
    }

    /// Where the HTTP API listens (the real port when configured with 0);
    /// `0.0.0.0:0` when it is disabled.
    pub fn api_address(&self) -> SocketAddr {
        self.api
            .http_address
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// `http://127.0.0.1:<port>` when bound to all interfaces; for clients.
    pub fn api_url(&self) -> String {
        format!("http://{}", client_address(self.api_address()))
    }

    /// Where the HTTPS API listens, when enabled.
    pub fn api_https_address(&self) -> Option<SocketAddr> {
        self.api.https_address
    }

    /// `https://127.0.0.1:<port>` when bound to all interfaces; for clients.
    pub fn api_https_url(&self) -> Option<String> {
        self.api
            .https_address
            .map(|a| format!("https://{}", client_address(a)))
    }

    /// The CA file HTTPS API clients verify the server with
    /// (`kumactl config control-planes add --ca-cert-file`).
    pub fn api_ca_cert_path(&self) -> Option<&std::path::Path> {
        self.api.https_ca_cert_path.as_deref()
    }

    pub fn store(&self) -> &Arc<dyn ResourceStore> {
        &self.store
    }

    /// Stops accepting connections, lets in-flight requests finish, then
    /// releases the store.
    pub async fn shutdown(mut self) {
        // Before streams end: their ending must not unregister proxies.
        self.dp_server
            .state
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.stop.send(true);
        self.api.stopped().await;
        self.dp_server.stopped().await;
        self.diagnostics.stopped().await;
        tracing::info!("control plane stopped");
    }
}

/// The data plane server's settings, TLS material and bound socket, not
/// served yet.
struct DpListener {
    config: Arc<Config>,
    tls: dp_server::tls::DpServerTls,
    listener: tokio::net::TcpListener,
}

async fn bind_dp_server(config: &Config) -> anyhow::Result<DpListener> {
    let dp = &config.dp_server;
    let general = &config.general;
    let user_pair = match (&dp.tls_cert_file, &dp.tls_key_file) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => match (&general.tls_cert_file, &general.tls_key_file) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        },
    };
    let work_dir = general.effective_work_dir();
    let tls = dp_server::tls::load_or_generate(user_pair, &work_dir)
        .context("could not set up TLS for the data plane server")?;
    let ip: std::net::IpAddr = dp
        .interface
        .parse()
        .with_context(|| format!("dpServer.interface {:?} is not an IP address", dp.interface))?;
    let listener = tokio::net::TcpListener::bind((ip, dp.port))
        .await
        .with_context(|| {
            format!(
                "could not listen on {ip}:{} for the data plane server",
                dp.port
            )
        })?;
    Ok(DpListener {
        config: Arc::new(config.clone()),
        tls,
        listener,
    })
}

async fn start_dp_server(
    DpListener {
        config,
        tls,
        listener,
    }: DpListener,
    store: Arc<dyn ResourceStore>,
    index: index::MeshIndex,
    tokens: Arc<tokens::DataplaneTokens>,
    insights: Arc<insights::Insights>,
    observer: Arc<dyn kuma_xds::server::StreamObserver>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<dp_server::DpServer> {
    let ca_path = tls.ca_cert_path.clone();
    let server = dp_server::DpServer::start(
        move |port| dp_server::DpServerState {
            store,
            index,
            tokens,
            insights,
            config,
            tls,
            port,
            shutting_down: Default::default(),
        },
        listener,
        observer,
        stopped,
    )
    .await
    .context("could not start the data plane server")?;
    tracing::info!(
        address = %server.address,
        ca_cert = %ca_path.display(),
        "data plane server listening (TLS); kuma-dp can verify it with --ca-cert-file"
    );
    Ok(server)
}

async fn start_diagnostics(
    config: &Config,
    metrics: metrics::Metrics,
    readiness: metrics::Readiness,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<metrics::DiagnosticsServer> {
    let diag = &config.diagnostics;
    let ip: std::net::IpAddr = diag.interface.parse().with_context(|| {
        format!(
            "diagnostics.interface {:?} is not an IP address",
            diag.interface
        )
    })?;
    let listener = tokio::net::TcpListener::bind((ip, diag.server_port))
        .await
        .with_context(|| {
            format!(
                "could not listen on {ip}:{} for the diagnostics server",
                diag.server_port
            )
        })?;
    let server = metrics::DiagnosticsServer::start(listener, metrics, readiness, stopped)?;
    tracing::info!(address = %server.address, "diagnostics server listening (/healthy, /ready, /metrics)");
    Ok(server)
}

/// A loopback address in place of an unspecified one, for clients.
fn client_address(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Kuma's admin user token bootstrap: failure is logged, not fatal, so the
/// control plane still serves (localhost stays admin by default).
async fn bootstrap_admin_token(tokens: &api::auth::UserTokens, config: &Config) {
    match tokens.bootstrap_admin_token().await {
        Ok(created) => tracing::info!(
            created,
            "bootstrap of Admin User Token is enabled. To extract admin credentials execute 'curl http://localhost:{}/global-secrets/{} | jq -r .data | base64 -d'. You configure kumactl with them 'kumactl config control-planes add --auth-type=tokens --auth-conf token=YOUR_TOKEN'. To disable bootstrap of Admin User Token set KUMA_API_SERVER_AUTHN_TOKENS_BOOTSTRAP_ADMIN_TOKEN to false.",
            config.api_server.http.port,
            api::auth::user_token::ADMIN_USER_TOKEN
        ),
        Err(e) => tracing::error!(error = %e, "could not generate Admin User Token"),
    }
}
