//! A tiny HTTP service on 127.0.0.1 (or an address of the test's network
//! namespace, see `netns`) answering every request with its
//! instance name: what a request reached is in the response body.
//!
//! Tests of traffic policies steer how it behaves while it runs:
//! - `GET /delay/{ms}` answers after `ms` milliseconds;
//! - `GET /status/{code}` answers with that status;
//! - `GET /headers` answers with the request's headers, one `name: value`
//!   per line;
//! - `GET /bytes/{n}` answers with `n` bytes (at most 16 MiB);
//! - `GET /health` answers 200 or 503 as [`TestService::set_healthy`] says;
//! - [`TestService::fail_next`] makes the next requests fail with a status,
//!   [`TestService::fail_all`] every request until told otherwise;
//! - [`TestService::set_delay`] makes `GET /` (and any other path not
//!   above) answer only after a while;
//! - [`TestService::requests`] counts requests (health checks excluded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

/// What the running service is told to do, shared with its handle.
#[derive(Default)]
struct Behaviour {
    unhealthy: AtomicBool,
    /// Requests still to fail with `fail_status`.
    fail_next: AtomicU64,
    /// Status of failed requests; 0 while nothing fails.
    fail_status: AtomicU16,
    /// Every request fails with `fail_status`.
    fail_all: AtomicBool,
    /// How long the fallback route waits before answering, in ms.
    delay_ms: AtomicU64,
    requests: AtomicU64,
}

impl Behaviour {
    /// The status this request must fail with, if any.
    fn failure(&self) -> Option<StatusCode> {
        let status = StatusCode::from_u16(self.fail_status.load(Ordering::SeqCst)).ok()?;
        if self.fail_all.load(Ordering::SeqCst) {
            return Some(status);
        }
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| status)
    }
}

#[derive(Clone)]
struct App {
    name: Arc<str>,
    behaviour: Arc<Behaviour>,
}

impl App {
    /// Counts the request and applies an injected failure.
    fn answer(&self, ok: impl FnOnce(&App) -> Response) -> Response {
        self.behaviour.requests.fetch_add(1, Ordering::SeqCst);
        match self.behaviour.failure() {
            Some(status) => (status, format!("{} failed", self.name)).into_response(),
            None => ok(self),
        }
    }
}

async fn any(State(app): State<App>) -> Response {
    let delay = app.behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    app.answer(|app| app.name.to_string().into_response())
}

async fn delay(State(app): State<App>, Path(ms): Path<u64>) -> Response {
    tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    app.answer(|app| app.name.to_string().into_response())
}

async fn status(State(app): State<App>, Path(code): Path<u16>) -> Response {
    app.answer(|app| {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        (status, app.name.to_string()).into_response()
    })
}

async fn headers(State(app): State<App>, headers: HeaderMap) -> Response {
    app.answer(|_| {
        let lines: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        lines.join("\n").into_response()
    })
}

/// The largest `/bytes/{n}` body.
const MAX_BYTES: usize = 16 << 20;

async fn bytes(State(app): State<App>, Path(n): Path<usize>) -> Response {
    app.answer(|_| vec![b'x'; n.min(MAX_BYTES)].into_response())
}

async fn health(State(app): State<App>) -> Response {
    if app.behaviour.unhealthy.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy").into_response()
    } else {
        "healthy".into_response()
    }
}

pub struct TestService {
    pub name: String,
    pub address: SocketAddr,
    behaviour: Arc<Behaviour>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestService {
    /// Starts on a free port, on the current tokio runtime.
    pub async fn start(name: &str) -> std::io::Result<TestService> {
        Self::start_on(name, 0).await
    }

    /// Starts on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(name: &str, port: u16) -> std::io::Result<TestService> {
        Self::start_at(name, SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// Starts on `address` (port 0: any free port).
    pub async fn start_at(name: &str, address: SocketAddr) -> std::io::Result<TestService> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let behaviour = Arc::new(Behaviour::default());
        let state = App {
            name: Arc::from(name),
            behaviour: behaviour.clone(),
        };
        let app = axum::Router::new()
            .route("/delay/{ms}", get(delay))
            .route("/status/{code}", get(status))
            .route("/headers", get(headers))
            .route("/bytes/{n}", get(bytes))
            .route("/health", get(health))
            .fallback(any)
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(TestService {
            name: name.to_string(),
            address,
            behaviour,
            stop: Some(stop),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// What `GET /health` answers: 200 when healthy, else 503.
    pub fn set_healthy(&self, healthy: bool) {
        self.behaviour.unhealthy.store(!healthy, Ordering::SeqCst);
    }

    /// The next `n` requests fail with `status`.
    pub fn fail_next(&self, n: u64, status: u16) {
        self.behaviour.fail_status.store(status, Ordering::SeqCst);
        self.behaviour.fail_all.store(false, Ordering::SeqCst);
        self.behaviour.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every request fails with `status` (`None`: none fails any more).
    pub fn fail_all(&self, status: Option<u16>) {
        self.behaviour.fail_next.store(0, Ordering::SeqCst);
        self.behaviour
            .fail_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
        self.behaviour
            .fail_all
            .store(status.is_some(), Ordering::SeqCst);
    }

    /// Requests of `/` (and other paths without a route of their own)
    /// answer after `delay`; zero answers at once again.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.behaviour.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Requests received so far, health checks excluded.
    pub fn requests(&self) -> u64 {
        self.behaviour.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(service: &TestService, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", service.address);
        let response = reqwest::get(&url).await.expect("service answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    #[tokio::test]
    async fn behaviours_follow_the_handle() {
        let s = TestService::start("svc").await.expect("starts");
        assert_eq!(get(&s, "/anything").await, (200, "svc".to_string()));
        assert_eq!(get(&s, "/status/418").await.0, 418);
        s.fail_next(2, 503);
        assert_eq!(get(&s, "/").await.0, 503);
        assert_eq!(get(&s, "/").await.0, 503);
        assert_eq!(get(&s, "/").await.0, 200);
        s.fail_all(Some(500));
        assert_eq!(get(&s, "/").await.0, 500);
        assert_eq!(get(&s, "/health").await.0, 200);
        s.fail_all(None);
        s.set_healthy(false);
        assert_eq!(get(&s, "/health").await.0, 503);
        assert_eq!(get(&s, "/").await.0, 200);
        assert_eq!(s.requests(), 7);
        let (_, headers) = get(&s, "/headers").await;
        assert!(headers.contains("host: "), "{headers}");
        let (status, body) = get(&s, "/bytes/5000").await;
        assert_eq!((status, body.len()), (200, 5000));
        assert!(body.bytes().all(|b| b == b'x'));
    }

    #[tokio::test]
    async fn a_delay_holds_answers_back_until_lifted() {
        let s = TestService::start("slow").await.expect("starts");
        s.set_delay(Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert_eq!(get(&s, "/").await, (200, "slow".to_string()));
        assert!(started.elapsed() >= Duration::from_millis(300));
        s.set_delay(Duration::ZERO);
        let started = std::time::Instant::now();
        assert_eq!(get(&s, "/").await.0, 200);
        assert!(started.elapsed() < Duration::from_millis(300));
    }
}
