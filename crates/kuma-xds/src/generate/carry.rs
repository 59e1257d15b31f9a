//! Carrying a mesh's shared resources over to its next snapshot. A change
//! usually touches one destination; without carrying, the first proxies
//! generated after it would encode every other destination again.
//!
//! An entry is carried only when its key says everything it was built from
//! (inbound clusters, outbound listeners: address, port, protocol and policy
//! confs are in the key), or when it is a `kuma.io/service` destination's
//! cluster or load assignment and that destination (endpoints, protocol) is
//! the same in both snapshots. Anything else is built again when needed.

use std::sync::PoisonError;

use super::snapshot::{CacheKey, MeshSnapshot};

impl MeshSnapshot {
    /// Takes over what `previous` already encoded and this snapshot would
    /// encode identically; returns how many entries were carried. The
    /// caller vouches that the Mesh, its CA and its policies are the same
    /// in both (only Dataplanes and MeshServices changed).
    pub fn carry_shared_from(&self, previous: &MeshSnapshot) -> usize {
        if previous.mesh() != self.mesh() {
            return 0;
        }
        let old = previous
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut new = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut carried = 0;
        for (key, resource) in old.iter() {
            let same = match key {
                CacheKey::InboundCluster { .. } | CacheKey::OutboundListener { .. } => true,
                CacheKey::Cluster { name, .. } | CacheKey::LoadAssignment(name) => {
                    self.same_service_destination(previous, name)
                }
            };
            if same {
                new.entry(key.clone()).or_insert_with(|| resource.clone());
                carried += 1;
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

#[cfg(test)]
mod tests;
