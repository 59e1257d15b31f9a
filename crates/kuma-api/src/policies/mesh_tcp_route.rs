//! MeshTCPRoute: where TCP traffic to a service goes.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{BackendRef, check_backend_ref};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTcpRouteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct To {
    #[serde(default = "TargetRef::unset")]
    pub target_ref: TargetRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub default: RuleConf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<BackendRef>>,
}

/// The folded `to` conf one destination gets. Kuma reads only the first
/// rule of a `to` entry (and a later policy's entry replaces the list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl Conf {
    /// Where traffic goes: the first rule's backends (none: the destination
    /// itself).
    pub fn backend_refs(&self) -> &[BackendRef] {
        self.rules
            .first()
            .and_then(|r| r.default.backend_refs.as_deref())
            .unwrap_or_default()
    }
}

/// The kinds a route's `to[].targetRef` may name, by top-level kind.
pub(crate) fn route_to_kinds(top: &K) -> &'static [K] {
    match top {
        K::MeshGateway => &[K::Mesh],
        _ => &[
            K::MeshService,
            K::MeshExternalService,
            K::MeshMultiZoneService,
        ],
    }
}

pub(crate) const BACKEND_KINDS: &[K] = &[
    K::MeshService,
    K::MeshServiceSubset,
    K::MeshExternalService,
    K::MeshMultiZoneService,
];

pub(crate) const ROUTE_TOP_KINDS: &[K] = &[
    K::Mesh,
    K::MeshSubset,
    K::MeshService,
    K::MeshServiceSubset,
    K::Dataplane,
];

impl Validate for MeshTcpRouteSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(ROUTE_TOP_KINDS).check(top, &spec.field("targetRef"), v);
        }
        let top = top_level(&self.target_ref).kind;
        for (i, to) in self.to.iter().flatten().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(route_to_kinds(&top)).check(
                &to.target_ref,
                &path.field("targetRef"),
                v,
            );
            for (j, rule) in to.rules.iter().enumerate() {
                let bp = path
                    .field("rules")
                    .index(j)
                    .field("default")
                    .field("backendRefs");
                let refs = rule.default.backend_refs.as_deref().unwrap_or_default();
                if refs.is_empty() {
                    v.add(&bp, "must be defined");
                }
                for (k, b) in refs.iter().enumerate() {
                    TargetRefRules::kinds(BACKEND_KINDS).check(&b.target_ref, &bp.index(k), v);
                    check_backend_ref(b, &bp.index(k), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshTCPRoute
name: tcp-route-1
mesh: default
spec:
  targetRef:
    kind: MeshSubset
    tags:
      kuma.io/service: frontend
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - default:
            backendRefs:
              - kind: MeshServiceSubset
                name: backend
                tags:
                  version: v0
                weight: 90
              - kind: MeshMultiZoneService
                labels:
                  kuma.io/display-name: backend
                port: 8080
                weight: 10
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshTCPRoute
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: Mesh
      rules:
        - default: {}
        - default:
            backendRefs:
              - kind: MeshMultiZoneService
                name: backend
"#,
        );
        assert_eq!(
            got,
            vec![
                ("spec.to[0].targetRef.kind", "value 'Mesh' is not supported"),
                ("spec.to[0].rules[0].default.backendRefs", "must be defined"),
                (
                    "spec.to[0].rules[1].default.backendRefs[0].port",
                    "must be defined with kind MeshMultiZoneService"
                ),
            ]
        );
    }
}
