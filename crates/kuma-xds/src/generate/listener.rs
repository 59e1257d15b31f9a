//! Envoy listeners and the network filters Kuma puts in them.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::util::pack_any;

use super::cluster::socket_address;

const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
const ROUTER: &str = "envoy.filters.http.router";

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

/// All traffic of the listener to one cluster.
pub(crate) fn tcp_proxy(stat_prefix: &str, cluster: &str) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
        ..TcpProxy::default()
    };
    Filter {
        name: TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
    }
}

/// HTTP connection manager with the route configuration inline (as Kuma
/// does for sidecars: no separate RDS round trip). Envoy rejects an HCM
/// without the router filter spelled out, typed config included.
pub(crate) fn http_connection_manager(stat_prefix: &str, routes: RouteConfiguration) -> Filter {
    let router = HttpFilter {
        name: ROUTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..HttpFilter::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        http_filters: vec![router],
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        ..HttpConnectionManager::default()
    };
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
