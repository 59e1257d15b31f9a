//! MeshHTTPRoute: the route table of an HTTP outbound.
//!
//! The folded `rules` of the destination become Envoy routes the way Kuma
//! builds them: one route per match (two for a path prefix, see
//! [`write::RoutePath`]), ordered by Gateway API precedence ([`read::MatchOrder`]),
//! filters turned into header changes, redirects, rewrites and mirrors,
//! backendRefs into a cluster or weighted clusters, and a catch-all route
//! to the destination itself last unless a rule already catches all.
//!
//! Which cluster a backendRef leads to is the outbound's business (it may
//! have to create the cluster): [`route_table`] asks a resolver.

mod filters;
mod read;
mod write;

pub(crate) use read::{ReadRule, SharedBackends};
pub(crate) use write::{LastAction, write_envoy_routes};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch, header_matcher, query_parameter_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use kuma_api::Kind;
use kuma_api::policies::mesh_http_route::{Conf, Filter, Match};
use kuma_api::policies::values::BackendRef;
use kuma_policy::ResourceId;
use kuma_policy::engine::ToRules;
use serde_json::Value;

use super::{Confs, DestinationPolicies, DestinationRef, ProxyPolicies, SharedConf, read_conf};
use crate::generate::snapshot::route_confs::RouteConfs;

const EXACT: &str = "Exact";
const PATH_PREFIX: &str = "PathPrefix";
const REGULAR_EXPRESSION: &str = "RegularExpression";

/// How `to` entries of other policies name a MeshHTTPRoute.
const ROUTE_KIND: &str = "MeshHTTPRoute";

impl ProxyPolicies<'_> {
    /// The confs of `to` entries aimed at the MeshHTTPRoute `name`, for the
    /// routes of one of its rules towards `destination`.
    pub(crate) fn route(
        &self,
        name: &str,
        destination: &DestinationPolicies,
    ) -> DestinationPolicies {
        let id = ResourceId::new(ROUTE_KIND, name, None);
        let confs = self
            .rules()
            .iter()
            .filter(|(kind, _)| *kind != Kind::MeshHTTPRoute)
            .filter_map(|(kind, rules)| {
                let conf = rules.to_resources.0.get(&id)?.conf.clone();
                Some((*kind, SharedConf::Own(conf)))
            })
            .collect();
        // Built anew, not copied from `destination`: the cache key is
        // written from these confs.
        DestinationPolicies::new(Confs::new(confs), destination.protocol)
    }

    /// Whether any `to` entry of the proxy's rules is aimed at a resource
    /// (a MeshHTTPRoute among them): most proxies have none, and then no
    /// route has confs of its own.
    pub(crate) fn aims_at_resources(&self) -> bool {
        self.rules()
            .iter()
            .any(|(_, r)| !r.to_resources.0.is_empty())
    }

    /// The MeshHTTPRoutes whose `to` entries shaped the route table of
    /// `destination`, in fold order (the last one wins); none when its
    /// confs (`policies`) have no route table, or when it is not an HTTP
    /// destination (routes apply to HTTP destinations only).
    pub(crate) fn http_route_origins(
        &self,
        destination: &DestinationRef<'_>,
        policies: &DestinationPolicies,
    ) -> Vec<String> {
        if !policies.protocol.is_http() || !policies.has_http_route() {
            return Vec::new();
        }
        let Some(rules) = self.rules_of(Kind::MeshHTTPRoute) else {
            return Vec::new();
        };
        let origins = match destination {
            DestinationRef::Service(service) => rules.to.origins_for_service(service),
            DestinationRef::MeshService { name, section } => {
                let id = ResourceId::new("MeshService", name, Some(section));
                rules
                    .to_resources
                    .compute(&id, &self.mesh)
                    .map(|r| r.origins.clone())
                    .unwrap_or_default()
            }
        };
        origins.into_iter().map(|o| o.name.to_string()).collect()
    }
}

impl DestinationPolicies {
    /// Whether MeshHTTPRoutes aim at the destination.
    pub(crate) fn has_http_route(&self) -> bool {
        self.confs.has(Kind::MeshHTTPRoute)
    }

