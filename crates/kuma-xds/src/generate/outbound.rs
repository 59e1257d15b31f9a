//! Outbound side of a sidecar: what the proxy may call, each destination a
//! cluster whose endpoints arrive by EDS. With mTLS, each cluster originates
//! TLS and accepts only the destination's own identities.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::util::pack_any;
use kuma_api::kinds::dataplane::{DataplaneSpec, Outbound};
use kuma_api::kinds::tags::SERVICE_TAG;

use super::mtls::{self, MeshTls};
use super::policies::{DestinationPolicies, DestinationRef, ProxyPolicies};
use super::snapshot::{CacheKey, Destination, MeshSnapshot, Protocol};
use super::{cluster, endpoints, listener, names};
use crate::{ProxyResources, XdsResource};

const MESH_SERVICE: &str = "MeshService";

/// A destination the proxy declared: the cluster name it goes by and what is behind it.
struct Target<'a> {
    cluster: String,
    destination: &'a Destination,
    /// The `kuma.io/service` identities its instances may present.
    services: Vec<String>,
    /// The `to` policy confs this proxy has for it.
    policies: DestinationPolicies,
}

/// An outbound to a service nobody serves yet: a cluster with no endpoints,
/// so the listener exists and starts working as soon as instances appear.
static UNSERVED: Destination = Destination {
    endpoints: Vec::new(),
    protocol: Protocol::Tcp,
};

/// The services behind a MeshService's endpoints (its name when it has none
/// yet): a MeshService selects instances that keep their own identities.
fn served_by(destination: &Destination, name: &str) -> Vec<String> {
    let mut services: Vec<String> = destination
        .endpoints
        .iter()
        .filter_map(|e| e.tags.get(SERVICE_TAG).cloned())
        .collect();
    services.sort();
    services.dedup();
    if services.is_empty() {
        services.push(name.to_string());
    }
    services
}

/// How `to` entries name a port of a MeshService: its name, else its number.
fn port_section(snapshot: &MeshSnapshot, name: &str, port: u32) -> String {
    snapshot
        .mesh_service(name)
        .and_then(|s| s.ports.iter().find(|p| p.port == port))
        .and_then(|p| p.name.clone())
        .unwrap_or_else(|| port.to_string())
}

fn target<'a>(
    snapshot: &'a MeshSnapshot,
    policies: &ProxyPolicies,
    outbound: &Outbound,
) -> Option<Target<'a>> {
    match &outbound.backend_ref {
        Some(r) if r.kind == MESH_SERVICE => {
            // An unknown MeshService or port has nothing to route to; Kuma
            // leaves such an outbound out.
            let destination = snapshot.mesh_service_port(&r.name, r.port)?;
            let section = port_section(snapshot, &r.name, r.port);
            Some(Target {
                cluster: names::mesh_service_cluster(snapshot.mesh(), &r.name, r.port),
                destination,
                services: served_by(destination, &r.name),
                policies: policies.destination(&DestinationRef::MeshService {
                    name: &r.name,
                    section,
                }),
            })
        }
        // Other kinds (MeshExternalService, MeshMultiZoneService) are not generated yet.
        Some(_) => None,
        None => {
            let service = outbound.service()?;
            Some(service_target(snapshot, policies, service))
        }
    }
}

fn service_target<'a>(
    snapshot: &'a MeshSnapshot,
    policies: &ProxyPolicies,
    service: &str,
) -> Target<'a> {
    Target {
        cluster: service.to_string(),
        destination: snapshot.service(service).unwrap_or(&UNSERVED),
        services: vec![service.to_string()],
        policies: policies.destination(&DestinationRef::Service(service)),
    }
}

pub(crate) fn generate(
    snapshot: &MeshSnapshot,
    dataplane: &DataplaneSpec,
    policies: &ProxyPolicies,
    tls: Option<&MeshTls<'_>>,
    out: &mut ProxyResources,
) {
    for outbound in dataplane.outbounds() {
        let Some(t) = target(snapshot, policies, outbound) else {
            continue;
        };
        let address = outbound.address();
        let protocol = t.destination.protocol;
        let key = CacheKey::OutboundListener {
            address: address.to_string(),
            port: outbound.port,
            cluster: t.cluster.clone(),
            protocol,
            policies: t.policies.key(),
        };
        out.insert(snapshot.shared(key, || {
            let name = names::outbound_listener(address, outbound.port);
            let stat_prefix = names::stat_prefix(&t.cluster);
            let filter = if protocol.is_http() {
                let mut routes = listener::route_to_cluster(
                    &names::outbound_route(&t.cluster),
                    &t.cluster,
                    &t.cluster,
                );
                let mut hcm = listener::hcm(&stat_prefix, Vec::new());
                t.policies.apply_http(&mut hcm, &mut routes);
                listener::hcm_filter(hcm, routes)
            } else {
                let mut tcp = listener::tcp_proxy_config(&stat_prefix, &t.cluster);
                t.policies.apply_tcp(&mut tcp);
                listener::tcp_proxy_filter(tcp)
            };
            let l = listener::listener(
                &name,
                address,
                outbound.port,
                TrafficDirection::Outbound,
                filter,
            );
            XdsResource::new(name, pack_any(l))
        }));
        add_destination(snapshot, &t, tls, out);
    }

    // Transparent proxying redirects any connection, so the proxy needs the
    // clusters of what it may reach. Without VIPs (not modelled yet) there are
    // no per-service listeners: only clusters and their endpoints.
    if let Some(tp) = dataplane.transparent_proxying() {
        let services: Vec<&str> = if tp.reachable_services.is_empty() {
            snapshot.service_names().collect()
        } else {
            tp.reachable_services.iter().map(String::as_str).collect()
        };
        for service in services {
            let t = service_target(snapshot, policies, service);
            add_destination(snapshot, &t, tls, out);
        }
    }
}

/// The cluster and ClusterLoadAssignment of a destination, shared by every
/// proxy that reaches it.
fn add_destination(
    snapshot: &MeshSnapshot,
    t: &Target<'_>,
    tls: Option<&MeshTls<'_>>,
    out: &mut ProxyResources,
) {
    let protocol = t.destination.protocol;
    // The TLS settings name secrets, not their content: one cluster still
    // serves every proxy of the mesh.
    let key = CacheKey::Cluster {
        name: t.cluster.clone(),
        mtls: tls.is_some(),
        policies: t.policies.key(),
    };
    out.insert(snapshot.shared(key, || {
        let mut c = cluster::eds_cluster(&t.cluster, protocol);
        t.policies.apply_cluster(&mut c, protocol);
        if let Some(tls) = tls {
            let sni_service = t
                .services
                .first()
                .map_or(t.cluster.as_str(), String::as_str);
            c.transport_socket = Some(mtls::upstream(
                tls.mesh,
                &names::sni(sni_service, tls.mesh),
                &t.services,
            ));
        }
        XdsResource::new(&t.cluster, pack_any(c))
    }));
    out.insert(
        snapshot.shared(CacheKey::LoadAssignment(t.cluster.clone()), || {
            XdsResource::new(
                &t.cluster,
                endpoints::load_assignment(&t.cluster, t.destination),
            )
        }),
    );
}
