//! One policy resource read into the parts the engine works with, whatever
//! its kind: top-level targetRef, `to`, `from`, `rules` and `default`, each
//! conf kept as JSON (`read` takes specs apart).

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use kuma_api::policies::values::Match;
use kuma_api::policies::{ProxyType, TargetRef, TargetRefKind};
use kuma_api::{Kind, Resource, Spec};

use crate::PolicyError;

mod read;

pub use read::SharedConfs;

pub const DISPLAY_NAME_LABEL: &str = "kuma.io/display-name";
pub const ORIGIN_LABEL: &str = "kuma.io/origin";
pub const POLICY_ROLE_LABEL: &str = "kuma.io/policy-role";
pub const ZONE_LABEL: &str = "kuma.io/zone";
pub const NAMESPACE_LABEL: &str = "k8s.kuma.io/namespace";
pub const EFFECT_LABEL: &str = "kuma.io/effect";

/// Where a policy was created. Zone policies override global ones; a
/// policy with no origin label sits between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Origin {
    Global,
    Unknown,
    Zone,
}

/// Who owns a policy; later roles override earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum PolicyRole {
    System,
    Producer,
    Consumer,
    WorkloadOwner,
}

/// One `to`/`from` entry: where it aims and what it sets. Confs are
/// shared: policies read together ([`SharedConfs`]) hold one value for
/// equal confs, which a fold recognizes as a repeat by its address.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetedEntry {
    pub target_ref: TargetRef,
    pub conf: Arc<Value>,
}

/// One `rules` entry: caller conditions (empty: every caller) and conf.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedEntry {
    pub matches: Vec<Match>,
    pub conf: Arc<Value>,
}

/// A policy read once per mesh snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub kind: Kind,
    pub mesh: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The top-level targetRef; `kind: Mesh` when absent.
    pub target_ref: TargetRef,
    pub to: Vec<TargetedEntry>,
    pub from: Vec<TargetedEntry>,
    pub rules: Vec<MatchedEntry>,
    /// `spec.default` of policies without to/from (MeshTrace, MeshMetric...).
    pub default: Option<Arc<Value>>,
}

impl Policy {
    /// Reads a policy resource of any kind; `Err` for kinds that are not
    /// targetRef policies or specs whose refs do not parse.
    pub fn from_resource(resource: &Resource) -> Result<Policy, PolicyError> {
        let kind = resource.kind();
        if !kind.is_policy() {
            return Err(PolicyError::NotAPolicy(kind));
        }
        let mesh = resource.meta.mesh.as_deref().unwrap_or_default();
        Policy::from_spec(
            mesh,
            &resource.meta.name,
            &resource.meta.labels,
            resource.spec.clone(),
        )
    }

    /// Reads the policy `name` of `mesh` from its labels and spec, as
    /// [`Policy::from_resource`] does; the spec's parts move into the
    /// policy.
    pub fn from_spec(
        mesh: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        spec: Spec,
    ) -> Result<Policy, PolicyError> {
        Policy::from_spec_sharing(
            mesh,
            name,
            labels.clone(),
            spec,
            &mut SharedConfs::default(),
        )
    }

    /// [`Policy::from_spec`], sharing its confs with the policies read
    /// before with `confs` wherever they are equal; the labels move in.
    pub fn from_spec_sharing(
        mesh: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        spec: Spec,
        confs: &mut SharedConfs,
    ) -> Result<Policy, PolicyError> {
        let kind = spec.kind();
        if !kind.is_policy() {
            return Err(PolicyError::NotAPolicy(kind));
        }
        let parts = match read::from_typed(spec, confs) {
            Ok(parts) => parts,
            Err(spec) => read::from_json(&spec.to_json(), name)?,
        };
        Ok(Policy {
            kind,
            mesh: mesh.to_string(),
            name: name.to_string(),
            labels,
            target_ref: parts.target_ref,
            to: parts.to,
            from: parts.from,
            rules: parts.rules,
            default: parts.default,
        })
    }

    /// The name users know the policy by (Kubernetes-synced copies carry
    /// a hashed name and the original in a label).
    pub fn display_name(&self) -> &str {
        self.labels
            .get(DISPLAY_NAME_LABEL)
            .filter(|n| !n.is_empty())
            .map(String::as_str)
            .unwrap_or(&self.name)
    }

    pub fn origin(&self) -> Origin {
        match self.labels.get(ORIGIN_LABEL).map(String::as_str) {
            Some("global") => Origin::Global,
            Some("zone") => Origin::Zone,
            _ => Origin::Unknown,
        }
    }

