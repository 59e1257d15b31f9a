//! Updating a snapshot for changed Dataplanes, policies or Mesh without
//! building it again.
//!
//! At thousands of proxies a fresh build costs hundreds of milliseconds: it
//! copies every Dataplane and indexes every destination and every policy.
//! An update shares all of that with the snapshot it starts from and indexes
//! again only what the changes touch: the destinations changed Dataplanes
//! serve (or served), the policy kinds changed, the ports of changed
//! MeshServices. Policies do not depend on Dataplanes and destinations do
//! not depend on policies, so each side is shared as it is when only the
//! other changes; a MeshService change indexes every policy kind again
//! (`to` entries may select MeshServices by labels) from the policies as
//! they were read, without reading any again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::mesh::MeshSpec;
use kuma_api::kinds::mesh_service::MeshServiceSpec;
use kuma_api::policies::TargetRefKind;
use kuma_api::{Kind, Spec};
use kuma_policy::Destination as PolicyDestination;

use super::{IndexedDataplane, MeshSnapshot, index, policy_set};

/// The state of one Dataplane after a change: its labels and spec, or
/// `None` when it was deleted.
pub type DataplaneState = Option<(BTreeMap<String, String>, DataplaneSpec)>;

/// The state of one MeshService after a change: its labels and spec, or
/// `None` when it was deleted.
pub type MeshServiceState = Option<(BTreeMap<String, String>, MeshServiceSpec)>;

/// The state of one policy after a change: its labels and spec, or `None`
/// when it was deleted.
pub type PolicyState = Option<(BTreeMap<String, String>, Spec)>;

impl MeshSnapshot {
    /// This snapshot with `changes` applied to its Dataplanes: the same as a
    /// fresh build from the changed resources, but sharing everything the
    /// changes do not touch. The result starts with an empty cache of
    /// shared resources (see [`MeshSnapshot::carry_shared_from`]).
    pub fn with_dataplane_changes(
        &self,
        changes: impl IntoIterator<Item = (String, DataplaneState)>,
    ) -> MeshSnapshot {
        let mut dataplanes = (*self.dataplanes).clone();
        let mut service_members = (*self.service_members).clone();
        let mut services_touched: BTreeSet<String> = BTreeSet::new();
        let mut mesh_services_touched: BTreeSet<&str> = BTreeSet::new();
        for (name, state) in changes {
            let new = state.map(|(labels, spec)| Arc::new(IndexedDataplane { labels, spec }));
            let old = match &new {
                Some(dp) => dataplanes.insert(name.clone(), dp.clone()),
                None => dataplanes.remove(&name),
            };
            for dp in old.iter().chain(new.iter()) {
                for (svc_name, svc) in self.mesh_services.iter() {
                    if index::selects_any(svc, &name, dp) {
                        mesh_services_touched.insert(svc_name);
                    }
                }
            }
            if let Some(old) = &old {
                for service in index::served_services(&old.spec) {
                    if let Some(members) = service_members.get_mut(service) {
                        Arc::make_mut(members).remove(&name);
                    }
                    services_touched.insert(service.to_string());
                }
            }
            if let Some(new) = &new {
                for service in index::served_services(&new.spec) {
                    let members = service_members.entry(service.to_string()).or_default();
                    Arc::make_mut(members).insert(name.clone());
                    services_touched.insert(service.to_string());
                }
            }
        }
        let mut services = (*self.services).clone();
        for service in &services_touched {
            match service_members.get(service) {
                Some(members) if !members.is_empty() => {
                    let dest = index::service_destination(service, members, &dataplanes);
                    // An unchanged destination keeps its `Arc`: comparing
                    // snapshots (carrying) then needs no deep comparison.
                    let same = services.get(service).is_some_and(|d| **d == dest);
                    if !same {
                        services.insert(service.clone(), Arc::new(dest));
                    }
                }
                _ => {
                    service_members.remove(service);
                    services.remove(service);
                }
            }
        }
        let mut mesh_service_ports = (*self.mesh_service_ports).clone();
        for svc_name in mesh_services_touched {
            if let Some(svc) = self.mesh_services.get(svc_name) {
                index::insert_mesh_service_ports(
                    &mut mesh_service_ports,
                    svc_name,
                    svc,
                    &dataplanes,
                );
            }
        }
        MeshSnapshot {
            mesh: self.mesh.clone(),
            mesh_spec: self.mesh_spec.clone(),
            dataplanes: Arc::new(dataplanes),
            policies: self.policies.clone(),
            mesh_services: self.mesh_services.clone(),
            services: Arc::new(services),
            service_members: Arc::new(service_members),
            mesh_service_ports: Arc::new(mesh_service_ports),
            shared: Mutex::default(),
            route_tables: Default::default(),
            proxy_rules: Default::default(),
        }
    }

