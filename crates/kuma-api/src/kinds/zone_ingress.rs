//! ZoneIngress: the proxy receiving cross-zone traffic for a zone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinds::address::{validate_port, validate_proxy_address};
use crate::kinds::dataplane::EnvoyAdmin;
use crate::kinds::tags::{TagRules, validate_tags};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneIngressSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<ZoneIngressNetworking>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_services: Vec<AvailableService>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneIngressNetworking {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub advertised_address: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub advertised_port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<EnvoyAdmin>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableService {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub instances: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mesh: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external_service: bool,
}

pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Validate for ZoneIngressSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let path = FieldPath::of("networking");
        let n = self.networking.clone().unwrap_or_default();
        if let Some(admin) = &n.admin
            && admin.port == n.port
        {
            v.add(&path.field("admin").field("port"), "must differ from port");
        }
        if n.advertised_address.is_empty() && n.advertised_port != 0 {
            v.add(
                &path.field("advertisedAddress"),
                "has to be defined with advertisedPort",
            );
        }
        if n.advertised_port == 0 && !n.advertised_address.is_empty() {
            v.add(
                &path.field("advertisedPort"),
                "has to be defined with advertisedAddress",
            );
        }
        if !n.address.is_empty() {
            validate_proxy_address(&path.field("address"), &n.address, v);
        }
        if !n.advertised_address.is_empty() {
            validate_proxy_address(&path.field("advertisedAddress"), &n.advertised_address, v);
        }
        validate_port(&path.field("port"), n.port, v);
        if n.advertised_port != 0 {
            validate_port(&path.field("advertisedPort"), n.advertised_port, v);
        }
        let rules = TagRules {
            require_service: true,
            ..Default::default()
        };
        for (i, s) in self.available_services.iter().enumerate() {
            let p = FieldPath::of("availableService").index(i).field("tags");
            validate_tags(&p, &s.tags, rules, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(spec: &ZoneIngressSpec) -> Vec<(String, String)> {
        crate::validation::violations_of(spec, "zi", None)
    }

    #[test]
    fn docs_example_is_valid() {
        let spec: ZoneIngressSpec = serde_yaml::from_str(
            "networking: {address: 192.168.0.1, port: 10001, advertisedAddress: 10.0.0.1, advertisedPort: 10000}",
        )
        .unwrap();
        assert_eq!(violations(&spec), vec![]);
    }

    #[test]
    fn advertised_pair_and_port_rules() {
        let spec: ZoneIngressSpec =
            serde_yaml::from_str("networking: {advertisedAddress: 10.0.0.1, admin: {port: 0}}")
                .unwrap();
        let got = violations(&spec);
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("networking.admin.port", "must differ from port"),
                (
                    "networking.advertisedPort",
                    "has to be defined with advertisedAddress"
                ),
                ("networking.port", "port must be in the range [1, 65535]"),
            ]
        );
    }
}
