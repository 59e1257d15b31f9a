use super::*;
use crate::generate::snapshot::route_confs::route;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, route, route_action, route_match,
};
use kuma_api::policies::mesh_http_route::{PathMatch, PathRewrite, Rule, RuleConf, UrlRewrite};
use kuma_api::policies::target_ref::TargetRef;
use kuma_api::policies::values::HeaderMatch;
use kuma_policy::inspect::hash_matches;

/// Resolves `MeshService <name>` to the cluster `<name>` when it is in the
/// list; every rule comes from `route-1`.
struct Known(Vec<&'static str>);

impl Backends for Known {
    fn cluster(&mut self, backend: &Arc<BackendRef>) -> Option<String> {
        let name = backend.target_ref.name.clone()?;
        self.0.contains(&name.as_str()).then_some(name)
    }
    fn origin(&self, _: &[Match]) -> Option<String> {
        Some("route-1".to_string())
    }
}

pub(super) fn path(kind: &str, value: &str) -> Match {
    Match {
        path: Some(PathMatch {
            value: value.into(),
            kind: kind.into(),
        }),
        ..Match::default()
    }
}

/// A match of requests with header `name` exactly `value`, whatever the path.
fn header_only(name: &str, value: &str) -> Match {
    Match {
        headers: Some(vec![HeaderMatch {
            kind: None,
            name: name.into(),
            value: value.into(),
        }]),
        ..Match::default()
    }
}

fn to(name: &str, weight: Option<u32>) -> BackendRef {
    BackendRef {
        target_ref: TargetRef {
            name: Some(name.into()),
            ..TargetRef::of_kind(kuma_api::policies::TargetRefKind::MeshService)
        },
        weight,
        port: None,
    }
}

fn rule(matches: Vec<Match>, backends: Vec<BackendRef>, filters: Vec<Filter>) -> Rule {
    Rule {
        matches,
        default: RuleConf {
            filters: Some(filters),
            backend_refs: Some(backends),
        },
    }
}

/// The rules of `conf`, read as a proxy's fold reads them: their routes
/// left to the route table to find.
fn rules_of(conf: &Conf) -> Vec<FoldedRule<'_>> {
    conf.rules
        .iter()
        .map(|rule| FoldedRule {
            rule: Cow::Owned(Arc::new(ReadRule::alone(rule.clone()))),
            origin: None,
        })
        .collect()
}

/// The Envoy routes of `entry` as its virtual host has them, read back.
fn envoy_routes(entry: &RouteEntry) -> Vec<Route> {
    envoy_routes_with(entry, &[])
}

/// The same, route actions given `fields`.
fn envoy_routes_with(entry: &RouteEntry, fields: &[u8]) -> Vec<Route> {
    let mut host = Vec::new();
    write_envoy_routes(entry, fields, &mut LastAction::default(), &mut host);
    decode_routes(&host)
}

/// The routes of an encoded virtual host.
fn decode_routes(host: &[u8]) -> Vec<Route> {
    use prost::Message;
    envoy_types::pb::envoy::config::route::v3::VirtualHost::decode(host)
        .expect("decodes")
        .routes
}

/// The actions of the routes that forward.
fn route_actions_of(routes: &[Route]) -> Vec<&RouteAction> {
    routes
        .iter()
        .filter_map(|r| match &r.action {
            Some(route::Action::Route(a)) => Some(a),
            _ => None,
        })
        .collect()
}

/// The clusters and weights of a route action with weighted clusters.
fn weighted(action: &RouteAction) -> Vec<(&str, u32)> {
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) = &action.cluster_specifier
    else {
        panic!("weighted clusters expected");
    };
    w.clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.as_ref().map_or(0, |w| w.value)))
        .collect()
}

fn paths(entries: &[RouteEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let p = e.matched().path.as_ref().expect("path");
            format!("{} {}", p.kind, p.value)
        })
        .collect()
}

