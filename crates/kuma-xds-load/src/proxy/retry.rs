//! When and how soon a simulated proxy opens its stream again, the way
//! Envoy's ADS client does: a refused or dropped stream is retried after a
//! jittered exponential backoff (a random wait below (2^n - 1) × 500 ms, at
//! most 30 s), and the backoff starts over once a stream was established.

use std::time::{Duration, Instant};

use super::{Probe, ProxyEvent};

/// Why a stream ended.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Opening the stream was answered `Unavailable` (or the connection
    /// could not be made): Envoy backs off and retries.
    Unavailable(String),
    /// An established stream ended or broke: the control plane went away.
    Dropped(String),
    /// Refused for good (a bad token, a malformed exchange).
    Broken(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Broken(message)
    }
}

impl Failure {
    pub(crate) fn opening(status: tonic::Status) -> Failure {
        let message = format!("opening the stream: {status}");
        if status.code() == tonic::Code::Unavailable {
            Failure::Unavailable(message)
        } else {
            Failure::Broken(message)
        }
    }
}

/// Envoy's initial and largest retry interval.
const BASE: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(30);

/// Refusals in a row before the proxy gives up (Envoy never does; a
/// benchmark must end).
pub(crate) const MAX_REFUSALS: u32 = 20;
/// Established streams that dropped before the proxy gives up.
pub(crate) const MAX_DROPS: u32 = 50;

/// One proxy's retry bookkeeping across its streams.
#[derive(Debug)]
pub(crate) struct Attempts {
    /// The first interval (Envoy's 500 ms; tests shrink it).
    pub(crate) base: Duration,
    refusals: u32,
    drops: u32,
    seed: u64,
}

impl Attempts {
    pub(crate) fn new(proxy: u32) -> Attempts {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Attempts {
            base: BASE,
            refusals: 0,
            drops: 0,
            seed: clock ^ (u64::from(proxy) << 32),
        }
    }

    /// After a stream ended with `result`: whether to open it again, having
    /// waited the backoff. Anything but a refusal or a drop ends the proxy
    /// (reported as failed unless the stream was simply finished).
    pub(crate) async fn retry_after(&mut self, probe: &Probe, result: Result<(), Failure>) -> bool {
        let wait = match result {
            Ok(()) => return false,
            Err(Failure::Unavailable(e)) => {
                self.refusals += 1;
                if self.refusals >= MAX_REFUSALS {
                    probe.fail(format!("{e} ({} refusals in a row)", self.refusals));
                    return false;
                }
                let _ = probe
                    .events
                    .send(ProxyEvent::Retried { proxy: probe.proxy });
                self.backoff(self.refusals)
            }
            Err(Failure::Dropped(e)) => {
                self.drops += 1;
                if self.drops >= MAX_DROPS {
                    probe.fail(format!("{e} ({} streams dropped)", self.drops));
                    return false;
                }
                let _ = probe.events.send(ProxyEvent::Disconnected {
                    proxy: probe.proxy,
                    at: Instant::now(),
                });
                // The stream had been established: the backoff starts over.
                self.refusals = 1;
                self.backoff(1)
            }
            Err(Failure::Broken(e)) => {
                probe.fail(e);
                return false;
            }
        };
        tokio::time::sleep(wait).await;
        true
    }

    /// A random wait below (2^n - 1) × 500 ms, capped at 30 s.
    fn backoff(&mut self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul((1u32 << n.min(16)) - 1)
            .min(MAX)
            .as_micros()
            .max(1) as u64;
        Duration::from_micros(self.next_random() % ceiling)
    }

    /// splitmix64: jitter needs spread, not secrecy.
    fn next_random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_thirty_seconds() {
        let mut a = Attempts::new(7);
        for _ in 0..200 {
            assert!(a.backoff(1) < Duration::from_millis(500));
            assert!(a.backoff(2) < Duration::from_millis(1500));
            assert!(a.backoff(20) < MAX);
        }
        let waits: std::collections::BTreeSet<Duration> = (0..50).map(|_| a.backoff(3)).collect();
        assert!(waits.len() > 10, "jittered: {waits:?}");
    }
}
