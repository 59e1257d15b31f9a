//! `to` rules keyed by real destinations (the Mesh, a MeshService or one of
//! its ports, a MeshExternalService, MeshMultiZoneService or MeshHTTPRoute).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kuma_api::policies::{TargetRef, TargetRefKind};
use kuma_api::{Kind, Resource};

use crate::merge::MergeStrategy;
use crate::policy::{Policy, compare_attributes, compare_names};
use crate::rules::{PolicyOrigin, origins};

/// A destination a `to` entry can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    /// `Mesh`, `MeshService`, `MeshExternalService`, ...
    pub kind: String,
    pub name: String,
    /// A port of the service (its name, or number when unnamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

impl ResourceId {
    pub fn new(kind: &str, name: &str, section_name: Option<&str>) -> ResourceId {
        ResourceId {
            kind: kind.to_string(),
            name: name.to_string(),
            section_name: section_name.filter(|s| !s.is_empty()).map(str::to_string),
        }
    }

    pub fn mesh(name: &str) -> ResourceId {
        ResourceId::new("Mesh", name, None)
    }

    fn without_section(&self) -> ResourceId {
        ResourceId {
            section_name: None,
            ..self.clone()
        }
    }
}

/// A resource of the mesh `to` entries may resolve to by name or labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub kind: TargetRefKind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl Destination {
    /// MeshServices, MeshExternalServices and MeshMultiZoneServices;
    /// `None` for other kinds.
    pub fn from_resource(resource: &Resource) -> Option<Destination> {
        let kind = match resource.kind() {
            Kind::MeshService => TargetRefKind::MeshService,
            Kind::MeshExternalService => TargetRefKind::MeshExternalService,
            Kind::MeshMultiZoneService => TargetRefKind::MeshMultiZoneService,
            _ => return None,
        };
        Some(Destination {
            kind,
            name: resource.meta.name.clone(),
            labels: resource.meta.labels.clone(),
        })
    }
}

/// The folded conf for one destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceRule {
    pub resource: ResourceId,
    pub conf: Value,
    pub origins: Vec<PolicyOrigin>,
}

impl ResourceRule {
    pub fn conf_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.conf)
    }
}

/// Rules per destination named by some `to` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ResourceRules(pub BTreeMap<ResourceId, ResourceRule>);

impl ResourceRules {
    /// The rule for `id`: its own, else its service's (for a port), else
    /// the mesh-wide one.
    pub fn compute(&self, id: &ResourceId, mesh: &str) -> Option<&ResourceRule> {
        self.0
            .get(id)
            .or_else(|| {
                id.section_name
                    .as_ref()
                    .and_then(|_| self.0.get(&id.without_section()))
            })
            .or_else(|| self.0.get(&ResourceId::mesh(mesh)))
    }
}

struct Entry<'a> {
    policy: &'a Policy,
    origin: &'a PolicyOrigin,
    position: usize,
    target_ref: &'a TargetRef,
    conf: &'a Value,
}