#[test]
fn route_names_are_kumas_hashes() {
    let conf = Conf::default();
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec![]));
    assert_eq!(entries.len(), 1, "only the catch-all");
    // As in Kuma's own golden files.
    assert_eq!(
        &*entries[0].name,
        "9Zuf5Tg79OuZcQITwBbQykxAk2u4fRKrwYn3//AL4Yo="
    );
    assert_eq!(
        hash_matches(&[path(PATH_PREFIX, "/v1")]),
        "bzv64o+joRk33jfDADgGv5ar4QyONO0NEVKnoBfJW/E="
    );
}

#[test]
fn each_match_of_a_rule_takes_its_own_place_in_the_order() {
    let only = |header: Option<&str>, query: Option<&str>| Match {
        headers: header.map(|name| {
            vec![HeaderMatch {
                kind: None,
                name: name.into(),
                value: "1".into(),
            }]
        }),
        query_params: query.map(|name| {
            vec![kuma_api::policies::mesh_http_route::QueryParamsMatch {
                kind: EXACT.into(),
                name: name.into(),
                value: "1".into(),
            }]
        }),
        ..Match::default()
    };
    let conf = Conf {
        rules: vec![
            rule(
                vec![path(REGULAR_EXPRESSION, "^/a$"), only(None, Some("q"))],
                vec![],
                vec![],
            ),
            rule(vec![only(Some("x"), None)], vec![], vec![]),
        ],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec![]));
    let described: Vec<String> = entries
        .iter()
        .map(|e| {
            let m = e.matched();
            match (&m.path, &m.headers, &m.query_params) {
                (Some(p), _, _) => format!("{} {}", p.kind, p.value),
                (None, Some(_), _) => "header".to_string(),
                (None, None, Some(_)) => "query".to_string(),
                _ => "other".to_string(),
            }
        })
        .collect();
    // The query match is the regex rule's second: it sorts on its own.
    assert_eq!(
        described,
        ["RegularExpression ^/a$", "header", "query", "PathPrefix /"]
    );
}

#[test]
fn rules_are_ordered_by_precedence_and_the_catch_all_stays_last() {
    let with_header = header_only("x-version", "v2");
    let conf = Conf {
        rules: vec![
            rule(vec![path(REGULAR_EXPRESSION, "^/a.*$")], vec![], vec![]),
            rule(vec![with_header], vec![], vec![]),
            rule(vec![path(PATH_PREFIX, "/a")], vec![], vec![]),
            rule(vec![path(PATH_PREFIX, "/abc")], vec![], vec![]),
            rule(vec![path(EXACT, "/z")], vec![], vec![]),
        ],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec![]));
    assert_eq!(
        paths(&entries[..4]),
        [
            "Exact /z",
            "PathPrefix /abc",
            "PathPrefix /a",
            "RegularExpression ^/a.*$"
        ]
    );
    assert!(
        entries[4].matched().path.is_none(),
        "no path after any path"
    );
    assert_eq!(paths(&entries[5..]), ["PathPrefix /"]);
    assert_eq!(entries[5].origin, None);
    assert!(
        entries[..5]
            .iter()
            .all(|e| e.origin.as_deref() == Some("route-1"))
    );
}

#[test]
fn a_rule_catching_all_replaces_the_default_catch_all() {
    let conf = Conf {
        rules: vec![rule(
            vec![path(PATH_PREFIX, "/")],
            vec![to("v2", Some(1))],
            vec![],
        )],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec!["v2"]));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].split[0].cluster, "v2");
}

