//! One mesh in the index: its resources, its last snapshot, and what
//! changed since, so that the next snapshot can be an update of the last
//! one rather than a fresh build.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kuma_api::{Kind, Resource, Spec};
use kuma_xds::generate::MeshSnapshot;

use super::affected::Reach;
use crate::mtls::MeshCa;

#[derive(Default)]
pub(super) struct MeshEntry {
    pub(super) resources: BTreeMap<(Kind, String), Resource>,
    pub(super) snapshot: Option<Arc<MeshSnapshot>>,
    /// The CA signing this mesh's identities; `None` without mTLS.
    pub(super) ca: Option<Arc<MeshCa>>,
    /// Which Dataplanes reach which destinations, kept with `resources`.
    pub(super) reach: Reach,
    /// The last snapshot built, while its shared resources may still be
    /// carried to the next one.
    pub(super) carry_from: Option<Arc<MeshSnapshot>>,
    /// The last snapshot built and what changed since, while an update of
    /// it can stand for a fresh build (which at thousands of proxies costs
    /// hundreds of milliseconds).
    pub(super) update_from: Option<(Arc<MeshSnapshot>, Pending)>,
}

/// What changed since the last snapshot was built.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) dataplanes: BTreeSet<String>,
    pub(super) mesh_services: BTreeSet<String>,
    pub(super) policies: BTreeSet<(Kind, String)>,
    pub(super) mesh: bool,
}

impl Pending {
    /// Records a change of `kind`; `false` when an update cannot follow
    /// it (the next snapshot is then built afresh).
    fn record(&mut self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Dataplane => {
                self.dataplanes.insert(name.to_string());
            }
            Kind::MeshService => {
                self.mesh_services.insert(name.to_string());
            }
            Kind::Mesh => self.mesh = true,
            kind if kind.is_policy() => {
                self.policies.insert((kind, name.to_string()));
            }
            _ => return false,
        }
        true
    }
}

impl MeshEntry {
    pub(super) fn snapshot(&mut self, mesh: &str) -> Arc<MeshSnapshot> {
        if let Some(s) = &self.snapshot {
            return s.clone();
        }
        let s = Arc::new(match self.update_from.take() {
            Some((base, pending)) => self.updated(&base, pending),
            None => MeshSnapshot::from_resources(mesh, self.resources.values().cloned()),
        });
        if let Some(previous) = self.carry_from.take() {
            let carried = s.carry_shared_from(&previous);
            tracing::trace!(%mesh, carried, "shared resources carried to the new snapshot");
        }
        self.snapshot = Some(s.clone());
        s
    }

    /// The labels and spec (as `pick` takes it) of a resource as it is now;
    /// `None` when it is gone.
    fn current<T>(
        &self,
        kind: Kind,
        name: &str,
        pick: impl Fn(&Spec) -> Option<T>,
    ) -> Option<(BTreeMap<String, String>, T)> {
        let r = self.resources.get(&(kind, name.to_string()))?;
        Some((r.meta.labels.clone(), pick(&r.spec)?))
    }

    /// `base` with what is pending applied from the current resources.
    fn updated(&self, base: &MeshSnapshot, pending: Pending) -> MeshSnapshot {
        let mut updated: Option<MeshSnapshot> = None;
        if !pending.dataplanes.is_empty() {
            let changes = pending.dataplanes.into_iter().map(|name| {
                let state = self.current(Kind::Dataplane, &name, |spec| match spec {
                    Spec::Dataplane(d) => Some(d.clone()),
                    _ => None,
                });
                (name, state)
            });
            updated = Some(base.with_dataplane_changes(changes));
        }
        // After the Dataplanes (ports are indexed from them), before the
        // policies (indexed against the MeshServices).
        if !pending.mesh_services.is_empty() {
            let changes = pending.mesh_services.into_iter().map(|name| {
                let state = self.current(Kind::MeshService, &name, |spec| match spec {
                    Spec::MeshService(s) => Some(s.clone()),
                    _ => None,
                });
                (name, state)
            });
            let next = updated
                .as_ref()
                .unwrap_or(base)
                .with_mesh_service_changes(changes);
            updated = Some(next);
        }
        if !pending.policies.is_empty() {
            let changes = pending.policies.into_iter().map(|(kind, name)| {
                let state = self.current(kind, &name, |spec| Some(spec.clone()));
                (kind, name, state)
            });
            let next = updated
                .as_ref()
                .unwrap_or(base)
                .with_policy_changes(changes);
            updated = Some(next);
        }
        if pending.mesh {
            let spec = match self.resources.get(&(Kind::Mesh, base.mesh().to_string())) {
                Some(Resource {
                    spec: Spec::Mesh(m),
                    ..
                }) => Some(m.clone()),
                _ => None,
            };
            let next = updated.as_ref().unwrap_or(base).with_mesh_spec(spec);
            updated = Some(next);
        }
        // Nothing pending: the same snapshot, with a cache of its own.
        updated.unwrap_or_else(|| base.with_mesh_spec(base.mesh_spec().cloned()))
    }

    /// The snapshot is out of date after a change of `kind`. A Dataplane,
    /// MeshService, policy or Mesh change lets the next snapshot be an
    /// update of the last one; a change of another kind means a fresh
    /// build.
    ///
    /// Encoded resources may be carried to the next snapshot unless the
    /// Mesh changed ([`MeshSnapshot::carry_shared_from`] decides, entry by
    /// entry, what else is safe).
    pub(super) fn invalidate(&mut self, kind: Kind, name: &str) {
        let built = self.snapshot.take();
        let pending = match (built.clone(), self.update_from.take()) {
            (Some(base), _) => Some((base, Pending::default())),
            (None, pending) => pending,
        };
        self.update_from =
            pending.and_then(|(base, mut p)| p.record(kind, name).then_some((base, p)));
        let carry = kind != Kind::Mesh;
        let previous = built.or_else(|| self.carry_from.take());
        self.carry_from = previous.filter(|_| carry);
    }
}
