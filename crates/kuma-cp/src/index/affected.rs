//! Which proxies of a mesh a change can reach, so a change regenerates only
//! those. Pure: the mesh index keeps a [`Reach`] per mesh current as
//! Dataplanes change and asks [`affected`] about each changed resource.
//!
//! The sets are deliberately generous (a proxy included for nothing only
//! costs a generation whose result is then found unchanged); leaving out a
//! proxy that should change would leave it with stale configuration.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::mesh_service::MeshServiceSpec;
use kuma_api::{Kind, Resource, Spec};

pub(crate) mod policy;

/// The backendRef kind of an outbound to a MeshService.
const MESH_SERVICE: &str = "MeshService";

/// Proxies (Dataplane names) of one mesh a change reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Affected {
    /// Every proxy of the mesh (the Mesh, its CA or a policy changed).
    Everyone,
    Only(BTreeSet<String>),
}

impl Default for Affected {
    fn default() -> Self {
        Affected::Only(BTreeSet::new())
    }
}

impl Affected {
    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            Affected::Everyone => true,
            Affected::Only(names) => names.contains(name),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Affected::Only(names) if names.is_empty())
    }

    pub(crate) fn merge(&mut self, other: Affected) {
        match (&mut *self, other) {
            (Affected::Everyone, _) => {}
            (_, Affected::Everyone) => *self = Affected::Everyone,
            (Affected::Only(mine), Affected::Only(theirs)) => mine.extend(theirs),
        }
    }

    fn extend<'a>(&mut self, names: impl IntoIterator<Item = &'a String>) {
        if let Affected::Only(mine) = self {
            mine.extend(names.into_iter().cloned());
        }
    }
}

/// What one Dataplane can reach: the destinations whose changes it must see.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reaches {
    /// `kuma.io/service` names (tag outbounds, transparent `reachableServices`).
    services: BTreeSet<String>,
    mesh_services: BTreeSet<String>,
    /// Transparent proxying without `reachableServices`: every service.
    everything: bool,
}

impl Reaches {
    fn of(dataplane: &DataplaneSpec) -> Reaches {
        let mut reaches = Reaches::default();
        for outbound in dataplane.outbounds() {
            match &outbound.backend_ref {
                Some(r) if r.kind == MESH_SERVICE => {
                    reaches.mesh_services.insert(r.name.clone());
                }
                // Other backendRef kinds are not generated; their tags are not a service.
                Some(_) => {}
                None => {
                    if let Some(service) = outbound.service() {
                        reaches.services.insert(service.to_string());
                    }
                }
            }
        }
        if let Some(tp) = dataplane.transparent_proxying() {
            if tp.reachable_services.is_empty() {
                reaches.everything = true;
            }
            reaches
                .services
                .extend(tp.reachable_services.iter().cloned());
        }
        reaches
    }
}

/// The reverse index of one mesh: destination -> the Dataplanes reaching it.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    by_service: HashMap<String, BTreeSet<String>>,
    by_mesh_service: HashMap<String, BTreeSet<String>>,
    everything: BTreeSet<String>,
}

impl Reach {
    /// Replaces what Dataplane `name` reaches (`old` is what it was indexed with).
    pub(crate) fn update(
        &mut self,
        name: &str,
        old: Option<&DataplaneSpec>,
        new: Option<&DataplaneSpec>,
    ) {
        let before = old.map(Reaches::of).unwrap_or_default();
        let after = new.map(Reaches::of).unwrap_or_default();
        if before == after {
            return;
        }
        unregister(&mut self.by_service, &before.services, name);
        unregister(&mut self.by_mesh_service, &before.mesh_services, name);
        if before.everything {
            self.everything.remove(name);
        }
        register(&mut self.by_service, &after.services, name);
        register(&mut self.by_mesh_service, &after.mesh_services, name);
        if after.everything {
            self.everything.insert(name.to_string());
        }
    }

    fn service_callers(&self, service: &str) -> impl Iterator<Item = &String> {
        self.by_service.get(service).into_iter().flatten()
    }

    fn mesh_service_callers(&self, name: &str) -> impl Iterator<Item = &String> {
        self.by_mesh_service.get(name).into_iter().flatten()
    }
}

fn register(index: &mut HashMap<String, BTreeSet<String>>, keys: &BTreeSet<String>, name: &str) {
    for key in keys {
        index
            .entry(key.clone())
            .or_default()
            .insert(name.to_string());
    }
}

fn unregister(index: &mut HashMap<String, BTreeSet<String>>, keys: &BTreeSet<String>, name: &str) {
    for key in keys {
        if let Some(names) = index.get_mut(key) {
            names.remove(name);
            if names.is_empty() {
                index.remove(key);
            }
        }
    }
}

/// One resource of a mesh as it was and as it is now (`None`: absent).
pub(crate) struct Change<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub old: Option<&'a Resource>,
    pub new: Option<&'a Resource>,
}

/// The proxies `change` can reach. `reach` must already include the change
/// when it is a Dataplane's (either order is correct: a proxy whose own
/// outbounds changed is affected as itself). `mesh_services` are the mesh's
/// MeshServices. A policy change reaches everyone here; [`policy::affected`]
/// narrows it down.
pub(crate) fn affected<'a>(
    change: &Change<'_>,
    reach: &Reach,
    mesh_services: impl IntoIterator<Item = (&'a str, &'a MeshServiceSpec)>,
) -> Affected {
    if change.kind == Kind::Mesh || change.kind.is_policy() {
        return Affected::Everyone;
    }
    let mut out = Affected::default();
    match change.kind {
        Kind::Dataplane => {
            out.extend([&change.name.to_string()]);
            let versions: Vec<(&BTreeMap<String, String>, &DataplaneSpec)> =
                [change.old, change.new]
                    .into_iter()
                    .flatten()
                    .filter_map(|r| match &r.spec {
                        Spec::Dataplane(d) => Some((&r.meta.labels, d)),
                        _ => None,
                    })
                    .collect();
            let mut serves_any = false;
            for (_, dataplane) in &versions {
                for service in dataplane.inbounds().iter().filter_map(|i| i.service_tag()) {
                    serves_any = true;
                    out.extend(reach.service_callers(service));
                }
            }
            if serves_any {
                out.extend(&reach.everything);
            }
            for (ms_name, ms) in mesh_services {
                if versions
                    .iter()
                    .any(|(labels, d)| selects(ms, change.name, labels, d))
                {
                    out.extend(reach.mesh_service_callers(ms_name));
                }
            }
        }
        Kind::MeshService => {
            out.extend(reach.mesh_service_callers(change.name));
            // Policies' `to` entries may name a MeshService where callers
            // use the `kuma.io/service` of the same name: include them too.
            out.extend(reach.service_callers(change.name));
        }
        _ => {}
    }
    out
}

/// Whether a MeshService selects any inbound of this Dataplane (readiness
/// and port aside: either way its callers may need to hear about it).
fn selects(
    ms: &MeshServiceSpec,
    name: &str,
    labels: &BTreeMap<String, String>,
    dataplane: &DataplaneSpec,
) -> bool {
    let Some(selector) = &ms.selector else {
        return false;
    };
    selector.dataplane_tags.as_ref().is_some_and(|tags| {
        dataplane
            .inbounds()
            .iter()
            .any(|i| tags.iter().all(|(k, v)| i.tags.get(k) == Some(v)))
    }) || selector
        .dataplane_ref
        .as_ref()
        .is_some_and(|r| r.name == name)
        || selector
            .dataplane_labels
            .as_ref()
            .is_some_and(|l| l.matches(labels))
}

#[cfg(test)]
mod tests;