#[test]
fn weights_split_unknown_backends_get_500_for_their_share_and_all_unknown_answers_500() {
    let conf = Conf {
        rules: vec![
            rule(
                vec![path(EXACT, "/split")],
                vec![
                    to("v1", Some(90)),
                    to("v2", Some(10)),
                    to("gone", Some(5)),
                    to("v1", Some(0)),
                ],
                vec![],
            ),
            rule(vec![path(EXACT, "/broken")], vec![to("gone", None)], vec![]),
        ],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec!["v1", "v2"]));
    let split = entries
        .iter()
        .find(|e| *e.matched() == path(EXACT, "/split"));
    let routes = envoy_routes(split.expect("split rule"));
    assert_eq!(routes.len(), 2);
    // The missing backend's share (5 of 105) is answered with 500 first.
    let Some(route::Action::DirectResponse(d)) = &routes[0].action else {
        panic!("direct response expected");
    };
    assert_eq!(d.status, 500);
    let share = routes[0]
        .r#match
        .as_ref()
        .and_then(|m| m.runtime_fraction.as_ref())
        .and_then(|f| f.default_value);
    assert_eq!(
        share.map(|f| (f.numerator, f.denominator)),
        Some((47619, fractional_percent::DenominatorType::Million as i32))
    );
    let Some(route::Action::Route(action)) = &routes[1].action else {
        panic!("route action expected");
    };
    assert_eq!(weighted(action), [("v1", 90), ("v2", 10)]);

    let broken = entries
        .iter()
        .find(|e| *e.matched() == path(EXACT, "/broken"));
    let routes = envoy_routes(broken.expect("broken rule"));
    let Some(route::Action::DirectResponse(d)) = &routes[0].action else {
        panic!("direct response expected");
    };
    assert_eq!(d.status, 500);
}

#[test]
fn a_prefix_is_two_matches_and_its_rewrite_keeps_the_separator() {
    let rewrite = Filter {
        kind: "URLRewrite".into(),
        url_rewrite: Some(UrlRewrite {
            path: Some(PathRewrite {
                kind: "ReplacePrefixMatch".into(),
                replace_prefix_match: Some("/v2".into()),
                ..PathRewrite::default()
            }),
            ..UrlRewrite::default()
        }),
        ..Filter::default()
    };
    let conf = Conf {
        rules: vec![rule(
            vec![path(PATH_PREFIX, "/api/")],
            vec![],
            vec![rewrite],
        )],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec![]));
    let routes = envoy_routes(&entries[0]);
    let specs: Vec<_> = routes
        .iter()
        .map(|r| r.r#match.as_ref().and_then(|m| m.path_specifier.clone()))
        .collect();
    assert_eq!(
        specs,
        [
            Some(route_match::PathSpecifier::Path("/api".into())),
            Some(route_match::PathSpecifier::Prefix("/api/".into())),
        ]
    );
    let actions = route_actions_of(&routes);
    // `/api` becomes `/v2`; `/api/x` becomes `/v2/x`.
    assert_eq!(
        actions[0]
            .regex_rewrite
            .as_ref()
            .map(|r| r.substitution.as_str()),
        Some("/v2")
    );
    assert_eq!(actions[1].prefix_rewrite, "/v2/");
    assert_eq!(
        actions[0].cluster_specifier,
        Some(route_action::ClusterSpecifier::Cluster("backend".into())),
        "no backendRefs: the destination itself"
    );
}

#[test]
fn percentages_take_the_coarsest_exact_denominator() {
    use fractional_percent::DenominatorType as D;
    let f = |p: f64| {
        let v = fraction(p).default_value.expect("value");
        (
            v.numerator,
            D::try_from(v.denominator).expect("denominator"),
        )
    };
    assert_eq!(f(25.0), (25, D::Hundred));
    assert_eq!(f(0.5), (50, D::TenThousand));
    assert_eq!(f(0.125), (1250, D::Million));
}

#[test]
fn a_redirect_needs_no_backend() {
    let redirect = Filter {
        kind: "RequestRedirect".into(),
        request_redirect: Some(kuma_api::policies::mesh_http_route::RequestRedirect {
            scheme: Some("https".into()),
            status_code: Some(308),
            ..Default::default()
        }),
        ..Filter::default()
    };
    let conf = Conf {
        rules: vec![rule(
            vec![path(EXACT, "/old")],
            vec![to("gone", None)],
            vec![redirect],
        )],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec![]));
    let routes = envoy_routes(&entries[0]);
    assert_eq!(routes.len(), 1);
    let Some(route::Action::Redirect(r)) = &routes[0].action else {
        panic!("redirect expected: {:?}", routes[0].action);
    };
    assert_eq!(
        r.response_code,
        envoy_types::pb::envoy::config::route::v3::redirect_action::RedirectResponseCode::PermanentRedirect
            as i32
    );
}

