//! The policy part of a snapshot: every targetRef policy of the mesh, read
//! and indexed per kind. A fresh build and an update both go through
//! [`PolicySet::new`] and [`PolicySet::with_changes`], which index a kind
//! alike from the same sources.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kuma_api::{Kind, Spec};
use kuma_policy::policy::SharedConfs;
use kuma_policy::{Destination as PolicyDestination, MeshContext, Policy, PolicyIndex};

use super::route_confs::RouteConfs;

/// One policy read, or why it could not be. Read policies are shared with
/// the indexes built from them.
pub(super) type ReadPolicy = Result<Arc<Policy>, String>;

/// One kind's policies by name.
pub(super) type Read = BTreeMap<String, ReadPolicy>;

/// Policies as added, by name: one added again replaces the earlier one.
/// Sorted first and built in one go, rather than inserted one by one.
pub(super) fn by_name(mut added: Vec<(String, ReadPolicy)>) -> Read {
    // Stable: of equal names, the one added last ends up last.
    added.sort_by(|a, b| a.0.cmp(&b.0));
    let mut last: Vec<(String, ReadPolicy)> = Vec::with_capacity(added.len());
    for (name, policy) in added {
        match last.last_mut() {
            Some(previous) if previous.0 == name => previous.1 = policy,
            _ => last.push((name, policy)),
        }
    }
    last.into_iter().collect()
}

/// The mesh's policies, indexed; they depend on policies and MeshServices
/// only, never on Dataplanes.
#[derive(Debug)]
pub(super) struct PolicySet {
    /// Behind an `Arc` so that its address stays put: an index memoizes
    /// rules per context address, so an index shared with an updated set
    /// keeps its memo only while the context is the very same one.
    pub(super) context: Arc<MeshContext>,
    /// Every targetRef policy kind present in the mesh, indexed for matching.
    pub(super) by_kind: BTreeMap<Kind, Arc<PolicyIndex>>,
    /// Stands in for a kind with no policy in the mesh.
    pub(super) none: PolicyIndex,
    /// The MeshHTTPRoutes' `to` confs, read.
    pub(super) routes: Arc<RouteConfs>,
    /// Policies left out because they could not be read.
    pub(super) warnings: Vec<String>,
    /// What the indexes were built from, kept for updates.
    sources: BTreeMap<Kind, Arc<Read>>,
}

/// A policy changed in a snapshot update, not read yet: the changes of one
/// update are read together, sharing equal confs (one value each, which
/// makes folds that meet it again cheap) and reading a repeated conf once.
#[derive(Debug, Clone)]
pub(super) struct Added(Box<(BTreeMap<String, String>, Spec)>);

/// One policy as the set will read it; its mesh and name are the set's
/// mesh and the policy's key in its kind's map.
pub(super) fn added(labels: BTreeMap<String, String>, spec: Spec) -> Added {
    Added(Box::new((labels, spec)))
}

