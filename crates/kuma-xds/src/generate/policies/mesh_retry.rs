//! MeshRetry: retry policies on outbound routes, connect attempts on TCP.
//!
//! As Kuma applies a folded `to` conf: an `http` destination gets the
//! `http` section as every route's retry policy, a `grpc` one the `grpc`
//! section (other HTTP-family protocols get none, as in Kuma); a TCP
//! destination gets `tcp.maxConnectAttempt`. Absent `retryOn` means Kuma's
//! defaults (`gateway-error,connect-failure,refused-stream` for HTTP;
//! `cancelled,connect-failure,gateway-error,refused-stream,reset,
//! resource-exhausted,unavailable` for gRPC); `numRetries: 0` turns
//! retries off. In `retryOn`, an HTTP status code becomes a retriable
//! status code (and adds `retriable-status-codes`) and `HttpMethod<M>` a
//! `:method` request header the request must carry to be retried.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::retry_policy::{
    RateLimitedRetryBackOff, ResetHeader, ResetHeaderFormat, RetryBackOff, RetryHostPredicate,
    RetryPriority, retry_host_predicate, retry_priority,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, RetryPolicy, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use envoy_types::util::pack_any;
use kuma_api::policies::mesh_retry::{BackOff, Conf, Grpc, Http, Predicate, RateLimitedBackOff};
use kuma_api::policies::values::{GoDuration, HeaderMatch};
use prost::Message;

use super::duration::proto;
use crate::generate::snapshot::Protocol;

const HTTP_RETRY_ON: &str = "gateway-error,connect-failure,refused-stream";
const GRPC_RETRY_ON: &str =
    "cancelled,connect-failure,gateway-error,refused-stream,reset,resource-exhausted,unavailable";
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";
const METHOD_PREFIX: &str = "HttpMethod";

/// Envoy's own base interval, used when a folded back-off names only its
/// maximum (Envoy requires a base).
const BASE_INTERVAL_MILLIS: i32 = 25;

/// Every route of an outbound listener retries as the conf says.
pub(crate) fn routes(conf: &Conf, protocol: Protocol, routes: &mut RouteConfiguration) {
    let policy = match protocol {
        Protocol::Http => conf.http.as_ref().and_then(http_policy),
        Protocol::Grpc => conf.grpc.as_ref().and_then(grpc_policy),
        Protocol::Http2 | Protocol::Tcp => None,
    };
    let Some(policy) = policy else { return };
    let actions = super::route_actions(routes);
    for action in actions {
        action.retry_policy = Some(policy.clone());
    }
}

pub(crate) fn tcp(conf: &Conf, tcp: &mut TcpProxy) {
    if let Some(attempts) = conf.tcp.as_ref().and_then(|t| t.max_connect_attempt) {
        tcp.max_connect_attempts = Some(UInt32Value { value: attempts });
    }
}

/// The parts both HTTP and gRPC retry policies share; `None` when
/// `numRetries: 0` turns retries off.
fn base_policy(
    default_retry_on: &str,
    num_retries: Option<u32>,
    per_try_timeout: Option<&GoDuration>,
    back_off: Option<&BackOff>,
    rate_limited: Option<&RateLimitedBackOff>,
) -> Option<RetryPolicy> {
    if num_retries == Some(0) {
        return None;
    }
    Some(RetryPolicy {
        retry_on: default_retry_on.to_string(),
        num_retries: num_retries.map(|value| UInt32Value { value }),
        per_try_timeout: per_try_timeout.and_then(proto),
        retry_back_off: back_off.map(retry_back_off),
        rate_limited_retry_back_off: rate_limited.map(rate_limited_back_off),
        ..RetryPolicy::default()
    })
}

