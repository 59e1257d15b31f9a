//! MeshRateLimit: local rate limits on an inbound, as Kuma 2.x builds them.
//!
//! - HTTP inbounds: the connection manager gets an
//!   `envoy.filters.http.local_ratelimit` filter that limits nothing on its
//!   own (only a stat prefix); every route carries the actual limit as its
//!   per-filter config: a token bucket of `requestRate.num` tokens refilled
//!   every `requestRate.interval`, enabled and enforced for 100% of
//!   requests, answering `onRateLimit.status` (Envoy's 429 when absent) with
//!   the `onRateLimit.headers`.
//! - TCP inbounds: an `envoy.filters.network.local_ratelimit` filter right
//!   before the TCP proxy closes connections beyond `connectionRate`.
//!
//! `disabled: true` turns the respective limit off.
//!
//! Per client, as Kuma 2.14 does: `from` entries may only target `Mesh`
//! (kuma-api refuses other kinds with a field-path violation, as Kuma's
//! validator does), so they hold for every client. `rules` entries whose
//! match names a caller identity (`spiffeID`, possibly with `sni`) give
//! those callers their own HTTP limit: a `set_filter_state` network filter
//! records the peer certificate's URI SAN (and the SNI) at the TLS
//! handshake, and each route gets a copy, ahead of it, that matches that
//! filter state and carries the callers' limit (most precise match first;
//! each copy's conf folds the match-less rules' and every rule whose match
//! covers its own, less precise first). Plaintext callers carry no
//! identity and meet the original routes. Connection limits cannot depend
//! on the caller (kuma-api refuses `tcp` next to a spiffeID match).

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, SubstitutionFormatString,
    data_source, header_value_option, substitution_format_string,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::common::set_filter_state::v3::{
    FilterStateValue, filter_state_value,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit as HttpLocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::local_ratelimit::v3::LocalRateLimit as TcpLocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::network::set_filter_state::v3::Config as SetFilterState;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    FilterStateMatcher, RegexMatcher, StringMatcher, filter_state_matcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{
    FractionalPercent, HttpStatus, TokenBucket, fractional_percent,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use kuma_api::Kind;
use kuma_api::policies::mesh_rate_limit::{Conf, LocalHttp, OnRateLimit, Rate};
use kuma_api::policies::values::{HeaderModifier, Match};
use kuma_policy::{InboundRule, MergeStrategy};
use serde::Serialize;
use serde_json::Value;

use super::duration::proto;
use super::read_conf;

pub(crate) const HTTP_FILTER: &str = "envoy.filters.http.local_ratelimit";
const TCP_FILTER: &str = "envoy.filters.network.local_ratelimit";
const HTTP_STAT_PREFIX: &str = "rate_limit";
const TCP_STAT_PREFIX: &str = "tcp_rate_limit";
const ROUTER: &str = "envoy.filters.http.router";
const SET_FILTER_STATE: &str = "envoy.filters.network.set_filter_state";
/// Where the caller's identity and requested server name are kept for
/// routes to match (Kuma's keys).
const SPIFFE_ID_STATE: &str = "kuma.mesh_rate_limit.match.spiffe_id";
const SNI_STATE: &str = "kuma.mesh_rate_limit.match.sni";

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
    ensure_http_filter(hcm);
}

/// The connection manager's rate limit filter (limits come per route).
fn ensure_http_filter(hcm: &mut HttpConnectionManager) {
    if hcm.http_filters.iter().any(|f| f.name == HTTP_FILTER) {
        return;
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

/// The HTTP limit callers of one identity get.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ClientLimit {
    #[serde(rename = "match")]
    matches: Match,
    conf: Conf,
}

fn spiffe_rank(m: &Match) -> (u8, bool, usize) {
    let (kind, prefix) = match &m.spiffe_id {
        Some(id) if id.kind == "Exact" => (2, 0),
        Some(id) if id.kind == "Prefix" => (1, id.value.len()),
        _ => (0, 0),
    };
    (kind, m.sni.is_some(), prefix)
}

/// Whether callers matching `target` also match `candidate`.
fn covers(candidate: &Match, target: &Match) -> bool {
    let spiffe = match (&candidate.spiffe_id, &target.spiffe_id) {
        (Some(c), Some(t)) if c.kind == "Exact" => t.kind == "Exact" && c.value == t.value,
        (Some(c), Some(t)) if c.kind == "Prefix" => t.value.starts_with(&c.value),
        _ => false,
    };
    let sni = match (&candidate.sni, &target.sni) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(c), Some(t)) => c.kind == t.kind && c.value == t.value,
    };
    spiffe && sni
}