/// Reads one policy of `mesh`, sharing its confs with the policies read
/// before with `confs`.
pub(super) fn read_one(
    mesh: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    spec: Spec,
    confs: &mut SharedConfs,
) -> ReadPolicy {
    Policy::from_spec_sharing(mesh, name, labels, spec, confs)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The index of one kind, `None` when no policy of it reads.
fn index(kind: Kind, sources: &Read, context: &MeshContext) -> Option<PolicyIndex> {
    let policies: Vec<Arc<Policy>> = sources
        .values()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    (!policies.is_empty()).then(|| PolicyIndex::new(kind, policies, context))
}

fn warnings(sources: &BTreeMap<Kind, Arc<Read>>) -> Vec<String> {
    sources
        .values()
        .flat_map(|by_name| by_name.values())
        .filter_map(|p| p.as_ref().err().cloned())
        .collect()
}

impl PolicySet {
    /// The set of the policies read (by kind and name), indexed; the
    /// MeshHTTPRoute confs `previous` read already are not read again.
    pub(super) fn from_read(
        mesh: String,
        destinations: Vec<PolicyDestination>,
        sources: BTreeMap<Kind, Arc<Read>>,
        previous: Option<&RouteConfs>,
    ) -> PolicySet {
        // Policies may target MeshHTTPRoutes by name: the routes are part
        // of what every kind is indexed with.
        let http_routes: Vec<Arc<Policy>> = sources
            .get(&Kind::MeshHTTPRoute)
            .map(|routes| {
                routes
                    .values()
                    .filter_map(|p| p.as_ref().ok().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let routes = Arc::new(RouteConfs::new(&http_routes, previous));
        let context = Arc::new(MeshContext {
            mesh,
            destinations,
            http_routes,
        });
        let by_kind = sources
            .iter()
            .filter_map(|(kind, by_name)| {
                index(*kind, by_name, &context).map(|i| (*kind, Arc::new(i)))
            })
            .collect();
        PolicySet {
            none: PolicyIndex::new(Kind::MeshTrafficPermission, Vec::<Policy>::new(), &context),
            context,
            by_kind,
            routes,
            warnings: warnings(&sources),
            sources,
        }
    }

    /// This set with `changes` (kind, name, the policy read or `None` when
    /// deleted) applied. Only the kinds changed are indexed again, with the
    /// same context, unless a MeshHTTPRoute changed: the routes are part
    /// of the context, so then every kind is.
    pub(super) fn with_changes(
        &self,
        changes: impl IntoIterator<Item = (Kind, String, Option<Added>)>,
    ) -> PolicySet {
        let mut sources = self.sources.clone();
        let mut touched = BTreeSet::new();
        let mut confs = SharedConfs::default();
        for (kind, name, state) in changes {
            let by_name = Arc::make_mut(sources.entry(kind).or_default());
            match state {
                Some(added) => {
                    let (labels, spec) = *added.0;
                    let policy = read_one(&self.context.mesh, &name, labels, spec, &mut confs);
                    by_name.insert(name, policy);
                }
                None => {
                    by_name.remove(&name);
                }
            }
            if by_name.is_empty() {
                sources.remove(&kind);
            }
            touched.insert(kind);
        }
        if touched.contains(&Kind::MeshHTTPRoute) {
            return PolicySet::from_read(
                self.context.mesh.clone(),
                self.context.destinations.clone(),
                sources,
                Some(&self.routes),
            );
        }
        let mut by_kind = self.by_kind.clone();
        for kind in touched {
            match sources
                .get(&kind)
                .and_then(|by_name| index(kind, by_name, &self.context))
            {
                Some(i) => by_kind.insert(kind, Arc::new(i)),
                None => by_kind.remove(&kind),
            };
        }
        PolicySet {
            context: self.context.clone(),
            by_kind,
            none: PolicyIndex::new(
                Kind::MeshTrafficPermission,
                Vec::<Policy>::new(),
                &self.context,
            ),
            routes: self.routes.clone(),
            warnings: warnings(&sources),
            sources,
        }
    }

    /// This set's policies, as read, indexed again against `destinations`
    /// (the mesh's MeshServices): no policy is read again.
    pub(super) fn with_destinations(&self, destinations: Vec<PolicyDestination>) -> PolicySet {
        PolicySet::from_read(
            self.context.mesh.clone(),
            destinations,
            self.sources.clone(),
            Some(&self.routes),
        )
    }

    /// Whether both sets index the very same policies as read (for tests).
    #[cfg(test)]
    pub(super) fn same_sources(&self, other: &PolicySet) -> bool {
        self.sources.len() == other.sources.len()
            && self
                .sources
                .iter()
                .zip(&other.sources)
                .all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y))
    }

    /// Whether an index of `kind` is the very one of `other` (for tests).
    #[cfg(test)]
    pub(super) fn shares_index(&self, other: &PolicySet, kind: Kind) -> bool {
        match (self.by_kind.get(&kind), other.by_kind.get(&kind)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_added_again_replace_the_earlier_ones_by_name() {
        let added = |names: &[(&str, &str)]| -> Vec<(String, ReadPolicy)> {
            names
                .iter()
                .map(|(name, why)| (name.to_string(), Err(why.to_string())))
                .collect()
        };
        let read = by_name(added(&[
            ("b", "b1"),
            ("a", "a1"),
            ("c", "c1"),
            ("b", "b2"),
            ("a", "a2"),
            ("b", "b3"),
        ]));
        let got: Vec<(&str, &str)> = read
            .iter()
            .map(|(name, p)| (name.as_str(), p.as_ref().err().map_or("", String::as_str)))
            .collect();
        assert_eq!(got, [("a", "a2"), ("b", "b3"), ("c", "c1")]);
    }
}