fn http_policy(http: &Http) -> Option<RetryPolicy> {
    let mut policy = base_policy(
        HTTP_RETRY_ON,
        http.num_retries,
        http.per_try_timeout.as_ref(),
        http.back_off.as_ref(),
        http.rate_limited_back_off.as_ref(),
    )?;
    let mut retry_on = Vec::new();
    let mut methods = Vec::new();
    for item in http.retry_on.iter().flatten() {
        if let Ok(code) = item.parse::<u32>() {
            policy.retriable_status_codes.push(code);
        } else if let Some(method) = item.strip_prefix(METHOD_PREFIX) {
            methods.push(method.to_uppercase());
        } else if let Some(envoy) = http_retry_on(item) {
            retry_on.push(envoy);
        }
    }
    if !retry_on.is_empty() {
        policy.retry_on = retry_on.join(",");
    }
    if !policy.retriable_status_codes.is_empty()
        && !policy
            .retry_on
            .split(',')
            .any(|c| c == RETRIABLE_STATUS_CODES)
    {
        policy.retry_on = format!("{},{RETRIABLE_STATUS_CODES}", policy.retry_on);
    }
    policy.retriable_request_headers = methods
        .into_iter()
        .map(|m| HeaderMatcher {
            name: ":method".to_string(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(m)),
                ..StringMatcher::default()
            })),
            ..HeaderMatcher::default()
        })
        .chain(
            http.retriable_request_headers
                .iter()
                .flatten()
                .map(header_matcher),
        )
        .collect();
    policy.retriable_headers = http
        .retriable_response_headers
        .iter()
        .flatten()
        .map(header_matcher)
        .collect();
    for p in http.host_selection.iter().flatten() {
        host_selection(p, &mut policy);
    }
    if let Some(attempts) = http.host_selection_max_attempts {
        policy.host_selection_retry_max_attempts = attempts;
    }
    Some(policy)
}

fn grpc_policy(grpc: &Grpc) -> Option<RetryPolicy> {
    let mut policy = base_policy(
        GRPC_RETRY_ON,
        grpc.num_retries,
        grpc.per_try_timeout.as_ref(),
        grpc.back_off.as_ref(),
        grpc.rate_limited_back_off.as_ref(),
    )?;
    let retry_on: Vec<&str> = grpc
        .retry_on
        .iter()
        .flatten()
        .filter_map(|item| grpc_retry_on(item))
        .collect();
    if !retry_on.is_empty() {
        policy.retry_on = retry_on.join(",");
    }
    Some(policy)
}

/// Kuma's PascalCase `retryOn` names as Envoy's conditions.
fn http_retry_on(item: &str) -> Option<&'static str> {
    Some(match item {
        "5xx" => "5xx",
        "GatewayError" => "gateway-error",
        "Reset" => "reset",
        "Retriable4xx" => "retriable-4xx",
        "ConnectFailure" => "connect-failure",
        "EnvoyRatelimited" => "envoy-ratelimited",
        "RefusedStream" => "refused-stream",
        "Http3PostConnectFailure" => "http3-post-connect-failure",
        _ => return None,
    })
}

fn grpc_retry_on(item: &str) -> Option<&'static str> {
    Some(match item {
        "Canceled" => "cancelled",
        "DeadlineExceeded" => "deadline-exceeded",
        "Internal" => "internal",
        "ResourceExhausted" => "resource-exhausted",
        "Unavailable" => "unavailable",
        _ => return None,
    })
}

fn retry_back_off(b: &BackOff) -> RetryBackOff {
    let base = b
        .base_interval
        .as_ref()
        .and_then(proto)
        .filter(|d| d.seconds > 0 || d.nanos > 0)
        .unwrap_or(Duration {
            seconds: 0,
            nanos: BASE_INTERVAL_MILLIS * 1_000_000,
        });
    // Envoy refuses a maximum below the base.
    let max = b
        .max_interval
        .as_ref()
        .and_then(proto)
        .filter(|m| (m.seconds, m.nanos) >= (base.seconds, base.nanos));
    RetryBackOff {
        base_interval: Some(base),
        max_interval: max,
    }
}

