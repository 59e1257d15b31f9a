//! MeshOpenTelemetryBackend: a shared OTLP collector endpoint for observability policies.

use serde::{Deserialize, Serialize};

use crate::kinds::address::{is_dns_name, is_ip, must_be_one_of, validate_port};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshOpenTelemetryBackendSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvPolicy {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub precedence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_signal_overrides: Option<bool>,
}

impl MeshOpenTelemetryBackendSpec {
    /// `grpc` unless set.
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("grpc")
    }
}

impl Validate for MeshOpenTelemetryBackendSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let protocol = self.protocol();
        if let Some(e) = &self.endpoint {
            let ep = spec.field("endpoint");
            match e.address.as_deref() {
                Some("") => v.add(&ep.field("address"), "must not be empty"),
                Some(a) if !is_ip(a) && !is_dns_name(a) => v.add(
                    &ep.field("address"),
                    "address has to be a valid IP or hostname",
                ),
                _ => {}
            }
            if let Some(port) = e.port {
                validate_port(&ep.field("port"), port, v);
            }
            if let Some(path) = e.path.as_deref().filter(|p| !p.is_empty()) {
                let pp = ep.field("path");
                if protocol == "grpc" || protocol.is_empty() {
                    v.add(&pp, "must not be set when protocol is grpc");
                } else {
                    if !path.starts_with('/') {
                        v.add(&pp, "must start with /");
                    }
                    if path.contains(['?', '#']) {
                        v.add(&pp, "must not contain query or fragment");
                    }
                }
            }
        }
        if !protocol.is_empty() && !matches!(protocol, "grpc" | "http") {
            v.add(
                &spec.field("protocol"),
                must_be_one_of("protocol", &["grpc", "http"]),
            );
        }
        if let Some(env) = &self.env {
            let modes = ["Disabled", "Optional", "Required"];
            if !env.mode.is_empty() && !modes.contains(&env.mode.as_str()) {
                v.add(
                    &spec.field("env").field("mode"),
                    must_be_one_of("mode", &modes),
                );
            }
            let precedences = ["ExplicitFirst", "EnvFirst"];
            if !env.precedence.is_empty() && !precedences.contains(&env.precedence.as_str()) {
                v.add(
                    &spec.field("env").field("precedence"),
                    must_be_one_of("precedence", &precedences),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_protocol_and_env_rules() {
        let ctx = ValidationContext {
            name: "otel",
            mesh: Some("default"),
        };
        let ok: MeshOpenTelemetryBackendSpec = serde_yaml::from_str(
            "endpoint: {address: otel-collector.observability, port: 4317}\nprotocol: grpc",
        )
        .unwrap();
        let mut v = Violations::new();
        ok.validate(&ctx, &mut v);
        assert!(v.is_empty());
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            serde_json::from_value::<MeshOpenTelemetryBackendSpec>(json).unwrap(),
            ok
        );

        let bad: MeshOpenTelemetryBackendSpec = serde_yaml::from_str(
            "endpoint: {address: 'a b', port: 0, path: /v1}\nenv: {mode: Always}",
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
                    "spec.endpoint.address",
                    "address has to be a valid IP or hostname"
                ),
                ("spec.endpoint.port", "port must be in the range [1, 65535]"),
                (
                    "spec.endpoint.path",
                    "must not be set when protocol is grpc"
                ),
                (
                    "spec.env.mode",
                    r#""mode" must be one of ["Disabled", "Optional", "Required"]"#
                ),
            ]
        );
    }
}
