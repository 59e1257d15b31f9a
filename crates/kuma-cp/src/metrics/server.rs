//! The diagnostics server (port 5680, plain HTTP): `/healthy` for liveness,
//! `/ready` for readiness, `/metrics` for Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{CONTENT_TYPE, Metrics};

/// Whether the control plane can serve: set once the store is open and the
/// mesh index loaded. Cheap to clone; all clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct DiagnosticsState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The routes of the diagnostics port.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthy", get(healthy))
        .route("/ready", get(ready))
        .route("/metrics", get(scrape))
        .with_state(DiagnosticsState { metrics, readiness })
}

async fn healthy() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(state): State<DiagnosticsState>) -> StatusCode {
    if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn scrape(State(state): State<DiagnosticsState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "could not encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A running diagnostics server.
pub struct DiagnosticsServer {
    pub address: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl DiagnosticsServer {
    /// Serves on `listener` until `stop` turns true (or its sender drops).
    pub fn start(
        listener: TcpListener,
        metrics: Metrics,
        readiness: Readiness,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<DiagnosticsServer> {
        let address = listener.local_addr()?;
        let app = router(metrics, readiness);
        let task = tokio::spawn(
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
            }
            .instrument(tracing::info_span!("diagnostics_server", %address)),
        );
        Ok(DiagnosticsServer { address, task })
    }

    /// Waits for the server to stop (after `stop` was signalled).
    pub async fn stopped(self) {
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "diagnostics server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "diagnostics server task failed"),
        }
    }
}
