//! MeshFaultInjection: aborts, delays and response bandwidth limits on an
//! HTTP inbound.
//!
//! As Kuma does, every entry of `http` becomes its own
//! `envoy.filters.http.fault` filter (so that each entry's percentages are
//! drawn independently), in the order of the list, before the router.
//! Percentages become Envoy fractions in the coarsest exact denominator.
//! TCP inbounds are left alone, faults being HTTP only.
//!
//! Per client, as Kuma 2.14 does (see [`clients`] for how Envoy tells
//! clients apart):
//! - with `rules` (from any policy selecting the proxy), each rule is one
//!   group of filters, most precise match first (Exact spiffeID, Prefix,
//!   SNI, then match-less rules for every client); `from` entries are then
//!   ignored, as in Kuma;
//! - otherwise each `from` rule (a subset of client tags with the fold of
//!   every entry aimed at it, clients of more specific subsets first) is
//!   one group matching its subset through the `x-kuma-tags` header. Rules
//!   built from related subsets (a MeshSubset and the whole mesh) do not
//!   overlap, so each client gets the faults of its own rule. Rules of
//!   unrelated subsets can: with entries for `web` and for `other`, a web
//!   client is also "not other" and gets both groups, as in Kuma, which
//!   applies every rule this way.

mod clients;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, TypedExtensionConfig, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::common::matching::v3::ExtensionWithMatcher;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay, FaultRateLimit, fault_delay, fault_rate_limit,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::util::pack_any;
use kuma_api::Kind;
use kuma_api::policies::mesh_fault_injection::{Conf, FaultInjection};
use kuma_api::policies::values::{IntOrString, Match};
use kuma_policy::{InboundRule, PolicyOrigin, Rule, Subset};
use serde::Serialize;

use super::duration::proto;
use super::mesh_http_route::fraction;
use super::mesh_rate_limit::insert_before_router;
use super::read_conf;

pub(crate) use clients::{TAGS_HEADER, tags_header_value, uri_san_regex};

const FAULT_FILTER: &str = "envoy.filters.http.fault";

fn percentage(p: Option<&IntOrString>) -> Option<FractionalPercent> {
    fraction(p?.as_f64()?).default_value
}

/// `100kbps`, `5 Mbps`, `1Gbps` in kilobits per second.
fn kbps(limit: &str) -> Option<u64> {
    let limit = limit.trim();
    let (number, scale) = if let Some(n) = limit.strip_suffix("Gbps") {
        (n, 1_000_000)
    } else if let Some(n) = limit.strip_suffix("Mbps") {
        (n, 1_000)
    } else {
        (limit.strip_suffix("kbps")?, 1)
    };
    number.trim().parse::<u64>().ok()?.checked_mul(scale)
}

/// One entry's filter; `None` when it injects nothing.
fn fault(entry: &FaultInjection) -> Option<HttpFault> {
    let abort = entry.abort.as_ref().and_then(|a| {
        Some(FaultAbort {
            percentage: percentage(a.percentage.as_ref()),
            error_type: Some(fault_abort::ErrorType::HttpStatus(
                u32::try_from(a.http_status).ok()?,
            )),
            ..FaultAbort::default()
        })
    });
    let delay = entry.delay.as_ref().and_then(|d| {
        Some(FaultDelay {
            percentage: percentage(d.percentage.as_ref()),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(proto(
                d.value.as_ref()?,
            )?)),
        })
    });
    let response_rate_limit = entry.response_bandwidth.as_ref().and_then(|b| {
        Some(FaultRateLimit {
            percentage: percentage(b.percentage.as_ref()),
            limit_type: Some(fault_rate_limit::LimitType::FixedLimit(
                fault_rate_limit::FixedLimit {
                    limit_kbps: kbps(&b.limit)?,
                },
            )),
        })
    });
    if abort.is_none() && delay.is_none() && response_rate_limit.is_none() {
        return None;
    }
    Some(HttpFault {
        abort,
        delay,
        response_rate_limit,
        ..HttpFault::default()
    })
}

/// One group of faults and the clients it is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ClientFaults {
    clients: Clients,
    conf: Conf,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
enum Clients {
    Every,
    /// A `from` rule's subset of client tags.
    Tags(Subset),
    /// A `rules` entry's match on the connection, and the policy it comes
    /// from (its filters are named after it, as in Kuma).
    Identity {
        #[serde(rename = "match")]
        matches: Match,
        policy: PolicyOrigin,
    },
}

