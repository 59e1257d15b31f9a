//! MeshProxyPatch: raw edits to the Envoy configuration of selected proxies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshProxyPatchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default)]
    pub default: Conf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_modifications: Option<Vec<Modification>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Modification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Mod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<Mod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_filter: Option<Mod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_filter: Option<Mod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_host: Option<Mod>,
}

/// One edit of one kind of Envoy resource. The match fields differ per kind;
/// one struct holds them all since each is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mod {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<ModMatch>,
    /// `Add`, `Remove`, `Patch`, `AddFirst`, `AddLast`, `AddBefore`, `AddAfter`.
    #[serde(default)]
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_patches: Option<Vec<JsonPatchBlock>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_configuration_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonPatchBlock {
    #[serde(default)]
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Validate for MeshProxyPatchSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::Dataplane,
                K::MeshService,
                K::MeshServiceSubset,
            ])
            .check(top, &spec.field("targetRef"), v);
        }
        let path = spec.field("default").field("appendModifications");
        let mods = self
            .default
            .append_modifications
            .as_deref()
            .unwrap_or_default();
        if mods.is_empty() {
            v.add(&path, "must not be empty");
        }
        for (i, m) in mods.iter().enumerate() {
            let mp = path.index(i);
            let set = [
                ("cluster", &m.cluster),
                ("listener", &m.listener),
                ("networkFilter", &m.network_filter),
                ("httpFilter", &m.http_filter),
                ("virtualHost", &m.virtual_host),
            ];
            let defined: Vec<_> = set
                .iter()
                .filter_map(|(f, m)| m.as_ref().map(|m| (*f, m)))
                .collect();
            if defined.len() != 1 {
                v.add(
                    &mp,
                    format!(
                        "exactly one modification can be defined at a time. Currently, {} modifications are defined",
                        defined.len()
                    ),
                );
                continue;
            }
            let (field, m) = defined[0];
            check_mod(field, m, &mp.field(field), v);
        }
    }
}

fn check_mod(field: &str, m: &Mod, path: &FieldPath, v: &mut Violations) {
    let filter = matches!(field, "networkFilter" | "httpFilter");
    let allowed: &[&str] = if filter {
        &[
            "AddFirst",
            "AddLast",
            "AddBefore",
            "AddAfter",
            "Patch",
            "Remove",
        ]
    } else {
        &["Add", "Patch", "Remove"]
    };
    match m.operation.as_str() {
        "Add" | "AddFirst" | "AddLast" | "AddBefore" | "AddAfter"
            if allowed.contains(&m.operation.as_str()) =>
        {
            if m.value.is_none() {
                v.add(&path.field("value"), "must be defined");
            }
            if !filter && field != "virtualHost" && m.matcher.is_some() {
                v.add(&path.field("match"), "must not be defined");
            }
            // Relative additions need the filter they are relative to.
            if matches!(m.operation.as_str(), "AddBefore" | "AddAfter")
                && m.matcher.as_ref().and_then(|x| x.name.as_ref()).is_none()
            {
                v.add(&path.field("match").field("name"), "must be defined");
            }
        }
        "Patch" => {
            if m.value.is_none() && m.json_patches.is_none() {
                v.add(&path.field("value"), "must be defined");
            }
        }
        "Remove" => {
            if m.value.is_some() {
                v.add(&path.field("value"), "must not be defined");
            }
        }
        _ => v.add(
            &path.field("operation"),
            format!(
                "invalid operation. Available operations: \"{}\"",
                allowed.join("\", \"")
            ),
        ),
    }
    for (i, p) in m.json_patches.iter().flatten().enumerate() {
        check_json_patch(p, &path.field("jsonPatches").index(i), v);
    }
}

/// An RFC 6902 operation: its `op`, and the members that op needs.
fn check_json_patch(p: &JsonPatchBlock, path: &FieldPath, v: &mut Violations) {
    const OPS: [&str; 6] = ["add", "remove", "replace", "move", "copy", "test"];
    if !OPS.contains(&p.op.as_str()) {
        v.add(
            &path.field("op"),
            format!("must be one of \"{}\"", OPS.join("\", \"")),
        );
        return;
    }
    if p.path.is_none() {
        v.add(&path.field("path"), "must be defined");
    }
    if matches!(p.op.as_str(), "add" | "replace" | "test") && p.value.is_none() {
        v.add(&path.field("value"), "must be defined");
    }
    if matches!(p.op.as_str(), "move" | "copy") && p.from.is_none() {
        v.add(&path.field("from"), "must be defined");
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshProxyPatch
name: custom-template-1
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: backend
  default:
    appendModifications:
      - cluster:
          operation: Patch
          match:
            name: test-cluster
            origin: inbound
          jsonPatches:
            - op: add
              path: /transportSocket/typedConfig/commonTlsContext/tlsParams
              value:
                tlsMinimumProtocolVersion: TLSv1_2
      - networkFilter:
          operation: AddFirst
          match:
            listenerTags:
              kuma.io/service: backend
          value: |
            name: envoy.filters.network.local_ratelimit
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshProxyPatch
name: bad
mesh: default
spec:
  default:
    appendModifications:
      - {}
      - cluster:
          operation: Remove
          value: x
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.default.appendModifications[0]",
                    "exactly one modification can be defined at a time. Currently, 0 modifications are defined"
                ),
                (
                    "spec.default.appendModifications[1].cluster.value",
                    "must not be defined"
                ),
            ]
        );
    }

    #[test]
    fn relative_filters_and_json_patches_need_their_members() {
        let got = violations(
            r#"
type: MeshProxyPatch
name: bad
mesh: default
spec:
  default:
    appendModifications:
      - httpFilter:
          operation: AddBefore
          value: "name: x"
      - cluster:
          operation: Patch
          jsonPatches:
            - op: frobnicate
              path: /a
            - op: add
              path: /a
            - op: move
              path: /b
            - op: remove
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.default.appendModifications[0].httpFilter.match.name",
                    "must be defined"
                ),
                (
                    "spec.default.appendModifications[1].cluster.jsonPatches[0].op",
                    "must be one of \"add\", \"remove\", \"replace\", \"move\", \"copy\", \"test\""
                ),
                (
                    "spec.default.appendModifications[1].cluster.jsonPatches[1].value",
                    "must be defined"
                ),
                (
                    "spec.default.appendModifications[1].cluster.jsonPatches[2].from",
                    "must be defined"
                ),
                (
                    "spec.default.appendModifications[1].cluster.jsonPatches[3].path",
                    "must be defined"
                ),
            ]
        );
    }
}
