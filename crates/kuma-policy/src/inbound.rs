//! Inbound rules of the newer `rules` form: per inbound, an ordered list of
//! (caller match -> conf). Unlike `from` rules nothing is folded here: each
//! entry stays a rule, ordered least important policy first and then, by a
//! stable sort, more precise caller matches ahead of looser ones.

use std::cmp::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kuma_api::Kind;
use kuma_api::policies::values::Match;

use crate::merge::MergeStrategy;
use crate::policy::Policy;
use crate::rules::PolicyOrigin;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRule {
    /// `None`: every caller.
    #[serde(rename = "match")]
    pub matches: Option<Match>,
    pub conf: Value,
    pub origin: PolicyOrigin,
    /// Index of the entry inside the policy's `rules` (or `from`).
    pub rule_index: usize,
}

impl InboundRule {
    pub fn conf_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.conf)
    }
}

/// Kinds whose legacy `from` entries Kuma also serves as match-less inbound
/// rules.
pub fn is_from_as_rules(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::MeshAccessLog
            | Kind::MeshCircuitBreaker
            | Kind::MeshRateLimit
            | Kind::MeshTimeout
            | Kind::MeshTLS
    )
}

/// Rules of `policies` (already in fold order) for one inbound.
pub fn build<'a>(
    policies: impl Iterator<Item = (&'a Policy, &'a PolicyOrigin)>,
) -> Vec<InboundRule> {
    let mut rules = Vec::new();
    for (policy, origin) in policies {
        let push = |rules: &mut Vec<InboundRule>, i: usize, matches: &[Match], conf: &Value| {
            if matches.is_empty() {
                rules.push(InboundRule {
                    matches: None,
                    conf: conf.clone(),
                    origin: origin.clone(),
                    rule_index: i,
                });
            }
            for m in matches {
                rules.push(InboundRule {
                    matches: Some(m.clone()),
                    conf: conf.clone(),
                    origin: origin.clone(),
                    rule_index: i,
                });
            }
        };
        if !policy.rules.is_empty() {
            for (i, entry) in policy.rules.iter().enumerate() {
                push(&mut rules, i, &entry.matches, &entry.conf);
            }
        } else if is_from_as_rules(policy.kind) {
            for (i, entry) in policy.from.iter().enumerate() {
                push(&mut rules, i, &[], &entry.conf);
            }
        }
    }
    rules.sort_by(|a, b| compare_match(a.matches.as_ref(), b.matches.as_ref()));
    rules
}

/// Rules with a spiffeID match come first (Exact before Prefix), then rules
/// with an SNI match, then catch-alls.
fn compare_match(a: Option<&Match>, b: Option<&Match>) -> Ordering {
    let spiffe = |m: Option<&Match>| {
        m.and_then(|m| m.spiffe_id.as_ref())
            .map(|s| match s.kind.as_str() {
                "Exact" => 2,
                "Prefix" => 1,
                _ => 0,
            })
    };
    let by_spiffe = match (spiffe(a), spiffe(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let sni = |m: Option<&Match>| m.is_some_and(|m| m.sni.is_some());
    by_spiffe.then_with(|| sni(b).cmp(&sni(a)))
}

/// The fold of the catch-all rules: what a caller matching no condition
/// gets.
pub fn matches_all_incoming(rules: &[InboundRule], strategy: MergeStrategy) -> Option<Value> {
    let catch_all: Vec<&Value> = rules
        .iter()
        .filter(|r| r.matches.is_none())
        .map(|r| &r.conf)
        .collect();
    if catch_all.is_empty() {
        None
    } else {
        Some(strategy.fold(catch_all))
    }
}
