//! MeshIdentity: how proxies selected by labels get their SPIFFE identity.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::parse_duration_nanos;
use crate::kinds::address::must_be_one_of;
use crate::kinds::data_source::SecureDataSource;
use crate::kinds::selector::LabelSelector;
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshIdentitySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    #[serde(rename = "spiffeID", default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<SpiffeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpiffeId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundled: Option<Bundled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spire: Option<Spire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_trust_creation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_allow_self_signed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogenerate: Option<Autogenerate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<Ca>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_parameters: Option<CertificateParameters>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Autogenerate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ca {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<SecureDataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<SecureDataSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateParameters {
    /// Go duration (`"24h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<SpireAgent>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpireAgent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

fn check_not_negative(path: &FieldPath, value: &str, v: &mut Violations) {
    match parse_duration_nanos(value) {
        Err(e) => v.add(path, e),
        Ok(n) if n < 0 => v.add(path, "must not be negative when defined"),
        Ok(_) => {}
    }
}

/// The template actions must at least be balanced for Kuma to parse them.
fn check_template(path: &FieldPath, t: &str, v: &mut Violations) {
    if t.matches("{{").count() != t.matches("}}").count() {
        v.add(path, "couldn't parse template: unclosed action");
    }
}

impl Validate for MeshIdentitySpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(id) = &self.spiffe_id {
            let p = spec.field("spiffeID");
            if let Some(td) = &id.trust_domain {
                check_template(&p.field("trustDomain"), td, v);
            }
            if let Some(path) = &id.path {
                check_template(&p.field("path"), path, v);
            }
        }
        let Some(provider) = &self.provider else {
            return;
        };
        let pp = spec.field("provider");
        match provider.type_.as_str() {
            "Bundled" => validate_bundled(provider.bundled.as_ref(), &pp.field("bundled"), v),
            "Spire" => match &provider.spire {
                None => v.add(&pp.field("spire"), "configuration needs to be defined"),
                Some(s) => {
                    if let Some(t) = s.agent.as_ref().and_then(|a| a.timeout.as_deref()) {
                        check_not_negative(
                            &pp.field("spire").field("agent").field("timeout"),
                            t,
                            v,
                        );
                    }
                }
            },
            "Extension" => match &provider.extension {
                None => v.add(&pp.field("extension"), "configuration needs to be defined"),
                Some(e) if e.name.is_empty() => v.add(
                    &pp.field("extension").field("name"),
                    "extension name needs to be defined",
                ),
                Some(_) => {}
            },
            other => v.add(
                &pp.field("type"),
                must_be_one_of(other, &["Bundled", "Spire", "Extension"]),
            ),
        }
    }
}

fn validate_bundled(b: Option<&Bundled>, path: &FieldPath, v: &mut Violations) {
    let Some(b) = b else {
        v.add(path, "configuration needs to be defined");
        return;
    };
    if let Some(mode) = &b.mesh_trust_creation
        && !matches!(mode.as_str(), "Enabled" | "Disabled")
    {
        v.add(
            &path.field("meshTrustCreation"),
            must_be_one_of(mode, &["Enabled", "Disabled"]),
        );
    }
    let autogenerated = b
        .autogenerate
        .as_ref()
        .and_then(|a| a.enabled)
        .unwrap_or(false);
    let ca_path = path.field("ca");
    match (&b.ca, autogenerated) {
        (Some(_), true) => v.add(&ca_path, "shouldn't be defined once using autogenerated"),
        (None, false) => v.add(&ca_path, "must be defined"),
        (Some(ca), false) => {
            for (field, source) in [
                ("certificate", &ca.certificate),
                ("privateKey", &ca.private_key),
            ] {
                match source {
                    None => v.add(&ca_path.field(field), "must be defined"),
                    Some(s) => s.validate(&ca_path.field(field), v),
                }
            }
        }
        (None, true) => {}
    }
    if let Some(expiry) = b
        .certificate_parameters
        .as_ref()
        .and_then(|c| c.expiry.as_deref())
    {
        check_not_negative(
            &path.field("certificateParameters").field("expiry"),
            expiry,
            v,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(yaml: &str) -> Vec<(String, String)> {
        crate::validation::yaml_violations::<MeshIdentitySpec>(yaml, "identity", Some("default"))
    }

    #[test]
    fn docs_example_is_valid() {
        let got = violations(
            r#"
selector:
  dataplane:
    matchLabels: {}
spiffeID:
  trustDomain: "{{ .Mesh }}.{{ .Zone }}.mesh.local"
  path: "/ns/{{ .Namespace }}/sa/{{ .ServiceAccount }}"
provider:
  type: Bundled
  bundled:
    meshTrustCreation: Enabled
    insecureAllowSelfSigned: true
    certificateParameters:
      expiry: 24h
    autogenerate:
      enabled: true
"#,
        );
        assert_eq!(got, vec![]);
    }

    #[test]
    fn bundled_needs_a_ca_unless_autogenerated() {
        let got = violations(
            r#"
provider:
  type: Bundled
  bundled:
    meshTrustCreation: Sometimes
    ca:
      certificate: {type: EnvVar}
    certificateParameters: {expiry: -1h}
"#,
        );
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "spec.provider.bundled.meshTrustCreation",
                    r#""Sometimes" must be one of ["Enabled", "Disabled"]"#
                ),
                (
                    "spec.provider.bundled.ca.certificate.envVar",
                    "must be defined"
                ),
                ("spec.provider.bundled.ca.privateKey", "must be defined"),
                (
                    "spec.provider.bundled.certificateParameters.expiry",
                    "must not be negative when defined"
                ),
            ]
        );
    }
}
