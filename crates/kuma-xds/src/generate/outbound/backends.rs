//! The clusters routes send traffic to: a backendRef names a MeshService
//! (a real one, or a `kuma.io/service`) or a MeshServiceSubset (a service's
//! instances with some tags). Each becomes a cluster of its own beside the
//! outbound's, shared through the snapshot cache like any destination's.
//!
//! Subset clusters are named as Kuma names them: `<service>-<hash>`, the
//! hash the first 8 bytes (hex) of the SHA-256 of the sorted tags, service
//! tag included, each key followed by its value.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::TargetRefKind;
use kuma_api::policies::mesh_http_route::Match;
use kuma_api::policies::mesh_tcp_route::Conf as TcpConf;
use kuma_api::policies::values::BackendRef;
use sha2::{Digest, Sha256};

use super::{Target, mesh_service_target, served_target};
use crate::generate::policies::ProxyPolicies;
use crate::generate::policies::mesh_http_route::{
    Backends, RouteCandidate, Split, origin_of, route_candidates,
};
use crate::generate::snapshot::{Destination, MeshSnapshot};

/// Resolves the backendRefs of one outbound's routes, collecting the
/// clusters they need beyond the outbound's own.
pub(super) struct Resolver<'s, 'p> {
    snapshot: &'s MeshSnapshot,
    policies: &'p ProxyPolicies<'p>,
    own_cluster: String,
    route_origins: Vec<String>,
    /// The MeshHTTPRoutes of `route_origins` with their rules' matches,
    /// once a route asks for its origin.
    candidates: OnceCell<Vec<RouteCandidate<'s>>>,
    /// The outbound leads to a MeshService: routes are named after their
    /// MeshHTTPRoute.
    mesh_service: bool,
    /// HTTP routes may only send to HTTP destinations.
    require_http: bool,
    backends: Vec<Target<'s>>,
    /// Each backendRef met so far and its cluster (`None`: unresolved):
    /// routes often name the same backends.
    resolved: Vec<(Arc<BackendRef>, Option<String>)>,
}

impl<'s, 'p> Resolver<'s, 'p> {
    pub(super) fn new(
        snapshot: &'s MeshSnapshot,
        policies: &'p ProxyPolicies<'p>,
        outbound: &Target<'_>,
    ) -> Self {
        Resolver {
            snapshot,
            policies,
            own_cluster: outbound.cluster.to_string(),
            route_origins: outbound.route_origins.clone(),
            candidates: OnceCell::new(),
            mesh_service: outbound.mesh_service,
            require_http: false,
            backends: Vec::new(),
            resolved: Vec::new(),
        }
    }

    /// The MeshHTTPRoutes that shaped the outbound's route table, when
    /// they are found only once the table is built.
    pub(super) fn set_route_origins(&mut self, origins: Vec<String>) {
        self.route_origins = origins;
        self.candidates = OnceCell::new();
    }

    /// The backendRefs resolved so far, each once, in the order met.
    pub(super) fn resolved_backends(&self) -> Vec<Arc<BackendRef>> {
        self.resolved
            .iter()
            .filter(|(_, cluster)| cluster.is_some())
            .map(|(backend, _)| backend.clone())
            .collect()
    }

    /// The cluster `backend` leads to, gathering it among the backends;
    /// resolved once per backendRef.
    pub(super) fn resolve_cluster(&mut self, backend: &Arc<BackendRef>) -> Option<String> {
        // Equal backendRefs of the snapshot's route confs are one value:
        // found by address without reading them; a rule a proxy's fold
        // made has values of its own, found by value.
        let found = self
            .resolved
            .iter()
            .find(|(b, _)| Arc::ptr_eq(b, backend))
            .or_else(|| self.resolved.iter().find(|(b, _)| **b == **backend));
        if let Some((_, cluster)) = found {
            return cluster.clone();
        }
        let cluster = self.resolve(backend).map(|target| {
            let name = target.cluster.to_string();
            if name != self.own_cluster && !self.backends.iter().any(|b| b.cluster == name) {
                self.backends.push(target);
            }
            name
        });
        self.resolved.push((backend.clone(), cluster.clone()));
        cluster
    }

    pub(super) fn require_http(&mut self, yes: bool) {
        if self.require_http != yes {
            // What resolved before may not now, and the other way round.
            self.resolved.clear();
        }
        self.require_http = yes;
    }

