//! The destination index: which endpoints every `kuma.io/service` and every
//! MeshService port has. A fresh build and an update both go through these
//! functions one destination at a time, so both index a destination alike.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kuma_api::kinds::dataplane::{DataplaneSpec, Inbound, InboundState};
use kuma_api::kinds::mesh_service::{MeshServiceSpec, Port, TargetPort};

use super::{Destination, Endpoint, IndexedDataplane, Protocol};

pub(super) type Dataplanes = BTreeMap<String, Arc<IndexedDataplane>>;

/// The `kuma.io/service`s a Dataplane has an inbound of, ignored ones aside
/// (a service counts even while none of its inbounds is ready).
pub(super) fn served_services(dp: &DataplaneSpec) -> impl Iterator<Item = &str> {
    dp.inbounds()
        .iter()
        .filter(|inbound| inbound.state() != InboundState::Ignored)
        .filter_map(Inbound::service_tag)
}

/// Per service, the Dataplanes serving it.
pub(super) fn service_members(dataplanes: &Dataplanes) -> BTreeMap<String, Arc<BTreeSet<String>>> {
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, dp) in dataplanes {
        for service in served_services(&dp.spec) {
            members
                .entry(service.to_string())
                .or_default()
                .insert(name.clone());
        }
    }
    members
        .into_iter()
        .map(|(service, set)| (service, Arc::new(set)))
        .collect()
}

/// The destination of `service` from the Dataplanes serving it: endpoints
/// in Dataplane name order, then inbound order.
pub(super) fn service_destination(
    service: &str,
    members: &BTreeSet<String>,
    dataplanes: &Dataplanes,
) -> Destination {
    let mut protocols = Vec::new();
    let mut endpoints = Vec::new();
    for name in members {
        let Some(dp) = dataplanes.get(name) else {
            continue;
        };
        for inbound in dp.spec.inbounds() {
            if inbound.service_tag() != Some(service) || inbound.state() == InboundState::Ignored {
                continue;
            }
            // Readiness flips often; the protocol should not flip with it.
            protocols.push(Protocol::parse(inbound.protocol()));
            if inbound.is_ready() {
                endpoints.push(endpoint(name, &dp.spec, inbound));
            }
        }
    }
    Destination {
        endpoints,
        protocol: Protocol::common(protocols),
    }
}

/// Indexes every port of one MeshService into `out`.
pub(super) fn insert_mesh_service_ports(
    out: &mut BTreeMap<(String, u32), Arc<Destination>>,
    svc_name: &str,
    svc: &MeshServiceSpec,
    dataplanes: &Dataplanes,
) {
    for port in &svc.ports {
        let mut endpoints = Vec::new();
        for (dp_name, dp) in dataplanes {
            for inbound in dp.spec.inbounds() {
                if inbound.is_ready()
                    && selects(svc, dp_name, &dp.labels, inbound)
                    && serves_port(port, inbound)
                {
                    endpoints.push(endpoint(dp_name, &dp.spec, inbound));
                }
            }
        }
        out.insert(
            (svc_name.to_string(), port.port),
            Arc::new(Destination {
                endpoints,
                protocol: Protocol::parse(port.protocol()),
            }),
        );
    }
}

/// Whether a MeshService selects any inbound of this Dataplane.
pub(super) fn selects_any(svc: &MeshServiceSpec, dp_name: &str, dp: &IndexedDataplane) -> bool {
    dp.spec
        .inbounds()
        .iter()
        .any(|inbound| selects(svc, dp_name, &dp.labels, inbound))
}

/// Address other proxies use to reach an inbound.
fn reachable_address<'a>(dataplane: &'a DataplaneSpec, inbound: &'a Inbound) -> &'a str {
    if !inbound.address.is_empty() {
        return &inbound.address;
    }
    match &dataplane.networking {
        Some(n) if !n.advertised_address.is_empty() => &n.advertised_address,
        Some(n) => &n.address,
        None => "",
    }
}

fn endpoint(name: &str, dataplane: &DataplaneSpec, inbound: &Inbound) -> Endpoint {
    Endpoint {
        dataplane: name.to_string(),
        address: reachable_address(dataplane, inbound).to_string(),
        port: inbound.port,
        tags: inbound.tags.clone(),
    }
}

/// Whether a MeshService's selector picks this inbound of this proxy.
fn selects(
    svc: &MeshServiceSpec,
    dp_name: &str,
    labels: &BTreeMap<String, String>,
    inbound: &Inbound,
) -> bool {
    let Some(selector) = &svc.selector else {
        return false;
    };
    if let Some(tags) = &selector.dataplane_tags {
        return tags.iter().all(|(k, v)| inbound.tags.get(k) == Some(v));
    }
    if let Some(r) = &selector.dataplane_ref {
        return r.name == dp_name;
    }
    if let Some(l) = &selector.dataplane_labels {
        return l.matches(labels);
    }
    false
}

/// A MeshService port reaches the inbound whose port (or name) is its target.
fn serves_port(port: &Port, inbound: &Inbound) -> bool {
    match &port.target_port {
        Some(TargetPort::Number(n)) => inbound.port == *n,
        Some(TargetPort::Name(name)) => {
            inbound.name == *name || name.parse::<u32>().is_ok_and(|n| inbound.port == n)
        }
        None => inbound.port == port.port,
    }
}