fn rate_limited_back_off(r: &RateLimitedBackOff) -> RateLimitedRetryBackOff {
    RateLimitedRetryBackOff {
        reset_headers: r
            .reset_headers
            .iter()
            .flatten()
            .map(|h| ResetHeader {
                name: h.name.clone(),
                format: match h.format.as_str() {
                    "UnixTimestamp" => ResetHeaderFormat::UnixTimestamp,
                    _ => ResetHeaderFormat::Seconds,
                } as i32,
            })
            .collect(),
        max_interval: r.max_interval.as_ref().and_then(proto),
    }
}

/// A header condition as Kuma writes it (`Exact` when no type is given).
fn header_matcher(h: &HeaderMatch) -> HeaderMatcher {
    let string = |pattern| {
        Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ..StringMatcher::default()
        }))
    };
    let specifier = match h.kind.as_deref().unwrap_or("Exact") {
        "RegularExpression" => string(MatchPattern::SafeRegex(RegexMatcher {
            regex: h.value.clone(),
            ..RegexMatcher::default()
        })),
        "Prefix" => string(MatchPattern::Prefix(h.value.clone())),
        "Present" => Some(HeaderMatchSpecifier::PresentMatch(true)),
        "Absent" => Some(HeaderMatchSpecifier::PresentMatch(false)),
        _ => string(MatchPattern::Exact(h.value.clone())),
    };
    HeaderMatcher {
        name: h.name.clone(),
        header_match_specifier: specifier,
        ..HeaderMatcher::default()
    }
}

fn host_selection(p: &Predicate, policy: &mut RetryPolicy) {
    match p.predicate.as_str() {
        "OmitPreviousHosts" => policy.retry_host_predicate.push(RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_string(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack_any(
                PreviousHostsPredicate::default(),
            ))),
        }),
        "OmitHostsWithTags" => policy.retry_host_predicate.push(RetryHostPredicate {
            name: "envoy.retry_host_predicates.omit_host_metadata".to_string(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(
                omit_host_metadata(p.tags.clone().unwrap_or_default()),
            )),
        }),
        "OmitPreviousPriorities" => {
            policy.retry_priority = Some(RetryPriority {
                name: "envoy.retry_priorities.previous_priorities".to_string(),
                config_type: Some(retry_priority::ConfigType::TypedConfig(pack_any(
                    PreviousPrioritiesConfig {
                        update_frequency: p.update_frequency,
                    },
                ))),
            })
        }
        _ => {}
    }
}

