//! MeshTrust: CA bundles trusted for a trust domain.

use serde::{Deserialize, Serialize};

use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTrustSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(default)]
    pub trust_domain: String,
    #[serde(default, rename = "caBundles")]
    pub ca_bundles: Vec<CaBundle>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kri: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaBundle {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<Pem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pem {
    #[serde(default)]
    pub value: String,
}

/// A PEM block that is not a private key.
fn is_pem_certificate(s: &str) -> bool {
    let Some(begin) = s.find("-----BEGIN ") else {
        return false;
    };
    let after = &s[begin + 11..];
    let Some(label_end) = after.find("-----") else {
        return false;
    };
    let label = &after[..label_end];
    if label.contains("PRIVATE KEY") {
        return false;
    }
    after.contains(&format!("-----END {label}-----"))
}

impl Validate for MeshTrustSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let bundles = spec.field("caBundles");
        if self.ca_bundles.is_empty() {
            v.add(&bundles, "must not be empty");
        }
        for (i, b) in self.ca_bundles.iter().enumerate() {
            if b.type_ != "Pem" {
                v.add(
                    &bundles.index(i).field("type"),
                    format!("{} must be one of: Pem", b.type_),
                );
                continue;
            }
            let pem_path = bundles.index(i).field("pem");
            match &b.pem {
                None => v.add(&pem_path, "must be defined"),
                Some(p) if !is_pem_certificate(&p.value) => v.add(
                    &pem_path.field("value"),
                    "provided certificate has incorrect format",
                ),
                Some(_) => {}
            }
        }
        let td = spec.field("trustDomain");
        if self.trust_domain.is_empty() {
            v.add(&td, "trustDomain needs to be defined");
        }
        if self.trust_domain.len() > 253 {
            v.add(&td, "must not be longer than 253 characters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_and_trust_domain() {
        let ctx = ValidationContext {
            name: "t",
            mesh: Some("default"),
        };
        let ok: MeshTrustSpec = serde_yaml::from_str(
            "trustDomain: default.zone.mesh.local\ncaBundles: [{type: Pem, pem: {value: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"}}]",
        )
        .unwrap();
        let mut v = Violations::new();
        ok.validate(&ctx, &mut v);
        assert!(v.is_empty(), "{v:?}");
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(serde_json::from_value::<MeshTrustSpec>(json).unwrap(), ok);

        let bad: MeshTrustSpec = serde_yaml::from_str(
            "caBundles: [{type: Pem, pem: {value: \"-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----\"}}, {type: Der}]",
        )
        .unwrap();
        bad.validate(&ctx, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "spec.caBundles[0].pem.value",
                    "provided certificate has incorrect format"
                ),
                ("spec.caBundles[1].type", "Der must be one of: Pem"),
                ("spec.trustDomain", "trustDomain needs to be defined"),
            ]
        );
    }
}