    /// The proxy's `to` rules of MeshHTTPRoutes and the position of the
    /// destination's conf in them, when its conf comes from such rules
    /// (a `kuma.io/service` destination): proxies with the same rules share
    /// the conf there.
    pub(crate) fn http_route_rule(&self) -> Option<(Arc<ToRules>, usize)> {
        match self.confs.conf(Kind::MeshHTTPRoute)? {
            SharedConf::ToRule(rules, at) => Some((rules.clone(), *at)),
            SharedConf::Own(_) => None,
        }
    }

    /// The destination's folded MeshHTTPRoute rules, if any route aims at
    /// it. A conf of a MeshHTTPRoute itself (one route, or each part of a
    /// fold that only joins the routes' rules) is taken as `read` has it,
    /// rules read and named; a fold made for the proxy is read here.
    pub(crate) fn http_route<'a>(&'a self, read: &'a RouteConfs) -> Option<Vec<FoldedRule<'a>>> {
        let parts: Vec<&Value> = match self.confs.joined(Kind::MeshHTTPRoute) {
            Some(parts) => parts.iter().map(|part| &**part).collect(),
            None => vec![self.confs.conf(Kind::MeshHTTPRoute)?.value()],
        };
        let mut rules = Vec::new();
        for part in parts {
            match read.get(part) {
                Some(conf) => {
                    // In a join every rule comes from one route's conf; a
                    // conf alone is the one route's that shaped the table.
                    let origin = read.route_of(part);
                    rules.extend(conf.rules()?.iter().map(|rule| FoldedRule {
                        rule: Cow::Borrowed(rule),
                        origin,
                    }));
                }
                None => {
                    // Read here, its equal backendRefs made one as the
                    // snapshot makes those of the confs it reads.
                    let conf: Conf = read_conf(Kind::MeshHTTPRoute, part)?;
                    let mut shared = SharedBackends::default();
                    rules.extend(conf.rules.into_iter().map(|rule| FoldedRule {
                        rule: Cow::Owned(Arc::new(ReadRule::read(rule, &mut shared))),
                        origin: None,
                    }));
                }
            }
        }
        Some(rules)
    }
}

/// A rule of a destination's folded MeshHTTPRoute conf, with the
/// MeshHTTPRoute it came from when that was known with the conf (otherwise
/// [`Backends::origin`] finds the route).
#[derive(Debug, Clone)]
pub(crate) struct FoldedRule<'a> {
    pub rule: Cow<'a, Arc<ReadRule>>,
    pub origin: Option<&'a Arc<str>>,
}

/// A MeshHTTPRoute's name and the `matches` of each of its rules.
pub(crate) type RouteCandidate<'p> = (&'p str, Vec<&'p [Match]>);

/// The MeshHTTPRoutes named in `names` (in fold order) that exist, each
/// with the `matches` of its rules: what [`origin_of`] searches.
pub(crate) fn route_candidates<'p>(
    names: &[String],
    read: &'p RouteConfs,
) -> Vec<RouteCandidate<'p>> {
    names
        .iter()
        .filter_map(|name| {
            let (name, confs) = read.of_route(name)?;
            let matches = confs
                .iter()
                .flat_map(|conf| conf.rules().into_iter().flatten())
                .map(|rule| rule.all_matches())
                .collect();
            Some((name, matches))
        })
        .collect()
}

/// The MeshHTTPRoute (of `candidates`, in fold order) whose rule with
/// `matches` won the fold: the last one that has such a rule.
pub(crate) fn origin_of<'p>(
    matches: &[Match],
    candidates: &[RouteCandidate<'p>],
) -> Option<&'p str> {
    candidates
        .iter()
        .rev()
        .find(|(_, rules)| rules.contains(&matches))
        .map(|(name, _)| *name)
}

/// A cluster traffic is split to, with its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub cluster: String,
    pub weight: u32,
}