/// `OmitHostMetadataConfig` matching the tags under `envoy.lb`, encoded
/// with ordered maps: the generated types use hash maps, whose encoding
/// order varies, and the bytes are part of shared resources' identity.
fn omit_host_metadata(tags: BTreeMap<String, String>) -> Any {
    #[derive(Clone, PartialEq, Message)]
    struct Config {
        #[prost(message, optional, tag = "1")]
        metadata_match: Option<Metadata>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Metadata {
        #[prost(btree_map = "string, message", tag = "1")]
        filter_metadata: BTreeMap<String, Struct>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Struct {
        #[prost(btree_map = "string, message", tag = "1")]
        fields: BTreeMap<String, Value>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Value {
        #[prost(string, tag = "3")]
        string_value: String,
    }
    let fields = tags
        .into_iter()
        .map(|(k, v)| (k, Value { string_value: v }))
        .collect();
    let config = Config {
        metadata_match: Some(Metadata {
            filter_metadata: [("envoy.lb".to_string(), Struct { fields })].into(),
        }),
    };
    Any {
        type_url: "type.googleapis.com/envoy.extensions.retry.host.omit_host_metadata.v3.OmitHostMetadataConfig".to_string(),
        value: config.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::listener::route_to_cluster;
    use envoy_types::pb::envoy::config::route::v3::route;
    use envoy_types::pb::envoy::extensions::retry::host::omit_host_metadata::v3::OmitHostMetadataConfig;
    use kuma_api::policies::mesh_retry::Tcp;

    fn retry_of(routes: &RouteConfiguration) -> Option<&RetryPolicy> {
        match &routes.virtual_hosts[0].routes[0].action {
            Some(route::Action::Route(action)) => action.retry_policy.as_ref(),
            _ => None,
        }
    }

    fn apply(conf: &Conf, protocol: Protocol) -> RouteConfiguration {
        let mut r = route_to_cluster("r", "backend", "backend");
        routes(conf, protocol, &mut r);
        r
    }

    #[test]
    fn status_codes_methods_and_conditions_split_as_kuma_does() {
        let conf = Conf {
            http: Some(Http {
                num_retries: Some(3),
                per_try_timeout: Some(GoDuration("2s".to_string())),
                retry_on: Some(
                    ["5xx", "503", "HttpMethodGet", "ConnectFailure"]
                        .map(String::from)
                        .to_vec(),
                ),
                back_off: Some(BackOff {
                    base_interval: None,
                    max_interval: Some(GoDuration("1s".to_string())),
                }),
                ..Http::default()
            }),
            ..Conf::default()
        };
        let r = apply(&conf, Protocol::Http);
        let p = retry_of(&r).expect("retry policy");
        assert_eq!(p.retry_on, "5xx,connect-failure,retriable-status-codes");
        assert_eq!(p.retriable_status_codes, vec![503]);
        assert_eq!(p.num_retries.map(|n| n.value), Some(3));
        assert_eq!(p.per_try_timeout.map(|d| d.seconds), Some(2));
        let b = p.retry_back_off.expect("back-off");
        assert_eq!(b.base_interval.map(|d| d.nanos), Some(25_000_000));
        assert_eq!(b.max_interval.map(|d| d.seconds), Some(1));
        assert_eq!(p.retriable_request_headers.len(), 1);
        assert_eq!(p.retriable_request_headers[0].name, ":method");
    }

    #[test]
    fn defaults_protocols_and_zero_retries() {
        let conf = Conf {
            http: Some(Http {
                num_retries: Some(2),
                ..Http::default()
            }),
            grpc: Some(Grpc {
                retry_on: Some(vec!["DeadlineExceeded".to_string()]),
                ..Grpc::default()
            }),
            tcp: Some(Tcp {
                max_connect_attempt: Some(4),
            }),
        };
        let http = apply(&conf, Protocol::Http);
        assert_eq!(retry_of(&http).expect("http").retry_on, HTTP_RETRY_ON);
        let grpc = apply(&conf, Protocol::Grpc);
        assert_eq!(retry_of(&grpc).expect("grpc").retry_on, "deadline-exceeded");
        assert!(retry_of(&apply(&conf, Protocol::Http2)).is_none());
        let mut proxy = TcpProxy::default();
        tcp(&conf, &mut proxy);
        assert_eq!(proxy.max_connect_attempts.map(|n| n.value), Some(4));

        let off = Conf {
            http: Some(Http {
                num_retries: Some(0),
                ..Http::default()
            }),
            ..Conf::default()
        };
        assert!(retry_of(&apply(&off, Protocol::Http)).is_none());
    }

    #[test]
    fn omit_hosts_with_tags_decodes_as_envoy_config() {
        let tags = BTreeMap::from([
            ("version".to_string(), "v1".to_string()),
            ("zone".to_string(), "a".to_string()),
        ]);
        let any = omit_host_metadata(tags.clone());
        assert_eq!(any, omit_host_metadata(tags));
        let config = OmitHostMetadataConfig::decode(any.value.as_slice()).expect("decodes");
        let md = config.metadata_match.expect("metadata");
        assert_eq!(md.filter_metadata["envoy.lb"].fields.len(), 2);
    }
}