#[test]
fn the_origin_of_a_rule_is_the_last_candidate_route_holding_its_matches() {
    let routes = vec![
        route("first", &["/a", "/b"]),
        route("second", &["/a"]),
        route("unnamed", &["/c"]),
    ];
    let names: Vec<String> = ["first", "second", "gone"].map(String::from).to_vec();
    let read = RouteConfs::new(&routes, None);
    let candidates = route_candidates(&names, &read);
    let found: Vec<&str> = candidates.iter().map(|(name, _)| *name).collect();
    assert_eq!(found, ["first", "second"]);
    let prefix = |p| [path(PATH_PREFIX, p)];
    assert_eq!(origin_of(&prefix("/a"), &candidates), Some("second"));
    assert_eq!(origin_of(&prefix("/b"), &candidates), Some("first"));
    // A route not among the candidates is never the origin.
    assert_eq!(origin_of(&prefix("/c"), &candidates), None);
    assert_eq!(origin_of(&[path("Exact", "/a")], &candidates), None);
}

#[test]
fn action_fields_policies_give_land_in_every_route_action_and_nowhere_else() {
    use envoy_types::pb::envoy::config::route::v3::{RetryPolicy, RouteConfiguration};
    use envoy_types::pb::google::protobuf::Duration;
    // What policies set on route actions: timeouts, a retry policy, hash
    // policies.
    let give = |config: &mut RouteConfiguration| {
        for action in super::super::route_actions(config) {
            action.timeout = Some(Duration {
                seconds: 5,
                nanos: 0,
            });
            action.retry_policy = Some(RetryPolicy {
                retry_on: "connect-failure".into(),
                ..RetryPolicy::default()
            });
            action.hash_policy = vec![route_action::HashPolicy::default(); 2];
        }
    };
    let header = Filter {
        kind: "RequestHeaderModifier".into(),
        request_header_modifier: Some(kuma_api::policies::values::HeaderModifier {
            remove: Some(vec!["x-drop".into()]),
            ..Default::default()
        }),
        ..Filter::default()
    };
    let redirect = Filter {
        kind: "RequestRedirect".into(),
        request_redirect: Some(kuma_api::policies::mesh_http_route::RequestRedirect {
            scheme: Some("https".into()),
            ..Default::default()
        }),
        ..Filter::default()
    };
    let conf = Conf {
        rules: vec![
            // Weighted, a share to nothing, and a header change.
            rule(
                vec![path(PATH_PREFIX, "/split")],
                vec![to("v1", Some(90)), to("gone", Some(10))],
                vec![header],
            ),
            rule(vec![path(EXACT, "/old")], vec![], vec![redirect]),
            rule(vec![path(EXACT, "/one")], vec![to("v1", None)], vec![]),
        ],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec!["v1"]));
    let mut given = crate::generate::listener::route_to_cluster("", "", "");
    give(&mut given);
    let fields = crate::generate::listener::route_action_fields(&given);
    let written = |fields: &[u8]| {
        use prost::Message;
        let (mut host, mut last) = (Vec::new(), LastAction::default());
        for entry in &entries {
            write_envoy_routes(entry, fields, &mut last, &mut host);
        }
        envoy_types::pb::envoy::config::route::v3::VirtualHost::decode(host.as_slice())
            .expect("decodes")
    };
    let mut want = RouteConfiguration {
        virtual_hosts: vec![written(&[])],
        ..RouteConfiguration::default()
    };
    give(&mut want);
    let got = written(&fields);
    assert_eq!(got, want.virtual_hosts[0]);
    let kinds: Vec<&str> = got
        .routes
        .iter()
        .map(|r| match &r.action {
            Some(route::Action::Route(_)) => "route",
            Some(route::Action::Redirect(_)) => "redirect",
            Some(route::Action::DirectResponse(_)) => "500",
            _ => "none",
        })
        .collect();
    // Exact paths first; the prefix is two routes, each after its 500
    // share; the catch-all last.
    assert_eq!(
        kinds,
        ["redirect", "route", "500", "route", "500", "route", "route"]
    );
    assert_eq!(got.routes[3].request_headers_to_remove, ["x-drop"]);
}

