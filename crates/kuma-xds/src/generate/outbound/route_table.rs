//! MeshHTTPRoute route tables, built once per snapshot for every proxy
//! that has the same routes towards the same destination.
//!
//! A route table (its routes' names, matches, filters and splits) depends on
//! the destination's folded MeshHTTPRoute conf, the MeshHTTPRoutes that
//! conf came from and the snapshot, never on anything else of the proxy.
//! Proxies whose `to` rules are the same rules (those the same policies
//! select) share the conf at the same position of those rules, so for a
//! `kuma.io/service` destination the rules, the position and the
//! destination's name identify the table. Each proxy still resolves the
//! table's backends itself: their clusters carry the proxy's own confs.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use kuma_api::policies::values::BackendRef;
use kuma_policy::engine::ToRules;

use super::Target;
use super::backends::Resolver;
use crate::generate::policies::mesh_http_route::{self, RouteEntry};
use crate::generate::policies::{DestinationRef, ProxyPolicies};
use crate::generate::snapshot::MeshSnapshot;

/// An outbound's routes, and what they send traffic to.
#[derive(Debug)]
pub(crate) struct RouteTable {
    pub(super) entries: Vec<RouteEntry>,
    /// The names of the routes, each after a `|`: part of the cache key of
    /// every listener with the table, written once.
    pub(super) names: String,
    /// The backendRefs the routes resolved, each once, in the order the
    /// routes met them: what a proxy resolves again to gather the backend
    /// clusters it needs.
    backends: Vec<Arc<BackendRef>>,
}

/// What a `kuma.io/service` destination's route table is made from: the
/// `to` rules and the position of their conf for it, and its name. The
/// rules are held, not only compared by address, so that their address
/// cannot be reused while the key lives.
#[derive(Debug)]
pub(crate) struct RouteTableKey {
    rules: Arc<ToRules>,
    at: usize,
    cluster: String,
}

impl PartialEq for RouteTableKey {
    fn eq(&self, other: &RouteTableKey) -> bool {
        Arc::ptr_eq(&self.rules, &other.rules)
            && self.at == other.at
            && self.cluster == other.cluster
    }
}

impl Eq for RouteTableKey {}

impl Hash for RouteTableKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.rules).hash(state);
        self.at.hash(state);
        self.cluster.hash(state);
    }
}

/// The route tables of a snapshot by what they are made from; `None` where
/// the conf did not read (no routes).
pub(crate) type RouteTables =
    Mutex<HashMap<RouteTableKey, Option<Arc<RouteTable>>, foldhash::fast::RandomState>>;

/// The route table of the HTTP outbound `t` (with its backends gathered in
/// `resolver`), when MeshHTTPRoutes apply to it and their conf reads.
pub(super) fn of(
    snapshot: &MeshSnapshot,
    t: &Target<'_>,
    resolver: &mut Resolver<'_, '_>,
    policies: &ProxyPolicies,
) -> Option<Arc<RouteTable>> {
    let shared = t.policies.http_route_rule().filter(|_| !t.mesh_service);
    let Some((rules, at)) = shared else {
        return build(snapshot, t, resolver, policies).map(Arc::new);
    };
    let key = RouteTableKey {
        rules,
        at,
        cluster: t.cluster.to_string(),
    };
    let tables = || {
        snapshot
            .route_tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    let cached = tables().get(&key).cloned();
    match cached {
        Some(table) => {
            // The proxy's own clusters for the backends the table names.
            for backend in table.iter().flat_map(|found| &found.backends) {
                resolver.resolve_cluster(backend);
            }
            table
        }
        // Built outside the lock so generation of other proxies proceeds.
        None => {
            let table = build(snapshot, t, resolver, policies).map(Arc::new);
            tables().entry(key).or_insert(table).clone()
        }
    }
}

fn build(
    snapshot: &MeshSnapshot,
    t: &Target<'_>,
    resolver: &mut Resolver<'_, '_>,
    policies: &ProxyPolicies,
) -> Option<RouteTable> {
    let rules = t.policies.http_route(snapshot.route_confs())?;
    // Rules read with their route need no search for it.
    if !t.mesh_service && rules.iter().any(|r| r.origin.is_none()) {
        // Needed only here: a MeshService target brings its own.
        let destination = DestinationRef::Service(&t.cluster);
        resolver.set_route_origins(policies.http_route_origins(&destination, &t.policies));
    }
    let entries = mesh_http_route::route_table(&rules, &t.cluster, resolver);
    let mut names = String::with_capacity(entries.iter().map(|e| e.name.len() + 1).sum());
    for entry in &entries {
        names.push('|');
        names.push_str(&entry.name);
    }
    Some(RouteTable {
        entries,
        names,
        backends: resolver.resolved_backends(),
    })
}
