//! ZoneEgress: the proxy sending a zone's traffic to other zones and external services.

use serde::{Deserialize, Serialize};

use crate::kinds::address::{validate_port, validate_proxy_address};
use crate::kinds::dataplane::EnvoyAdmin;
use crate::kinds::zone_ingress::is_zero;
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneEgressSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<ZoneEgressNetworking>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneEgressNetworking {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<EnvoyAdmin>,
}

impl Validate for ZoneEgressSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let path = FieldPath::of("networking");
        let n = self.networking.clone().unwrap_or_default();
        if let Some(admin) = &n.admin
            && admin.port == n.port
        {
            v.add(&path.field("admin").field("port"), "must differ from port");
        }
        if !n.address.is_empty() {
            validate_proxy_address(&path.field("address"), &n.address, v);
        }
        validate_port(&path.field("port"), n.port, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_required_and_address_checked() {
        let ctx = ValidationContext {
            name: "ze",
            mesh: None,
        };
        let ok: ZoneEgressSpec =
            serde_yaml::from_str("networking: {address: 10.0.0.2, port: 10002}").unwrap();
        let mut v = Violations::new();
        ok.validate(&ctx, &mut v);
        assert!(v.is_empty());
        let bad: ZoneEgressSpec = serde_yaml::from_str("networking: {address: '::'}").unwrap();
        bad.validate(&ctx, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("networking.address", "must not be 0.0.0.0 or ::"),
                ("networking.port", "port must be in the range [1, 65535]"),
            ]
        );
    }
}
