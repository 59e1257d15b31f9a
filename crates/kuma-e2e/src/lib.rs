//! Test harness for the end-to-end suite: builds and finds the binaries,
//! runs the control plane, data plane proxies (kuma-dp + Envoy) and tiny HTTP
//! services on loopback, and stops every process it started when dropped.

pub mod binaries;
pub mod control_plane;
pub mod dataplane;
pub mod grpc;
pub mod netns;
pub mod process;
pub mod service;
pub mod sidecar_pair;
pub mod traffic;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 right now, never handed out before by this
/// process.
pub fn free_port() -> u16 {
    // Handed out from a range below the kernel's ephemeral ports (32768 and
    // up on Linux), so that no outgoing connection of a running test takes
    // a port between our probe and the bind by Envoy or kuma-cp; each test
    // process starts at its own offset and never hands out a port twice.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 10_000 + (std::process::id() % 20) * 1_000;
    for _ in 0..20_000 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let Ok(port) = u16::try_from(10_000 + (base - 10_000 + offset) % 20_000) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on loopback between 10000 and 30000")
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
