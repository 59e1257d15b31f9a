//! MeshPassthrough: which external destinations bypass the mesh.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kinds::address::must_be_one_of;

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

/// The protocols an `appendMatch` entry may name.
pub const PROTOCOLS: [&str; 6] = ["tcp", "tls", "grpc", "http", "http2", "mysql"];

/// Protocols matched by the Host header (HTTP sniffing) rather than by SNI or
/// address.
pub const L7_PROTOCOLS: [&str; 3] = ["http", "http2", "grpc"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshPassthroughSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Conf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    /// `All`, `Matched` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_match: Option<Vec<Match>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// `Domain`, `IP` or `CIDR`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// `tcp`, `tls`, `grpc`, `http`, `http2` or `mysql`.
    #[serde(default)]
    pub protocol: String,
}

impl Validate for MeshPassthroughSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[K::Mesh, K::MeshSubset, K::Dataplane]).check(
                top,
                &spec.field("targetRef"),
                v,
            );
        }
        let path = spec.field("default").field("appendMatch");
        let matches = self
            .default
            .as_ref()
            .and_then(|d| d.append_match.as_deref())
            .unwrap_or_default();
        // Envoy tells HTTP/1.1, HTTP/2 and gRPC apart on one port only by
        // sniffing, which cannot separate them: one L7 protocol per port.
        let mut l7_by_port: BTreeMap<u32, &str> = BTreeMap::new();
        let mut seen: BTreeSet<(u32, &str, &str)> = BTreeSet::new();
        for (i, m) in matches.iter().enumerate() {
            let mp = path.index(i);
            if !PROTOCOLS.contains(&m.protocol.as_str()) {
                v.add(
                    &mp.field("protocol"),
                    must_be_one_of("protocol", &PROTOCOLS),
                );
            }
            if let Some(port) = m.port {
                // Two equal filter chain matches make Envoy refuse the listener.
                if !seen.insert((port, m.protocol.as_str(), m.value.as_str())) {
                    v.add(
                        &mp.field("value"),
                        format!(
                            "value {} is already defiend for this port and protocol",
                            m.value
                        ),
                    );
                }
            }
            if L7_PROTOCOLS.contains(&m.protocol.as_str()) {
                let port = m.port.unwrap_or(0);
                match l7_by_port.get(&port) {
                    Some(other) if *other != m.protocol => v.add(
                        &mp.field("protocol"),
                        format!("you cannot configure http, http2, grpc on the same port {port}"),
                    ),
                    Some(_) => {}
                    None => {
                        l7_by_port.insert(port, m.protocol.as_str());
                    }
                }
            }
            match m.port {
                None if m.protocol == "mysql" => {
                    v.add(&mp.field("port"), "port must be defined for Mysql protocol")
                }
                Some(p) if p == 0 || p > 65535 => {
                    v.add(&mp.field("port"), "port must be a valid (1-65535)")
                }
                _ => {}
            }
            match m.kind.as_str() {
                "CIDR" if !is_cidr(&m.value) => v.add(&mp.field("value"), "provided CIDR has incorrect value"),
                "IP" if m.value.parse::<std::net::IpAddr>().is_err() => {
                    v.add(&mp.field("value"), "provided IP has incorrect value")
                }
                "Domain" => check_domain(m, &mp, v),
                "CIDR" | "IP" => {}
                other => v.add(
                    &mp.field("type"),
                    format!("provided type {other} is not supported, one of Domain, IP, or CIDR is supported"),
                ),
            }
        }
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

fn check_domain(m: &Match, path: &FieldPath, v: &mut Violations) {
    // Domains are matched by SNI or Host header, so raw TCP cannot use them.
    if matches!(m.protocol.as_str(), "tcp" | "mysql") {
        v.add(
            &path.field("protocol"),
            format!("protocol {} is not supported for a domain", m.protocol),
        );
    }
    let (wildcard, rest) = match m.value.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, m.value.as_str()),
    };
    if rest.contains('*') {
        v.add(
            &path.field("value"),
            "provided DNS has incorrect value, partial wildcard is currently not supported",
        );
        return;
    }
    if wildcard && m.port.is_none() && matches!(m.protocol.as_str(), "http" | "http2" | "grpc") {
        v.add(
            &path.field("port"),
            "wildcard domains doesn't work for all ports and layer 7 protocol",
        );
    }
    let valid = !rest.is_empty()
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid {
        v.add(&path.field("value"), "provided DNS has incorrect value");
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshPassthrough
name: passthrough
mesh: default
spec:
  targetRef:
    kind: Mesh
  default:
    passthroughMode: Matched
    appendMatch:
      - type: Domain
        value: httpbin.org
        protocol: tls
        port: 443
      - type: IP
        value: 10.240.15.39
        protocol: tcp
        port: 8888
      - type: CIDR
        value: 10.250.0.0/16
        protocol: tcp
        port: 10000
      - type: Domain
        value: "*.wikipedia.org"
        protocol: tls
        port: 443
"#,
        );
    }

    #[test]
    fn refuses_unknown_protocols_duplicates_and_mixed_l7_protocols_on_a_port() {
        let got = violations(
            r#"
type: MeshPassthrough
name: bad
mesh: default
spec:
  default:
    appendMatch:
      - type: Domain
        value: api.example.com
        protocol: http
        port: 80
      - type: Domain
        value: api.example.com
        protocol: http
        port: 80
      - type: Domain
        value: grpc.example.com
        protocol: grpc
        port: 80
      - type: IP
        value: 10.0.0.1
        protocol: udp
        port: 53
      - type: Domain
        value: other.example.com
        protocol: http
        port: 8080
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.default.appendMatch[1].value",
                    "value api.example.com is already defiend for this port and protocol"
                ),
                (
                    "spec.default.appendMatch[2].protocol",
                    "you cannot configure http, http2, grpc on the same port 80"
                ),
                (
                    "spec.default.appendMatch[3].protocol",
                    r#""protocol" must be one of ["tcp", "tls", "grpc", "http", "http2", "mysql"]"#
                ),
            ]
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshPassthrough
name: bad
mesh: default
spec:
  default:
    appendMatch:
      - type: IP
        value: 10.0.0
        protocol: mysql
      - type: CIDR
        value: 10.0.0.0/40
        protocol: tcp
        port: 70000
      - type: Domain
        value: "a.*.com"
        protocol: tls
      - type: Host
        value: x
        protocol: tcp
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.default.appendMatch[0].port",
                    "port must be defined for Mysql protocol"
                ),
                (
                    "spec.default.appendMatch[0].value",
                    "provided IP has incorrect value"
                ),
                (
                    "spec.default.appendMatch[1].port",
                    "port must be a valid (1-65535)"
                ),
                (
                    "spec.default.appendMatch[1].value",
                    "provided CIDR has incorrect value"
                ),
                (
                    "spec.default.appendMatch[2].value",
                    "provided DNS has incorrect value, partial wildcard is currently not supported"
                ),
                (
                    "spec.default.appendMatch[3].type",
                    "provided type Host is not supported, one of Domain, IP, or CIDR is supported"
                ),
            ]
        );
    }
}
