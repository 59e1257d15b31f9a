//! Subset rules: Kuma's "Rules" — an ordered list of (subset of tags ->
//! folded conf) such that the first rule containing a client (or
//! destination) gives the conf of every policy entry aimed at it.

mod cliques;
mod plain;

pub(crate) use plain::{Aim, aim, merge_in_order};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::{TargetRef, TargetRefKind};

use crate::PolicyError;
use crate::merge::MergeStrategy;
use crate::subset::{Element, Subset, Tag, combinations, distinct};

/// A policy that contributed to a rule.
///
/// Shared text: every rule a policy contributes to lists it, so copies
/// only count references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyOrigin {
    pub kind: Arc<str>,
    pub mesh: Arc<str>,
    pub name: Arc<str>,
}

impl Serialize for PolicyOrigin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("PolicyOrigin", 3)?;
        out.serialize_field("kind", &*self.kind)?;
        out.serialize_field("mesh", &*self.mesh)?;
        out.serialize_field("name", &*self.name)?;
        out.end()
    }
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
    // Most `to` entries name one service or the mesh: their rules are per
    // service, found without subset algebra over every entry.
    if !negations && let Some(rules) = plain::build(items, strategy) {
        return Ok(rules);
    }
    build_by_subsets(items, negations, strategy)
}

/// [`build`] through candidate subsets, whatever the entries.
pub(crate) fn build_by_subsets(
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
    // Equal subsets (thousands of entries aim at a few hundred services)
    // make one rule: only the distinct ones are copied.
    let subsets: Vec<Subset> = distinct(items.iter().map(|(s, _)| s))
        .into_iter()
        .map(|i| items[i].0.clone())
        .collect();
    let keys: BTreeSet<&str> = subsets
        .iter()
        .flat_map(|s| s.tags().iter().map(|t| t.key.as_str()))
        .collect();

    let candidates = Candidates::new(&items);
    let mut rules = Vec::new();
    if !negations && keys.len() <= 1 {
        for ss in subsets {
            rules.extend(rule_for(ss, &items, &candidates, strategy));
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
            rules.extend(rule_for(ss, &items, &candidates, strategy));
        }
    }
    rules.sort_by_key(|r| std::cmp::Reverse(r.subset.num_positive()));
    Ok(rules)
}

/// Which items could hold a candidate subset, so that a rule checks a few
/// items instead of all of them (thousands of policies otherwise cost a
/// quadratic number of subset checks per proxy).
///
/// An item subset made only of positive tags holds a candidate only when
/// the candidate has each of those tags positively (see
/// [`Subset::is_subset`]), so indexing such items by their first tag loses
/// none; the others (the mesh, negations) are checked always.
struct Candidates<'a> {
    always: Vec<usize>,
    by_tag: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> Candidates<'a> {
    fn new(items: &'a [(Subset, &RuleItem<'_>)]) -> Candidates<'a> {
        let mut always = Vec::new();
        let mut by_tag: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, (subset, _)) in items.iter().enumerate() {
            match subset.tags().first() {
                Some(first) if subset.tags().iter().all(|t| !t.not) => by_tag
                    .entry((first.key.as_str(), first.value.as_str()))
                    .or_default()
                    .push(i),
                _ => always.push(i),
            }
        }
        Candidates { always, by_tag }
    }

    /// Indices of the items that may hold `ss`, in fold order.
    fn of(&self, ss: &Subset) -> Vec<usize> {
        let mut out = self.always.clone();
        for tag in ss.tags().iter().filter(|t| !t.not) {
            if let Some(found) = self.by_tag.get(&(tag.key.as_str(), tag.value.as_str())) {
                out.extend(found);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The rule for one candidate subset: the fold of every entry whose subset
/// holds it, or nothing when no entry does.
fn rule_for(
    ss: Subset,
    items: &[(Subset, &RuleItem<'_>)],
    candidates: &Candidates<'_>,
    strategy: MergeStrategy,
) -> Option<Rule> {
    let relevant: Vec<&RuleItem<'_>> = candidates
        .of(&ss)
        .into_iter()
        .map(|i| &items[i])
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

/// `to` rules looked up by destination service: the same answer as
/// [`compute`] with the element `{kuma.io/service: service}`, without
/// scanning every rule for every destination of a proxy.
#[derive(Debug, Clone, Default)]
pub struct ServiceRules {
    /// Rules with a positive `kuma.io/service` tag, by its value.
    by_service: HashMap<String, Vec<usize>>,
    /// Rules with no positive tag (the mesh, negations only).
    generic: Vec<usize>,
}

impl ServiceRules {
    pub fn new(rules: &[Rule]) -> ServiceRules {
        let mut out = ServiceRules::default();
        for (i, rule) in rules.iter().enumerate() {
            let mut positive = rule.subset.tags().iter().filter(|t| !t.not);
            match positive.next() {
                None => out.generic.push(i),
                // A positive tag on another key never holds a bare service.
                Some(t) if t.key == SERVICE_TAG => {
                    out.by_service.entry(t.value.clone()).or_default().push(i)
                }
                Some(_) => {}
            }
        }
        out
    }

    /// The first of `rules` (the ones this was built from) holding the
    /// destination `service`.
    pub fn compute<'a>(&self, rules: &'a [Rule], service: &str) -> Option<&'a Rule> {
        rules.get(self.position(rules, service)?)
    }

    /// Where in `rules` [`ServiceRules::compute`] finds its rule.
    pub fn position(&self, rules: &[Rule], service: &str) -> Option<usize> {
        let first = |indices: &[usize]| {
            indices
                .iter()
                .copied()
                .find(|&i| holds_service(&rules[i].subset, service))
        };
        let specific = self.by_service.get(service).and_then(|i| first(i));
        let generic = first(&self.generic);
        match (specific, generic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// `subset.contains_element({kuma.io/service: service})`, without building
/// the element.
fn holds_service(subset: &Subset, service: &str) -> bool {
    let mut overlap = false;
    for tag in subset.tags() {
        if tag.key == SERVICE_TAG {
            overlap = true;
            if (tag.value == service) == tag.not {
                return false;
            }
        } else if !tag.not {
            return false;
        }
    }
    subset.is_empty() || overlap || subset.num_positive() == 0
}

/// Distinct policies in order of first contribution.
pub fn origins<'a>(all: impl Iterator<Item = &'a PolicyOrigin>) -> Vec<PolicyOrigin> {
    // Entries of one policy share its origin: most repeats are the same
    // reference, and long lists (a rule many policies fold into) are
    // deduplicated by hash rather than by comparing every pair.
    let mut seen: Vec<&PolicyOrigin> = Vec::new();
    let mut index: Option<HashSet<&PolicyOrigin>> = None;
    for o in all {
        if seen.last().is_some_and(|last| std::ptr::eq(*last, o)) {
            continue;
        }
        let new = match &mut index {
            Some(index) => index.insert(o),
            None => !seen.iter().any(|s| same_origin(s, o)),
        };
        if !new {
            continue;
        }
        seen.push(o);
        if index.is_none() && seen.len() > 16 {
            index = Some(seen.iter().copied().collect());
        }
    }
    seen.into_iter().cloned().collect()
}

/// `a == b`, names first: origins in one list mostly differ by name only,
/// and most names differ in length, so one comparison usually settles it.
fn same_origin(a: &PolicyOrigin, b: &PolicyOrigin) -> bool {
    std::ptr::eq(a, b) || (a.name == b.name && a.kind == b.kind && a.mesh == b.mesh)
}

#[cfg(test)]
mod tests;
