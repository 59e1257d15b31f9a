//! MeshTrafficPermission: which callers may reach a proxy's inbounds.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::policies::values::{Match, TargetedConf, check_match};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTrafficPermissionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub default: RuleConf,
}

/// Callers matched by identity; deny wins over allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_with_shadow_deny: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<Match>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Deny,
    AllowWithShadowDeny,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

impl Validate for MeshTrafficPermissionSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let from = self.from.as_deref().unwrap_or_default();
        let rules = self.rules.as_deref().unwrap_or_default();
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshService,
                K::MeshServiceSubset,
                K::Dataplane,
            ])
            .inbound(!from.is_empty() || !rules.is_empty())
            .check(top, &spec.field("targetRef"), v);
        }
        if !from.is_empty() && !rules.is_empty() {
            v.add(&spec, "field 'from' must be empty when 'rules' is defined");
        }
        if from.is_empty() && rules.is_empty() {
            v.add(&spec, "at least one of 'from' or 'rules' has to be defined");
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = spec.field("rules").index(i);
            let d = &rule.default;
            let lists = [
                ("allow", &d.allow),
                ("allowWithShadowDeny", &d.allow_with_shadow_deny),
                ("deny", &d.deny),
            ];
            if lists
                .iter()
                .all(|(_, l)| l.as_ref().is_none_or(Vec::is_empty))
            {
                v.add(
                    &path,
                    "at least one of 'allow', 'allowWithShadowDeny', 'deny' has to be defined",
                );
            }
            for (field, list) in lists {
                for (j, m) in list.iter().flatten().enumerate() {
                    check_match(m, &path.field(field).index(j), v);
                }
            }
        }
        for (i, item) in from.iter().enumerate() {
            let path = spec.field("from").index(i);
            TargetRefRules::kinds(&[K::Mesh, K::MeshSubset, K::MeshService, K::MeshServiceSubset])
                .check(&item.target_ref, &path.field("targetRef"), v);
            if item.default.as_ref().and_then(|d| d.action).is_none() {
                v.add(&path.field("default").field("action"), "must be defined");
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
type: MeshTrafficPermission
name: allow-all
mesh: default
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Allow
"#,
        );
        assert_valid_round_trip(
            r#"
type: MeshTrafficPermission
name: rules
mesh: default
spec:
  rules:
    - default:
        allow:
          - spiffeID:
              type: Exact
              value: spiffe://default/ns/a/sa/b
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshTrafficPermission
name: bad
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: gw
  from:
    - targetRef:
        kind: MeshService
      default: {}
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.targetRef.kind",
                    "value 'MeshGateway' is not supported"
                ),
                (
                    "spec.from[0].targetRef",
                    "name or labels must be set when kind is MeshService"
                ),
                ("spec.from[0].default.action", "must be defined"),
            ]
        );
        let got = violations(
            "type: MeshTrafficPermission\nname: x\nmesh: default\nspec:\n  rules:\n    - default: {}\n",
        );
        assert_eq!(
            got,
            vec![(
                "spec.rules[0]",
                "at least one of 'allow', 'allowWithShadowDeny', 'deny' has to be defined"
            )]
        );
        let got = violations("type: MeshTrafficPermission\nname: x\nmesh: default\nspec: {}\n");
        assert_eq!(
            got,
            vec![(
                "spec",
                "at least one of 'from' or 'rules' has to be defined"
            )]
        );
    }
}
