//! Steady request streams through the mesh: a few workers sending GETs to
//! one local port back to back, every outcome recorded, so a test can say
//! "no request was lost while X changed" and a benchmark can read latencies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// How each worker reaches the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One kept-alive connection per worker, as a busy client would.
    Reused,
    /// A fresh TCP connection for every request, so each one meets the
    /// listener (and, behind it, the TLS handshake) current when it starts.
    PerRequest,
}

/// One request: when it started, how long it took, and its status and body
/// or why no answer came.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub started: Instant,
    pub latency: Duration,
    pub answer: Result<(u16, String), String>,
}

impl Outcome {
    /// Answered 200 with a body containing `want`.
    pub fn is_ok(&self, want: &str) -> bool {
        matches!(&self.answer, Ok((200, body)) if body.contains(want))
    }
}

/// Workers sending requests until [`RequestStream::stop`].
pub struct RequestStream {
    running: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
}

/// A client for `connections`; each request gives up after `timeout`.
pub fn client(connections: Connections, timeout: Duration) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(timeout).no_proxy();
    let builder = match connections {
        Connections::Reused => builder.pool_max_idle_per_host(1),
        Connections::PerRequest => builder.pool_max_idle_per_host(0),
    };
    builder
        .build()
        .unwrap_or_else(|e| panic!("HTTP client: {e}"))
}

/// One GET to `http://127.0.0.1:{port}/` with `client`, timed.
pub async fn request(client: &reqwest::Client, port: u16) -> Outcome {
    let started = Instant::now();
    let answer = async {
        let response = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| format!("{e:?}"))?;
        Ok((status, body))
    }
    .await;
    Outcome {
        started,
        latency: started.elapsed(),
        answer,
    }
}

impl RequestStream {
    /// Starts `workers` tasks, each sending one request after another to
    /// 127.0.0.1:`port`, with `pause` between a worker's requests.
    pub fn start(
        port: u16,
        workers: usize,
        connections: Connections,
        pause: Duration,
    ) -> RequestStream {
        let running = Arc::new(AtomicBool::new(true));
        let workers = (0..workers)
            .map(|_| {
                let running = running.clone();
                let client = client(connections, Duration::from_secs(10));
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while running.load(Ordering::Relaxed) {
                        outcomes.push(request(&client, port).await);
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    outcomes
                })
            })
            .collect();
        RequestStream { running, workers }
    }

    /// Stops the workers after their current request; every outcome, in
    /// start order.
    pub async fn stop(self) -> Vec<Outcome> {
        self.running.store(false, Ordering::Relaxed);
        let mut all = Vec::new();
        for worker in self.workers {
            match worker.await {
                Ok(outcomes) => all.extend(outcomes),
                Err(e) => panic!("a request worker failed: {e}"),
            }
        }
        all.sort_by_key(|o| o.started);
        all
    }
}

/// One GET of `path` to 127.0.0.1:`port` on a fresh connection (so that it
/// meets the listener configuration of the moment): the status and the
/// value of `header` in the answer, or why no answer came.
pub async fn get_header(
    port: u16,
    path: &str,
    header: &str,
) -> Result<(u16, Option<String>), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let value = response
        .headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((response.status().as_u16(), value))
}
