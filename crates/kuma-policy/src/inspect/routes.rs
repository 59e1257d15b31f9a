//! MeshHTTPRoute matches in the inspect answer. Kuma names the `matches` of
//! each MeshHTTPRoute rule by a hash (the Envoy routes made of the rule
//! carry it as their name), lists the matches that reach a proxy in
//! `httpMatches`, and shows a policy whose top-level targetRef is a
//! MeshHTTPRoute as `to` rules on the tag `__rule-matches-hash__`: one
//! subset per rule of the route, so the hash says which routes the conf
//! applies to.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use kuma_api::policies::mesh_http_route::Match;
use kuma_api::policies::{TargetRef, TargetRefKind};

use crate::engine::{PolicyIndex, ProxyRules};
use crate::merge::MergeStrategy;
use crate::policy::Policy;
use crate::rules::{self, PolicyOrigin, Rule, RuleItem};

/// The tag Kuma gives the artificial subsets of route-targeted policies.
pub const RULE_MATCHES_HASH_TAG: &str = "__rule-matches-hash__";

/// One entry of `httpMatches` (`HttpMatch`): a MeshHTTPRoute rule's
/// `matches` and the hash that names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpMatch {
    pub hash: String,
    #[serde(rename = "match")]
    pub matches: Value,
}

/// Kuma's name for a rule's `matches`: base64 of the SHA-256 of their JSON
/// as Go encodes it (fields in declaration order, which the typed `Match`
/// keeps, and `<`, `>`, `&` escaped in strings).
pub fn hash_matches(matches: &[Match]) -> String {
    let json = serde_json::to_string(matches).unwrap_or_default();
    let json = go_html_escape(json);
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(json.as_bytes()))
}

/// Go's JSON encoder escapes these for embedding in HTML; they can only
/// occur inside strings, so replacing them everywhere is exact. Most
/// matches hold none: their text is kept as it is.
fn go_html_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The typed `matches` of every rule of a MeshHTTPRoute `to` conf
/// (`{rules: [{matches, default}]}`); rules whose matches do not read are
/// left out.
pub fn rule_matches(conf: &Value) -> impl Iterator<Item = Vec<Match>> + '_ {
    conf.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|rule| Vec::<Match>::deserialize(rule.get("matches")?).ok())
}

/// Adds the matches of the MeshHTTPRoute rules that reach the proxy (its
/// tag and resource `to` rules) to `into`, by hash.
pub(super) fn collect_http_matches(rules: &ProxyRules, into: &mut BTreeMap<String, HttpMatch>) {
    let confs = rules
        .to
        .iter()
        .map(|r| &r.conf)
        .chain(rules.to_resources.0.values().map(|r| &r.conf));
    for conf in confs {
        for matches in rule_matches(conf) {
            let hash = hash_matches(&matches);
            let value = serde_json::to_value(&matches).unwrap_or(Value::Null);
            into.entry(hash.clone()).or_insert(HttpMatch {
                hash,
                matches: value,
            });
        }
    }
}

/// One `to` entry as the rules builder reads it, with owned parts.
struct OwnedItem {
    target_ref: TargetRef,
    conf: Value,
    origin: PolicyOrigin,
}

/// Kuma's `to` rules of `index`'s kind when a policy aimed at a
/// MeshHTTPRoute selects the proxy: the engine leaves those policies to
/// route generation, while Kuma shows each of their `to` confs per rule of
/// the route, on the subset `__rule-matches-hash__=<hash>` (with the
/// route's destination service unless the route aims at the whole mesh).
/// `None` when no such policy selects the proxy, or the rules do not
/// build (the engine's own rules and warning stand then).
pub(super) fn to_rules_with_routes(
    index: &PolicyIndex,
    rules: &ProxyRules,
    routes: &[Arc<Policy>],
) -> Option<Vec<Rule>> {
    let matched: HashSet<&str> = rules.policies.iter().map(|o| &*o.name).collect();
    let selected: Vec<&Policy> = index
        .policies()
        .iter()
        .filter(|p| matched.contains(p.name.as_str()))
        .map(|p| &**p)
        .collect();
    if !selected
        .iter()
        .any(|p| p.target_ref.kind == TargetRefKind::MeshHTTPRoute)
    {
        return None;
    }
    let mut owned = Vec::new();
    for policy in selected {
        // As in Kuma, a policy with a `to` entry naming a MeshHTTPRoute
        // takes no part in tag rules at all.
        if policy
            .to
            .iter()
            .any(|e| e.target_ref.kind == TargetRefKind::MeshHTTPRoute)
        {
            continue;
        }
        let origin = PolicyOrigin {
            kind: policy.kind.name().into(),
            mesh: policy.mesh.as_str().into(),
            name: policy.name.as_str().into(),
        };
        if policy.target_ref.kind != TargetRefKind::MeshHTTPRoute {
            owned.extend(policy.to.iter().map(|e| OwnedItem {
                target_ref: e.target_ref.clone(),
                conf: (*e.conf).clone(),
                origin: origin.clone(),
            }));
            continue;
        }
        let name = policy.target_ref.name.as_deref().unwrap_or_default();
        // An unresolved route is already among the engine's warnings.
        let Some(route) = routes.iter().find(|r| r.name == name) else {
            continue;
        };
        for route_to in &route.to {
            for matches in rule_matches(&route_to.conf) {
                let target_ref = route_subset(&route_to.target_ref, &hash_matches(&matches));
                owned.extend(policy.to.iter().map(|e| OwnedItem {
                    target_ref: target_ref.clone(),
                    conf: (*e.conf).clone(),
                    origin: origin.clone(),
                }));
            }
        }
    }
    let items: Vec<RuleItem<'_>> = owned
        .iter()
        .map(|i| RuleItem {
            target_ref: &i.target_ref,
            conf: &i.conf,
            origin: &i.origin,
        })
        .collect();
    rules::build(&items, false, MergeStrategy::for_kind(index.kind())).ok()
}

/// The subset a route-targeted policy's entries apply to for one rule of
/// the route: the rule's hash, within the route's destination service.
fn route_subset(route_target: &TargetRef, hash: &str) -> TargetRef {
    let tags = Some(BTreeMap::from([(
        RULE_MATCHES_HASH_TAG.to_string(),
        hash.to_string(),
    )]));
    match route_target.kind {
        TargetRefKind::Mesh | TargetRefKind::MeshSubset => TargetRef {
            kind: TargetRefKind::MeshSubset,
            tags,
            ..TargetRef::default()
        },
        _ => TargetRef {
            kind: TargetRefKind::MeshServiceSubset,
            name: route_target.name.clone(),
            tags,
            ..TargetRef::default()
        },
    }
}