/// The fault groups of one inbound, from its `rules` entries when it has
/// any, else from its `from` rules.
pub(crate) fn per_client(from: &[Rule], rules: &[InboundRule]) -> Vec<ClientFaults> {
    if !rules.is_empty() {
        return rules
            .iter()
            .filter_map(|r| {
                let clients = match &r.matches {
                    Some(m) => Clients::Identity {
                        matches: m.clone(),
                        policy: r.origin.clone(),
                    },
                    None => Clients::Every,
                };
                Some(ClientFaults {
                    clients,
                    conf: read_conf(Kind::MeshFaultInjection, &r.conf)?,
                })
            })
            .collect();
    }
    from.iter()
        .filter_map(|r| {
            let clients = if r.subset.is_empty() {
                Clients::Every
            } else {
                Clients::Tags(r.subset.clone())
            };
            Some(ClientFaults {
                clients,
                conf: read_conf(Kind::MeshFaultInjection, &r.conf)?,
            })
        })
        .collect()
}

impl ClientFaults {
    fn filters(&self) -> Vec<HttpFilter> {
        self.conf
            .http
            .iter()
            .flatten()
            .filter_map(fault)
            .map(|mut f| match &self.clients {
                Clients::Every => plain(f),
                Clients::Tags(subset) => {
                    f.headers = clients::header_matchers(subset);
                    plain(f)
                }
                Clients::Identity { matches, policy } => match clients::skip_unless(matches) {
                    Some(matcher) => HttpFilter {
                        name: format!("kri_mfi_{}___{}_", policy.mesh, policy.name),
                        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                            ExtensionWithMatcher {
                                xds_matcher: Some(matcher),
                                extension_config: Some(TypedExtensionConfig {
                                    name: FAULT_FILTER.to_string(),
                                    typed_config: Some(pack_any(f)),
                                }),
                                ..ExtensionWithMatcher::default()
                            },
                        ))),
                        ..HttpFilter::default()
                    },
                    None => plain(f),
                },
            })
            .collect()
    }
}

fn plain(f: HttpFault) -> HttpFilter {
    HttpFilter {
        name: FAULT_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(f))),
        ..HttpFilter::default()
    }
}

/// The fault filters of every group, in order, before the router.
pub(crate) fn http(groups: &[ClientFaults], hcm: &mut HttpConnectionManager) {
    let filters = groups.iter().flat_map(ClientFaults::filters).collect();
    insert_before_router(hcm, filters);
}

/// Clients send their tags (see [`clients`]); the inbound drops the header
/// before the request reaches the application, as Kuma's inbounds do.
pub(crate) fn drop_tags_header(routes: &mut RouteConfiguration) {
    if !routes
        .request_headers_to_remove
        .iter()
        .any(|h| h == TAGS_HEADER)
    {
        routes
            .request_headers_to_remove
            .push(TAGS_HEADER.to_string());
    }
}