fn has_http(conf: &Value) -> bool {
    conf.pointer("/local/http").is_some_and(|h| !h.is_null())
}

/// The per-identity limits of one inbound's `rules`, most precise first;
/// `base` is what every caller gets (the fold of match-less rules).
pub(crate) fn per_client(rules: &[InboundRule], base: Option<&Value>) -> Vec<ClientLimit> {
    let mut matched: Vec<(&Match, &Value)> = rules
        .iter()
        .filter_map(|r| Some((r.matches.as_ref()?, &r.conf)))
        .filter(|(m, conf)| m.spiffe_id.is_some() && has_http(conf))
        .collect();
    // Stable: rules of equal rank keep their policies' order.
    matched.sort_by_key(|(m, _)| std::cmp::Reverse(spiffe_rank(m)));
    let base = base.filter(|b| has_http(b));
    let strategy = MergeStrategy::for_kind(Kind::MeshRateLimit);
    let mut out: Vec<ClientLimit> = Vec::new();
    for (target, _) in &matched {
        if out.iter().any(|l| l.matches == **target) {
            continue;
        }
        // Less precise first, so that more precise rules win the fold.
        let covering = matched.iter().rev().filter(|(m, _)| covers(m, target));
        let confs: Vec<&Value> = base.into_iter().chain(covering.map(|(_, c)| *c)).collect();
        if let Some(conf) = read_conf(Kind::MeshRateLimit, &strategy.fold(confs)) {
            out.push(ClientLimit {
                matches: (*target).clone(),
                conf,
            });
        }
    }
    out
}

fn exact(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_string())),
        ..StringMatcher::default()
    }
}

fn state_matchers(m: &Match) -> Vec<FilterStateMatcher> {
    let matcher = |key: &str, value: StringMatcher| FilterStateMatcher {
        key: key.to_string(),
        matcher: Some(filter_state_matcher::Matcher::StringMatch(value)),
    };
    let mut out = Vec::new();
    if let Some(id) = &m.spiffe_id {
        // The state holds every URI SAN of the peer, comma-separated.
        let value = StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                regex: super::mesh_fault_injection::uri_san_regex(id),
                ..RegexMatcher::default()
            })),
            ..StringMatcher::default()
        };
        out.push(matcher(SPIFFE_ID_STATE, value));
    }
    if let Some(sni) = &m.sni {
        out.push(matcher(SNI_STATE, exact(&sni.value)));
    }
    out
}

/// Each route gets, ahead of it, one copy per identity limit, matching
/// that identity and carrying its limit (none when the callers' conf
/// limits nothing).
pub(crate) fn http_per_client(
    limits: &[ClientLimit],
    hcm: &mut HttpConnectionManager,
    routes: &mut RouteConfiguration,
) {
    if limits.is_empty() {
        return;
    }
    let limited: Vec<(&ClientLimit, Option<HttpLocalRateLimit>)> = limits
        .iter()
        .map(|l| {
            let limit = http_limit(&l.conf).and_then(|(rate, on)| route_limit(rate, on));
            (l, limit)
        })
        .collect();
    if limited.iter().all(|(_, limit)| limit.is_none()) && !has_route_limit(routes) {
        return;
    }
    for vh in &mut routes.virtual_hosts {
        let original = std::mem::take(&mut vh.routes);
        for route in original {
            for (l, limit) in &limited {
                let mut copy: Route = route.clone();
                if let Some(m) = copy.r#match.as_mut() {
                    m.filter_state.extend(state_matchers(&l.matches));
                } else {
                    continue;
                }
                match limit {
                    Some(limit) => {
                        copy.typed_per_filter_config
                            .insert(HTTP_FILTER.to_string(), pack_any(limit.clone()));
                    }
                    None => {
                        copy.typed_per_filter_config.remove(HTTP_FILTER);
                    }
                }
                vh.routes.push(copy);
            }
            vh.routes.push(route);
        }
    }
    if limited.iter().any(|(_, limit)| limit.is_some()) {
        ensure_http_filter(hcm);
    }
}

