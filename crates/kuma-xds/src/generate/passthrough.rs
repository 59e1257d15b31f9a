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

use std::borrow::Cow;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{BindConfig, SocketAddress, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use kuma_api::Kind;
use kuma_api::kinds::dataplane::{DataplaneSpec, IpFamilyMode};
use kuma_api::policies::mesh_passthrough::Conf;

use super::cluster::{original_dst_cluster, socket_address};
use super::listener;
use super::policies::ProxyPolicies;
use super::policies::mesh_passthrough::{self, Mode};
use super::snapshot::{CacheKey, MeshSnapshot, Protocol};
use crate::{XdsResource, type_url};

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

/// Everything a proxy's passthrough resources are built from. Proxies alike
/// in all of it (most transparent proxies of a mesh: same redirect ports,
/// no MeshPassthrough or the same one) share one encoded copy of each
/// through the snapshot's cache, as they share destinations' clusters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Inputs {
    redirect_port_outbound: u32,
    redirect_port_inbound: u32,
    ipv6_enabled: bool,
    /// The Mesh's `networking.outbound.passthrough`.
    mesh_passthrough: bool,
    /// The folded MeshPassthrough conf as JSON, empty without one.
    policy: String,
}

/// The cache key of one passthrough resource: its type and name (a
/// listener and its cluster share a name) and all the proxy's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    type_url: &'static str,
    name: Cow<'static, str>,
    inputs: Arc<Inputs>,
}

/// Adds the passthrough listeners and clusters of a transparent proxy;
/// nothing for a proxy without outbound redirection.
pub(crate) fn generate(
    snapshot: &MeshSnapshot,
    dataplane: &DataplaneSpec,
    policies: &ProxyPolicies<'_>,
    out: &mut Vec<Arc<XdsResource>>,
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
    let inputs = Arc::new(Inputs {
        redirect_port_outbound: tp.redirect_port_outbound,
        redirect_port_inbound: tp.redirect_port_inbound,
        ipv6_enabled,
        mesh_passthrough,
        // A conf that read as `Conf` writes as JSON.
        policy: conf
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok())
            .unwrap_or_default(),
    });
    let shared = Shared {
        snapshot,
        inputs: &inputs,
    };
    for family in families {
        let matched = match (&conf, mode) {
            (Some(conf), Some(Mode::Matched)) => Some(mesh_passthrough::chains(conf, family.ipv6)),
            _ => None,
        };
        let (chains, clusters) = match matched {
            Some(m) => (m.chains, m.clusters),
            None => Default::default(),
        };
        // A domain match gives both families a cluster of the same name and
        // content: one key serves both.
        for (name, cluster) in clusters {
            out.push(shared.get(type_url::CLUSTER, Cow::Owned(name), |name| {
                XdsResource::new(name, pack_any(cluster))
            }));
        }
        out.push(
            shared.get(type_url::LISTENER, family.outbound.into(), |name| {
                let mut outbound = outbound_listener(family, tp.redirect_port_outbound);
                // A family no match concerns keeps its listener, which leads to
                // no cluster now: nothing of it passes.
                if !chains.is_empty() {
                    outbound.filter_chains = chains;
                    outbound.listener_filters = inspectors();
                }
                XdsResource::new(name, pack_any(outbound))
            }),
        );
        if original_dst_clusters {
            out.push(
                shared.get(type_url::CLUSTER, family.outbound.into(), |name| {
                    XdsResource::new(name, pack_any(original_dst(name)))
                }),
            );
        }
        if tp.redirect_port_inbound != 0 {
            out.push(
                shared.get(type_url::LISTENER, family.inbound.into(), |name| {
                    let inbound = tcp_listener(
                        name,
                        family.any,
                        tp.redirect_port_inbound,
                        TrafficDirection::Inbound,
                    );
                    XdsResource::new(name, pack_any(inbound))
                }),
            );
            out.push(
                shared.get(type_url::CLUSTER, family.inbound.into(), |name| {
                    XdsResource::new(name, pack_any(inbound_cluster(family)))
                }),
            );
        }
    }
}

/// One proxy's view of the snapshot's cache for its passthrough resources.
struct Shared<'a> {
    snapshot: &'a MeshSnapshot,
    inputs: &'a Arc<Inputs>,
}

impl Shared<'_> {
    /// The shared resource of `type_url` named `name`, built by `build`
    /// (given the name) when no proxy with the same inputs built it yet.
    fn get(
        &self,
        type_url: &'static str,
        name: Cow<'static, str>,
        build: impl FnOnce(&str) -> XdsResource,
    ) -> Arc<XdsResource> {
        let key = Key {
            type_url,
            name,
            inputs: Arc::clone(self.inputs),
        };
        let name = key.name.clone();
        self.snapshot
            .shared(CacheKey::Passthrough(key), || build(&name))
    }
}

/// The original-destination cluster of inbound passthrough, its connections
/// bound to the family's passthrough source address.
fn inbound_cluster(family: &Family) -> Cluster {
    let mut cluster = original_dst(family.inbound);
    cluster.upstream_bind_config = Some(BindConfig {
        source_address: Some(SocketAddress {
            address: family.inbound_source.to_string(),
            port_specifier: Some(
                envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                    0,
                ),
            ),
            ..SocketAddress::default()
        }),
        ..BindConfig::default()
    });
    cluster
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
    original_dst_cluster(name, name.replace(':', "_"), Protocol::Tcp)
}

#[cfg(test)]
mod tests;
