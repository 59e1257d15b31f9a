//! The data plane server (port 5678, TLS): `POST /bootstrap` for kuma-dp
//! and the ADS gRPC service for Envoy, on one listener. HTTP/1.1 and HTTP/2
//! are both offered through ALPN, since kuma-dp's bootstrap request is
//! HTTP/1.1 and gRPC is HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use kuma_api::{ApiError, Kind, Resource, ResourceDocument, ResourceKey, Spec};
use kuma_store::{ResourceStore, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{Config, DpProxyAuthnType};
use crate::index::MeshIndex;
use crate::insights::Insights;
use crate::tokens::{self, DataplaneTokens, TokenError};

mod bootstrap;
mod registry;
pub mod tls;

pub use bootstrap::{BootstrapRequest, BootstrapResponse};
pub use registry::Registry;
pub use tls::DpServerTls;

/// Node metadata field carrying a direct-mode Dataplane (JSON), Kuma's name.
pub const DIRECT_RESOURCE_METADATA: &str = "dataplane.resource";

/// Everything the bootstrap endpoint and the ADS registry share.
pub struct DpServerState {
    pub store: Arc<dyn ResourceStore>,
    pub index: MeshIndex,
    pub tokens: Arc<DataplaneTokens>,
    pub insights: Arc<Insights>,
    pub config: Arc<Config>,
    pub tls: DpServerTls,
    /// The port proxies reach ADS on (the bound one when configured as 0).
    pub port: u16,
    /// Set while the control plane stops, so ending streams do not
    /// unregister direct-mode Dataplanes.
    pub shutting_down: AtomicBool,
}

/// Why a proxy was refused; mapped to HTTP or gRPC at the edge.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    #[error("access denied: {0}")]
    Denied(String),
    #[error("could not check the dataplane token: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn into_status(self) -> tonic::Status {
        let msg = self.to_string();
        match self {
            AuthError::Unauthenticated(_) => tonic::Status::unauthenticated(msg),
            AuthError::Denied(_) => tonic::Status::permission_denied(msg),
            AuthError::Internal(_) => tonic::Status::unavailable(msg),
        }
    }
}

impl DpServerState {
    pub fn authn_enabled(&self) -> bool {
        self.config.dp_server.authn.dp_proxy.authn_type == DpProxyAuthnType::DpToken
    }

    /// Checks that `token` lets its bearer act as `dataplane`.
    pub async fn authenticate(&self, token: &str, dataplane: &Resource) -> Result<(), AuthError> {
        let mesh = dataplane.meta.mesh.as_deref().unwrap_or_default();
        let identity = match self.tokens.verify(token, mesh).await {
            Ok(identity) => identity,
            Err(TokenError::Invalid(msg)) => return Err(AuthError::Unauthenticated(msg)),
            Err(e) => return Err(AuthError::Internal(e.to_string())),
        };
        let spec = match &dataplane.spec {
            Spec::Dataplane(d) => Some(d),
            _ => None,
        };
        tokens::authorize(
            &identity,
            mesh,
            &dataplane.meta.name,
            &dataplane.meta.labels,
            spec,
        )
        .map_err(AuthError::Denied)
    }
}

/// Reads a Dataplane sent by kuma-dp (JSON or YAML); its mesh defaults to
/// `default_mesh`. Validation happens here, with the API's messages.
pub fn parse_direct_dataplane(
    text: &str,
    default_mesh: &str,
) -> Result<ResourceDocument, ApiError> {
    let mut doc = ResourceDocument::from_yaml(text)?;
    if doc.kind() != Kind::Dataplane {
        return Err(ApiError::Malformed(format!(
            "dataplaneResource must be a Dataplane, not a {}",
            doc.kind().name()
        )));
    }
    if doc.mesh.as_deref().is_none_or(str::is_empty) {
        doc.mesh = Some(default_mesh.to_string());
    }
    doc.validate()?;
    Ok(doc)
}

/// Creates or updates a direct-mode Dataplane in the store.
pub async fn register_direct(
    state: &DpServerState,
    doc: ResourceDocument,
) -> Result<Resource, StoreError> {
    let key: ResourceKey = doc.key();
    let mut resource = doc.into_resource(Utc::now());
    match state.store.get(&key).await {
        Ok(current) => {
            if current.spec == resource.spec && current.meta.labels == resource.meta.labels {
                return Ok(current);
            }
            resource.meta.version = current.meta.version;
            state.store.update(resource).await
        }
        Err(StoreError::NotFound(_)) => match state.store.create(resource.clone()).await {
            // Two connects of one proxy raced: the other stored it.
            Err(StoreError::AlreadyExists(_)) => state.store.get(&key).await,
            other => other,
        },
        Err(e) => Err(e),
    }
}

/// A running data plane server.
pub struct DpServer {
    pub address: SocketAddr,
    pub state: Arc<DpServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl DpServer {
    /// Binds the port and starts serving; every ADS stream's traffic is
    /// reported to `observer` (the control plane's metrics).
    pub async fn start(
        state_parts: impl FnOnce(u16) -> DpServerState,
        listener: TcpListener,
        observer: Arc<dyn kuma_xds::server::StreamObserver>,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<DpServer> {
        let address = listener.local_addr()?;
        let state = Arc::new(state_parts(address.port()));
        let tls = state
            .tls
            .server_config()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let ads =
            kuma_xds::server::ads_service_observed(Arc::new(Registry(state.clone())), observer);
        let app = tonic::service::Routes::new(ads)
            .into_axum_router()
            .merge(bootstrap::router(state.clone()));
        // Streams end with the control plane; proxies reconnect elsewhere.
        let task = tokio::spawn(
            crate::tls::serve(listener, tls, app, stop)
                .instrument(tracing::info_span!("dp_server", %address)),
        );
        Ok(DpServer {
            address,
            state,
            task,
        })
    }

    /// Waits for the server to stop (after `stop` was signalled).
    pub async fn stopped(self) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "data plane server task failed");
        }
    }
}