/// One match of one rule, ready to become Envoy routes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteEntry {
    /// Envoy route name as Kuma gives it: the hash of the rule's matches, or
    /// on outbounds to a MeshService the MeshHTTPRoute's identifier.
    pub name: Arc<str>,
    /// The MeshHTTPRoute the rule came from (none for the catch-all):
    /// per-route policies are looked up by it.
    pub origin: Option<Arc<str>>,
    /// The rule, shared by its entries, and which of its matches this is
    /// (with its precedence at hand: sorting reads no rule).
    rule: Arc<ReadRule>,
    at: usize,
    read: read::ReadMatch,
    /// Empty with `unresolved`: every backendRef named nothing routable.
    pub split: Vec<Split>,
    /// The summed weight of backendRefs that named nothing routable: that
    /// share of requests is answered with 500, as Kuma does.
    pub unresolved_weight: u32,
    /// Clusters of RequestMirror filters, by filter index.
    pub mirrors: BTreeMap<usize, String>,
    pub unresolved: bool,
}

impl RouteEntry {
    pub(crate) fn matched(&self) -> &Match {
        self.rule.matched(self.at)
    }

    pub(crate) fn filters(&self) -> &[Filter] {
        self.rule.filters()
    }

    /// The heads of the entry's Envoy routes as its rule wrote them, when
    /// the entry has the rule's name (not one after its MeshHTTPRoute).
    fn heads(&self) -> Option<[&[u8]; 2]> {
        Arc::ptr_eq(&self.name, &self.rule.name)
            .then(|| self.rule.heads(self.at))
            .flatten()
    }
}

/// What the route table needs from the outbound it belongs to.
pub(crate) trait Backends {
    /// The cluster a backendRef leads to (creating it if needed); `None`
    /// when it names nothing this proxy can route HTTP to.
    fn cluster(&mut self, backend: &Arc<BackendRef>) -> Option<String>;
    /// The MeshHTTPRoute whose rule with these `matches` won the fold.
    fn origin(&self, matches: &[Match]) -> Option<String>;
    /// The mesh, when routes are named after their MeshHTTPRoute (outbounds
    /// to a MeshService) rather than by the hash of their matches.
    fn named_by_origin(&self) -> Option<&str> {
        None
    }
}

/// The routes of an outbound whose own cluster is `default_cluster`, from
/// the destination's folded `rules`.
pub(crate) fn route_table(
    rules: &[FoldedRule<'_>],
    default_cluster: &str,
    backends: &mut dyn Backends,
) -> Vec<RouteEntry> {
    // Most rules have one match; one more for the catch-all.
    let mut entries = Vec::with_capacity(rules.len() + 1);
    for FoldedRule { rule, origin } in rules {
        let origin: Option<Arc<str>> = match origin {
            Some(route) => Some(Arc::clone(route)),
            None => backends.origin(rule.all_matches()).map(Arc::from),
        };
        let name = match (backends.named_by_origin(), &origin) {
            // Kuma's resource identifier of the route, without a section.
            (Some(mesh), Some(route)) => format!("kri_mhttpr_{mesh}___{route}_").into(),
            _ => rule.name.clone(),
        };
        let mut split = Vec::with_capacity(rule.backends.len());
        let mut unresolved_weight = 0u32;
        for b in &rule.backends {
            // A weight of 0 takes no traffic; Kuma leaves it out.
            let weight = b.weight.unwrap_or(1);
            if weight == 0 {
                continue;
            }
            match backends.cluster(b) {
                Some(cluster) => split.push(Split { cluster, weight }),
                None => unresolved_weight = unresolved_weight.saturating_add(weight),
            }
        }
        // A redirect answers without any backend.
        let redirect = rule.redirect;
        let unresolved = !redirect && !rule.backends.is_empty() && split.is_empty();
        if redirect {
            unresolved_weight = 0;
        }
        if rule.backends.is_empty() || (redirect && split.is_empty()) {
            split = vec![Split {
                cluster: default_cluster.to_string(),
                weight: 1,
            }];
        }
        let mirrors = rule
            .mirrors
            .iter()
            .filter_map(|(i, backend)| Some((*i, backends.cluster(backend)?)))
            .collect();
        // One entry per match; most rules have one, which takes the parts
        // rather than a copy.
        let Some(&first) = rule.matches.first() else {
            continue;
        };
        let entry = RouteEntry {
            name,
            origin,
            rule: Arc::clone(rule),
            at: 0,
            read: first,
            split,
            mirrors,
            unresolved_weight,
            unresolved,
        };
        if rule.matches.len() == 1 {
            entries.push(entry);
        } else {
            let each = rule.matches.iter().enumerate();
            entries.extend(each.map(|(at, &read)| RouteEntry {
                at,
                read,
                ..entry.clone()
            }));
        }
    }
    // Stable: equally specific matches keep the fold's order.
    entries.sort_by_key(|e| e.read.order);
    if !entries.iter().any(|e| e.read.catch_all) {
        let rule = ReadRule::catch_all();
        entries.push(RouteEntry {
            name: rule.name.clone(),
            origin: None,
            read: rule.matches[0],
            rule,
            at: 0,
            split: vec![Split {
                cluster: default_cluster.to_string(),
                weight: 1,
            }],
            mirrors: BTreeMap::new(),
            unresolved_weight: 0,
            unresolved: false,
        });
    }
    entries
}

pub(super) fn regex(value: &str) -> RegexMatcher {
    RegexMatcher {
        regex: value.to_string(),
        ..RegexMatcher::default()
    }
}

fn exact(value: &str) -> string_matcher::MatchPattern {
    string_matcher::MatchPattern::Exact(value.to_string())
}

fn string_header(name: &str, pattern: string_matcher::MatchPattern) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(pattern),
                ..StringMatcher::default()
            },
        )),
        ..HeaderMatcher::default()
    }
}

