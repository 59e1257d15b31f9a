//! Zone: one zone control plane known to the global one.

use serde::{Deserialize, Serialize};

use crate::validation::{Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl ZoneSpec {
    /// Zones are enabled unless switched off.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl Validate for ZoneSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, _v: &mut Violations) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_defaults_to_true_and_round_trips() {
        let z: ZoneSpec = serde_yaml::from_str("{}").unwrap();
        assert!(z.is_enabled());
        let z: ZoneSpec = serde_yaml::from_str("enabled: false").unwrap();
        assert!(!z.is_enabled());
        assert_eq!(serde_json::to_string(&z).unwrap(), r#"{"enabled":false}"#);
    }
}