/// An outbound's routes send the calling proxy's tags.
pub(crate) fn send_tags_header(routes: &mut RouteConfiguration, value: &str) {
    routes.request_headers_to_add.push(HeaderValueOption {
        header: Some(HeaderValue {
            key: TAGS_HEADER.to_string(),
            value: value.to_string(),
            ..HeaderValue::default()
        }),
        // What the application sent under that name is not its tags.
        append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::listener::hcm;
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
    use kuma_api::policies::mesh_fault_injection::{Abort, Delay, ResponseBandwidth};
    use kuma_api::policies::values::GoDuration;
    use prost::Message;

    fn decode(f: &HttpFilter) -> HttpFault {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            panic!("typed config");
        };
        HttpFault::decode(any.value.as_slice()).expect("fault")
    }

    #[test]
    fn bandwidth_units_scale_to_kbps() {
        assert_eq!(kbps("100kbps"), Some(100));
        assert_eq!(kbps("5 Mbps"), Some(5_000));
        assert_eq!(kbps("1Gbps"), Some(1_000_000));
        assert_eq!(kbps("kbps"), None);
        assert_eq!(kbps("10 mbit"), None);
    }

    #[test]
    fn each_entry_is_one_filter_before_the_router() {
        let conf = Conf {
            http: Some(vec![
                FaultInjection {
                    abort: Some(Abort {
                        http_status: 503,
                        percentage: Some(IntOrString::Int(50)),
                    }),
                    ..FaultInjection::default()
                },
                FaultInjection {
                    delay: Some(Delay {
                        value: Some(GoDuration("500ms".into())),
                        percentage: Some(IntOrString::String("2.5".into())),
                    }),
                    response_bandwidth: Some(ResponseBandwidth {
                        limit: "1Mbps".into(),
                        percentage: Some(IntOrString::Int(100)),
                    }),
                    ..FaultInjection::default()
                },
                FaultInjection::default(),
            ]),
        };
        let mut h = hcm("p", Vec::new());
        let every = ClientFaults {
            clients: Clients::Every,
            conf,
        };
        http(&[every], &mut h);
        let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec![FAULT_FILTER, FAULT_FILTER, "envoy.filters.http.router"]
        );
        let abort = decode(&h.http_filters[0]).abort.expect("abort");
        assert_eq!(
            abort.error_type,
            Some(fault_abort::ErrorType::HttpStatus(503))
        );
        assert_eq!(
            abort.percentage,
            Some(FractionalPercent {
                numerator: 50,
                denominator: DenominatorType::Hundred as i32
            })
        );
        let second = decode(&h.http_filters[1]);
        let delay = second.delay.expect("delay");
        assert_eq!(
            delay.percentage,
            Some(FractionalPercent {
                numerator: 250,
                denominator: DenominatorType::TenThousand as i32
            })
        );
        let Some(fault_delay::FaultDelaySecifier::FixedDelay(d)) = delay.fault_delay_secifier
        else {
            panic!("fixed delay");
        };
        assert_eq!((d.seconds, d.nanos), (0, 500_000_000));
        let Some(fault_rate_limit::LimitType::FixedLimit(limit)) =
            second.response_rate_limit.expect("bandwidth").limit_type
        else {
            panic!("fixed limit");
        };
        assert_eq!(limit.limit_kbps, 1_000);
    }

    fn origin(name: &str) -> PolicyOrigin {
        PolicyOrigin {
            kind: "MeshFaultInjection".into(),
            mesh: "default".into(),
            name: name.into(),
        }
    }

    fn abort(status: u16) -> serde_json::Value {
        serde_json::json!({"http": [{"abort": {"httpStatus": status, "percentage": 100}}]})
    }

    /// The abort status and header matchers (name, inverted) of each plain
    /// fault filter, in order.
    fn plain_faults(h: &HttpConnectionManager) -> Vec<(u32, Vec<(String, bool)>)> {
        h.http_filters
            .iter()
            .filter(|f| f.name == FAULT_FILTER)
            .map(|f| {
                let fault = decode(f);
                let Some(fault_abort::ErrorType::HttpStatus(status)) =
                    fault.abort.and_then(|a| a.error_type)
                else {
                    panic!("an abort");
                };
                let headers = fault
                    .headers
                    .iter()
                    .map(|m| (m.name.clone(), m.invert_match))
                    .collect();
                (status, headers)
            })
            .collect()
    }

    #[test]
    fn a_subset_rule_is_a_filter_matching_its_clients_tags() {
        let rules = vec![Rule {
            subset: Subset(vec![kuma_policy::Tag::new("kuma.io/service", "web")]),
            conf: abort(500),
            origins: vec![origin("web")],
        }];
        let mut h = hcm("p", Vec::new());
        http(&per_client(&rules, &[]), &mut h);
        assert_eq!(
            plain_faults(&h),
            vec![(500, vec![(TAGS_HEADER.to_string(), false)])]
        );
        assert_eq!(h.http_filters.len(), 2, "the fault, then the router");
    }

    #[test]
    fn mesh_and_subset_entries_give_each_client_its_own_rule() {
        // What kuma-policy builds from `from: [Mesh -> 503, web -> 500]`.
        let mesh: kuma_api::policies::TargetRef =
            serde_json::from_value(serde_json::json!({"kind": "Mesh"})).expect("targetRef");
        let web: kuma_api::policies::TargetRef = serde_json::from_value(
            serde_json::json!({"kind": "MeshSubset", "tags": {"kuma.io/service": "web"}}),
        )
        .expect("targetRef");
        let (mesh_conf, web_conf, o) = (abort(503), abort(500), origin("p"));
        let items = [
            kuma_policy::rules::RuleItem {
                target_ref: &mesh,
                conf: &mesh_conf,
                origin: &o,
            },
            kuma_policy::rules::RuleItem {
                target_ref: &web,
                conf: &web_conf,
                origin: &o,
            },
        ];
        let rules = kuma_policy::rules::build(&items, true, kuma_policy::MergeStrategy::default())
            .expect("rules");
        let mut h = hcm("p", Vec::new());
        http(&per_client(&rules, &[]), &mut h);
        // web's own abort for web; the mesh-wide one for everyone else.
        let header = TAGS_HEADER.to_string();
        assert_eq!(
            plain_faults(&h),
            vec![
                (500, vec![(header.clone(), false)]),
                (503, vec![(header, true)])
            ]
        );
    }

    /// The rules kuma-policy builds from `from` entries (target, conf).
    fn from_rules(entries: &[(serde_json::Value, serde_json::Value)]) -> Vec<Rule> {
        let refs: Vec<kuma_api::policies::TargetRef> = entries
            .iter()
            .map(|(t, _)| serde_json::from_value(t.clone()).expect("targetRef"))
            .collect();
        let o = origin("p");
        let items: Vec<kuma_policy::rules::RuleItem<'_>> = refs
            .iter()
            .zip(entries)
            .map(|(target_ref, (_, conf))| kuma_policy::rules::RuleItem {
                target_ref,
                conf,
                origin: &o,
            })
            .collect();
        kuma_policy::rules::build(&items, true, kuma_policy::MergeStrategy::default())
            .expect("rules")
    }

    #[test]
    fn unrelated_subsets_both_hold_a_client_as_in_kuma() {
        let service =
            |s: &str| serde_json::json!({"kind": "MeshSubset", "tags": {"kuma.io/service": s}});
        let rules = from_rules(&[
            (serde_json::json!({"kind": "Mesh"}), abort(503)),
            (service("web"), abort(500)),
            (service("other"), abort(418)),
        ]);
        let mut h = hcm("p", Vec::new());
        http(&per_client(&rules, &[]), &mut h);
        let got: Vec<(u32, Vec<bool>)> = plain_faults(&h)
            .into_iter()
            .map(|(status, headers)| (status, headers.iter().map(|(_, not)| *not).collect()))
            .collect();
        // web: 500 (web) and 503 (not other); other: 418 and 503 (not web).
        // Groups of tags come in Kuma's order (the later entry's first).
        assert_eq!(
            got,
            vec![
                (418, vec![false]),
                (500, vec![false]),
                (503, vec![true]),
                (503, vec![true]),
            ]
        );
    }

    #[test]
    fn rules_entries_match_identities_and_set_from_aside() {
        let from = vec![Rule {
            subset: Subset::mesh(),
            conf: abort(418),
            origins: vec![origin("old")],
        }];
        let exact = Match {
            spiffe_id: Some(kuma_api::policies::values::TypedValue {
                kind: "Exact".into(),
                value: "spiffe://default/web".into(),
            }),
            sni: None,
        };
        let rules = vec![
            InboundRule {
                matches: Some(exact),
                conf: abort(403),
                origin: origin("by-identity"),
                rule_index: 0,
            },
            InboundRule {
                matches: None,
                conf: abort(503),
                origin: origin("by-identity"),
                rule_index: 1,
            },
        ];
        let mut h = hcm("p", Vec::new());
        http(&per_client(&from, &rules), &mut h);
        let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "kri_mfi_default___by-identity_",
                FAULT_FILTER,
                "envoy.filters.http.router"
            ]
        );
        let Some(http_filter::ConfigType::TypedConfig(any)) = &h.http_filters[0].config_type else {
            panic!("typed config");
        };
        let wrapped = ExtensionWithMatcher::decode(any.value.as_slice()).expect("decodes");
        assert!(wrapped.xds_matcher.is_some(), "skipped unless it matches");
        let inner = wrapped
            .extension_config
            .and_then(|c| c.typed_config)
            .expect("the fault");
        let fault = HttpFault::decode(inner.value.as_slice()).expect("fault");
        assert_eq!(
            fault.abort.and_then(|a| a.error_type),
            Some(fault_abort::ErrorType::HttpStatus(403))
        );
        // The match-less rule is for everyone, and `from` gives nothing.
        assert_eq!(plain_faults(&h), vec![(503, vec![])]);
    }

    #[test]
    fn per_client_faults_are_part_of_the_inbound_cache_key() {
        let for_service = |service: &str| {
            let rules = vec![Rule {
                subset: Subset(vec![kuma_policy::Tag::new("kuma.io/service", service)]),
                conf: abort(500),
                origins: vec![origin("p")],
            }];
            super::super::InboundPolicies {
                faults: per_client(&rules, &[]),
                drop_tags_header: true,
                ..super::super::InboundPolicies::default()
            }
        };
        let (web, other) = (for_service("web"), for_service("other"));
        // The same confs for every client (none) ...
        assert_eq!(web.every, other.every);
        // ... yet different listeners: different keys.
        assert_ne!(web.key(), other.key());
        assert_eq!(web.key(), for_service("web").key());
        assert_ne!(
            super::super::InboundPolicies::default().key(),
            super::super::InboundPolicies {
                drop_tags_header: true,
                ..super::super::InboundPolicies::default()
            }
            .key()
        );
    }
}