fn present_header(name: &str, present: bool) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PresentMatch(present)),
        ..HeaderMatcher::default()
    }
}

/// Query matches, the first per name only (validation refuses repeats).
fn add_query_matches(m: &mut RouteMatch, matched: &Match) {
    let mut seen = std::collections::HashSet::new();
    for q in matched.query_params.iter().flatten() {
        if !seen.insert(q.name.as_str()) {
            continue;
        }
        let pattern = if q.kind == REGULAR_EXPRESSION {
            string_matcher::MatchPattern::SafeRegex(regex(&q.value))
        } else {
            exact(&q.value)
        };
        m.query_parameters.push(QueryParameterMatcher {
            name: q.name.clone(),
            query_parameter_match_specifier: Some(
                query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(StringMatcher {
                    match_pattern: Some(pattern),
                    ..StringMatcher::default()
                }),
            ),
        });
    }
}

/// Header matches, the first per name only.
fn add_header_matches(m: &mut RouteMatch, matched: &Match) {
    let mut seen = std::collections::HashSet::new();
    for h in matched.headers.iter().flatten() {
        if !seen.insert(h.name.as_str()) {
            continue;
        }
        let matcher = match h.kind.as_deref().unwrap_or(EXACT) {
            "Present" => present_header(&h.name, true),
            "Absent" => present_header(&h.name, false),
            REGULAR_EXPRESSION => string_header(
                &h.name,
                string_matcher::MatchPattern::SafeRegex(regex(&h.value)),
            ),
            // Envoy refuses an empty prefix; any value has one.
            "Prefix" if h.value.is_empty() => present_header(&h.name, true),
            "Prefix" => string_header(
                &h.name,
                string_matcher::MatchPattern::Prefix(h.value.clone()),
            ),
            _ => string_header(&h.name, exact(&h.value)),
        };
        m.headers.push(matcher);
    }
}

/// A percentage as Envoy's fraction, in the coarsest denominator that holds
/// it exactly (Kuma's conversion).
pub(super) fn fraction(percent: f64) -> RuntimeFractionalPercent {
    use fractional_percent::DenominatorType as D;
    let (numerator, denominator) = if percent.fract() == 0.0 {
        (percent, D::Hundred)
    } else if (percent * 100.0).fract() == 0.0 {
        (percent * 100.0, D::TenThousand)
    } else {
        ((percent * 10_000.0).round(), D::Million)
    };
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: numerator as u32,
            denominator: denominator as i32,
        }),
        ..RuntimeFractionalPercent::default()
    }
}

#[cfg(test)]
mod tests;