    /// This snapshot with `changes` (kind, name, state) applied to its
    /// policies: the same as a fresh build from the changed resources, but
    /// sharing Dataplanes, destinations and the indexes of every policy
    /// kind not changed (all are indexed again when a MeshHTTPRoute
    /// changed: other policies may target routes). Changes of kinds that
    /// are not policies are ignored. The result starts with an empty cache
    /// of shared resources (see [`MeshSnapshot::carry_shared_from`]).
    pub fn with_policy_changes(
        &self,
        changes: impl IntoIterator<Item = (Kind, String, PolicyState)>,
    ) -> MeshSnapshot {
        let changes = changes
            .into_iter()
            .filter(|(kind, _, _)| kind.is_policy())
            .map(|(kind, name, state)| {
                let policy = state
                    // A spec of another kind under this kind's key is a
                    // caller's mistake: read it as the deletion it implies.
                    .filter(|(_, spec)| spec.kind() == kind)
                    .map(|(labels, spec)| policy_set::added(labels, spec));
                (kind, name, policy)
            });
        let policies = self.policies.with_changes(changes);
        MeshSnapshot {
            policies: Arc::new(policies),
            ..self.sharing_all()
        }
    }

    /// This snapshot with `changes` applied to its MeshServices: the same
    /// as a fresh build from the changed resources, but sharing Dataplanes,
    /// `kuma.io/service` destinations, the ports of unchanged MeshServices
    /// and every policy as read (the policy kinds are indexed again against
    /// the new MeshServices). The result starts with an empty cache of
    /// shared resources (see [`MeshSnapshot::carry_shared_from`]).
    pub fn with_mesh_service_changes(
        &self,
        changes: impl IntoIterator<Item = (String, MeshServiceState)>,
    ) -> MeshSnapshot {
        let mut mesh_services = (*self.mesh_services).clone();
        let mut mesh_service_ports = (*self.mesh_service_ports).clone();
        let mut destinations: BTreeMap<String, PolicyDestination> = self
            .policies
            .context
            .destinations
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();
        for (name, state) in changes {
            mesh_service_ports.retain(|(svc, _), _| *svc != name);
            match state {
                Some((labels, spec)) => {
                    index::insert_mesh_service_ports(
                        &mut mesh_service_ports,
                        &name,
                        &spec,
                        &self.dataplanes,
                    );
                    let destination = PolicyDestination {
                        kind: TargetRefKind::MeshService,
                        name: name.clone(),
                        labels,
                    };
                    destinations.insert(name.clone(), destination);
                    mesh_services.insert(name, spec);
                }
                None => {
                    destinations.remove(&name);
                    mesh_services.remove(&name);
                }
            }
        }
        let policies = self
            .policies
            .with_destinations(destinations.into_values().collect());
        MeshSnapshot {
            policies: Arc::new(policies),
            mesh_services: Arc::new(mesh_services),
            mesh_service_ports: Arc::new(mesh_service_ports),
            ..self.sharing_all()
        }
    }

    /// This snapshot with the Mesh's spec replaced (`None`: the Mesh is
    /// gone); nothing else depends on it.
    pub fn with_mesh_spec(&self, mesh_spec: Option<MeshSpec>) -> MeshSnapshot {
        MeshSnapshot {
            mesh_spec,
            ..self.sharing_all()
        }
    }

    /// A copy sharing every part, with an empty cache of shared resources.
    fn sharing_all(&self) -> MeshSnapshot {
        MeshSnapshot {
            mesh: self.mesh.clone(),
            mesh_spec: self.mesh_spec.clone(),
            dataplanes: self.dataplanes.clone(),
            policies: self.policies.clone(),
            mesh_services: self.mesh_services.clone(),
            services: self.services.clone(),
            service_members: self.service_members.clone(),
            mesh_service_ports: self.mesh_service_ports.clone(),
            shared: Mutex::default(),
            route_tables: Default::default(),
            proxy_rules: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests;
