//! MeshRateLimit: local rate limits on an inbound, as Kuma 2.x builds them.
//!
//! - HTTP inbounds: the connection manager gets an
//!   `envoy.filters.http.local_ratelimit` filter that limits nothing on its
//!   own (only a stat prefix); every route carries the actual limit as its
//!   per-filter config: a token bucket of `requestRate.num` tokens refilled
//!   every `requestRate.interval`, enabled and enforced for 100% of
//!   requests, answering `onRateLimit.status` (Envoy's 429 when absent) with
//!   the `onRateLimit.headers`. Keeping the limit on the routes is what lets
//!   Kuma give different clients different limits later.
//! - TCP inbounds: an `envoy.filters.network.local_ratelimit` filter right
//!   before the TCP proxy closes connections beyond `connectionRate`.
//!
//! `disabled: true` turns the respective limit off. Only the conf every
//! client gets (Mesh-wide `from`, match-less `rules`) is applied.

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent, header_value_option,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit as HttpLocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::local_ratelimit::v3::LocalRateLimit as TcpLocalRateLimit;
use envoy_types::pb::envoy::r#type::v3::{
    FractionalPercent, HttpStatus, TokenBucket, fractional_percent,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use kuma_api::policies::mesh_rate_limit::{Conf, LocalHttp, OnRateLimit, Rate};
use kuma_api::policies::values::HeaderModifier;

use super::duration::proto;

pub(crate) const HTTP_FILTER: &str = "envoy.filters.http.local_ratelimit";
const TCP_FILTER: &str = "envoy.filters.network.local_ratelimit";
const HTTP_STAT_PREFIX: &str = "rate_limit";
const TCP_STAT_PREFIX: &str = "tcp_rate_limit";
const ROUTER: &str = "envoy.filters.http.router";

/// The HTTP part of the conf, when it limits anything.
fn http_limit(conf: &Conf) -> Option<(&Rate, Option<&OnRateLimit>)> {
    let http: &LocalHttp = conf.local.as_ref()?.http.as_ref()?;
    if http.disabled == Some(true) {
        return None;
    }
    Some((http.request_rate.as_ref()?, http.on_rate_limit.as_ref()))
}

fn token_bucket(rate: &Rate) -> Option<TokenBucket> {
    Some(TokenBucket {
        max_tokens: rate.num,
        tokens_per_fill: Some(UInt32Value { value: rate.num }),
        fill_interval: Some(proto(rate.interval.as_ref()?)?),
    })
}

/// Applied to all requests; `key` is the runtime key Kuma names it by.
fn everyone(key: &str) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 100,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }),
        runtime_key: key.to_string(),
    }
}

/// `add` appends to what the response has, `set` replaces it.
fn response_headers(headers: Option<&HeaderModifier>) -> Vec<HeaderValueOption> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    let option = |h: &kuma_api::policies::values::HeaderKeyValue, overwrite: bool| {
        let append_action = if overwrite {
            header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
        } else {
            header_value_option::HeaderAppendAction::AppendIfExistsOrAdd
        };
        HeaderValueOption {
            header: Some(HeaderValue {
                key: h.name.clone(),
                value: h.value.clone(),
                ..HeaderValue::default()
            }),
            append_action: append_action as i32,
            ..HeaderValueOption::default()
        }
    };
    let added = headers.add.iter().flatten().map(|h| option(h, false));
    let set = headers.set.iter().flatten().map(|h| option(h, true));
    added.chain(set).collect()
}

/// The limit as a route's per-filter config.
fn route_limit(rate: &Rate, on_limit: Option<&OnRateLimit>) -> Option<HttpLocalRateLimit> {
    Some(HttpLocalRateLimit {
        stat_prefix: HTTP_STAT_PREFIX.to_string(),
        status: on_limit
            .and_then(|o| o.status)
            .map(|code| HttpStatus { code: code as i32 }),
        token_bucket: Some(token_bucket(rate)?),
        filter_enabled: Some(everyone("local_rate_limit_enabled")),
        filter_enforced: Some(everyone("local_rate_limit_enforced")),
        response_headers_to_add: response_headers(on_limit.and_then(|o| o.headers.as_ref())),
        ..HttpLocalRateLimit::default()
    })
}

pub(crate) fn http(conf: &Conf, hcm: &mut HttpConnectionManager, routes: &mut RouteConfiguration) {
    let Some(limit) = http_limit(conf).and_then(|(rate, on)| route_limit(rate, on)) else {
        return;
    };
    let any = pack_any(limit);
    for route in routes
        .virtual_hosts
        .iter_mut()
        .flat_map(|vh| vh.routes.iter_mut())
    {
        route
            .typed_per_filter_config
            .insert(HTTP_FILTER.to_string(), any.clone());
    }
    let filter = HttpFilter {
        name: HTTP_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            HttpLocalRateLimit {
                stat_prefix: HTTP_STAT_PREFIX.to_string(),
                ..HttpLocalRateLimit::default()
            },
        ))),
        ..HttpFilter::default()
    };
    insert_before_router(hcm, vec![filter]);
}