/// Destinations `target_ref` names in `mesh`.
fn resolve(target_ref: &TargetRef, mesh: &str, destinations: &[Destination]) -> Vec<ResourceId> {
    let section = target_ref.section_name.as_deref();
    match &target_ref.kind {
        TargetRefKind::Mesh => vec![ResourceId::mesh(mesh)],
        kind @ (TargetRefKind::MeshService
        | TargetRefKind::MeshExternalService
        | TargetRefKind::MeshMultiZoneService) => {
            let section = section.filter(|_| *kind != TargetRefKind::MeshExternalService);
            destinations
                .iter()
                .filter(|d| d.kind == *kind)
                .filter(|d| match (&target_ref.labels, &target_ref.name) {
                    (Some(labels), _) => labels.iter().all(|(k, v)| d.labels.get(k) == Some(v)),
                    (None, Some(name)) => *name == d.name,
                    (None, None) => false,
                })
                .map(|d| ResourceId::new(kind.as_str(), &d.name, section))
                .collect()
        }
        TargetRefKind::MeshHTTPRoute => target_ref
            .name
            .iter()
            .map(|n| ResourceId::new("MeshHTTPRoute", n, None))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether an entry resolved to `entry_id` configures `id`.
fn relevant(entry_id: &ResourceId, id: &ResourceId) -> bool {
    match entry_id.kind.as_str() {
        "Mesh" => true,
        "MeshService" | "MeshMultiZoneService" => {
            entry_id.kind == id.kind
                && entry_id.name == id.name
                && (entry_id.section_name == id.section_name
                    || (entry_id.section_name.is_none() && id.section_name.is_some()))
        }
        _ => entry_id.kind == id.kind && entry_id.name == id.name,
    }
}

/// Rules from the `to` entries of `policies` (in fold order, each with its
/// origin). Policies aimed at a MeshHTTPRoute are left to route handling.
pub fn build<'a>(
    policies: impl Iterator<Item = (&'a Policy, &'a PolicyOrigin)>,
    mesh: &str,
    destinations: &[Destination],
    strategy: MergeStrategy,
) -> ResourceRules {
    // Entries are resolved before they are ordered: in meshes without real
    // destinations most name none, and ordering them was most of the cost.
    let mut entries: Vec<(Entry<'a>, Vec<ResourceId>)> = Vec::new();
    for (position, (policy, origin)) in policies.enumerate() {
        if policy.target_ref.kind == TargetRefKind::MeshHTTPRoute {
            continue;
        }
        for to in &policy.to {
            let ids = resolve(&to.target_ref, mesh, destinations);
            if ids.is_empty() {
                continue;
            }
            let entry = Entry {
                policy,
                origin,
                position,
                target_ref: &to.target_ref,
                conf: &to.conf,
            };
            entries.push((entry, ids));
        }
    }
    // Stable: entries the order ranks equal keep the policies' order.
    entries.sort_by(|(a, _), (b, _)| {
        compare_attributes(a.policy, b.policy)
            .then_with(|| compare_entry(a.target_ref, b.target_ref))
            .then_with(|| compare_names(a.policy, b.policy))
            .then_with(|| a.position.cmp(&b.position))
    });
    let (entries, ids): (Vec<Entry<'_>>, Vec<Vec<ResourceId>>) = entries.into_iter().unzip();
    let resolved: Vec<(ResourceId, &Entry<'_>)> = entries
        .iter()
        .zip(ids)
        .flat_map(|(e, ids)| ids.into_iter().map(move |id| (id, e)))
        .collect();
    let ids: BTreeSet<&ResourceId> = resolved.iter().map(|(id, _)| id).collect();
    // Only mesh-wide entries and entries naming the same resource can be
    // relevant: bucket them so each destination checks its own few.
    let mut mesh_wide = Vec::new();
    let mut by_name: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, (entry_id, _)) in resolved.iter().enumerate() {
        if entry_id.kind == "Mesh" {
            mesh_wide.push(i);
        } else {
            by_name
                .entry((entry_id.kind.as_str(), entry_id.name.as_str()))
                .or_default()
                .push(i);
        }
    }
    let mut rules = BTreeMap::new();
    for id in ids {
        let mut candidates = mesh_wide.clone();
        if let Some(found) = by_name.get(&(id.kind.as_str(), id.name.as_str())) {
            candidates.extend(found);
            candidates.sort_unstable();
        }
        let relevant: Vec<&Entry<'_>> = candidates
            .into_iter()
            .map(|i| &resolved[i])
            .filter(|(entry_id, _)| relevant(entry_id, id))
            .map(|(_, e)| *e)
            .collect();
        if relevant.is_empty() {
            continue;
        }
        rules.insert(
            id.clone(),
            ResourceRule {
                resource: id.clone(),
                conf: strategy.fold(relevant.iter().map(|e| e.conf)),
                origins: origins(relevant.iter().map(|e| e.origin)),
            },
        );
    }
    ResourceRules(rules)
}

/// Among equally ranked policies, entries aimed at narrower kinds apply
/// later, and a MeshService port after the whole service.
fn compare_entry(a: &TargetRef, b: &TargetRef) -> Ordering {
    let by_kind = a.kind.specificity().cmp(&b.kind.specificity());
    if by_kind != Ordering::Equal || a.kind != TargetRefKind::MeshService {
        return by_kind;
    }
    let has = |r: &TargetRef| r.section_name.as_deref().is_some_and(|s| !s.is_empty());
    has(a).cmp(&has(b))
}