#[test]
fn every_route_matches_all_its_rule_asks_and_the_routes_of_a_prefix_share_one_action() {
    use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
    use kuma_api::policies::mesh_http_route::QueryParamsMatch;
    // Long enough for the routes and their actions to need two bytes of
    // length: the second route's action is copied from the first one's.
    let long = |name: &str| format!("{name}-{}", "x".repeat(120));
    let (v1, v2) = (long("v1"), long("v2"));
    let v1: &'static str = Box::leak(v1.into_boxed_str());
    let v2: &'static str = Box::leak(v2.into_boxed_str());
    let asking = Match {
        method: Some("GET".into()),
        headers: Some(vec![HeaderMatch {
            kind: Some("Present".into()),
            name: "x-debug".into(),
            value: String::new(),
        }]),
        query_params: Some(vec![QueryParamsMatch {
            kind: "Exact".into(),
            name: "v".into(),
            value: "2".into(),
        }]),
        ..path(PATH_PREFIX, "/api/")
    };
    let conf = Conf {
        rules: vec![
            rule(
                vec![asking],
                vec![to(v1, Some(90)), to(v2, Some(5)), to("gone", Some(5))],
                vec![],
            ),
            rule(
                vec![path(REGULAR_EXPRESSION, "^/r[0-9]+$")],
                vec![to(v1, None)],
                vec![],
            ),
            rule(vec![path(EXACT, "/one")], vec![to(v1, None)], vec![]),
        ],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec![v1, v2]));
    let fields = {
        let mut given = crate::generate::listener::route_to_cluster("", "", "");
        for action in super::super::route_actions(&mut given) {
            action.retry_policy = Some(envoy_types::pb::envoy::config::route::v3::RetryPolicy {
                retry_on: "5xx".repeat(60),
                ..Default::default()
            });
        }
        crate::generate::listener::route_action_fields(&given)
    };
    let string_match = |name: &str, pattern| HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(pattern),
                ..StringMatcher::default()
            },
        )),
        ..HeaderMatcher::default()
    };
    let asked = |path| RouteMatch {
        path_specifier: Some(path),
        headers: vec![
            string_match(":method", string_matcher::MatchPattern::Exact("GET".into())),
            HeaderMatcher {
                name: "x-debug".into(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PresentMatch(
                    true,
                )),
                ..HeaderMatcher::default()
            },
        ],
        query_parameters: vec![QueryParameterMatcher {
            name: "v".into(),
            query_parameter_match_specifier: Some(
                query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact("2".into())),
                    ..StringMatcher::default()
                }),
            ),
        }],
        ..RouteMatch::default()
    };
    let prefix = entries.iter().find(|e| e.matched().method.is_some());
    let got = envoy_routes_with(prefix.expect("the prefix rule"), &fields);
    let share = Some(fraction(5.0));
    let want_matches = [
        RouteMatch {
            runtime_fraction: share.clone(),
            ..asked(route_match::PathSpecifier::Path("/api".into()))
        },
        asked(route_match::PathSpecifier::Path("/api".into())),
        RouteMatch {
            runtime_fraction: share.clone(),
            ..asked(route_match::PathSpecifier::Prefix("/api/".into()))
        },
        asked(route_match::PathSpecifier::Prefix("/api/".into())),
    ];
    let got_matches: Vec<RouteMatch> = got.iter().filter_map(|r| r.r#match.clone()).collect();
    assert_eq!(got_matches, want_matches);
    let actions = route_actions_of(&got);
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0], actions[1]);
    assert_eq!(weighted(actions[0]), [(v1, 90), (v2, 5)]);
    assert_eq!(
        actions[0].retry_policy.as_ref().map(|r| r.retry_on.len()),
        Some(180)
    );

    let regex = entries.iter().find(|e| {
        e.matched()
            .path
            .as_ref()
            .is_some_and(|p| p.kind == REGULAR_EXPRESSION)
    });
    let got = envoy_routes_with(regex.expect("the regex rule"), &fields);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].r#match,
        Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::SafeRegex(regex_matcher(
                "^/r[0-9]+$"
            ))),
            ..RouteMatch::default()
        })
    );

    // Routes written one after the other copy the action of the last one
    // when it has the same clusters and fields, and only then.
    let entry = |path: &str| {
        entries
            .iter()
            .find(|e| e.matched().path.as_ref().is_some_and(|p| p.value == path))
            .expect("an entry")
    };
    let (one, regex, all) = (entry("/one"), entry("^/r[0-9]+$"), entry("/"));
    let none: &[u8] = &[];
    let order = [
        (one, &fields[..]),
        (regex, &fields[..]),
        (one, none),
        (all, none),
        (regex, none),
        (one, none),
    ];
    let (mut at_once, mut last) = (Vec::new(), LastAction::default());
    let mut one_by_one = Vec::new();
    for (entry, fields) in order {
        write_envoy_routes(entry, fields, &mut last, &mut at_once);
        let fresh = &mut LastAction::default();
        write_envoy_routes(entry, fields, fresh, &mut one_by_one);
    }
    assert!(at_once.len() > 200);
    assert_eq!(decode_routes(&at_once), decode_routes(&one_by_one));
}

