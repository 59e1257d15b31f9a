//! Inbound side of a sidecar: a listener per inbound, forwarding to the
//! local workload.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::util::pack_any;
use kuma_api::kinds::dataplane::{DataplaneSpec, InboundState};

use super::snapshot::{CacheKey, MeshSnapshot, Protocol};
use super::{GenerateError, cluster, listener, names};
use crate::{ProxyResources, XdsResource};

pub(crate) fn generate(
    snapshot: &MeshSnapshot,
    name: &str,
    dataplane: &DataplaneSpec,
    out: &mut ProxyResources,
) -> Result<(), GenerateError> {
    let networking_address = dataplane.address();
    for inbound in dataplane.inbounds() {
        // An ignored inbound is as if it were not declared; a not-ready one
        // still listens, it is only withheld from other proxies' endpoints.
        if inbound.state() == InboundState::Ignored {
            continue;
        }
        let address = inbound.dataplane_address(networking_address);
        if address.is_empty() {
            return Err(GenerateError::NoInboundAddress {
                dataplane: name.to_string(),
                port: inbound.port,
            });
        }
        let protocol = Protocol::parse(inbound.protocol());
        let service = inbound.service_tag().unwrap_or_default();
        let cluster_name = names::inbound_cluster(inbound.workload_port());
        let workload_address = inbound.workload_address();
        let key = CacheKey::InboundCluster {
            address: workload_address.to_string(),
            port: inbound.workload_port(),
            protocol,
        };
        out.insert(snapshot.shared(key, || {
            let c = cluster::static_cluster(
                &cluster_name,
                workload_address,
                inbound.workload_port(),
                protocol,
            );
            XdsResource::new(&cluster_name, pack_any(c))
        }));

        let stat_prefix = names::stat_prefix(&cluster_name);
        let filter = if protocol.is_http() {
            let routes =
                listener::route_to_cluster(&names::inbound_route(service), service, &cluster_name);
            listener::http_connection_manager(&stat_prefix, routes)
        } else {
            listener::tcp_proxy(&stat_prefix, &cluster_name)
        };
        let listener_name = names::inbound_listener(address, inbound.port);
        let l = listener::listener(
            &listener_name,
            address,
            inbound.port,
            TrafficDirection::Inbound,
            filter,
        );
        out.insert(std::sync::Arc::new(XdsResource::new(
            listener_name,
            pack_any(l),
        )));
    }
    Ok(())
}
