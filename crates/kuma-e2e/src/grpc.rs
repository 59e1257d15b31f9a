//! A tiny gRPC service on 127.0.0.1 (HTTP/2 without TLS, as Envoy's gRPC
//! clusters speak to applications) and a client for it: enough for the
//! gRPC side of traffic policies, with no generated code.
//!
//! - `grpc.health.v1.Health/Check` answers `SERVING` or `NOT_SERVING` as
//!   [`GrpcService::set_serving`] says (what Envoy's gRPC health check asks);
//! - any other method answers OK without a message, or, while
//!   [`GrpcService::fail_next`] has failures left, `UNAVAILABLE` (14);
//!   [`GrpcService::calls`] counts them.
//!
//! Answers without a message are "trailers-only" (the status in the
//! headers), so a client reads the outcome from the response headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// gRPC's UNAVAILABLE status.
pub const UNAVAILABLE: u32 = 14;

#[derive(Default)]
struct Behaviour {
    not_serving: AtomicBool,
    fail_next: AtomicU64,
    calls: AtomicU64,
}

type Body = BoxBody<Bytes, Infallible>;

/// A response with gRPC `status` in its headers and no message.
fn trailers_only(status: u32) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", status.to_string())
        .body(Empty::new().boxed())
        .unwrap_or_default()
}

/// `HealthCheckResponse { status }` in one gRPC frame, then status OK in
/// the trailers.
fn health(serving: bool) -> Response<Body> {
    // Field 1 (varint): 1 SERVING, 2 NOT_SERVING.
    let message = [0x08, if serving { 1 } else { 2 }];
    let mut frame = vec![0u8, 0, 0, 0, message.len() as u8];
    frame.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from(frame))
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap_or_default()
}

fn answer(behaviour: &Behaviour, request: &Request<Incoming>) -> Response<Body> {
    if request.uri().path() == HEALTH_CHECK {
        return health(!behaviour.not_serving.load(Ordering::SeqCst));
    }
    behaviour.calls.fetch_add(1, Ordering::SeqCst);
    let failing = behaviour
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    trailers_only(if failing { UNAVAILABLE } else { 0 })
}

pub struct GrpcService {
    pub address: SocketAddr,
    behaviour: Arc<Behaviour>,
    stop: Option<oneshot::Sender<()>>,
}

impl GrpcService {
    /// Starts on a free port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<GrpcService> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let behaviour = Arc::new(Behaviour::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let shared = behaviour.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let behaviour = shared.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let response = answer(&behaviour, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(GrpcService {
            address,
            behaviour,
            stop: Some(stop),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// What the health service answers: `SERVING` or `NOT_SERVING`.
    pub fn set_serving(&self, serving: bool) {
        self.behaviour.not_serving.store(!serving, Ordering::SeqCst);
    }

    /// The next `n` calls (health checks aside) fail with UNAVAILABLE.
    pub fn fail_next(&self, n: u64) {
        self.behaviour.fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls received so far, health checks aside.
    pub fn calls(&self) -> u64 {
        self.behaviour.calls.load(Ordering::SeqCst)
    }
}

impl Drop for GrpcService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Calls `path` (`/package.Service/Method`) on 127.0.0.1:`port` with an
/// empty message over a connection of its own; the gRPC status answered.
pub async fn call(port: u16, path: &str) -> Result<u32, String> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let in_headers = response.headers().get("grpc-status").cloned();
        let collected = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let status = in_headers.or_else(|| collected.trailers()?.get("grpc-status").cloned());
        status
            .and_then(|s| s.to_str().ok()?.parse().ok())
            .ok_or_else(|| "no grpc-status in the answer".to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_follow_the_handle() {
        let service = GrpcService::start().await.expect("starts");
        let port = service.port();
        assert_eq!(call(port, "/test.Echo/Call").await, Ok(0));
        service.fail_next(2);
        assert_eq!(call(port, "/test.Echo/Call").await, Ok(UNAVAILABLE));
        assert_eq!(call(port, "/test.Echo/Call").await, Ok(UNAVAILABLE));
        assert_eq!(call(port, "/test.Echo/Call").await, Ok(0));
        assert_eq!(call(port, HEALTH_CHECK).await, Ok(0));
        assert_eq!(service.calls(), 4);
    }
}
