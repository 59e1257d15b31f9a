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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn status(app: &Router, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn ready_only_once_told_while_healthy_throughout() {
        let readiness = Readiness::default();
        let app = router(Metrics::new(), readiness.clone());
        assert_eq!(status(&app, "/healthy").await, StatusCode::OK);
        assert_eq!(
            status(&app, "/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        readiness.set_ready();
        assert_eq!(status(&app, "/ready").await, StatusCode::OK);
        assert_eq!(status(&app, "/healthy").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let app = router(Metrics::new(), Readiness::default());
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("xds_streams_active 0"), "{text}");
    }
}