    /// The clusters the routes named, besides the outbound's own.
    pub(super) fn into_backends(self) -> Vec<Target<'s>> {
        self.backends
    }

    fn resolve(&self, backend: &BackendRef) -> Option<Target<'s>> {
        let r = &backend.target_ref;
        let name = r.name.as_deref()?;
        let target = match r.kind {
            TargetRefKind::MeshService => match self.snapshot.mesh_service(name) {
                Some(service) => {
                    // A MeshService with one port needs no port named.
                    let only = match service.ports.as_slice() {
                        [only] => Some(only.port),
                        _ => None,
                    };
                    let port = backend.port.or(only)?;
                    mesh_service_target(self.snapshot, self.policies, name, port)?
                }
                None => self.service_subset(name, &BTreeMap::new())?,
            },
            TargetRefKind::MeshServiceSubset => {
                self.service_subset(name, r.tags.as_ref().unwrap_or(&BTreeMap::new()))?
            }
            // MeshExternalService and MeshMultiZoneService are not generated yet.
            _ => return None,
        };
        if self.require_http && !target.destination.protocol.is_http() {
            return None;
        }
        Some(target)
    }

    /// The instances of `kuma.io/service` `service` having every one of `tags`.
    fn service_subset(&self, service: &str, tags: &BTreeMap<String, String>) -> Option<Target<'s>> {
        let (service, all) = self.snapshot.service_entry(service)?;
        let mut target = served_target(self.policies, service, all);
        if tags.keys().all(|k| k == SERVICE_TAG) {
            return Some(target);
        }
        let tags: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, _)| k.as_str() != SERVICE_TAG)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Named after the subset now, it keeps the service's identity.
        target.services = vec![service.to_string()];
        let endpoints = all
            .endpoints
            .iter()
            .filter(|e| tags.iter().all(|(k, v)| e.tags.get(k) == Some(v)))
            .cloned()
            .collect();
        target.cluster = subset_cluster(service, &tags).into();
        target.destination = Cow::Owned(Destination {
            endpoints,
            protocol: all.protocol,
        });
        target.subset = tags;
        Some(target)
    }
}

impl Backends for Resolver<'_, '_> {
    fn cluster(&mut self, backend: &Arc<BackendRef>) -> Option<String> {
        self.resolve_cluster(backend)
    }

    fn origin(&self, matches: &[Match]) -> Option<String> {
        let candidates = self
            .candidates
            .get_or_init(|| route_candidates(&self.route_origins, self.snapshot.route_confs()));
        origin_of(matches, candidates).map(str::to_string)
    }

    fn named_by_origin(&self) -> Option<&str> {
        self.mesh_service.then(|| self.snapshot.mesh())
    }
}

/// Where a MeshTCPRoute sends the outbound's connections (empty: nowhere
/// else than the destination).
pub(super) fn tcp_split(conf: &TcpConf, resolver: &mut Resolver<'_, '_>) -> Vec<Split> {
    conf.backend_refs()
        .iter()
        .filter_map(|b| {
            let weight = b.weight.unwrap_or(1);
            let cluster = resolver.cluster(&Arc::new(b.clone()))?;
            (weight > 0).then_some(Split { cluster, weight })
        })
        .collect()
}

/// `<service>-<16 hex digits>` for the instances of `service` with `tags`.
pub(super) fn subset_cluster(service: &str, tags: &BTreeMap<String, String>) -> String {
    let mut all = tags.clone();
    all.insert(SERVICE_TAG.to_string(), service.to_string());
    let mut hash = Sha256::new();
    for (k, v) in &all {
        hash.update(k.as_bytes());
        hash.update(v.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{service}-{hex}")
}

/// SNI towards a subset: `<service>{<tag>=<value>,...}` with the mesh among
/// the tags, sorted by name.
pub(super) fn subset_sni(service: &str, mesh: &str, tags: &BTreeMap<String, String>) -> String {
    let mut all = tags.clone();
    all.insert("mesh".to_string(), mesh.to_string());
    let pairs: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{service}{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_names_follow_kuma() {
        let tags = BTreeMap::from([("region".to_string(), "us".to_string())]);
        // The name Kuma gives the same subset in its own golden files.
        assert_eq!(subset_cluster("backend", &tags), "backend-c72efb5be46fae6b");
        assert_eq!(
            subset_sni("backend", "default", &tags),
            "backend{mesh=default,region=us}"
        );
    }
}
