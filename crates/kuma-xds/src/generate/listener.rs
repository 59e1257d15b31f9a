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
use envoy_types::util::pack_any;

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

/// The connection manager as a network filter, `routes` inline (as Kuma
/// does for sidecars: no separate RDS round trip).
pub(crate) fn hcm_filter(mut hcm: HttpConnectionManager, routes: RouteConfiguration) -> Filter {
    hcm.route_specifier = Some(http_connection_manager::RouteSpecifier::RouteConfig(routes));
    Filter {
        name: HTTP_CONNECTION_MANAGER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
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
