//! Subset rules: Kuma's "Rules" — an ordered list of (subset of tags ->
//! folded conf) such that the first rule containing a client (or
//! destination) gives the conf of every policy entry aimed at it.

mod cliques;

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::{TargetRef, TargetRefKind};

use crate::PolicyError;
use crate::merge::MergeStrategy;
use crate::subset::{Element, Subset, Tag, combinations, deduplicate};

/// A policy that contributed to a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyOrigin {
    pub kind: String,
    pub mesh: String,
    pub name: String,
}

/// One rule: who it applies to, what they get, and from which policies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub subset: Subset,
    pub conf: Value,
    pub origins: Vec<PolicyOrigin>,
}

impl Rule {
    /// The conf as the policy's typed conf.
    pub fn conf_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.conf)
    }
}

/// The first rule whose subset holds `element`.
pub fn compute<'a>(rules: &'a [Rule], element: &Element) -> Option<&'a Rule> {
    rules.iter().find(|r| r.subset.contains_element(element))
}

/// A `to`/`from` entry (or a single-item policy's `default`) in fold order.
#[derive(Debug, Clone, Copy)]
pub struct RuleItem<'a> {
    pub target_ref: &'a TargetRef,
    pub conf: &'a Value,
    pub origin: &'a PolicyOrigin,
}

/// The subset of clients/destinations a section targetRef names. Only the
/// tag-based kinds have one.
pub fn as_subset(target_ref: &TargetRef) -> Result<Subset, PolicyError> {
    let tags = target_ref.tags.iter().flatten();
    let service = || Tag::new(SERVICE_TAG, target_ref.name.as_deref().unwrap_or_default());
    match target_ref.kind {
        TargetRefKind::Mesh => Ok(Subset::mesh()),
        TargetRefKind::MeshSubset => Ok(Subset::from_tags(tags)),
        TargetRefKind::MeshService => Ok(Subset(vec![service()])),
        TargetRefKind::MeshServiceSubset => {
            let mut ss = vec![service()];
            ss.extend(Subset::from_tags(tags).0);
            Ok(Subset(ss))
        }
        _ => Err(PolicyError::NotTagBased(target_ref.kind.to_string())),
    }
}

/// Whether Kuma builds tag rules from entries aimed at this kind (the kinds
/// that predate real resources); the others only feed resource rules.
pub fn is_tag_era_kind(kind: &TargetRefKind) -> bool {
    matches!(
        kind,
        TargetRefKind::Mesh
            | TargetRefKind::MeshSubset
            | TargetRefKind::MeshServiceSubset
            | TargetRefKind::MeshService
            | TargetRefKind::MeshGateway
            | TargetRefKind::MeshHTTPRoute
    )
}

/// Builds rules from entries in fold order (least important first).
///
/// With `negations` (inbound `from`), overlapping subsets are grouped into
/// maximal cliques of mutually intersecting subsets, and every combination
/// of their tags, positive or negated, becomes a candidate rule whose conf
/// folds each entry whose subset contains it. Rules with more positive tags
/// come first, so the most specific answer is found first.
pub fn build(
    items: &[RuleItem<'_>],
    negations: bool,
    strategy: MergeStrategy,
) -> Result<Vec<Rule>, PolicyError> {
    let items: Vec<(Subset, &RuleItem<'_>)> = items
        .iter()
        .filter(|i| is_tag_era_kind(&i.target_ref.kind))
        .map(|i| as_subset(i.target_ref).map(|s| (s, i)))
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let subsets = deduplicate(items.iter().map(|(s, _)| s.clone()).collect());
    let keys: BTreeSet<&str> = subsets
        .iter()
        .flat_map(|s| s.tags().iter().map(|t| t.key.as_str()))
        .collect();

    let mut rules = Vec::new();
    if !negations && keys.len() <= 1 {
        for ss in subsets {
            rules.extend(rule_for(ss, &items, strategy));
        }
        rules.sort_by_key(|r: &Rule| std::cmp::Reverse(r.subset.tags().len()));
        return Ok(rules);
    }

    for group in cliques::maximal_cliques(&subsets) {
        let mut tags: Vec<Tag> = group
            .iter()
            .flat_map(|&node| subsets[node].tags().iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tags.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.value.cmp(&b.value)));
        for ss in combinations(&tags) {
            rules.extend(rule_for(ss, &items, strategy));
        }
    }
    rules.sort_by_key(|r| std::cmp::Reverse(r.subset.num_positive()));
    Ok(rules)
}

/// The rule for one candidate subset: the fold of every entry whose subset
/// holds it, or nothing when no entry does.
fn rule_for(
    ss: Subset,
    items: &[(Subset, &RuleItem<'_>)],
    strategy: MergeStrategy,
) -> Option<Rule> {
    let relevant: Vec<&RuleItem<'_>> = items
        .iter()
        .filter(|(item_subset, _)| item_subset.is_subset(&ss))
        .map(|(_, item)| *item)
        .collect();
    if relevant.is_empty() {
        return None;
    }
    let conf = strategy.fold(relevant.iter().map(|i| i.conf));
    Some(Rule {
        subset: ss,
        conf,
        origins: origins(relevant.iter().map(|i| i.origin)),
    })
}

/// Distinct policies in order of first contribution.
pub fn origins<'a>(all: impl Iterator<Item = &'a PolicyOrigin>) -> Vec<PolicyOrigin> {
    let mut out: Vec<PolicyOrigin> = Vec::new();
    for o in all {
        if !out.contains(o) {
            out.push(o.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
