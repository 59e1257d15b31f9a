//! Placeholder: typed spec still to be written.

use crate::validation::{Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeshTrafficPermissionSpec {
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Validate for MeshTrafficPermissionSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, _violations: &mut Violations) {}
}