/// The connection limit filter a TCP inbound gets before its TCP proxy.
pub(crate) fn tcp(conf: &Conf) -> Option<Filter> {
    let tcp = conf.local.as_ref()?.tcp.as_ref()?;
    if tcp.disabled == Some(true) {
        return None;
    }
    let limit = TcpLocalRateLimit {
        stat_prefix: TCP_STAT_PREFIX.to_string(),
        token_bucket: Some(token_bucket(tcp.connection_rate.as_ref()?)?),
        ..TcpLocalRateLimit::default()
    };
    Some(Filter {
        name: TCP_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(limit))),
    })
}

/// Puts `filters` right before the router, which ends every connection
/// manager's chain (after RBAC, which comes first).
pub(super) fn insert_before_router(hcm: &mut HttpConnectionManager, filters: Vec<HttpFilter>) {
    let at = hcm
        .http_filters
        .iter()
        .position(|f| f.name == ROUTER)
        .unwrap_or(hcm.http_filters.len());
    hcm.http_filters.splice(at..at, filters);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::listener::{hcm, route_to_cluster};
    use kuma_api::policies::mesh_rate_limit::{Local, LocalTcp};
    use kuma_api::policies::values::{GoDuration, HeaderKeyValue};
    use prost::Message;
    use std::collections::HashMap;

    fn per_route(
        routes: &RouteConfiguration,
    ) -> Vec<&HashMap<String, envoy_types::pb::google::protobuf::Any>> {
        routes
            .virtual_hosts
            .iter()
            .flat_map(|vh| vh.routes.iter())
            .map(|r| &r.typed_per_filter_config)
            .collect()
    }

    fn rate(num: u32, interval: &str) -> Rate {
        Rate {
            num,
            interval: Some(GoDuration(interval.to_string())),
        }
    }

    fn http_conf(disabled: Option<bool>) -> Conf {
        Conf {
            local: Some(Local {
                http: Some(LocalHttp {
                    disabled,
                    request_rate: Some(rate(5, "10s")),
                    on_rate_limit: Some(OnRateLimit {
                        status: Some(423),
                        headers: Some(HeaderModifier {
                            set: Some(vec![HeaderKeyValue {
                                name: "x-limited".into(),
                                value: "true".into(),
                            }]),
                            add: Some(vec![HeaderKeyValue {
                                name: "x-more".into(),
                                value: "1".into(),
                            }]),
                            remove: None,
                        }),
                    }),
                }),
                tcp: None,
            }),
        }
    }

    #[test]
    fn http_limit_goes_on_every_route_and_filter_before_router() {
        let mut h = hcm("p", Vec::new());
        let mut routes = route_to_cluster("r", "web", "localhost:8080");
        http(&http_conf(None), &mut h, &mut routes);
        let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec![HTTP_FILTER, "envoy.filters.http.router"]);
        let configs = per_route(&routes);
        assert_eq!(configs.len(), 1);
        let any = configs[0].get(HTTP_FILTER).expect("per-route limit");
        let limit = HttpLocalRateLimit::decode(any.value.as_slice()).expect("decodes");
        let bucket = limit.token_bucket.expect("bucket");
        assert_eq!(bucket.max_tokens, 5);
        assert_eq!(bucket.tokens_per_fill.map(|v| v.value), Some(5));
        assert_eq!(bucket.fill_interval.map(|d| d.seconds), Some(10));
        assert_eq!(limit.status.map(|s| s.code), Some(423));
        let headers: Vec<(String, i32)> = limit
            .response_headers_to_add
            .iter()
            .map(|h| {
                (
                    h.header.as_ref().map(|h| h.key.clone()).unwrap_or_default(),
                    h.append_action,
                )
            })
            .collect();
        assert_eq!(
            headers,
            vec![
                (
                    "x-more".to_string(),
                    header_value_option::HeaderAppendAction::AppendIfExistsOrAdd as i32
                ),
                (
                    "x-limited".to_string(),
                    header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32
                ),
            ]
        );
    }

    #[test]
    fn disabled_http_limit_changes_nothing() {
        let mut h = hcm("p", Vec::new());
        let mut routes = route_to_cluster("r", "web", "localhost:8080");
        http(&http_conf(Some(true)), &mut h, &mut routes);
        assert_eq!(h.http_filters.len(), 1);
        assert!(per_route(&routes)[0].is_empty());
    }

    #[test]
    fn tcp_limit_is_a_network_filter_unless_disabled() {
        let conf = |disabled| Conf {
            local: Some(Local {
                http: None,
                tcp: Some(LocalTcp {
                    disabled,
                    connection_rate: Some(rate(2, "1m")),
                }),
            }),
        };
        let f = tcp(&conf(None)).expect("filter");
        assert_eq!(f.name, TCP_FILTER);
        let Some(filter::ConfigType::TypedConfig(any)) = f.config_type else {
            panic!("typed config");
        };
        let limit = TcpLocalRateLimit::decode(any.value.as_slice()).expect("decodes");
        let bucket = limit.token_bucket.expect("bucket");
        assert_eq!(bucket.max_tokens, 2);
        assert_eq!(bucket.fill_interval.map(|d| d.seconds), Some(60));
        assert!(tcp(&conf(Some(true))).is_none());
        assert!(tcp(&http_conf(None)).is_none());
    }
}
