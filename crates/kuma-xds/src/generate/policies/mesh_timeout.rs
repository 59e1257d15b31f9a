//! MeshTimeout: connection, idle and HTTP timeouts.
//!
//! As Kuma applies them: `connectionTimeout` is the cluster's connect
//! timeout; `idleTimeout` the idle timeout of upstream HTTP connections
//! (cluster), of downstream HTTP connections (connection manager) and of
//! TCP proxies; `http.requestTimeout` the route timeout;
//! `http.streamIdleTimeout` and `http.requestHeadersTimeout` belong to the
//! connection manager; `http.maxStreamDuration` and
//! `http.maxConnectionDuration` bound upstream streams and connections.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttpOptions;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use kuma_api::policies::mesh_timeout::Conf;

use super::duration::proto;
use crate::generate::cluster::update_http_options;
use crate::generate::snapshot::Protocol;

pub(crate) fn cluster(conf: &Conf, cluster: &mut Cluster, protocol: Protocol) {
    if let Some(d) = conf.connection_timeout.as_ref().and_then(proto) {
        cluster.connect_timeout = Some(d);
    }
    if !protocol.is_http() {
        return;
    }
    let http = conf.http.as_ref();
    let idle = conf.idle_timeout.as_ref().and_then(proto);
    let max_stream = http
        .and_then(|h| h.max_stream_duration.as_ref())
        .and_then(proto);
    let max_connection = http
        .and_then(|h| h.max_connection_duration.as_ref())
        .and_then(proto);
    if idle.is_none() && max_stream.is_none() && max_connection.is_none() {
        return;
    }
    update_http_options(cluster, protocol, |options| {
        let common = options
            .common_http_protocol_options
            .get_or_insert_with(CommonHttpOptions::default);
        if idle.is_some() {
            common.idle_timeout = idle;
        }
        if max_stream.is_some() {
            common.max_stream_duration = max_stream;
        }
        if max_connection.is_some() {
            common.max_connection_duration = max_connection;
        }
    });
}

pub(crate) fn http(conf: &Conf, hcm: &mut HttpConnectionManager, routes: &mut RouteConfiguration) {
    if let Some(idle) = conf.idle_timeout.as_ref().and_then(proto) {
        hcm.common_http_protocol_options
            .get_or_insert_with(CommonHttpOptions::default)
            .idle_timeout = Some(idle);
    }
    let Some(http) = &conf.http else {
        return;
    };
    if let Some(d) = http.stream_idle_timeout.as_ref().and_then(proto) {
        hcm.stream_idle_timeout = Some(d);
    }
    if let Some(d) = http.request_headers_timeout.as_ref().and_then(proto) {
        hcm.request_headers_timeout = Some(d);
    }
    if let Some(d) = http.request_timeout.as_ref().and_then(proto) {
        let actions = routes
            .virtual_hosts
            .iter_mut()
            .flat_map(|vh| vh.routes.iter_mut())
            .filter_map(|r| match &mut r.action {
                Some(route::Action::Route(action)) => Some(action),
                _ => None,
            });
        for action in actions {
            action.timeout = Some(d);
        }
    }
}

pub(crate) fn tcp(conf: &Conf, tcp: &mut TcpProxy) {
    if let Some(d) = conf.idle_timeout.as_ref().and_then(proto) {
        tcp.idle_timeout = Some(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::cluster::eds_cluster;
    use crate::generate::listener::route_to_cluster;
    use kuma_api::policies::mesh_timeout::Http;
    use kuma_api::policies::values::GoDuration;

    fn d(s: &str) -> Option<GoDuration> {
        Some(GoDuration(s.to_string()))
    }

    #[test]
    fn connection_timeout_sets_the_connect_timeout_and_http_timeouts_the_route() {
        let conf = Conf {
            connection_timeout: d("2s"),
            idle_timeout: d("1m"),
            http: Some(Http {
                request_timeout: d("500ms"),
                stream_idle_timeout: d("10s"),
                ..Http::default()
            }),
        };
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c, Protocol::Http);
        assert_eq!(c.connect_timeout.map(|d| d.seconds), Some(2));
        assert!(!c.typed_extension_protocol_options.is_empty());

        let mut routes = route_to_cluster("r", "backend", "backend");
        let mut hcm = HttpConnectionManager::default();
        http(&conf, &mut hcm, &mut routes);
        assert_eq!(hcm.stream_idle_timeout.map(|d| d.seconds), Some(10));
        let Some(route::Action::Route(action)) = &routes.virtual_hosts[0].routes[0].action else {
            panic!("route action expected");
        };
        assert_eq!(action.timeout.map(|d| d.nanos), Some(500_000_000));
    }

    #[test]
    fn tcp_clusters_get_no_http_options() {
        let conf = Conf {
            idle_timeout: d("1m"),
            ..Conf::default()
        };
        let mut c = eds_cluster("db", Protocol::Tcp);
        cluster(&conf, &mut c, Protocol::Tcp);
        assert!(c.typed_extension_protocol_options.is_empty());
        let mut proxy = TcpProxy::default();
        tcp(&conf, &mut proxy);
        assert_eq!(proxy.idle_timeout.map(|d| d.seconds), Some(60));
    }
}
