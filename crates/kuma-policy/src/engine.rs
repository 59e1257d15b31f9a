//! The policies of one kind in one mesh, indexed once per snapshot, and the
//! per-proxy rules computed from them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::{TargetRef, TargetRefKind};
use kuma_api::{Kind, Resource};

use crate::inbound::{self, InboundRule};
use crate::matcher::{InboundKey, Proxy, Selection, select};
use crate::merge::MergeStrategy;
use crate::outbound::{self, Destination, ResourceRules};
use crate::policy::{Policy, compare};
use crate::rules::{self, PolicyOrigin, Rule, RuleItem};

/// What beside the policies themselves decides the rules: the mesh's name,
/// the destinations `to` entries may name, and the MeshHTTPRoutes policies
/// may target.
#[derive(Debug, Clone, Default)]
pub struct MeshContext {
    pub mesh: String,
    pub destinations: Vec<Destination>,
    pub http_routes: Vec<Policy>,
}

/// Everything one policy kind means for one proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRules {
    /// Policies that select the proxy, in fold order (the last wins).
    pub policies: Vec<PolicyOrigin>,
    /// `from` rules per inbound: the first rule whose subset holds a client
    /// gives its conf.
    pub from: BTreeMap<InboundKey, Vec<Rule>>,
    /// `rules` (and, for some kinds, `from`) entries per inbound.
    pub inbound: BTreeMap<InboundKey, Vec<InboundRule>>,
    /// `to` rules by destination tags (`kuma.io/service`).
    pub to: Vec<Rule>,
    /// `to` rules by real destination.
    pub to_resources: ResourceRules,
    /// The fold of `spec.default` of policies with only a top-level
    /// targetRef.
    pub single_item: Vec<Rule>,
    /// Policies that could not be turned into rules, and why.
    pub warnings: Vec<String>,
}

/// The policies of one kind, sorted into fold order and indexed by what
/// their top-level targetRef keys on.
#[derive(Debug, Clone)]
pub struct PolicyIndex {
    kind: Kind,
    strategy: MergeStrategy,
    /// Fold order; indices below refer to it.
    policies: Vec<Policy>,
    origins: Vec<PolicyOrigin>,
    /// The top-level targetRef each policy selects proxies with (a
    /// MeshHTTPRoute's own when the policy targets a route).
    selectors: Vec<Option<TargetRef>>,
    /// Candidates for every proxy.
    always: Vec<usize>,
    /// Candidates for proxies with an inbound (or gateway) tag `key=value`.
    by_tag: HashMap<(String, String), Vec<usize>>,
    /// Candidates for the Dataplane of that name.
    by_name: HashMap<String, Vec<usize>>,
    warnings: Vec<String>,
}

