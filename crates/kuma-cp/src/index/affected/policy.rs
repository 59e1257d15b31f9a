//! Which proxies a policy change reaches. In universal mode a policy only
//! configures the proxies its top-level targetRef selects; and a policy made
//! only of `to` entries naming services only changes how those proxies
//! reach those services, so only the ones that reach them change.
//!
//! A MeshFaultInjection created or deleted reaches everyone: whether callers
//! send their tags header depends on the mesh having one.
//!
//! Anything this cannot read narrowly (a policy that does not parse, a
//! top-level targetRef to a MeshHTTPRoute or MeshGateway, a `to` entry by
//! labels or to a route) reaches every proxy selected, or everyone. In a
//! mesh with route policies `to` entries are not narrowed either: a route
//! may send a proxy's traffic to a service it has no outbound to, and that
//! backend's cluster takes the service's `to` confs.

use std::collections::BTreeSet;

use kuma_api::policies::TargetRefKind;
use kuma_api::{Kind, Resource};
use kuma_policy::Policy;
use kuma_policy::matcher::{Proxy, select};

use super::{Affected, Change, Reach};

/// The proxies a change of a policy can reach: for each of its old and new
/// versions, the proxies it selects, narrowed to those reaching the
/// services its `to` entries name when those are all it has.
/// `dataplanes` are the mesh's Dataplane resources; `routes` whether the
/// mesh has a MeshHTTPRoute or MeshTCPRoute.
pub(crate) fn affected<'a>(
    change: &Change<'_>,
    reach: &Reach,
    dataplanes: impl Iterator<Item = &'a Resource> + Clone,
    routes: bool,
) -> Affected {
    let versions: Vec<&Resource> = [change.old, change.new].into_iter().flatten().collect();
    if versions.is_empty() {
        return Affected::Everyone;
    }
    // Every proxy's outbounds send their tags (for per-client faults) only
    // while the mesh has a MeshFaultInjection: one appearing or going away
    // may change every caller, whichever proxies it selects.
    if change.kind == Kind::MeshFaultInjection && (change.old.is_none() || change.new.is_none()) {
        return Affected::Everyone;
    }
    let mut out = Affected::default();
    for resource in versions {
        let Ok(policy) = Policy::from_resource(resource) else {
            return Affected::Everyone;
        };
        out.merge(reached(&policy, reach, dataplanes.clone(), routes));
        if out == Affected::Everyone {
            break;
        }
    }
    out
}

fn reached<'a>(
    policy: &Policy,
    reach: &Reach,
    dataplanes: impl Iterator<Item = &'a Resource>,
    routes: bool,
) -> Affected {
    let named = if routes { None } else { to_services(policy) };
    let callers = named.map(|services| {
        let mut callers: BTreeSet<String> = reach.everything.clone();
        for service in &services {
            callers.extend(reach.service_callers(service).cloned());
            callers.extend(reach.mesh_service_callers(service).cloned());
        }
        callers
    });
    match (selected(policy, dataplanes), callers) {
        (Affected::Everyone, Some(callers)) => Affected::Only(callers),
        (Affected::Only(selected), Some(callers)) => {
            Affected::Only(selected.intersection(&callers).cloned().collect())
        }
        (selected, None) => selected,
    }
}

/// The proxies the policy's top-level targetRef selects, as the engine
/// selects them; everyone for `kind: Mesh` and refs this does not resolve.
fn selected<'a>(policy: &Policy, dataplanes: impl Iterator<Item = &'a Resource>) -> Affected {
    match policy.target_ref.kind {
        TargetRefKind::MeshSubset
        | TargetRefKind::MeshService
        | TargetRefKind::MeshServiceSubset
        | TargetRefKind::Dataplane => {}
        _ => return Affected::Everyone,
    }
    let names = dataplanes
        .filter_map(|r| Proxy::from_resource(r).ok())
        .filter(|proxy| !select(policy, &policy.target_ref, proxy).is_empty())
        .map(|proxy| proxy.name.to_string())
        .collect();
    Affected::Only(names)
}

/// The services (`kuma.io/service` or MeshService names) the policy's `to`
/// entries name, when it consists of nothing else: then it changes only
/// what its proxies send to those services. `None` otherwise: routes (they
/// also shape what other policies may target), inbound (`from`, `rules`)
/// or proxy-wide (`default`) parts, or a `to` entry aiming at anything but
/// one service by name.
fn to_services(policy: &Policy) -> Option<BTreeSet<String>> {
    if matches!(policy.kind, Kind::MeshHTTPRoute | Kind::MeshTCPRoute)
        || !policy.from.is_empty()
        || !policy.rules.is_empty()
        || policy.default.is_some()
        || policy.to.is_empty()
    {
        return None;
    }
    policy
        .to
        .iter()
        .map(|entry| {
            let r = &entry.target_ref;
            let name = r.name.as_deref().filter(|n| !n.is_empty())?;
            (r.kind == TargetRefKind::MeshService && r.labels.is_none()).then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests;