    pub fn role(&self) -> PolicyRole {
        match self.labels.get(POLICY_ROLE_LABEL).map(String::as_str) {
            Some("producer") => PolicyRole::Producer,
            Some("consumer") => PolicyRole::Consumer,
            Some("workload-owner") => PolicyRole::WorkloadOwner,
            _ => PolicyRole::System,
        }
    }

    /// `kuma.io/effect: shadow` policies are only previewed, never applied.
    pub fn is_shadow(&self) -> bool {
        self.labels.get(EFFECT_LABEL).is_some_and(|e| e == "shadow")
    }

    pub fn proxy_types(&self) -> &[ProxyType] {
        self.target_ref.proxy_types.as_deref().unwrap_or_default()
    }
}

/// Kuma's precedence of two policies by their top-level targetRef and
/// attributes, names aside: `Less` means `a` is applied first (and loses).
pub fn compare_attributes(a: &Policy, b: &Policy) -> Ordering {
    a.target_ref
        .kind
        .specificity()
        .cmp(&b.target_ref.kind.specificity())
        .then_with(|| compare_dataplane_section(&a.target_ref, &b.target_ref))
        .then_with(|| a.origin().cmp(&b.origin()))
        .then_with(|| a.role().cmp(&b.role()))
}

/// A Dataplane ref naming one inbound is more specific than one without.
fn compare_dataplane_section(a: &TargetRef, b: &TargetRef) -> Ordering {
    if a.kind != TargetRefKind::Dataplane || b.kind != TargetRefKind::Dataplane {
        return Ordering::Equal;
    }
    let has = |r: &TargetRef| r.section_name.as_deref().is_some_and(|s| !s.is_empty());
    has(a).cmp(&has(b))
}

/// Kuma's tie-break by display name is reversed: among equally specific
/// policies the alphabetically *first* name is applied last and wins.
pub fn compare_names(a: &Policy, b: &Policy) -> Ordering {
    b.display_name().cmp(a.display_name())
}

/// The full order policies are folded in.
pub fn compare(a: &Policy, b: &Policy) -> Ordering {
    compare_attributes(a, b).then_with(|| compare_names(a, b))
}

