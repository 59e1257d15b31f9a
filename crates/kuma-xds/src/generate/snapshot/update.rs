//! Updating a snapshot for changed Dataplanes without building it again.
//!
//! At thousands of proxies a fresh build costs hundreds of milliseconds: it
//! copies every Dataplane and indexes every destination. An update shares
//! all of that with the snapshot it starts from and indexes again only the
//! destinations the changed Dataplanes serve (or served). Policies do not
//! depend on Dataplanes, so their indexes are shared as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use kuma_api::kinds::dataplane::DataplaneSpec;

use super::{IndexedDataplane, MeshSnapshot, index};

/// The state of one Dataplane after a change: its labels and spec, or
/// `None` when it was deleted.
pub type DataplaneState = Option<(BTreeMap<String, String>, DataplaneSpec)>;

impl MeshSnapshot {
    /// This snapshot with `changes` applied to its Dataplanes: the same as a
    /// fresh build from the changed resources, but sharing everything the
    /// changes do not touch. The result starts with an empty cache of
    /// shared resources (see [`MeshSnapshot::carry_shared_from`]).
    pub fn with_dataplane_changes(
        &self,
        changes: impl IntoIterator<Item = (String, DataplaneState)>,
    ) -> MeshSnapshot {
        let mut dataplanes = self.dataplanes.clone();
        let mut service_members = self.service_members.clone();
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
        let mut services = self.services.clone();
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
        let mut mesh_service_ports = self.mesh_service_ports.clone();
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
            dataplanes,
            policies: self.policies.clone(),
            mesh_services: self.mesh_services.clone(),
            services,
            service_members,
            mesh_service_ports,
            shared: Mutex::default(),
        }
    }
}

#[cfg(test)]
mod tests;
