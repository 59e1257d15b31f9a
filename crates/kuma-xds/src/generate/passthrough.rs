//! The passthrough listeners and clusters of a transparent proxy, as Kuma's
//! transparent proxy generator makes them (per address family, IPv6 unless
//! the Dataplane's `ipFamilyMode` is `IPv4`):
//! - `outbound:passthrough:ipv4|ipv6`: a listener on `0.0.0.0|::` at
//!   `redirectPortOutbound` taking every redirected connection no outbound
//!   listener claims (`use_original_dst`), TCP-proxied to the
//!   original-destination cluster of the same name. The cluster exists only
//!   when the Mesh's `networking.outbound.passthrough` is on (the default):
//!   without it the listener's cluster is missing and such connections are
//!   closed. MeshPassthrough then decides (see
//!   `policies::mesh_passthrough`);
//! - `inbound:passthrough:ipv4|ipv6` at `redirectPortInbound`: connections
//!   to ports no inbound serves go to their original destination, bound to
//!   `127.0.0.6|::6` so the iptables rules let them through.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{BindConfig, SocketAddress, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::{BoolValue, Duration};
use envoy_types::util::pack_any;
use kuma_api::Kind;
use kuma_api::kinds::dataplane::{DataplaneSpec, IpFamilyMode};
use kuma_api::policies::mesh_passthrough::Conf;

use super::cluster::socket_address;
use super::listener;
use super::policies::ProxyPolicies;
use super::policies::mesh_passthrough::{self, Mode};
use super::snapshot::MeshSnapshot;
use crate::{ProxyResources, XdsResource};

const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const HTTP_INSPECTOR: &str = "envoy.filters.listener.http_inspector";

/// One address family's names and addresses.
struct Family {
    ipv6: bool,
    outbound: &'static str,
    inbound: &'static str,
    any: &'static str,
    /// The source address of inbound passthrough connections.
    inbound_source: &'static str,
}

const IPV4: Family = Family {
    ipv6: false,
    outbound: "outbound:passthrough:ipv4",
    inbound: "inbound:passthrough:ipv4",
    any: "0.0.0.0",
    inbound_source: "127.0.0.6",
};

const IPV6: Family = Family {
    ipv6: true,
    outbound: "outbound:passthrough:ipv6",
    inbound: "inbound:passthrough:ipv6",
    any: "::",
    inbound_source: "::6",
};

/// Adds the passthrough listeners and clusters of a transparent proxy;
/// nothing for a proxy without outbound redirection.
pub(crate) fn generate(
    snapshot: &MeshSnapshot,
    dataplane: &DataplaneSpec,
    policies: &ProxyPolicies<'_>,
    out: &mut ProxyResources,
) {
    let Some(tp) = dataplane.transparent_proxying() else {
        return;
    };
    if tp.redirect_port_outbound == 0 {
        return;
    }
    let ipv6_enabled = tp.ip_family_mode != Some(IpFamilyMode::IPv4);
    let families: &[Family] = if ipv6_enabled { &[IPV4, IPV6] } else { &[IPV4] };
    let mesh_passthrough = snapshot.mesh_spec().is_none_or(|m| m.passthrough());
    let conf: Option<Conf> = policies.single_item(Kind::MeshPassthrough);
    let mode = conf.as_ref().map(mesh_passthrough::mode);
    let original_dst_clusters = match mode {
        // No policy: the Mesh's switch decides.
        None => mesh_passthrough,
        Some(Mode::All) => true,
        Some(Mode::Matched | Mode::None) => false,
    };
    for family in families {
        let mut outbound = outbound_listener(family, tp.redirect_port_outbound);
        if let (Some(conf), Some(Mode::Matched)) = (&conf, mode) {
            let matched = mesh_passthrough::chains(conf, family.ipv6, ipv6_enabled);
            // A family no match concerns keeps its listener, which leads to
            // no cluster now: nothing of it passes.
            if !matched.chains.is_empty() {
                outbound.filter_chains = matched.chains;
                outbound.listener_filters = inspectors();
            }
            for (name, cluster) in matched.clusters {
                insert(out, &name, pack_any(cluster));
            }
        }
        insert(out, family.outbound, pack_any(outbound));
        if original_dst_clusters {
            insert(
                out,
                family.outbound,
                pack_any(original_dst(family.outbound)),
            );
        }
        if tp.redirect_port_inbound != 0 {
            let inbound = tcp_listener(
                family.inbound,
                family.any,
                tp.redirect_port_inbound,
                TrafficDirection::Inbound,
            );
            insert(out, family.inbound, pack_any(inbound));
            let mut cluster = original_dst(family.inbound);
            cluster.upstream_bind_config = Some(BindConfig {
                source_address: Some(SocketAddress {
                    address: family.inbound_source.to_string(),
                    port_specifier: Some(
                        envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(0),
                    ),
                    ..SocketAddress::default()
                }),
                ..BindConfig::default()
            });
            insert(out, family.inbound, pack_any(cluster));
        }
    }
}

/// These resources differ only by the proxy's ports and policy, and are few:
/// they are encoded per proxy rather than cached in the snapshot.
fn insert(out: &mut ProxyResources, name: &str, body: envoy_types::pb::google::protobuf::Any) {
    out.insert(Arc::new(XdsResource::new(name, body)));
}

fn outbound_listener(family: &Family, port: u32) -> Listener {
    tcp_listener(
        family.outbound,
        family.any,
        port,
        TrafficDirection::Outbound,
    )
}

/// A listener taking redirected connections, TCP-proxied to the cluster of
/// its own name.
fn tcp_listener(name: &str, address: &str, port: u32, direction: TrafficDirection) -> Listener {
    let proxy = listener::tcp_proxy_config(&name.replace(':', "_"), name);
    Listener {
        name: name.to_string(),
        address: Some(socket_address(address, port)),
        traffic_direction: direction as i32,
        use_original_dst: Some(BoolValue { value: true }),
        filter_chains: vec![FilterChain {
            filters: vec![listener::tcp_proxy_filter(proxy)],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// MeshPassthrough chains match on SNI and on the sniffed HTTP protocol.
fn inspectors() -> Vec<ListenerFilter> {
    vec![
        ListenerFilter {
            name: TLS_INSPECTOR.to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..ListenerFilter::default()
        },
        ListenerFilter {
            name: HTTP_INSPECTOR.to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                HttpInspector::default(),
            ))),
            ..ListenerFilter::default()
        },
    ]
}

/// A cluster to wherever the connection was going.
fn original_dst(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        alt_stat_name: name.replace(':', "_"),
        connect_timeout: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        ..Cluster::default()
    }
}

#[cfg(test)]
mod tests;