/// Sorts `policies` into the order of [`compare`] (stable), reading each
/// policy's labels once instead of at every comparison.
pub fn sort(policies: &mut Vec<Arc<Policy>>) {
    /// What [`compare`] looks at, in its order. Only Dataplane refs have
    /// Dataplane's specificity, so the section decides only between two
    /// Dataplane refs, as in [`compare_dataplane_section`].
    type Key<'a> = (u8, bool, Origin, PolicyRole, Reverse<&'a str>);
    let keys: Vec<Key<'_>> = policies
        .iter()
        .map(|p| {
            let r = &p.target_ref;
            let section = r.kind == TargetRefKind::Dataplane
                && r.section_name.as_deref().is_some_and(|s| !s.is_empty());
            (
                r.kind.specificity(),
                section,
                p.origin(),
                p.role(),
                Reverse(p.display_name()),
            )
        })
        .collect();
    let mut order: Vec<usize> = (0..policies.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    if order.iter().enumerate().all(|(at, &i)| at == i) {
        return;
    }
    let mut taken: Vec<Option<Arc<Policy>>> =
        std::mem::take(policies).into_iter().map(Some).collect();
    policies.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Random, mk_policy, with_labels};
    use serde_json::json;

    #[test]
    fn reads_sections_of_any_kind() {
        let p = mk_policy(
            Kind::MeshTimeout,
            "t",
            json!({
                "targetRef": {"kind": "MeshService", "name": "web"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1s"}}],
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "2s"}}],
            }),
        );
        assert_eq!(p.target_ref.kind, TargetRefKind::MeshService);
        assert_eq!(*p.to[0].conf, json!({"idleTimeout": "1s"}));
        assert_eq!(*p.from[0].conf, json!({"idleTimeout": "2s"}));
        let trace = mk_policy(
            Kind::MeshTrace,
            "tr",
            json!({"default": {"sampling": {"overall": 50}}}),
        );
        assert_eq!(trace.target_ref, TargetRef::mesh());
        assert!(trace.default.is_some());
        let route = mk_policy(
            Kind::MeshHTTPRoute,
            "r",
            json!({"to": [{"targetRef": {"kind": "MeshService", "name": "b"}, "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "default": {"backendRefs": [{"kind": "MeshService", "name": "b"}]}}
            ]}]}),
        );
        assert_eq!(
            route.to[0].conf["rules"][0]["matches"][0]["path"]["value"],
            "/"
        );
        assert!(route.to[0].conf.get("targetRef").is_none());
    }

    #[test]
    fn sorting_by_keys_gives_the_order_of_compare_on_random_policies() {
        let refs = [
            json!({"kind": "Mesh"}),
            json!({"kind": "Dataplane"}),
            json!({"kind": "Dataplane", "sectionName": "http"}),
            json!({"kind": "Dataplane", "sectionName": ""}),
            json!({"kind": "MeshSubset", "tags": {"a": "b"}}),
            json!({"kind": "MeshService", "name": "web"}),
            json!({"kind": "MeshService", "name": "web", "sectionName": "http"}),
            json!({"kind": "MeshHTTPRoute", "name": "r"}),
        ];
        let labels = [
            (ORIGIN_LABEL, "zone"),
            (ORIGIN_LABEL, "global"),
            (POLICY_ROLE_LABEL, "producer"),
            (POLICY_ROLE_LABEL, "consumer"),
            (POLICY_ROLE_LABEL, "workload-owner"),
            (DISPLAY_NAME_LABEL, "b"),
            (DISPLAY_NAME_LABEL, ""),
        ];
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        let mut below = |n: usize| random.below(n);
        for round in 0..300 {
            let mut policies: Vec<Arc<Policy>> = (0..below(12))
                .map(|i| {
                    let target_ref = refs[below(refs.len())].clone();
                    // Few names, so that ties keep their input order.
                    let name = ["a", "b", "c"][below(3)];
                    let p = mk_policy(Kind::MeshTimeout, name, json!({"targetRef": target_ref}));
                    let mut p = with_labels(p, &[labels[below(labels.len())]]);
                    if below(2) == 0 {
                        p = with_labels(p, &[labels[below(labels.len())]]);
                    }
                    // Tells equal policies apart.
                    p.mesh = format!("m{i}");
                    Arc::new(p)
                })
                .collect();
            let mut want = policies.clone();
            want.sort_by(|a, b| compare(a, b));
            sort(&mut policies);
            let names = |ps: &[Arc<Policy>]| ps.iter().map(|p| p.mesh.clone()).collect::<Vec<_>>();
            assert_eq!(names(&policies), names(&want), "round {round}");
        }
    }

    #[test]
    fn order_by_kind_section_origin_role_then_reversed_name() {
        let mesh = mk_policy(Kind::MeshTimeout, "a", json!({"to": []}));
        let svc = mk_policy(
            Kind::MeshTimeout,
            "z",
            json!({"targetRef": {"kind": "MeshService", "name": "web"}, "to": []}),
        );
        assert_eq!(compare(&mesh, &svc), Ordering::Less);
        let dp = mk_policy(
            Kind::MeshTimeout,
            "a",
            json!({"targetRef": {"kind": "Dataplane"}, "to": []}),
        );
        let dp_section = mk_policy(
            Kind::MeshTimeout,
            "b",
            json!({"targetRef": {"kind": "Dataplane", "sectionName": "http"}, "to": []}),
        );
        assert_eq!(compare(&dp, &dp_section), Ordering::Less);
        let zone = with_labels(mesh.clone(), &[(ORIGIN_LABEL, "zone")]);
        let global = with_labels(mesh.clone(), &[(ORIGIN_LABEL, "global")]);
        assert_eq!(compare(&global, &mesh), Ordering::Less);
        assert_eq!(compare(&mesh, &zone), Ordering::Less);
        let consumer = with_labels(mesh.clone(), &[(POLICY_ROLE_LABEL, "consumer")]);
        let producer = with_labels(mesh.clone(), &[(POLICY_ROLE_LABEL, "producer")]);
        assert_eq!(compare(&producer, &consumer), Ordering::Less);
        assert_eq!(compare(&mesh, &producer), Ordering::Less);
        // "b" is applied before "a": "a" wins the tie.
        let b = mk_policy(Kind::MeshTimeout, "b", json!({"to": []}));
        assert_eq!(compare(&b, &mesh), Ordering::Less);
        let renamed = with_labels(b.clone(), &[(DISPLAY_NAME_LABEL, "0-first")]);
        assert_eq!(compare(&mesh, &renamed), Ordering::Less);
    }
}
