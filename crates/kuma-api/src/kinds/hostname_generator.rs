//! HostnameGenerator: a template naming the hosts of selected services.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kinds::selector::LabelSelector;
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostnameGeneratorSpec {
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_service: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_external_service: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_multi_zone_service: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

impl Validate for HostnameGeneratorSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let s = &self.selector;
        let defined = [
            s.mesh_service.is_some(),
            s.mesh_external_service.is_some(),
            s.mesh_multi_zone_service.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if defined != 1 {
            v.add(
                &spec.field("selector"),
                "exact one selector (meshService, meshExternalService) must be defined",
            );
        }
        let template = spec.field("template");
        if self.template.is_empty() {
            v.add(&template, "must not be empty");
        } else if let Err(e) = check_template(&self.template) {
            v.add(&template, e);
        }
        if let Some(ext) = &self.extension
            && ext.type_.is_empty()
        {
            v.add(&spec.field("extension").field("type"), "must not be empty");
        }
    }
}

/// Renders the Go-template with stub values and checks the result is a DNS
/// name. Only the actions Kuma documents are understood: `{{ .Name }}`,
/// `.DisplayName`, `.Namespace`, `.Mesh`, `.Zone` and `{{ label "key" }}`.
fn check_template(template: &str) -> Result<(), String> {
    let mut rendered = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        rendered.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "couldn't parse template: unclosed action".to_string())?;
        let action = after[..end].trim().trim_matches('-').trim();
        let value = match action {
            ".Name" => "name",
            ".DisplayName" => "displayname",
            ".Namespace" => "namespace",
            ".Mesh" => "mesh",
            ".Zone" => "zone",
            a if a.starts_with("label ") => "label",
            other => {
                return Err(format!(
                    "couldn't render template with stub values: unknown action {other:?}"
                ));
            }
        };
        rendered.push_str(value);
        rest = &after[end + 2..];
    }
    rendered.push_str(rest);
    if crate::kinds::address::is_rfc1123_subdomain(&rendered) {
        Ok(())
    } else {
        Err(format!(
            "template renders to {rendered:?} which is not a valid DNS name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(spec: &HostnameGeneratorSpec) -> Vec<(String, String)> {
        crate::validation::violations_of(spec, "hg", None)
    }

    #[test]
    fn docs_example_is_valid() {
        let spec: HostnameGeneratorSpec = serde_yaml::from_str(
            r#"
selector:
  meshService:
    matchLabels:
      kuma.io/origin: zone
template: "{{ .DisplayName }}.{{ .Namespace }}.svc.{{ label \"kuma.io/zone\" }}.mesh.local"
"#,
        )
        .unwrap();
        assert_eq!(violations(&spec), vec![]);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            serde_json::from_value::<HostnameGeneratorSpec>(json).unwrap(),
            spec
        );
    }

    #[test]
    fn selector_and_template_rules() {
        let spec: HostnameGeneratorSpec =
            serde_yaml::from_str("template: \"{{ .Name }}_bad\"").unwrap();
        let got = violations(&spec);
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "spec.selector",
                    "exact one selector (meshService, meshExternalService) must be defined"
                ),
                (
                    "spec.template",
                    r#"template renders to "name_bad" which is not a valid DNS name"#
                ),
            ]
        );
    }
}
