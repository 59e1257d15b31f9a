//! Carrying a mesh's shared resources over to its next snapshot. A change
//! usually touches one destination or one policy; without carrying, the
//! first proxies generated after it would encode everything else again.
//!
//! An entry is carried only when its key says everything it was built from,
//! or when what its key leaves out is the same in both snapshots:
//! - passthrough listeners and clusters: the key holds the redirect ports,
//!   address families, the Mesh's passthrough switch and the MeshPassthrough
//!   conf;
//! - inbound clusters: address, port, protocol and policy confs are in the
//!   key, nothing else goes in;
//! - outbound listeners: the same, unless a route policy (MeshHTTPRoute,
//!   MeshTCPRoute) is in either snapshot: routes resolve their backends
//!   against the snapshot, which the key does not show;
//! - a `kuma.io/service` destination's cluster and load assignment (its
//!   policy confs are in the key): when that destination (endpoints,
//!   protocol) is the same in both snapshots, and no route policy is in
//!   either (a route's backend clusters are built from more than the key).
//!
//! Policy confs being in the keys is what makes policy changes safe to carry
//! across: a resource whose confs changed has another key and is built
//! again. What generation reads besides the keys and the snapshot
//! (MeshProxyPatch, traffic permissions, the inbound listeners) is applied
//! to each proxy's own copy, never cached here. The Mesh's spec (mTLS)
//! shapes clusters beyond the key's `mtls` flag, so a changed Mesh carries
//! nothing.

use std::sync::PoisonError;

use kuma_api::Kind;

use super::snapshot::{CacheKey, MeshSnapshot};

impl MeshSnapshot {
    /// Takes over what `previous` already encoded and this snapshot would
    /// encode identically; returns how many entries were carried. The
    /// entries move: `previous` is left with an empty cache (it is being
    /// replaced; should it still generate, it builds again what it needs).
    /// Moving rather than copying spares hashing and copying every key,
    /// which at thousands of proxies cost tens of milliseconds per change.
    ///
    /// Across a policy change only the entries generation asked for since
    /// they were cached or carried last go along: entries built with confs
    /// no proxy has any more would otherwise pile up change after change.
    ///
    /// The caller vouches that the mesh's CA is the same (only the
    /// secrets' names, not their content, are in cached clusters).
    pub fn carry_shared_from(&self, previous: &MeshSnapshot) -> usize {
        if previous.mesh() != self.mesh() || previous.mesh_spec() != self.mesh_spec() {
            return 0;
        }
        let routes = has_routes(previous) || has_routes(self);
        let policies_changed = !previous.same_policies(self);
        let mut old = std::mem::take(
            &mut *previous
                .shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        old.retain(|key, entry| {
            let same = match key {
                CacheKey::InboundCluster { .. }
                | CacheKey::Passthrough(_)
                | CacheKey::ClusterTemplate { .. } => true,
                CacheKey::OutboundListener { .. } => !routes,
                CacheKey::Cluster { name, .. }
                | CacheKey::LoadAssignment(name)
                | CacheKey::LocalityLoadAssignment { cluster: name, .. } => {
                    !routes && self.same_service_destination(previous, name)
                }
            };
            let keep = same && (entry.used || !policies_changed);
            entry.used = false;
            keep
        });
        let carried = old.len();
        let mut new = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if new.is_empty() {
            *new = old;
        } else {
            for (key, entry) in old {
                new.entry(key).or_insert(entry);
            }
        }
        carried
    }

    /// Whether `name` is a `kuma.io/service` with the same destination in
    /// both snapshots (a cluster of another kind never counts).
    fn same_service_destination(&self, previous: &MeshSnapshot, name: &str) -> bool {
        match (previous.service(name), self.service(name)) {
            // Updated snapshots share unchanged destinations.
            (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
            _ => false,
        }
    }
}

/// Whether the snapshot has a route policy, whose effect on outbound
/// listeners and clusters cache keys do not fully show.
fn has_routes(snapshot: &MeshSnapshot) -> bool {
    snapshot
        .policy_kinds()
        .any(|k| matches!(k, Kind::MeshHTTPRoute | Kind::MeshTCPRoute))
}

#[cfg(test)]
mod tests;
