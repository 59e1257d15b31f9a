//! MeshTimeout: connection, idle and HTTP timeouts.
//!
//! As Kuma 2.x applies a matched conf, a field left out takes Kuma's
//! default rather than Envoy's (so that a policy naming one timeout still
//! pins the others to documented values):
//! - cluster: `connectionTimeout` (5s) is the connect timeout; for `http`
//!   and `http2` destinations (not gRPC, as Kuma) `idleTimeout` (1h),
//!   `http.maxStreamDuration` (0s, none) and `http.maxConnectionDuration`
//!   (0s, none) go to the upstream common HTTP protocol options;
//! - HTTP listener: every route gets `http.requestTimeout` (15s) as its
//!   timeout and `http.streamIdleTimeout` (30m) as its idle timeout; the
//!   connection manager gets `http.requestHeadersTimeout` (0s, none) and
//!   a downstream idle timeout of 0s, since the idle timeout belongs to the
//!   upstream side;
//! - the routes of one MeshHTTPRoute ([`routes`]): the same route timeouts,
//!   over the destination's, except that an absent `http.streamIdleTimeout`
//!   keeps the destination's idle timeout;
//! - TCP listener: `idleTimeout` (1h) is the TCP proxy's idle timeout.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttpOptions;
use envoy_types::pb::envoy::config::route::v3::{RouteAction, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::google::protobuf::Duration;
use kuma_api::policies::mesh_timeout::{Conf, Http};
use kuma_api::policies::values::GoDuration;

use super::duration::proto;
use crate::generate::cluster::update_http_options;
use crate::generate::snapshot::Protocol;

const CONNECT_TIMEOUT: i64 = 5;
const IDLE_TIMEOUT: i64 = 3600;
const REQUEST_TIMEOUT: i64 = 15;
const STREAM_IDLE_TIMEOUT: i64 = 1800;

fn seconds(seconds: i64) -> Duration {
    Duration { seconds, nanos: 0 }
}

/// The conf's duration, else Kuma's default of `default_seconds`.
fn or_default(d: Option<&GoDuration>, default_seconds: i64) -> Duration {
    d.and_then(proto)
        .unwrap_or_else(|| seconds(default_seconds))
}

fn http_conf(conf: &Conf) -> Http {
    conf.http.clone().unwrap_or_default()
}

pub(crate) fn cluster(conf: &Conf, cluster: &mut Cluster, protocol: Protocol) {
    cluster.connect_timeout = Some(or_default(
        conf.connection_timeout.as_ref(),
        CONNECT_TIMEOUT,
    ));
    // Kuma leaves gRPC clusters' HTTP options alone.
    if !matches!(protocol, Protocol::Http | Protocol::Http2) {
        return;
    }
    let http = http_conf(conf);
    let idle = or_default(conf.idle_timeout.as_ref(), IDLE_TIMEOUT);
    let max_stream = or_default(http.max_stream_duration.as_ref(), 0);
    let max_connection = or_default(http.max_connection_duration.as_ref(), 0);
    update_http_options(cluster, protocol, |options| {
        let common = options
            .common_http_protocol_options
            .get_or_insert_with(CommonHttpOptions::default);
        common.idle_timeout = Some(idle);
        common.max_stream_duration = Some(max_stream);
        common.max_connection_duration = Some(max_connection);
    });
}

pub(crate) fn http(conf: &Conf, hcm: &mut HttpConnectionManager, routes: &mut RouteConfiguration) {
    manager(conf, hcm);
    self::routes(conf, routes);
}

/// The connection manager's timeouts alone ([`routes`] has the rest).
pub(crate) fn manager(conf: &Conf, hcm: &mut HttpConnectionManager) {
    let http = http_conf(conf);
    hcm.common_http_protocol_options
        .get_or_insert_with(CommonHttpOptions::default)
        .idle_timeout = Some(seconds(0));
    hcm.request_headers_timeout = Some(or_default(http.request_headers_timeout.as_ref(), 0));
}

/// The route-level timeouts of every route in `routes`, alone: what a conf
/// aimed at one MeshHTTPRoute changes on that route's rules, where the
/// connection manager is the destination's. Kuma sets no
/// `max_stream_duration` on routes; `http.maxStreamDuration` belongs to
/// the cluster.
pub(crate) fn routes(conf: &Conf, routes: &mut RouteConfiguration) {
    let actions = super::route_actions(routes);
    for action in actions {
        route_action(conf, action);
    }
}

/// As Kuma configures a route action: `http.requestTimeout` (15s) is the
/// timeout; `http.streamIdleTimeout` is the idle timeout when given, else
/// the route keeps the one it has (a conf of the route's destination), or
/// gets 30m.
fn route_action(conf: &Conf, action: &mut RouteAction) {
    let http = http_conf(conf);
    action.timeout = Some(or_default(http.request_timeout.as_ref(), REQUEST_TIMEOUT));
    if http.stream_idle_timeout.is_some() || action.idle_timeout.is_none() {
        action.idle_timeout = Some(or_default(
            http.stream_idle_timeout.as_ref(),
            STREAM_IDLE_TIMEOUT,
        ));
    }
}

pub(crate) fn tcp(conf: &Conf, tcp: &mut TcpProxy) {
    tcp.idle_timeout = Some(or_default(conf.idle_timeout.as_ref(), IDLE_TIMEOUT));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::cluster::eds_cluster;
    use crate::generate::listener::route_to_cluster;
    use envoy_types::pb::envoy::config::route::v3::route;
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    use prost::Message;

    fn d(s: &str) -> Option<GoDuration> {
        Some(GoDuration(s.to_string()))
    }

    fn common_options(c: &Cluster) -> Option<CommonHttpOptions> {
        let any = c.typed_extension_protocol_options.values().next()?;
        HttpProtocolOptions::decode(any.value.as_slice())
            .ok()?
            .common_http_protocol_options
    }

    fn route_action(
        routes: &RouteConfiguration,
    ) -> &envoy_types::pb::envoy::config::route::v3::RouteAction {
        match &routes.virtual_hosts[0].routes[0].action {
            Some(route::Action::Route(action)) => action,
            _ => panic!("route action expected"),
        }
    }

    #[test]
    fn given_timeouts_go_to_cluster_connection_manager_and_routes() {
        let conf = Conf {
            connection_timeout: d("2s"),
            idle_timeout: d("1m"),
            http: Some(Http {
                request_timeout: d("500ms"),
                stream_idle_timeout: d("10s"),
                max_stream_duration: d("20s"),
                request_headers_timeout: d("3s"),
                ..Http::default()
            }),
        };
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c, Protocol::Http);
        assert_eq!(c.connect_timeout, Some(seconds(2)));
        let common = common_options(&c).expect("common options");
        assert_eq!(common.idle_timeout, Some(seconds(60)));
        assert_eq!(common.max_stream_duration, Some(seconds(20)));
        assert_eq!(common.max_connection_duration, Some(seconds(0)));

        let mut routes = route_to_cluster("r", "backend", "backend");
        let mut hcm = HttpConnectionManager::default();
        http(&conf, &mut hcm, &mut routes);
        assert_eq!(hcm.request_headers_timeout, Some(seconds(3)));
        assert_eq!(
            hcm.common_http_protocol_options
                .and_then(|o| o.idle_timeout),
            Some(seconds(0))
        );
        let action = route_action(&routes);
        assert_eq!(action.timeout.map(|d| d.nanos), Some(500_000_000));
        assert_eq!(action.idle_timeout, Some(seconds(10)));
    }

    #[test]
    fn absent_fields_take_kuma_defaults() {
        let conf = Conf {
            connection_timeout: d("1s"),
            ..Conf::default()
        };
        let mut routes = route_to_cluster("r", "backend", "backend");
        http(&conf, &mut HttpConnectionManager::default(), &mut routes);
        let action = route_action(&routes);
        assert_eq!(action.timeout, Some(seconds(15)));
        assert_eq!(action.idle_timeout, Some(seconds(1800)));

        let mut c = eds_cluster("backend", Protocol::Http2);
        cluster(&conf, &mut c, Protocol::Http2);
        let common = common_options(&c).expect("common options");
        assert_eq!(common.idle_timeout, Some(seconds(3600)));
    }

    /// A conf with only these HTTP timeouts.
    fn mk_route_conf(request: Option<&str>, stream_idle: Option<&str>) -> Conf {
        Conf {
            http: Some(Http {
                request_timeout: request.and_then(d),
                stream_idle_timeout: stream_idle.and_then(d),
                ..Http::default()
            }),
            ..Conf::default()
        }
    }

    #[test]
    fn per_route_timeouts_leave_the_connection_manager_alone() {
        let destination = mk_route_conf(Some("2s"), Some("40s"));
        let mut routes = route_to_cluster("r", "backend", "backend");
        let mut hcm = HttpConnectionManager::default();
        http(&destination, &mut hcm, &mut routes);
        let before = hcm.clone();

        // A route conf naming only the request timeout: the destination's
        // idle timeout stays, the request timeout is the route's.
        self::routes(&mk_route_conf(Some("7s"), None), &mut routes);
        let action = route_action(&routes);
        assert_eq!(action.timeout, Some(seconds(7)));
        assert_eq!(action.idle_timeout, Some(seconds(40)));
        assert_eq!(action.max_stream_duration, None);
        assert_eq!(hcm, before);

        // Naming the idle timeout replaces it; no request timeout is
        // Kuma's 15s again.
        self::routes(&mk_route_conf(None, Some("5s")), &mut routes);
        let action = route_action(&routes);
        assert_eq!(action.timeout, Some(seconds(15)));
        assert_eq!(action.idle_timeout, Some(seconds(5)));

        // A fresh route with nothing set gets Kuma's 30m.
        let mut fresh = route_to_cluster("r", "backend", "backend");
        self::routes(&Conf::default(), &mut fresh);
        assert_eq!(route_action(&fresh).idle_timeout, Some(seconds(1800)));
    }

    #[test]
    fn tcp_and_grpc_clusters_get_no_http_options() {
        let conf = Conf {
            idle_timeout: d("1m"),
            ..Conf::default()
        };
        let mut c = eds_cluster("db", Protocol::Tcp);
        cluster(&conf, &mut c, Protocol::Tcp);
        assert!(c.typed_extension_protocol_options.is_empty());
        assert_eq!(c.connect_timeout, Some(seconds(5)));
        let mut g = eds_cluster("grpc", Protocol::Grpc);
        cluster(&conf, &mut g, Protocol::Grpc);
        assert_eq!(common_options(&g), None);
        let mut proxy = TcpProxy::default();
        tcp(&conf, &mut proxy);
        assert_eq!(proxy.idle_timeout, Some(seconds(60)));
        let mut proxy = TcpProxy::default();
        tcp(&Conf::default(), &mut proxy);
        assert_eq!(proxy.idle_timeout, Some(seconds(3600)));
    }
}