fn regex_matcher(value: &str) -> RegexMatcher {
    RegexMatcher {
        regex: value.into(),
        ..RegexMatcher::default()
    }
}

#[test]
fn routes_written_from_their_rules_heads_are_the_routes_written_in_full() {
    let with_method = Match {
        method: Some("POST".into()),
        headers: Some(vec![HeaderMatch {
            kind: Some("Prefix".into()),
            name: "x-v".into(),
            value: "2".into(),
        }]),
        ..path(PATH_PREFIX, "/a/")
    };
    let no_path = header_only("x-v", "3");
    let conf = Conf {
        rules: vec![
            rule(vec![with_method, no_path], vec![to("web", None)], vec![]),
            rule(
                vec![path(EXACT, "/e"), path(REGULAR_EXPRESSION, "^/r$")],
                vec![to("web", Some(3)), to("api", Some(1))],
                vec![],
            ),
            // Nothing routable: answered with 500.
            rule(
                vec![path(PATH_PREFIX, "/gone")],
                vec![to("gone", None)],
                vec![],
            ),
        ],
        hostnames: None,
    };
    let entries = route_table(&rules_of(&conf), "backend", &mut Known(vec!["web", "api"]));
    assert_eq!(entries.len(), 6, "five matches and the catch-all");
    let (mut from_heads, mut in_full) = (Vec::new(), Vec::new());
    let (mut last_heads, mut last_full) = (LastAction::default(), LastAction::default());
    let renamed: Vec<RouteEntry> = entries
        .iter()
        .map(|e| RouteEntry {
            // An equal name of its own: the entry no longer has its rule's.
            name: Arc::from(&*e.name),
            ..e.clone()
        })
        .collect();
    for (entry, copy) in entries.iter().zip(&renamed) {
        assert!(entry.heads().is_some());
        assert!(copy.heads().is_none());
        write_envoy_routes(entry, b"", &mut last_heads, &mut from_heads);
        write_envoy_routes(copy, b"", &mut last_full, &mut in_full);
    }
    assert_eq!(from_heads, in_full);
    let routes = decode_routes(&from_heads);
    // Two routes per path prefix, one per other match.
    assert_eq!(routes.len(), 2 + 1 + 1 + 1 + 2 + 1);
    let errors = routes
        .iter()
        .filter(|r| matches!(r.action, Some(route::Action::DirectResponse(_))))
        .count();
    assert_eq!(errors, 2, "both routes of the prefix with no backend");
}
