//! MeshGatewayRoute: the legacy routing table of a builtin gateway.
//!
//! Its selectors are typed; the route table under `conf` is kept as written
//! (MeshHTTPRoute/MeshTCPRoute replace it) and only checked for presence.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds::mesh_gateway::Selector;
use crate::kinds::tags::{TagRules, validate_selector};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeshGatewayRouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Selector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Map<String, Value>>,
}

impl Validate for MeshGatewayRouteSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let selectors = FieldPath::of("selectors");
        if self.selectors.is_empty() {
            v.add(&selectors, "must have at least one element");
        }
        let rules = TagRules {
            require_at_least_one: true,
            require_service: true,
            ..Default::default()
        };
        for (i, s) in self.selectors.iter().enumerate() {
            validate_selector(&selectors.index(i).field("match"), &s.match_, rules, v);
        }
        let has_route = self
            .conf
            .as_ref()
            .is_some_and(|c| c.contains_key("http") || c.contains_key("tcp"));
        if !has_route {
            v.add(&FieldPath::of("conf"), "cannot be empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_conf_are_required() {
        let ctx = ValidationContext {
            name: "r",
            mesh: Some("default"),
        };
        let ok: MeshGatewayRouteSpec = serde_yaml::from_str(
            "selectors: [{match: {kuma.io/service: edge}}]\nconf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}",
        )
        .unwrap();
        let mut v = Violations::new();
        ok.validate(&ctx, &mut v);
        assert!(v.is_empty());
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            serde_json::from_value::<MeshGatewayRouteSpec>(json).unwrap(),
            ok
        );
        MeshGatewayRouteSpec::default().validate(&ctx, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("selectors", "must have at least one element"),
                ("conf", "cannot be empty"),
            ]
        );
    }
}