fn has_route_limit(routes: &RouteConfiguration) -> bool {
    routes
        .virtual_hosts
        .iter()
        .flat_map(|vh| vh.routes.iter())
        .any(|r| r.typed_per_filter_config.contains_key(HTTP_FILTER))
}

/// The network filter that records the caller's identity (and SNI) at the
/// TLS handshake for the per-identity routes; `None` without them.
pub(crate) fn identity_state(limits: &[ClientLimit]) -> Option<Filter> {
    let value = |key: &str, format: &str| FilterStateValue {
        key: Some(filter_state_value::Key::ObjectKey(key.to_string())),
        factory_key: "envoy.string".to_string(),
        value: Some(filter_state_value::Value::FormatString(
            SubstitutionFormatString {
                format: Some(substitution_format_string::Format::TextFormatSource(
                    DataSource {
                        specifier: Some(data_source::Specifier::InlineString(format.to_string())),
                        ..DataSource::default()
                    },
                )),
                ..SubstitutionFormatString::default()
            },
        )),
        skip_if_empty: true,
        ..FilterStateValue::default()
    };
    let mut values = Vec::new();
    if limits.iter().any(|l| l.matches.spiffe_id.is_some()) {
        values.push(value(SPIFFE_ID_STATE, "%DOWNSTREAM_PEER_URI_SAN%"));
    }
    if limits.iter().any(|l| l.matches.sni.is_some()) {
        values.push(value(SNI_STATE, "%REQUESTED_SERVER_NAME%"));
    }
    if values.is_empty() {
        return None;
    }
    Some(Filter {
        name: SET_FILTER_STATE.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(SetFilterState {
            on_downstream_tls_handshake: values,
            ..SetFilterState::default()
        }))),
    })
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
    use kuma_api::policies::values::{GoDuration, HeaderKeyValue, TypedValue};
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

    fn rule(matches: Option<(&str, &str)>, conf: serde_json::Value) -> InboundRule {
        InboundRule {
            matches: matches.map(|(kind, value)| Match {
                spiffe_id: Some(TypedValue {
                    kind: kind.into(),
                    value: value.into(),
                }),
                sni: None,
            }),
            conf,
            origin: kuma_policy::PolicyOrigin {
                kind: "MeshRateLimit".into(),
                mesh: "default".into(),
                name: "p".into(),
            },
            rule_index: 0,
        }
    }

    fn requests(num: u32, status: Option<u32>) -> serde_json::Value {
        let mut http = serde_json::json!({"requestRate": {"num": num, "interval": "1s"}});
        if let Some(status) = status {
            http["onRateLimit"] = serde_json::json!({"status": status});
        }
        serde_json::json!({"local": {"http": http}})
    }

    /// The rules of the golden scenario: everyone 100/s, the mesh's
    /// identities 50/s answered 423, web 5/s.
    fn scenario() -> (Vec<InboundRule>, serde_json::Value) {
        let base = requests(100, None);
        let rules = vec![
            rule(Some(("Exact", "spiffe://default/web")), requests(5, None)),
            rule(
                Some(("Prefix", "spiffe://default")),
                requests(50, Some(423)),
            ),
            rule(None, base.clone()),
        ];
        (rules, base)
    }

    fn bucket_and_status(conf: &Conf) -> (u32, Option<u32>) {
        let (rate, on) = http_limit(conf).expect("a limit");
        (rate.num, on.and_then(|o| o.status))
    }

    #[test]
    fn identity_rules_fold_over_less_precise_ones_most_precise_first() {
        let (rules, base) = scenario();
        // Given in another order: the order of the result is by precision.
        let reversed: Vec<InboundRule> = rules.iter().rev().cloned().collect();
        for given in [rules, reversed] {
            let limits = per_client(&given, Some(&base));
            let got: Vec<(String, (u32, Option<u32>))> = limits
                .iter()
                .map(|l| {
                    let id = l.matches.spiffe_id.clone().unwrap_or_default();
                    (id.value, bucket_and_status(&l.conf))
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    // web's own rate, the prefix rule's status.
                    ("spiffe://default/web".to_string(), (5, Some(423))),
                    ("spiffe://default".to_string(), (50, Some(423))),
                ]
            );
        }
        assert!(per_client(&[rule(None, base.clone())], Some(&base)).is_empty());
    }

    #[test]
    fn each_route_gets_a_copy_per_identity_ahead_of_it() {
        let (rules, base) = scenario();
        let limits = per_client(&rules, Some(&base));
        let mut h = hcm("p", Vec::new());
        let mut routes = route_to_cluster("r", "web", "localhost:8080");
        let base: Conf = serde_json::from_value(base).expect("conf");
        http(&base, &mut h, &mut routes);
        http_per_client(&limits, &mut h, &mut routes);
        let got: Vec<(Vec<String>, u32)> = routes.virtual_hosts[0]
            .routes
            .iter()
            .map(|r| {
                let states = r
                    .r#match
                    .iter()
                    .flat_map(|m| m.filter_state.iter())
                    .map(|f| f.key.clone())
                    .collect();
                let any = r.typed_per_filter_config.get(HTTP_FILTER).expect("limit");
                let limit = HttpLocalRateLimit::decode(any.value.as_slice()).expect("decodes");
                (states, limit.token_bucket.map_or(0, |b| b.max_tokens))
            })
            .collect();
        let state = vec![SPIFFE_ID_STATE.to_string()];
        assert_eq!(
            got,
            vec![(state.clone(), 5), (state, 50), (Vec::new(), 100)]
        );
        let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec![HTTP_FILTER, ROUTER], "one rate limit filter");
        let state = identity_state(&limits).expect("the identity is recorded");
        let Some(filter::ConfigType::TypedConfig(any)) = state.config_type else {
            panic!("typed config");
        };
        let config = SetFilterState::decode(any.value.as_slice()).expect("decodes");
        let keys: Vec<Option<filter_state_value::Key>> = config
            .on_downstream_tls_handshake
            .into_iter()
            .map(|v| v.key)
            .collect();
        assert_eq!(
            keys,
            vec![Some(filter_state_value::Key::ObjectKey(
                SPIFFE_ID_STATE.to_string()
            ))]
        );
    }

    #[test]
    fn without_identity_rules_routes_and_filters_stay() {
        let mut h = hcm("p", Vec::new());
        let mut routes = route_to_cluster("r", "web", "localhost:8080");
        let before = routes.clone();
        http_per_client(&[], &mut h, &mut routes);
        assert_eq!(routes, before);
        assert_eq!(h.http_filters.len(), 1);
        assert!(identity_state(&[]).is_none());
    }

    #[test]
    fn identity_limits_are_part_of_the_inbound_cache_key() {
        let (rules, base) = scenario();
        let with = super::super::InboundPolicies {
            limits: per_client(&rules, Some(&base)),
            ..super::super::InboundPolicies::default()
        };
        let without = super::super::InboundPolicies::default();
        assert_eq!(with.every, without.every);
        assert_ne!(with.key(), without.key());
    }
}
