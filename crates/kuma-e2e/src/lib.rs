//! Test harness for the end-to-end suite: builds and finds the binaries,
//! runs the control plane, data plane proxies (kuma-dp + Envoy) and tiny HTTP
//! services on loopback, and stops every process it started when dropped.

pub mod binaries;
pub mod control_plane;
pub mod dataplane;
pub mod process;
pub mod service;
pub mod sidecar_pair;
pub mod traffic;

use std::future::Future;
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on loopback: {e}"))
}

/// Polls `check` until it returns `Some`, panicking with `what` and the last
/// reason after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(reason) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {reason}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
