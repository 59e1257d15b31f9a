//! MeshService: a service's ports and the proxies that serve it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinds::selector::LabelSelector;
use crate::kinds::tags::{SUPPORTED_PROTOCOLS, is_supported_protocol};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<Identity>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_ref: Option<DataplaneRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_labels: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A port number or a named port of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u32),
    Name(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<TargetPort>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_protocol: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub value: String,
}

impl Port {
    /// `appProtocol`, `tcp` when unset.
    pub fn protocol(&self) -> &str {
        if self.app_protocol.is_empty() {
            "tcp"
        } else {
            &self.app_protocol
        }
    }

    /// The port's name, or its number when unnamed, as Kuma refers to it.
    pub fn section_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.port.to_string())
    }
}

/// Kuma keeps MeshService names DNS-label sized.
pub const MAX_NAME_LENGTH: usize = 63;

impl Validate for MeshServiceSpec {
    fn validate(&self, ctx: &ValidationContext<'_>, v: &mut Violations) {
        if ctx.name.len() > MAX_NAME_LENGTH {
            v.add(
                &FieldPath::of("name"),
                format!("must not be longer than {MAX_NAME_LENGTH} characters"),
            );
        }
        let spec = FieldPath::of("spec");
        if let Some(s) = &self.selector {
            let set = [
                s.dataplane_tags.is_some(),
                s.dataplane_ref.is_some(),
                s.dataplane_labels.is_some(),
            ];
            if set.iter().filter(|x| **x).count() > 1 {
                v.add(
                    &spec.field("selector"),
                    "must specify only one of: dataplaneTags, dataplaneRef, or dataplaneLabels",
                );
            }
        }
        if let Some(state) = &self.state
            && !matches!(state.as_str(), "Available" | "Unavailable")
        {
            v.add(
                &spec.field("state"),
                r#""state" must be one of ["Available", "Unavailable"]"#,
            );
        }
        for (i, p) in self.ports.iter().enumerate() {
            let pp = spec.field("ports").index(i);
            crate::kinds::address::validate_port(&pp.field("port"), p.port, v);
            if let Some(TargetPort::Number(n)) = p.target_port {
                crate::kinds::address::validate_port(&pp.field("targetPort"), n, v);
            }
            if !p.app_protocol.is_empty() && !is_supported_protocol(&p.app_protocol) {
                v.add(
                    &pp.field("appProtocol"),
                    format!(
                        "appProtocol must be one of: {}",
                        SUPPORTED_PROTOCOLS.join(", ")
                    ),
                );
            }
        }
        for (i, id) in self.identities.iter().flatten().enumerate() {
            if !matches!(id.type_.as_str(), "ServiceTag" | "SpiffeID") {
                v.add(
                    &spec.field("identities").index(i).field("type"),
                    r#""type" must be one of ["ServiceTag", "SpiffeID"]"#,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{Kind, Spec};

    const DOCS: &str = r#"
selector:
  dataplaneTags:
    app: redis
    k8s.kuma.io/namespace: kuma-demo
ports:
  - port: 6739
    targetPort: 6739
    appProtocol: tcp
  - name: some-port
    port: 16739
    targetPort: target-port-from-container
    appProtocol: http
"#;

    fn violations(spec: &MeshServiceSpec, name: &str) -> Vec<(String, String)> {
        crate::validation::violations_of(spec, name, Some("default"))
    }

    #[test]
    fn docs_example_parses_validates_and_round_trips() {
        let spec: MeshServiceSpec = serde_yaml::from_str(DOCS).unwrap();
        assert_eq!(violations(&spec, "redis"), vec![]);
        assert_eq!(
            spec.ports[1].target_port,
            Some(TargetPort::Name("target-port-from-container".into()))
        );
        assert_eq!(spec.ports[0].section_name(), "6739");
        let json = Spec::MeshService(spec.clone()).to_json();
        assert_eq!(
            Spec::from_json(Kind::MeshService, json).unwrap(),
            Spec::MeshService(spec)
        );
    }

    #[test]
    fn several_violations() {
        let spec: MeshServiceSpec = serde_yaml::from_str(
            r#"
state: Gone
selector: {dataplaneTags: {app: a}, dataplaneRef: {name: dp}}
ports: [{port: 0, appProtocol: mongo}]
"#,
        )
        .unwrap();
        let got = violations(&spec, &"x".repeat(64));
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("name", "must not be longer than 63 characters"),
                (
                    "spec.selector",
                    "must specify only one of: dataplaneTags, dataplaneRef, or dataplaneLabels"
                ),
                (
                    "spec.state",
                    r#""state" must be one of ["Available", "Unavailable"]"#
                ),
                ("spec.ports[0].port", "port must be in the range [1, 65535]"),
                (
                    "spec.ports[0].appProtocol",
                    "appProtocol must be one of: grpc, http, http2, kafka, tcp"
                ),
            ]
        );
    }
}
