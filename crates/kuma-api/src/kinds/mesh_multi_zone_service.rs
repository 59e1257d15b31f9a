//! MeshMultiZoneService: one service made of MeshServices from many zones.

use serde::{Deserialize, Serialize};

use crate::kinds::selector::LabelSelector;
use crate::kinds::tags::{SUPPORTED_PROTOCOLS, is_supported_protocol};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshMultiZoneServiceSpec {
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub mesh_service: LabelSelector,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub app_protocol: String,
}

impl Validate for MeshMultiZoneServiceSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if self
            .selector
            .mesh_service
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
        {
            v.add(
                &spec
                    .field("selector")
                    .field("meshService")
                    .field("matchLabels"),
                "cannot be empty",
            );
        }
        if self.ports.is_empty() {
            v.add(&spec.field("ports"), "cannot be empty");
        }
        for (i, p) in self.ports.iter().enumerate() {
            let pp = spec.field("ports").index(i);
            if p.name.as_deref() == Some("") {
                v.add(&pp.field("name"), "must not be empty");
            }
            if !is_supported_protocol(&p.app_protocol) {
                v.add(
                    &pp.field("appProtocol"),
                    format!(
                        "appProtocol must be one of: {}",
                        SUPPORTED_PROTOCOLS.join(", ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_example_and_violations() {
        let ctx = ValidationContext {
            name: "redis",
            mesh: Some("default"),
        };
        let ok: MeshMultiZoneServiceSpec = serde_yaml::from_str(
            "selector: {meshService: {matchLabels: {kuma.io/display-name: redis}}}\nports: [{port: 6379, appProtocol: tcp}]",
        )
        .unwrap();
        let mut v = Violations::new();
        ok.validate(&ctx, &mut v);
        assert!(v.is_empty());
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            serde_json::from_value::<MeshMultiZoneServiceSpec>(json).unwrap(),
            ok
        );

        let bad: MeshMultiZoneServiceSpec = serde_yaml::from_str("ports: []").unwrap();
        bad.validate(&ctx, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("spec.selector.meshService.matchLabels", "cannot be empty"),
                ("spec.ports", "cannot be empty"),
            ]
        );
    }
}
