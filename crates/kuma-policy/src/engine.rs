//! The policies of one kind in one mesh, indexed once per snapshot, and the
//! per-proxy rules computed from them.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::{TargetRef, TargetRefKind};
use kuma_api::{Kind, Resource};

use crate::inbound::{self, InboundRule};
use crate::matcher::{InboundKey, MatchedBy, Proxy, Selection, select, selects};
use crate::merge::MergeStrategy;
use crate::outbound::{self, Destination, ResourceRules};
use crate::policy::Policy;
use crate::rules::{self, PolicyOrigin, Rule, RuleItem};

mod to_rules;

use to_rules::{Aims, Source};
pub use to_rules::{PolicyList, ToRules};

/// What beside the policies themselves decides the rules: the mesh's name,
/// the destinations `to` entries may name, and the MeshHTTPRoutes policies
/// may target.
#[derive(Debug, Clone, Default)]
pub struct MeshContext {
    pub mesh: String,
    pub destinations: Vec<Destination>,
    /// Shared with the snapshot's MeshHTTPRoute index.
    pub http_routes: Vec<Arc<Policy>>,
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
    /// The policies in fold order (indices below refer to it), shared with
    /// the snapshot the index was built from, and what `to` rules are
    /// built from.
    source: Source,
    /// The policy whose top-level targetRef each policy selects proxies
    /// with: itself, or the MeshHTTPRoute it targets (shared, not copied).
    selectors: Vec<Option<Arc<Policy>>>,
    /// Candidate classes for every proxy.
    always: Vec<usize>,
    /// Candidate classes for proxies with an inbound (or gateway) tag
    /// `key=value`. (Nested so that a proxy's tags are looked up without
    /// copies.)
    by_tag: foldhash::HashMap<String, foldhash::HashMap<String, Vec<usize>>>,
    /// Per policy, its selection class (the first policy of the class):
    /// policies of one class (equal selector and labels, all `select`
    /// reads of a policy) select the same of every proxy, so a proxy is
    /// checked once per class, and the policies that select it are whole
    /// classes. (Equal selectors land in one candidate list, so a class is
    /// a candidate as a whole too.)
    classes: Vec<usize>,
    /// The policies of each class, in fold order, at the class's index.
    members: Vec<Vec<usize>>,
    /// Every class.
    all_classes: Vec<usize>,
    /// Per class (at the class's index), whether it selects every sidecar
    /// that finds it among its candidates, with some inbound and no
    /// gateway: a Mesh or MeshSubset targetRef with one exact tag at most
    /// (the one it is indexed by), no proxy types, and labels that hold it
    /// to no zone or namespace. Such a class is taken without reading its
    /// policy, which most proxies would otherwise read first there.
    settled: Vec<bool>,
    /// Candidate classes for the Dataplane of that name.
    by_name: foldhash::HashMap<String, Vec<usize>>,
    warnings: Vec<String>,
    memo: Memo,
    matched_by: MatchedBy,
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
        let policies: Vec<Policy> = resources
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

