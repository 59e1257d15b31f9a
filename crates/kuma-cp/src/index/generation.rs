//! Generating proxies' configurations: the one place it happens, spread
//! over the machine's cores when a change reaches many proxies.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use kuma_xds::ProxyResources;
use kuma_xds::generate::{GenerateError, generate_proxy_with_identity};
use kuma_xds::server::ProxyId;

use super::{IDENTITY_RETRY, MeshIndex, Work};
use crate::mtls::identity::IssuedIdentity;

/// A proxy's new configuration and the identity it was generated with.
pub(super) type Generated = (ProxyId, ProxyResources, Option<Arc<IssuedIdentity>>);

/// Below this many proxies per thread, spreading generation over threads
/// costs more than it saves.
const PER_THREAD_MIN: usize = 64;

/// Whether two configurations hold the same resources: same types and
/// names, same content hash (the version delta xDS sends, so content with
/// the same hash is never resent anyway). Shared resources are usually the
/// very same `Arc`, and comparing hashes spares comparing encoded bytes.
pub(super) fn same_resources(a: &ProxyResources, b: &ProxyResources) -> bool {
    a.by_type.len() == b.by_type.len()
        && a.by_type
            .iter()
            .zip(&b.by_type)
            .all(|((ta, ra), (tb, rb))| {
                ta == tb
                    && ra.len() == rb.len()
                    && ra.iter().zip(rb).all(|((na, xa), (nb, xb))| {
                        na == nb && (Arc::ptr_eq(xa, xb) || xa.hash == xb.hash)
                    })
            })
}

impl MeshIndex {
    /// The one place a proxy's configuration is generated (connects and
    /// recomputes alike), timed into `xds_generation`.
    pub(super) fn generate(
        &self,
        item: &Work,
        identity: Option<&IssuedIdentity>,
    ) -> Result<ProxyResources, GenerateError> {
        let started = Instant::now();
        let generated =
            generate_proxy_with_identity(&item.snapshot, &item.id.name, identity.map(|i| &i.proxy));
        match &generated {
            Ok(_) => self.metrics.observe_generation(started.elapsed()),
            Err(_) => self.metrics.generation_failed(),
        }
        generated
    }

    /// Generates every item, on as many threads as the machine has cores
    /// when there is enough work to share.
    pub(super) fn generate_all(&self, work: Vec<Work>) -> Vec<Generated> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(work.len() / PER_THREAD_MIN)
            .max(1);
        if threads == 1 {
            return work
                .into_iter()
                .filter_map(|w| self.regenerate(w))
                .collect();
        }
        let chunk = work.len().div_ceil(threads);
        let mut chunks: Vec<Vec<Work>> = Vec::with_capacity(threads);
        let mut rest = work.into_iter();
        for _ in 0..threads {
            chunks.push(rest.by_ref().take(chunk).collect());
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .into_iter()
                            .filter_map(|w| self.regenerate(w))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(done) => done,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        })
    }

    /// One proxy of a recompute: its identity, then its configuration.
    /// `None` leaves the proxy with what it has.
    fn regenerate(&self, item: Work) -> Option<Generated> {
        let Some(identity) = self.identity_for(&item) else {
            // Try again later rather than wait for the next change
            // (unless its Dataplane is gone: nothing to issue for).
            if item.snapshot.dataplane(&item.id.name).is_some() {
                self.rotation
                    .schedule(Utc::now() + IDENTITY_RETRY, item.id.clone());
            }
            return None;
        };
        match self.generate(&item, identity.as_deref()) {
            Ok(resources) => Some((item.id, resources, identity)),
            // The proxy keeps what it has (its Dataplane may be gone).
            Err(e) => {
                tracing::warn!(proxy = %item.id, error = %e, "could not generate proxy configuration");
                None
            }
        }
    }
}