impl PolicyIndex {
    /// Indexes the policies of `kind` among `resources` (other kinds and
    /// shadow policies are left out).
    pub fn from_resources<'a>(
        kind: Kind,
        resources: impl IntoIterator<Item = &'a Resource>,
        ctx: &MeshContext,
    ) -> PolicyIndex {
        let mut warnings = Vec::new();
        let policies = resources
            .into_iter()
            .filter(|r| r.kind() == kind)
            .filter_map(|r| match Policy::from_resource(r) {
                Ok(p) => Some(p),
                Err(e) => {
                    warnings.push(e.to_string());
                    None
                }
            })
            .collect();
        let mut index = PolicyIndex::new(kind, policies, ctx);
        index.warnings.splice(0..0, warnings);
        index
    }

    pub fn new(kind: Kind, mut policies: Vec<Policy>, ctx: &MeshContext) -> PolicyIndex {
        policies.retain(|p| p.kind == kind && !p.is_shadow());
        policies.sort_by(compare);
        let mut warnings = Vec::new();
        let selectors: Vec<Option<TargetRef>> = policies
            .iter()
            .map(|p| {
                if p.target_ref.kind != TargetRefKind::MeshHTTPRoute {
                    return Some(p.target_ref.clone());
                }
                let name = p.target_ref.name.as_deref().unwrap_or_default();
                let route = ctx.http_routes.iter().find(|r| r.name == name);
                if route.is_none() {
                    warnings.push(format!(
                        "unable to resolve TargetRef on policy: mesh:{} name:{} error:\"couldn't resolve MeshHTTPRoute targetRef with name '{name}'\"",
                        p.mesh, p.name
                    ));
                }
                route.map(|r| r.target_ref.clone())
            })
            .collect();
        let mut index = PolicyIndex {
            kind,
            strategy: MergeStrategy::for_kind(kind),
            origins: policies
                .iter()
                .map(|p| PolicyOrigin {
                    kind: kind.name().to_string(),
                    mesh: p.mesh.clone(),
                    name: p.name.clone(),
                })
                .collect(),
            policies,
            selectors: Vec::new(),
            always: Vec::new(),
            by_tag: HashMap::new(),
            by_name: HashMap::new(),
            warnings,
        };
        for (i, selector) in selectors.iter().enumerate() {
            let Some(r) = selector else { continue };
            let service = || (SERVICE_TAG.to_string(), r.name.clone().unwrap_or_default());
            match r.kind {
                TargetRefKind::MeshService | TargetRefKind::MeshServiceSubset => {
                    index.by_tag.entry(service()).or_default().push(i);
                }
                TargetRefKind::MeshSubset => {
                    // Any one exact tag of the selector must be on the proxy.
                    let exact = r.tags.iter().flatten().find(|(_, v)| v.as_str() != "*");
                    match exact {
                        Some((k, v)) => index
                            .by_tag
                            .entry((k.clone(), v.clone()))
                            .or_default()
                            .push(i),
                        None => index.always.push(i),
                    }
                }
                TargetRefKind::Dataplane
                    if r.labels.is_none() && r.name.as_deref().is_some_and(|n| !n.is_empty()) =>
                {
                    let name = r.name.clone().unwrap_or_default();
                    index.by_name.entry(name).or_default().push(i);
                }
                _ => index.always.push(i),
            }
        }
        index.selectors = selectors;
        index
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The policies, in fold order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Policies that select `proxy`, in fold order, with what they select.
    pub fn matching(&self, proxy: &Proxy<'_>) -> Vec<(usize, Selection)> {
        let mut candidates: Vec<usize> = self.always.clone();
        if proxy.gateway.is_some() {
            // Listener tags of a builtin gateway are not indexed; gateways
            // are few, so they check every policy.
            candidates.extend(0..self.policies.len());
        } else {
            let networking = proxy.spec.networking.as_ref();
            let gateway_tags = networking.and_then(|n| n.gateway.as_ref()).map(|g| &g.tags);
            let tag_sets = proxy
                .spec
                .inbounds()
                .iter()
                .map(|i| &i.tags)
                .chain(gateway_tags);
            for tags in tag_sets {
                for (k, v) in tags {
                    if let Some(found) = self.by_tag.get(&(k.clone(), v.clone())) {
                        candidates.extend(found);
                    }
                }
            }
            if let Some(found) = self.by_name.get(proxy.name) {
                candidates.extend(found);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|i| {
                let selector = self.selectors[i].as_ref()?;
                let selection = select(&self.policies[i], selector, proxy);
                (!selection.is_empty()).then_some((i, selection))
            })
            .collect()
    }

    /// The rules of this kind for `proxy`.
    pub fn rules_for(&self, proxy: &Proxy<'_>, ctx: &MeshContext) -> ProxyRules {
        let matched = self.matching(proxy);
        let mut warnings = self.warnings.clone();

        let mut by_inbound: BTreeMap<InboundKey, Vec<usize>> = BTreeMap::new();
        for (i, selection) in &matched {
            for key in &selection.inbounds {
                by_inbound.entry(key.clone()).or_default().push(*i);
            }
        }

        let mut from = BTreeMap::new();
        let mut inbound_rules = BTreeMap::new();
        for (key, indices) in by_inbound {
            let items: Vec<RuleItem<'_>> = indices
                .iter()
                .flat_map(|&i| {
                    self.policies[i].from.iter().map(move |e| RuleItem {
                        target_ref: &e.target_ref,
                        conf: &e.conf,
                        origin: &self.origins[i],
                    })
                })
                .collect();
            match rules::build(&items, true, self.strategy) {
                Ok(r) => {
                    from.insert(key.clone(), r);
                }
                Err(e) => warnings.push(format!("couldn't create From rules: {e}")),
            }
            let rules = inbound::build(
                indices
                    .iter()
                    .map(|&i| (&self.policies[i], self.origins[i].clone())),
            );
            inbound_rules.insert(key, rules);
        }

        // Policies with a `to` entry aimed at a MeshHTTPRoute, or targeting
        // one, are routed per route and do not take part in tag rules.
        let to_items: Vec<RuleItem<'_>> = matched
            .iter()
            .map(|(i, _)| *i)
            .filter(|&i| {
                let p = &self.policies[i];
                p.target_ref.kind != TargetRefKind::MeshHTTPRoute
                    && !p
                        .to
                        .iter()
                        .any(|e| e.target_ref.kind == TargetRefKind::MeshHTTPRoute)
            })
            .flat_map(|i| {
                self.policies[i].to.iter().map(move |e| RuleItem {
                    target_ref: &e.target_ref,
                    conf: &e.conf,
                    origin: &self.origins[i],
                })
            })
            .collect();
        let to = rules::build(&to_items, false, self.strategy).unwrap_or_else(|e| {
            warnings.push(format!("couldn't create To rules: {e}"));
            Vec::new()
        });
        let to_resources = outbound::build(
            matched
                .iter()
                .map(|(i, _)| (&self.policies[*i], &self.origins[*i])),
            &ctx.mesh,
            &ctx.destinations,
            self.strategy,
        );

        let mesh = TargetRef::mesh();
        let single_items: Vec<RuleItem<'_>> = matched
            .iter()
            .filter_map(|(i, _)| {
                self.policies[*i].default.as_ref().map(|conf| RuleItem {
                    target_ref: &mesh,
                    conf,
                    origin: &self.origins[*i],
                })
            })
            .collect();
        let single_item = rules::build(&single_items, false, self.strategy).unwrap_or_default();

        ProxyRules {
            policies: matched
                .iter()
                .map(|(i, _)| self.origins[*i].clone())
                .collect(),
            from,
            inbound: inbound_rules,
            to,
            to_resources,
            single_item,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests;