    pub fn new(
        kind: Kind,
        policies: impl IntoIterator<Item = impl Into<Arc<Policy>>>,
        ctx: &MeshContext,
    ) -> PolicyIndex {
        let mut policies: Vec<Arc<Policy>> = policies
            .into_iter()
            .map(Into::into)
            .filter(|p| p.kind == kind && !p.is_shadow())
            .collect();
        crate::policy::sort(&mut policies);
        let policies: Arc<[Arc<Policy>]> = policies.into();
        let mut warnings = Vec::new();
        let selectors: Vec<Option<Arc<Policy>>> = policies
            .iter()
            .map(|p| {
                if p.target_ref.kind != TargetRefKind::MeshHTTPRoute {
                    return Some(p.clone());
                }
                let name = p.target_ref.name.as_deref().unwrap_or_default();
                let route = ctx.http_routes.iter().find(|r| r.name == name);
                if route.is_none() {
                    warnings.push(format!(
                        "unable to resolve TargetRef on policy: mesh:{} name:{} error:\"couldn't resolve MeshHTTPRoute targetRef with name '{name}'\"",
                        p.mesh, p.name
                    ));
                }
                route.cloned()
            })
            .collect();
        let strategy = MergeStrategy::for_kind(kind);
        let mut index = PolicyIndex {
            kind,
            source: Source {
                origins: origins_of(kind, &policies).into(),
                aims: Arc::new(Aims::new(&policies, strategy)),
                strategy,
                policies,
            },
            selectors: Vec::new(),
            always: Vec::new(),
            by_tag: foldhash::HashMap::default(),
            classes: Vec::new(),
            members: Vec::new(),
            all_classes: Vec::new(),
            settled: Vec::new(),
            by_name: foldhash::HashMap::default(),
            warnings,
            memo: Memo::default(),
            matched_by: MatchedBy::default(),
        };
        for (i, selector) in selectors.iter().enumerate() {
            let Some(r) = selector.as_ref().map(|s| &s.target_ref) else {
                continue;
            };
            match r.kind {
                TargetRefKind::MeshService | TargetRefKind::MeshServiceSubset => {
                    let name = r.name.as_deref().unwrap_or_default();
                    add_tag_candidate(&mut index.by_tag, SERVICE_TAG, name, i);
                }
                TargetRefKind::MeshSubset => {
                    // Any one exact tag of the selector must be on the proxy.
                    let exact = r.tags.iter().flatten().find(|(_, v)| v.as_str() != "*");
                    match exact {
                        Some((k, v)) => add_tag_candidate(&mut index.by_tag, k, v, i),
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
        let classes = selection_classes(&index.source.policies, &selectors);
        let mut members = vec![Vec::new(); classes.len()];
        for (i, &class) in classes.iter().enumerate() {
            members[class].push(i);
        }
        // Candidate lists hold classes from here on.
        let to_classes = |list: &mut Vec<usize>| {
            for i in list.iter_mut() {
                *i = classes[*i];
            }
            list.sort_unstable();
            list.dedup();
        };
        to_classes(&mut index.always);
        index
            .by_tag
            .values_mut()
            .flat_map(|by_value| by_value.values_mut())
            .for_each(to_classes);
        index.by_name.values_mut().for_each(to_classes);
        index.matched_by = MatchedBy {
            name: selectors.iter().flatten().any(|s| {
                s.target_ref.kind == TargetRefKind::Dataplane
                    && s.target_ref.name.as_deref().is_some_and(|n| !n.is_empty())
            }),
            addresses: index.source.aims.inbound,
        };
        index.all_classes = (0..classes.len()).filter(|&i| classes[i] == i).collect();
        index.settled = index
            .source
            .policies
            .iter()
            .zip(&selectors)
            .map(|(policy, s)| s.as_deref().is_some_and(|s| settled(policy, s)))
            .collect();
        index.classes = classes;
        index.members = members;
        index.selectors = selectors;
        index
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What the index's policies tell proxies apart by, beyond what every
    /// matching reads: proxies [`Proxy::matched_alike`] with it get the
    /// same [`PolicyIndex::shared_rules_for`].
    pub fn matched_by(&self) -> MatchedBy {
        self.matched_by
    }

    /// The policies, in fold order.
    pub fn policies(&self) -> &[Arc<Policy>] {
        &self.source.policies
    }

    /// Policies that select `proxy`, in fold order, with what they select.
    pub fn matching(&self, proxy: &Proxy<'_>) -> Vec<(usize, Selection)> {
        let (matched, selections) = self.matched(proxy, true);
        let mut out: Vec<(usize, Selection)> = matched
            .into_iter()
            .flat_map(|(class, slot)| {
                let selection = &selections[slot];
                self.members[class]
                    .iter()
                    .map(move |&i| (i, selection.clone()))
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// The selection classes that select `proxy`, ascending, each with its
    /// selection: `(class, slot in the selections)`. Without `inbounds`
    /// the selections are left empty: only whether a class selects the
    /// proxy is found out.
    fn matched(&self, proxy: &Proxy<'_>, inbounds: bool) -> (Vec<(usize, usize)>, Vec<Selection>) {
        let mut candidates: Vec<usize> = self.always.clone();
        if proxy.gateway.is_some() {
            // Listener tags of a builtin gateway are not indexed; gateways
            // are few, so they check every policy.
            candidates.extend(&self.all_classes);
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
                    if let Some(found) = self.by_tag.get(k).and_then(|by_value| by_value.get(v)) {
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
        // A class candidate through one of a plain sidecar's inbound tags
        // (or for every proxy) needs no check when settled.
        let plain_sidecar = !inbounds
            && proxy.gateway.is_none()
            && !proxy.spec.inbounds().is_empty()
            && proxy
                .spec
                .networking
                .as_ref()
                .is_none_or(|n| n.gateway.is_none());
        let mut selections: Vec<Selection> = Vec::new();
        let matched = candidates
            .into_iter()
            .filter_map(|class| {
                if plain_sidecar && self.settled[class] {
                    selections.push(Selection::default());
                    return Some((class, selections.len() - 1));
                }
                let selector = self.selectors[class].as_ref()?;
                let (policy, target_ref) = (&self.source.policies[class], &selector.target_ref);
                let selection = if inbounds {
                    Some(select(policy, target_ref, proxy)).filter(|s| !s.is_empty())
                } else {
                    selects(policy, target_ref, proxy).then(Selection::default)
                }?;
                selections.push(selection);
                Some((class, selections.len() - 1))
            })
            .collect();
        (matched, selections)
    }

    /// The policies of `classes`, in fold order.
    fn members_of(&self, classes: &[usize]) -> Vec<usize> {
        if let [class] = classes {
            return self.members[*class].clone();
        }
        let mut out: Vec<usize> = classes
            .iter()
            .flat_map(|&c| self.members[c].iter().copied())
            .collect();
        out.sort_unstable();
        out
    }

    /// The rules of this kind for `proxy`.
    pub fn rules_for(&self, proxy: &Proxy<'_>, ctx: &MeshContext) -> ProxyRules {
        let (matched, selections) = self.matched(proxy, true);
        let (outbound, inbounds) = self.parts(&matched, &selections, ctx, false, true);
        let mut warnings = self.warnings.clone();
        let mut from = BTreeMap::new();
        let mut inbound_rules = BTreeMap::new();
        for (key, part) in inbounds {
            match &part.from {
                Ok(rules) => {
                    from.insert(key.clone(), rules.as_ref().clone());
                }
                Err(e) => warnings.push(e.clone()),
            }
            inbound_rules.insert(key, part.inbound.as_ref().clone());
        }
        warnings.extend(outbound.to_error.iter().cloned());
        ProxyRules {
            policies: outbound.policies.to_vec(),
            from,
            inbound: inbound_rules,
            to: outbound.to.rules().to_vec(),
            to_resources: outbound.to_resources.as_ref().clone(),
            single_item: outbound.single_item.as_ref().clone(),
            warnings,
        }
    }

    /// The rules of this kind for `proxy`, as [`PolicyIndex::rules_for`]
    /// gives them, with parts shared between proxies that the same
    /// policies select: they are computed once per index and only
    /// reference-counted afterwards. `ctx` must be the context the index
    /// was built with; another one bypasses the memo. Without `from` or
    /// `rules` in any policy of the kind, no inbound has rules and none is
    /// listed.
    pub fn shared_rules_for(&self, proxy: &Proxy<'_>, ctx: &MeshContext) -> SharedProxyRules {
        let with_inbounds = self.source.aims.inbound;
        let (matched, selections) = self.matched(proxy, with_inbounds);
        let memoize = self.memo.admits(ctx);
        let (outbound, inbounds) = self.parts(&matched, &selections, ctx, memoize, with_inbounds);
        let mut warnings = self.warnings.clone();
        let mut from = BTreeMap::new();
        let mut inbound_rules = BTreeMap::new();
        for (key, part) in inbounds {
            match part.from {
                Ok(rules) => {
                    from.insert(key.clone(), rules);
                }
                Err(e) => warnings.push(e),
            }
            inbound_rules.insert(key, part.inbound);
        }
        warnings.extend(outbound.to_error.iter().cloned());
        SharedProxyRules {
            policies: outbound.policies,
            from,
            inbound: inbound_rules,
            to: outbound.to,
            to_resources: outbound.to_resources,
            single_item: outbound.single_item,
            warnings,
        }
    }

    /// What the matched policies mean: the part that depends only on which
    /// policies matched, and (when `with_inbounds`) per inbound the part
    /// that depends only on which policies selected that inbound.
    fn parts(
        &self,
        matched: &[(usize, usize)],
        selections: &[Selection],
        ctx: &MeshContext,
        memoize: bool,
        with_inbounds: bool,
    ) -> (OutboundPart, Vec<(InboundKey, InboundPart)>) {
        let inbounds = if with_inbounds {
            self.inbound_parts(matched, selections, memoize)
        } else {
            Vec::new()
        };
        let classes: Vec<usize> = matched.iter().map(|(c, _)| *c).collect();
        let compute = |classes: &[usize]| self.outbound_part(self.members_of(classes), ctx);
        let outbound = if memoize {
            self.memo.outbound(classes, compute)
        } else {
            compute(&classes)
        };
        (outbound, inbounds)
    }

    /// Per inbound, the part that depends only on which policies selected
    /// that inbound.
    fn inbound_parts(
        &self,
        matched: &[(usize, usize)],
        selections: &[Selection],
        memoize: bool,
    ) -> Vec<(InboundKey, InboundPart)> {
        // The inbounds each selection holds, as positions among the
        // proxy's distinct inbounds: hundreds of policies share a few
        // selections, and looking each policy's inbounds up by key was a
        // good part of the cost of a proxy.
        let mut keys: Vec<&InboundKey> = Vec::new();
        let slot_keys: Vec<Vec<usize>> = selections
            .iter()
            .map(|selection| {
                selection
                    .inbounds
                    .iter()
                    .map(|key| match keys.iter().position(|k| *k == key) {
                        Some(at) => at,
                        None => {
                            keys.push(key);
                            keys.len() - 1
                        }
                    })
                    .collect()
            })
            .collect();
        // Classes per inbound (memo keys are classes: a few instead of
        // hundreds of policies).
        let mut per_key: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        for (class, slot) in matched {
            for &at in &slot_keys[*slot] {
                per_key[at].push(*class);
            }
        }
        let mut by_inbound: Vec<(&InboundKey, Vec<usize>)> = keys
            .into_iter()
            .zip(per_key)
            .filter(|(_, indices)| !indices.is_empty())
            .collect();
        by_inbound.sort_by(|a, b| a.0.cmp(b.0));
        by_inbound
            .into_iter()
            .map(|(key, classes)| {
                let compute = |classes: &[usize]| self.inbound_part(&self.members_of(classes));
                let part = if memoize {
                    self.memo.inbound(classes, compute)
                } else {
                    compute(&classes)
                };
                (key.clone(), part)
            })
            .collect()
    }

    /// `from` and inbound `rules` of the policies (in fold order) that
    /// select one inbound.
    fn inbound_part(&self, indices: &[usize]) -> InboundPart {
        if !self.source.aims.inbound {
            return InboundPart {
                from: Ok(Arc::default()),
                inbound: Arc::default(),
            };
        }
        let items: Vec<RuleItem<'_>> = indices
            .iter()
            .flat_map(|&i| {
                self.source.policies[i].from.iter().map(move |e| RuleItem {
                    target_ref: &e.target_ref,
                    conf: &e.conf,
                    origin: &self.source.origins[i],
                })
            })
            .collect();
        let from = rules::build(&items, true, self.source.strategy)
            .map(Arc::new)
            .map_err(|e| format!("couldn't create From rules: {e}"));
        let inbound = inbound::build(
            indices
                .iter()
                .map(|&i| (&*self.source.policies[i], &self.source.origins[i])),
        );
        InboundPart {
            from,
            inbound: Arc::new(inbound),
        }
    }

    /// `to` and single-item rules of the matched policies (in fold order).
    fn outbound_part(&self, indices: Vec<usize>, ctx: &MeshContext) -> OutboundPart {
        let (to, to_error) = self.source.to_rules(&indices);
        let (policies, origins) = (&self.source.policies, &self.source.origins);
        // Entries name real destinations only in meshes that have some.
        let to_resources = if ctx.destinations.is_empty() && !self.source.aims.names_resources {
            ResourceRules::default()
        } else {
            outbound::build(
                indices.iter().map(|&i| (&*policies[i], &origins[i])),
                &ctx.mesh,
                &ctx.destinations,
                self.source.strategy,
            )
        };

        let mesh = TargetRef::mesh();
        let with_defaults = if self.source.aims.defaults {
            &indices[..]
        } else {
            &[]
        };
        let single_items: Vec<RuleItem<'_>> = with_defaults
            .iter()
            .filter_map(|&i| {
                policies[i].default.as_ref().map(|conf| RuleItem {
                    target_ref: &mesh,
                    conf,
                    origin: &origins[i],
                })
            })
            .collect();
        let single_item =
            rules::build(&single_items, false, self.source.strategy).unwrap_or_default();

        OutboundPart {
            policies: Arc::new(PolicyList::new(origins.clone(), indices)),
            to: Arc::new(to),
            to_error,
            to_resources: Arc::new(to_resources),
            single_item: Arc::new(single_item),
        }
    }
}

/// Each policy's origin, the kind's and mesh's names shared by all.
fn origins_of(kind: Kind, policies: &[Arc<Policy>]) -> Vec<PolicyOrigin> {
    let kind: Arc<str> = kind.name().into();
    let mut mesh: Arc<str> = Arc::from("");
    policies
        .iter()
        .map(|p| {
            if *mesh != *p.mesh {
                mesh = p.mesh.as_str().into();
            }
            PolicyOrigin {
                kind: kind.clone(),
                mesh: mesh.clone(),
                name: p.name.as_str().into(),
            }
        })
        .collect()
}

/// Adds candidate `i` for proxies with tag `key=value`; key and value are
/// copied only the first time they are seen.
fn add_tag_candidate(
    by_tag: &mut foldhash::HashMap<String, foldhash::HashMap<String, Vec<usize>>>,
    key: &str,
    value: &str,
    i: usize,
) {
    let by_value = match by_tag.get_mut(key) {
        Some(by_value) => by_value,
        None => by_tag.entry(key.to_string()).or_default(),
    };
    match by_value.get_mut(value) {
        Some(found) => found.push(i),
        None => {
            by_value.insert(value.to_string(), vec![i]);
        }
    }
}

/// Whether `policy`, selecting through `selector` (see
/// `PolicyIndex::selectors`), selects every plain sidecar that finds it
/// among its candidates (see `PolicyIndex::settled`).
fn settled(policy: &Policy, selector: &Policy) -> bool {
    let r = &selector.target_ref;
    let by_kind = match r.kind {
        TargetRefKind::Mesh => true,
        // Candidates through their one tag only (see `PolicyIndex::new`).
        TargetRefKind::MeshSubset => match r.tags.as_ref() {
            None => true,
            Some(tags) => tags.len() <= 1 && tags.values().all(|v| v != "*"),
        },
        _ => false,
    };
    by_kind
        && r.proxy_types.as_deref().is_none_or(<[_]>::is_empty)
        && crate::matcher::selects_any_zone_and_namespace(policy)
}

/// What a selector (see `PolicyIndex::selectors`) selects proxies with.
fn target_ref(selector: &Option<Arc<Policy>>) -> Option<&TargetRef> {
    selector.as_ref().map(|s| &s.target_ref)
}

/// The selection class of each policy (see `PolicyIndex::classes`).
fn selection_classes(policies: &[Arc<Policy>], selectors: &[Option<Arc<Policy>>]) -> Vec<usize> {
    // Representatives by a hash of what decides selection most often;
    // policies with equal hashes are compared in full before they share a
    // class.
    let mut by_hash: foldhash::HashMap<u64, Vec<usize>> = foldhash::HashMap::default();
    let mut classes = Vec::with_capacity(policies.len());
    // Any hash does for grouping within one call; foldhash is the fast one.
    let state = foldhash::fast::FixedState::default();
    for (i, (policy, selector)) in policies.iter().zip(selectors).enumerate() {
        let mut hasher = state.build_hasher();
        policy.labels.hash(&mut hasher);
        if let Some(r) = target_ref(selector) {
            (&r.kind, &r.name, &r.tags, &r.labels, &r.section_name).hash(&mut hasher);
        }
        let same = by_hash.entry(hasher.finish()).or_default();
        let found = same.iter().copied().find(|&r| {
            policies[r].labels == policy.labels && target_ref(&selectors[r]) == target_ref(selector)
        });
        match found {
            Some(r) => classes.push(classes[r]),
            None => {
                same.push(i);
                classes.push(i);
            }
        }
    }
    classes
}

/// [`ProxyRules`] with the parts proxies share behind reference counts;
/// the fields mean the same, but that an inbound without rules may be left
/// out of `from` and `inbound`.
#[derive(Debug, Clone)]
pub struct SharedProxyRules {
    pub policies: Arc<PolicyList>,
    pub from: BTreeMap<InboundKey, Arc<Vec<Rule>>>,
    pub inbound: BTreeMap<InboundKey, Arc<Vec<InboundRule>>>,
    /// The `to` rules, looked up by destination service.
    pub to: Arc<ToRules>,
    pub to_resources: Arc<ResourceRules>,
    pub single_item: Arc<Vec<Rule>>,
    pub warnings: Vec<String>,
}

impl SharedProxyRules {
    /// The conf of the first `to` rule holding the destination service, as
    /// `rules::compute(&to, &{kuma.io/service: service})` finds it.
    pub fn to_service(&self, service: &str) -> Option<&serde_json::Value> {
        self.to.conf(self.to.for_service(service)?)
    }
}

#[derive(Debug, Clone)]
struct OutboundPart {
    policies: Arc<PolicyList>,
    to: Arc<ToRules>,
    to_error: Option<String>,
    to_resources: Arc<ResourceRules>,
    single_item: Arc<Vec<Rule>>,
}

#[derive(Debug, Clone)]
struct InboundPart {
    from: Result<Arc<Vec<Rule>>, String>,
    inbound: Arc<Vec<InboundRule>>,
}

/// Parts computed so far, by the selection classes of the policies that
/// decide them. Many proxies share tags, hence matched policies; in a
/// snapshot they would otherwise rebuild the same rules again and again.
#[derive(Default)]
struct Memo {
    /// The context the memoized parts were computed with (by address:
    /// it lives beside the index in its snapshot).
    context: OnceLock<usize>,
    outbound: Mutex<foldhash::HashMap<Indices, OutboundPart>>,
    inbound: Mutex<foldhash::HashMap<Indices, InboundPart>>,
}

/// Selection classes, ascending, as a memo key: hashed as one cheap
/// fingerprint and compared in full only on a match.
#[derive(PartialEq, Eq)]
struct Indices(Vec<usize>);

impl Hash for Indices {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut fingerprint = self.0.len() as u64;
        for &i in &self.0 {
            fingerprint =
                (fingerprint.rotate_left(5) ^ i as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        state.write_u64(fingerprint);
    }
}

impl Memo {
    fn admits(&self, ctx: &MeshContext) -> bool {
        let address = ctx as *const MeshContext as usize;
        *self.context.get_or_init(|| address) == address
    }

    fn outbound(
        &self,
        indices: Vec<usize>,
        compute: impl FnOnce(&[usize]) -> OutboundPart,
    ) -> OutboundPart {
        memoized(&self.outbound, indices, compute)
    }

    fn inbound(
        &self,
        indices: Vec<usize>,
        compute: impl FnOnce(&[usize]) -> InboundPart,
    ) -> InboundPart {
        memoized(&self.inbound, indices, compute)
    }
}

fn memoized<T: Clone>(
    memo: &Mutex<foldhash::HashMap<Indices, T>>,
    indices: Vec<usize>,
    compute: impl FnOnce(&[usize]) -> T,
) -> T {
    let indices = Indices(indices);
    // A poisoned lock only means another thread panicked mid-insert; the
    // map itself is still whole.
    let lock = || memo.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = lock().get(&indices) {
        return found.clone();
    }
    // Computed outside the lock: two threads may both compute a part, and
    // both results are equal.
    let part = compute(&indices.0);
    lock().entry(indices).or_insert(part).clone()
}

impl Clone for Memo {
    /// A copy starts empty: it is only a cache.
    fn clone(&self) -> Memo {
        Memo::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
