//! Envoy listeners and the network filters Kuma puts in them.

use envoy_types::pb::envoy::config::core::v3::{TrafficDirection, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::cluster::socket_address;

const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
const ROUTER: &str = "envoy.filters.http.router";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

pub(crate) fn listener(
    name: &str,
    address: &str,
    port: u32,
    direction: TrafficDirection,
    filter: Filter,
) -> Listener {
    Listener {
        name: name.to_string(),
        address: Some(socket_address(address, port)),
        traffic_direction: direction as i32,
        filter_chains: vec![FilterChain {
            filters: vec![filter],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// A listener with several filter chains; `inspect_tls` adds the TLS
/// inspector so that chains can match on the transport protocol.
pub(crate) fn listener_with_chains(
    name: &str,
    address: &str,
    port: u32,
    direction: TrafficDirection,
    filter_chains: Vec<FilterChain>,
    inspect_tls: bool,
) -> Listener {
    let listener_filters = if inspect_tls {
        vec![ListenerFilter {
            name: TLS_INSPECTOR.to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..ListenerFilter::default()
        }]
    } else {
        Vec::new()
    };
    Listener {
        name: name.to_string(),
        address: Some(socket_address(address, port)),
        traffic_direction: direction as i32,
        filter_chains,
        listener_filters,
        ..Listener::default()
    }
}

/// A filter chain, TLS terminated by `tls` when given; `only_tls` makes it
/// match TLS connections only (it needs the TLS inspector).
pub(crate) fn filter_chain(
    filters: Vec<Filter>,
    tls: Option<TransportSocket>,
    only_tls: bool,
) -> FilterChain {
    let filter_chain_match = only_tls.then(|| FilterChainMatch {
        transport_protocol: "tls".to_string(),
        ..FilterChainMatch::default()
    });
    FilterChain {
        filters,
        filter_chain_match,
        transport_socket: tls,
        ..FilterChain::default()
    }
}

/// All traffic of the listener to one cluster, before policies change it.
pub(crate) fn tcp_proxy_config(stat_prefix: &str, cluster: &str) -> TcpProxy {
    TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
        ..TcpProxy::default()
    }
}

pub(crate) fn tcp_proxy_filter(proxy: TcpProxy) -> Filter {
    Filter {
        name: TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
    }
}

/// An HTTP connection manager without its routes, before policies change
/// it; `filters` run before the router. Envoy rejects an HCM without the
/// router filter spelled out, typed config included.
pub(crate) fn hcm(stat_prefix: &str, mut filters: Vec<HttpFilter>) -> HttpConnectionManager {
    let router = HttpFilter {
        name: ROUTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..HttpFilter::default()
    };
    filters.push(router);
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        http_filters: filters,
        ..HttpConnectionManager::default()
    }
}

/// The connection manager as a network filter, its route configuration
/// inline (as Kuma does for sidecars: no separate RDS round trip).
///
/// The routes are encoded bottom-up into one buffer: each message's key is
/// written with room for a length of one byte, then the message, then its
/// length in that room (moving the message along when the length takes
/// more); the routes inside their virtual host, the virtual hosts inside
/// the route configuration and that inside the connection manager.
/// Encoded whole, prost works out every route's length again at each level
/// above it (and once more before writing), which made route tables the
/// dearest part of a listener; here no length is worked out before it is
/// written. The route fields come after the other fields of their messages
/// instead of in field-number order, which protobuf readers accept:
/// decoded, the connection manager is the same.
///
/// Messages are written with prost's `encode_raw`, the part of a message's
/// encoding that `encode` runs after working out the length it needs: a
/// list has room for any length.
pub(crate) fn hcm_filter(hcm: HttpConnectionManager, mut config: RouteConfiguration) -> Filter {
    let hosts = std::mem::take(&mut config.virtual_hosts);
    let routes: usize = hosts.iter().map(|h| h.routes.len()).sum();
    manager_filter(hcm, config, routes, |out| {
        for mut host in hosts {
            let mut routes = std::mem::take(&mut host.routes);
            write_host(&host, out, |out| {
                // In place: a route is a message of over 2 KB.
                for route in &mut routes {
                    write_route(route, out);
                }
            });
        }
    })
}

/// [`hcm_filter`] for a route configuration of one virtual host (any
/// other is left out) whose routes `write_routes` writes itself, each as a
/// `routes` field of the virtual host (see [`start_field`]). `routes` is
/// about how many it writes.
pub(crate) fn hcm_filter_writing_routes(
    hcm: HttpConnectionManager,
    mut config: RouteConfiguration,
    routes: usize,
    write_routes: impl FnOnce(&mut Vec<u8>),
) -> Filter {
    let host = config.virtual_hosts.drain(..).next().unwrap_or_default();
    manager_filter(hcm, config, routes, |out| {
        write_host(&host, out, write_routes);
    })
}

/// The connection manager filter: `hcm` with `config` inline, whose
/// virtual hosts (taken out of it) `write_hosts` writes.
fn manager_filter(
    mut hcm: HttpConnectionManager,
    config: RouteConfiguration,
    routes: usize,
    write_hosts: impl FnOnce(&mut Vec<u8>),
) -> Filter {
    hcm.route_specifier = None;
    // Routes take about a hundred bytes each once encoded.
    let mut value = Vec::with_capacity(512 + 128 * routes);
    hcm.encode_raw(&mut value);
    let config_start = start_field(&mut value, HCM_ROUTE_CONFIG);
    config.encode_raw(&mut value);
    write_hosts(&mut value);
    end_field(&mut value, config_start);
    let any = Any {
        type_url: HttpConnectionManager::type_url(),
        value,
    };
    Filter {
        name: HTTP_CONNECTION_MANAGER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(any)),
    }
}

/// A virtual host of a route configuration: `host` (its routes left out)
/// and the routes `write_routes` writes after it.
fn write_host(host: &VirtualHost, out: &mut Vec<u8>, write_routes: impl FnOnce(&mut Vec<u8>)) {
    let start = start_field(out, ROUTE_CONFIGURATION_VIRTUAL_HOSTS);
    host.encode_raw(out);
    write_routes(out);
    end_field(out, start);
}

/// What policies gave the action of the first route of `config` (one
/// made by [`route_to_cluster`]), encoded without its cluster: the fields
/// a route action written field by field gets after its own. Policies set
/// the same fields (timeouts, retry policy, hash policies) on every route
/// action of a table, and building a route sets none of them, so they
/// are worked out and encoded once per table.
pub(crate) fn route_action_fields(config: &RouteConfiguration) -> Vec<u8> {
    let action = config
        .virtual_hosts
        .first()
        .and_then(|host| host.routes.first())
        .and_then(|route| route.action.as_ref());
    match action {
        Some(route::Action::Route(action)) => {
            let mut action = action.clone();
            action.cluster_specifier = None;
            action.encode_to_vec()
        }
        _ => Vec::new(),
    }
}

/// Field numbers of the messages [`hcm_filter`] writes itself.
const HCM_ROUTE_CONFIG: u32 = 4;
const ROUTE_CONFIGURATION_VIRTUAL_HOSTS: u32 = 2;
pub(crate) const VIRTUAL_HOST_ROUTES: u32 = 3;
pub(crate) const ROUTE_MATCH: u32 = 1;
pub(crate) const ROUTE_ROUTE_ACTION: u32 = 2;
pub(crate) const ROUTE_ACTION_WEIGHTED_CLUSTERS: u32 = 3;
pub(crate) const WEIGHTED_CLUSTER_CLUSTERS: u32 = 1;

/// Writes `route` as a route of its virtual host, bottom-up like
/// [`hcm_filter`] down to the nested messages every route table route
/// has: its match, its action and the action's weighted clusters each go
/// in front of the rest of their message, written by prost. The route is
/// left without them.
fn write_route(route: &mut Route, out: &mut Vec<u8>) {
    let start = start_field(out, VIRTUAL_HOST_ROUTES);
    if let Some(matched) = &route.r#match {
        let at = start_field(out, ROUTE_MATCH);
        matched.encode_raw(out);
        end_field(out, at);
        route.r#match = None;
    }
    if let Some(route::Action::Route(action)) = &mut route.action {
        let at = start_field(out, ROUTE_ROUTE_ACTION);
        if let Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) =
            &mut action.cluster_specifier
        {
            let weighted_at = start_field(out, ROUTE_ACTION_WEIGHTED_CLUSTERS);
            for cluster in &weighted.clusters {
                let cluster_at = start_field(out, WEIGHTED_CLUSTER_CLUSTERS);
                cluster.encode_raw(out);
                end_field(out, cluster_at);
            }
            weighted.clusters = Vec::new();
            weighted.encode_raw(out);
            end_field(out, weighted_at);
            action.cluster_specifier = None;
        }
        action.encode_raw(out);
        end_field(out, at);
        route.action = None;
    }
    route.encode_raw(out);
    end_field(out, start);
}

