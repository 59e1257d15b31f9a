//! The Kuma control plane: configuration, store wiring and the REST API.
//!
//! [`ControlPlane::start`] runs everything in the current Tokio runtime; tests
//! use it with a memory store and port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use kuma_store::ResourceStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub mod api;
pub mod config;
pub mod defaults;
pub mod labels;
pub mod store;

pub use config::{Config, ConfigError, EnvSource, ProcessEnv, StoreType};

/// A running control plane.
pub struct ControlPlane {
    api_address: SocketAddr,
    store: Arc<dyn ResourceStore>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
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
        if !config.defaults.skip_mesh_creation {
            defaults::ensure_default_mesh(store.as_ref())
                .await
                .context("could not create the default Mesh")?;
        }
        let (stop, mut stopped) = watch::channel(false);
        let http = &config.api_server.http;
        let (api_address, server) = if http.enabled {
            let ip: std::net::IpAddr = http.interface.parse().with_context(|| {
                format!(
                    "apiServer.http.interface {:?} is not an IP address",
                    http.interface
                )
            })?;
            let listener = tokio::net::TcpListener::bind((ip, http.port))
                .await
                .with_context(|| {
                    format!("could not listen on {ip}:{} for the API server", http.port)
                })?;
            let address = listener.local_addr()?;
            let app = api::router(api::ApiState::new(store.clone(), config.clone()))
                .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY_BYTES));
            tracing::info!(%address, "API server listening");
            let server = tokio::spawn(
                async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            // Either a stop request or the sender dropping ends serving.
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await
                }
                .instrument(tracing::info_span!("api_server")),
            );
            (address, Some(server))
        } else {
            let address = SocketAddr::from(([0, 0, 0, 0], 0));
            (address, None)
        };
        Ok(ControlPlane {
            api_address,
            store,
            stop,
            server,
        })
    }

    /// Where the API server listens (the real port when configured with 0).
    pub fn api_address(&self) -> SocketAddr {
        self.api_address
    }

    /// `http://127.0.0.1:<port>` when bound to all interfaces; for clients.
    pub fn api_url(&self) -> String {
        let mut addr = self.api_address;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    pub fn store(&self) -> &Arc<dyn ResourceStore> {
        &self.store
    }

    /// Stops accepting connections, lets in-flight requests finish, then
    /// releases the store.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "API server stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "API server task failed"),
            }
        }
        tracing::info!("control plane stopped");
    }
}
