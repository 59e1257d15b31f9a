//! MeshExternalService: a destination outside the mesh, reached through it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kinds::address::{is_dns_name, is_ip, must_be_one_of};
use crate::kinds::data_source::SecureDataSource;
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshExternalServiceSpec {
    #[serde(rename = "match", default)]
    pub match_: Match,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<Endpoint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub protocol: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<TlsVersion>,
    #[serde(default)]
    pub allow_renegotiation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<SanMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<SecureDataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<SecureDataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<SecureDataSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanMatch {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub value: String,
}

const MATCH_PROTOCOLS: &[&str] = &["tcp", "grpc", "http", "http2"];
const TLS_VERSIONS: &[&str] = &["TLSAuto", "TLS10", "TLS11", "TLS12", "TLS13"];

impl Validate for MeshExternalServiceSpec {
    fn validate(&self, ctx: &ValidationContext<'_>, v: &mut Violations) {
        if ctx.name.len() > 63 {
            v.add(
                &FieldPath::of("name"),
                "must not be longer than 63 characters",
            );
        }
        let spec = FieldPath::of("spec");
        let m = spec.field("match");
        if !self.match_.type_.is_empty() && self.match_.type_ != "HostnameGenerator" {
            v.add(
                &m.field("type"),
                format!(
                    "unrecognized type '{}' - only 'HostnameGenerator' is supported",
                    self.match_.type_
                ),
            );
        }
        if self.match_.port == 0 || self.match_.port > 65535 {
            v.add(&m.field("port"), "port must be a valid (1-65535)");
        }
        if !MATCH_PROTOCOLS.contains(&self.match_.protocol.as_str()) {
            v.add(
                &m.field("protocol"),
                must_be_one_of("protocol", MATCH_PROTOCOLS),
            );
        }
        match &self.extension {
            Some(ext) => {
                if ext.type_.is_empty() {
                    v.add(&spec.field("extension").field("type"), "must not be empty");
                }
            }
            None => {
                for (i, e) in self.endpoints.iter().flatten().enumerate() {
                    let ep = spec.field("endpoints").index(i);
                    if !is_ip(&e.address) && !is_dns_name(&e.address) {
                        v.add(
                            &ep.field("address"),
                            "address has to be a valid IP or hostname",
                        );
                    } else if e.port == 0 || e.port > 65535 {
                        v.add(&ep.field("port"), "port must be a valid (1-65535)");
                    }
                }
                if let Some(tls) = &self.tls {
                    validate_tls(tls, &spec.field("tls"), v);
                }
            }
        }
    }
}

fn validate_tls(tls: &Tls, path: &FieldPath, v: &mut Violations) {
    if let Some(version) = &tls.version {
        for (field, value) in [("min", &version.min), ("max", &version.max)] {
            if let Some(value) = value
                && !TLS_VERSIONS.contains(&value.as_str())
            {
                v.add(
                    &path.field("version").field(field),
                    must_be_one_of(field, TLS_VERSIONS),
                );
            }
        }
    }
    let Some(ver) = &tls.verification else { return };
    let vp = path.field("verification");
    if let Some(sn) = &ver.server_name
        && !is_dns_name(sn)
    {
        v.add(&vp.field("serverName"), "must be a valid DNS name");
    }
    let modes = ["SkipSAN", "SkipCA", "SkipAll", "Secured"];
    if !ver.mode.is_empty() && !modes.contains(&ver.mode.as_str()) {
        v.add(&vp.field("mode"), must_be_one_of("mode", &modes));
    }
    for (i, san) in ver.subject_alt_names.iter().flatten().enumerate() {
        if !matches!(san.type_.as_str(), "Prefix" | "Exact") {
            v.add(
                &vp.field("subjectAltNames").index(i).field("type"),
                must_be_one_of("type", &["Prefix", "Exact"]),
            );
        }
    }
    match (&ver.client_cert, &ver.client_key) {
        (Some(_), None) => v.add(
            &vp.field("clientKey"),
            "must be defined when clientCert is defined",
        ),
        (None, Some(_)) => v.add(
            &vp.field("clientCert"),
            "must be defined when clientKey is defined",
        ),
        _ => {}
    }
    for (field, source) in [
        ("caCert", &ver.ca_cert),
        ("clientCert", &ver.client_cert),
        ("clientKey", &ver.client_key),
    ] {
        if let Some(s) = source {
            s.validate(&vp.field(field), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(yaml: &str) -> Vec<(String, String)> {
        crate::validation::yaml_violations::<MeshExternalServiceSpec>(
            yaml,
            "example",
            Some("default"),
        )
    }

    #[test]
    fn docs_example_is_valid() {
        let got = violations(
            r#"
match:
  type: HostnameGenerator
  port: 443
  protocol: http
endpoints:
  - address: example.com
    port: 443
tls:
  enabled: true
  version: {min: TLS12, max: TLS13}
  verification:
    mode: Secured
    serverName: example.com
    subjectAltNames: [{type: Exact, value: example.com}]
"#,
        );
        assert_eq!(got, vec![]);
    }

    #[test]
    fn several_violations() {
        let got = violations(
            r#"
match: {type: Other, port: 0, protocol: kafka}
endpoints: [{address: "a b", port: 1}, {address: 1.1.1.1, port: 0}]
tls:
  verification: {mode: Trust, clientCert: {type: EnvVar, envVar: {name: C}}}
"#,
        );
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "spec.match.type",
                    "unrecognized type 'Other' - only 'HostnameGenerator' is supported"
                ),
                ("spec.match.port", "port must be a valid (1-65535)"),
                (
                    "spec.match.protocol",
                    r#""protocol" must be one of ["tcp", "grpc", "http", "http2"]"#
                ),
                (
                    "spec.endpoints[0].address",
                    "address has to be a valid IP or hostname"
                ),
                ("spec.endpoints[1].port", "port must be a valid (1-65535)"),
                (
                    "spec.tls.verification.mode",
                    r#""mode" must be one of ["SkipSAN", "SkipCA", "SkipAll", "Secured"]"#
                ),
                (
                    "spec.tls.verification.clientKey",
                    "must be defined when clientCert is defined"
                ),
            ]
        );
    }
}