/// Starts message field `field` in `out`: writes its key and one byte of
/// room for its length. Returns where its value starts, for [`end_field`].
#[inline]
pub(crate) fn start_field(out: &mut Vec<u8>, field: u32) -> usize {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
    out.push(0);
    out.len()
}

/// Ends the field whose value started at `start` (see [`start_field`]):
/// writes its length in the room left for it, moving the value along when
/// the length takes more than one byte.
#[inline]
pub(crate) fn end_field(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    let mut head = [0u8; 10];
    let room = {
        let mut free: &mut [u8] = &mut head;
        prost::encoding::encode_varint(len as u64, &mut free);
        free.len()
    };
    let written = head.len() - room;
    if let Some(first) = start.checked_sub(1).and_then(|at| out.get_mut(at)) {
        *first = head[0];
    }
    if written > 1 {
        out.splice(start..start, head[1..written].iter().copied());
    }
}

/// Every request, whatever its host and path, to one cluster.
pub(crate) fn route_to_cluster(
    name: &str,
    virtual_host: &str,
    cluster: &str,
) -> RouteConfiguration {
    let route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
            ..RouteMatch::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            ..RouteAction::default()
        })),
        ..Route::default()
    };
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: virtual_host.to_string(),
            domains: vec!["*".to_string()],
            routes: vec![route],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3::{
        RetryPolicy, WeightedCluster, weighted_cluster,
    };
    use envoy_types::pb::google::protobuf::UInt32Value;

    use super::*;

    fn route(path: &str, cluster: &str) -> Route {
        Route {
            name: format!("route {path}"),
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix(path.to_string())),
                ..RouteMatch::default()
            }),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                    cluster.to_string(),
                )),
                retry_policy: Some(RetryPolicy {
                    num_retries: Some(UInt32Value { value: 3 }),
                    ..RetryPolicy::default()
                }),
                ..RouteAction::default()
            })),
            ..Route::default()
        }
    }

    /// A route at `path` splitting between `clusters` by weight.
    fn split(path: &str, clusters: &[(&str, u32)]) -> Route {
        let mut r = route(path, "");
        if let Some(route::Action::Route(action)) = &mut r.action {
            let clusters = clusters
                .iter()
                .map(|(name, weight)| weighted_cluster::ClusterWeight {
                    name: name.to_string(),
                    weight: Some(UInt32Value { value: *weight }),
                    ..weighted_cluster::ClusterWeight::default()
                })
                .collect();
            action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
                WeightedCluster {
                    clusters,
                    ..WeightedCluster::default()
                },
            ));
        }
        r
    }

    #[test]
    fn routes_written_bottom_up_decode_as_the_connection_manager_they_came_from() {
        let host = |name: &str, routes: Vec<Route>| VirtualHost {
            name: name.to_string(),
            domains: vec!["*".to_string()],
            routes,
            // A field after `routes`, so that order matters.
            retry_policy: Some(RetryPolicy {
                retry_on: "5xx".to_string(),
                ..RetryPolicy::default()
            }),
            ..VirtualHost::default()
        };
        let routes = RouteConfiguration {
            name: "outbound:backend".to_string(),
            virtual_hosts: vec![
                // Lengths of one byte, and (the long path) of several.
                host(
                    "backend",
                    vec![
                        route("/api", "api"),
                        split("/split", &[("v1", 90), ("v2", 10)]),
                        route(&"/long".repeat(3000), "long"),
                        route("/", "backend"),
                    ],
                ),
                host("empty", Vec::new()),
                host("other", vec![route("/", "other")]),
            ],
            validate_clusters: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
            ..RouteConfiguration::default()
        };
        let manager = hcm("outbound", Vec::new());
        let filter = hcm_filter(manager.clone(), routes.clone());
        let Some(filter::ConfigType::TypedConfig(any)) = filter.config_type else {
            panic!("a typed config");
        };
        assert_eq!(any.type_url, HttpConnectionManager::type_url());
        let mut want = manager;
        want.route_specifier = Some(http_connection_manager::RouteSpecifier::RouteConfig(routes));
        let got = HttpConnectionManager::decode(any.value.as_slice()).expect("decodes");
        assert_eq!(got, want);
        // The same fields, only in another order.
        assert_eq!(any.value.len(), want.encode_to_vec().len());
    }
}
