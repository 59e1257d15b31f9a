//! Proxy identities: issuing one, deciding whether the one a proxy has is
//! still good, and the single queue of rotation deadlines for all proxies.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_ca::{CaError, IdentityCert, IdentityRequest, KeyAlgorithm, TagSet};
use kuma_xds::server::ProxyId;
use tokio::sync::Notify;

use super::MeshCa;
pub use kuma_xds::generate::ProxyIdentity;

/// An identity handed to a proxy, with what it was issued from.
#[derive(Debug)]
pub struct IssuedIdentity {
    generation: (String, String, Duration),
    tags: TagSet,
    cert: IdentityCert,
    pub proxy: ProxyIdentity,
}

impl IssuedIdentity {
    /// Kept while the CA, the validity and the proxy's tags stay the same
    /// and rotation is not due yet.
    pub fn still_good(&self, ca: &MeshCa, tags: &TagSet, now: DateTime<Utc>) -> bool {
        self.generation == ca.generation() && &self.tags == tags && !self.cert.needs_rotation(now)
    }

    /// When this identity is due for renewal.
    pub fn rotation_time(&self) -> DateTime<Utc> {
        kuma_ca::rotation_time(self.cert.issued_at, self.cert.not_after)
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.cert.not_after
    }
}

/// Every tag value of every inbound (or of the gateway): what a proxy's
/// certificate names it by.
pub fn proxy_tags(dataplane: &DataplaneSpec) -> TagSet {
    let mut tags = TagSet::new();
    let gateway = dataplane
        .networking
        .iter()
        .flat_map(|n| n.gateway.iter())
        .map(|g| &g.tags);
    for set in dataplane.inbounds().iter().map(|i| &i.tags).chain(gateway) {
        for (key, value) in set {
            tags.entry(key.clone()).or_default().insert(value.clone());
        }
    }
    tags
}

/// Issues an identity for a proxy of `mesh` with `tags`.
///
/// Kuma gives every proxy an RSA 2048 key; generating one takes tens of
/// milliseconds, which adds up over thousands of proxies and every
/// rotation, so proxies get ECDSA P-256 keys (as accepted by Envoy and by
/// any peer verifying against the mesh CA, whatever the CA's key type).
pub fn issue(
    ca: &MeshCa,
    mesh: &str,
    tags: TagSet,
    now: DateTime<Utc>,
) -> Result<IssuedIdentity, CaError> {
    let request = IdentityRequest {
        mesh,
        tags: &tags,
        validity: ca.identity_validity,
        key: KeyAlgorithm::EcdsaP256,
    };
    // Issuing happens at every rotation, so a CA that crosses into its last
    // fifth while the control plane runs is noticed here.
    ca.warn_if_expiring(mesh, now);
    let cert = kuma_ca::issue_identity(&ca.authority, &request, now)?;
    let proxy = ProxyIdentity {
        cert_chain_pem: cert.cert_pem.clone(),
        private_key_pem: cert.key_pem.clone(),
        ca_pems: ca.trusted.clone(),
    };
    Ok(IssuedIdentity {
        generation: ca.generation(),
        tags,
        cert,
        proxy,
    })
}

/// Rotation deadlines of every proxy, earliest first, served by one task.
///
/// Entries are never removed early: a proxy that disconnected or got a new
/// identity meanwhile simply finds nothing to do when its old entry is due.
/// Earliest deadline on top.
type Deadlines = BinaryHeap<Reverse<(DateTime<Utc>, ProxyId)>>;

#[derive(Debug, Default)]
pub struct RotationQueue {
    deadlines: Mutex<Deadlines>,
    wake: Notify,
}

/// How long after a deadline the check runs: renewal is due strictly after
/// the rotation time, and timers may fire a little early.
const AFTER_DEADLINE: chrono::TimeDelta = chrono::TimeDelta::milliseconds(20);

impl RotationQueue {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn heap(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.deadlines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `proxy` again at `at`.
    pub fn schedule(&self, at: DateTime<Utc>, proxy: ProxyId) {
        let at = at + AFTER_DEADLINE;
        let earliest = {
            let mut heap = self.heap();
            let earlier = heap.peek().is_none_or(|Reverse((first, _))| at < *first);
            heap.push(Reverse((at, proxy)));
            earlier
        };
        if earliest {
            // A stored permit wakes the waiter even if it is not waiting yet.
            self.wake.notify_one();
        }
    }

    /// How many deadlines are queued (stale ones included).
    pub fn len(&self) -> usize {
        self.heap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least one deadline has passed and returns every proxy
    /// that is due, each once.
    pub async fn next_due(&self) -> Vec<ProxyId> {
        loop {
            let now = Utc::now();
            let wait = {
                let mut heap = self.heap();
                let mut due = Vec::new();
                while let Some(Reverse((at, _))) = heap.peek() {
                    if *at > now {
                        break;
                    }
                    if let Some(Reverse((_, proxy))) = heap.pop() {
                        due.push(proxy);
                    }
                }
                if !due.is_empty() {
                    due.sort();
                    due.dedup();
                    return due;
                }
                heap.peek()
                    .map(|Reverse((at, _))| (*at - now).to_std().unwrap_or_default())
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_proxy(name: &str) -> ProxyId {
        ProxyId::new("default", name)
    }

    #[tokio::test]
    async fn due_proxies_come_out_in_deadline_order_once_each() {
        let queue = RotationQueue::new();
        let now = Utc::now();
        queue.schedule(now + chrono::TimeDelta::milliseconds(150), mk_proxy("late"));
        queue.schedule(now - chrono::TimeDelta::seconds(1), mk_proxy("early"));
        queue.schedule(now - chrono::TimeDelta::seconds(2), mk_proxy("early"));
        assert_eq!(queue.next_due().await, vec![mk_proxy("early")]);
        let started = std::time::Instant::now();
        assert_eq!(queue.next_due().await, vec![mk_proxy("late")]);
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "returned before the deadline"
        );
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_a_waiting_queue() {
        let queue = RotationQueue::new();
        let now = Utc::now();
        queue.schedule(now + chrono::TimeDelta::seconds(60), mk_proxy("later"));
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.next_due().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        queue.schedule(
            Utc::now() + chrono::TimeDelta::milliseconds(50),
            mk_proxy("soon"),
        );
        let due = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the earlier deadline")
            .unwrap();
        assert_eq!(due, vec![mk_proxy("soon")]);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn tags_gather_every_inbound_value() {
        let dp: DataplaneSpec = serde_json::from_value(serde_json::json!({
            "networking": {"address": "10.0.0.1", "inbound": [
                {"port": 1, "tags": {"kuma.io/service": "web", "version": "1"}},
                {"port": 2, "tags": {"kuma.io/service": "web-admin", "version": "1"}},
            ]}
        }))
        .unwrap();
        let tags = proxy_tags(&dp);
        assert_eq!(
            tags["kuma.io/service"].iter().collect::<Vec<_>>(),
            ["web", "web-admin"]
        );
        assert_eq!(tags["version"].len(), 1);
    }
}
