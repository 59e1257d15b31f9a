//! Push-to-ACK timing for one stream: when each response went out, so the
//! answer to it can be timed. Kept by the stream task, not the protocol
//! state machines, which stay free of clocks.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::session::MAX_IN_FLIGHT;

/// Responses of one stream not answered yet, per type, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    pending: HashMap<String, VecDeque<Pushed>>,
}

#[derive(Debug)]
struct Pushed {
    nonce: String,
    at: Instant,
}

impl Deliveries {
    /// A response with `nonce` went out at `at`. Only the latest few per
    /// type are remembered: a proxy answers in order, and one that leaves
    /// many unanswered has its older answers counted as stale.
    pub(crate) fn pushed(&mut self, type_url: &str, nonce: &str, at: Instant) {
        let queue = match self.pending.get_mut(type_url) {
            Some(queue) => queue,
            None => self.pending.entry(type_url.to_string()).or_default(),
        };
        queue.push_back(Pushed {
            nonce: nonce.to_string(),
            at,
        });
        if queue.len() > MAX_IN_FLIGHT {
            queue.pop_front();
        }
    }

    /// The proxy answered the response with `nonce` at `now`: how long that
    /// took. Older responses of the type are settled with it, as the proxy
    /// has seen them too.
    pub(crate) fn answered(
        &mut self,
        type_url: &str,
        nonce: &str,
        now: Instant,
    ) -> Option<Duration> {
        let queue = self.pending.get_mut(type_url)?;
        let at = queue.iter().position(|p| p.nonce == nonce)?;
        let answered = queue.drain(..=at).next_back()?;
        Some(now.saturating_duration_since(answered.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

    #[test]
    fn an_answer_is_timed_from_its_own_push() {
        let t0 = Instant::now();
        let mut d = Deliveries::default();
        d.pushed(CDS, "1", t0);
        d.pushed(LDS, "2", t0 + Duration::from_millis(5));
        assert_eq!(
            d.answered(LDS, "2", t0 + Duration::from_millis(12)),
            Some(Duration::from_millis(7))
        );
        assert_eq!(
            d.answered(CDS, "1", t0 + Duration::from_millis(20)),
            Some(Duration::from_millis(20))
        );
        assert_eq!(d.answered(CDS, "1", t0), None, "answered only once");
    }

    #[test]
    fn answering_a_newer_push_settles_older_ones() {
        let t0 = Instant::now();
        let mut d = Deliveries::default();
        d.pushed(CDS, "1", t0);
        d.pushed(CDS, "2", t0 + Duration::from_millis(3));
        assert_eq!(
            d.answered(CDS, "2", t0 + Duration::from_millis(4)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(d.answered(CDS, "1", t0 + Duration::from_millis(5)), None);
    }

    #[test]
    fn unknown_nonces_and_types_time_nothing() {
        let t0 = Instant::now();
        let mut d = Deliveries::default();
        d.pushed(CDS, "1", t0);
        assert_eq!(d.answered(CDS, "9", t0), None);
        assert_eq!(d.answered(LDS, "1", t0), None);
        assert_eq!(d.answered(CDS, "1", t0), Some(Duration::ZERO));
    }

    #[test]
    fn only_the_latest_pushes_are_remembered() {
        let t0 = Instant::now();
        let mut d = Deliveries::default();
        for n in 0..=MAX_IN_FLIGHT {
            d.pushed(CDS, &n.to_string(), t0);
        }
        assert_eq!(d.answered(CDS, "0", t0), None, "the oldest was forgotten");
        assert_eq!(d.answered(CDS, "1", t0), Some(Duration::ZERO));
    }
}
