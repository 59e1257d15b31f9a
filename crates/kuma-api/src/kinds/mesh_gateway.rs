//! MeshGateway: listeners of Kuma's builtin gateway, bound to gateway Dataplanes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kinds::address::{validate_gateway_hostname, validate_port};
use crate::kinds::data_source::DataSource;
use crate::kinds::proto_enum::proto_enum;
use crate::kinds::tags::{
    EXTERNAL_SERVICE_TAG, PROTOCOL_TAG, SERVICE_TAG, TagRules, ZONE_TAG, validate_selector,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

/// `{match: {kuma.io/service: edge}}`, the older kinds' proxy selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(rename = "match", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshGatewaySpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Selector>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Conf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
}

proto_enum! {
    ListenerProtocol { None("NONE", 0), Tcp("TCP", 1), Tls("TLS", 3), Http("HTTP", 4), Https("HTTPS", 5) }
}

proto_enum! {
    TlsMode { None("NONE", 0), Terminate("TERMINATE", 1), Passthrough("PASSTHROUGH", 2) }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ListenerProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConf>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cross_mesh: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, alias = "connection_limit", skip_serializing_if = "is_zero")]
    pub connection_limit: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Tags describing what a Dataplane is; a gateway may not claim them.
const RESERVED_KEYS: &[&str] = &[EXTERNAL_SERVICE_TAG, PROTOCOL_TAG, SERVICE_TAG, ZONE_TAG];

impl Listener {
    pub fn protocol(&self) -> ListenerProtocol {
        self.protocol.unwrap_or(ListenerProtocol::None)
    }

    /// An empty hostname matches every host, like `*`.
    pub fn hostname(&self) -> &str {
        if self.hostname.is_empty() {
            "*"
        } else {
            &self.hostname
        }
    }
}

impl Validate for MeshGatewaySpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let cross_mesh = self
            .conf
            .as_ref()
            .is_some_and(|c| c.listeners.iter().any(|l| l.cross_mesh));
        let selectors = FieldPath::of("selectors");
        if self.selectors.is_empty() {
            v.add(&selectors, "must have at least one element");
        }
        let rules = TagRules {
            require_at_least_one: true,
            require_service: true,
            ..Default::default()
        };
        for (i, s) in self.selectors.iter().enumerate() {
            validate_selector(&selectors.index(i).field("match"), &s.match_, rules, v);
            if i > 0 && cross_mesh {
                v.add(&selectors.index(i), "there can be at most one selector");
            }
        }
        let reserved = TagRules {
            forbidden_keys: RESERVED_KEYS,
            ..Default::default()
        };
        validate_selector(&FieldPath::of("tags"), &self.tags, reserved, v);
        let Some(conf) = &self.conf else {
            v.add(&FieldPath::of("conf"), "cannot be empty");
            return;
        };
        let path = FieldPath::of("conf").field("listeners");
        if conf.listeners.is_empty() {
            v.add(&path, "cannot be empty");
        }
        for (i, l) in conf.listeners.iter().enumerate() {
            validate_listener(l, &path.index(i), v);
            validate_selector(&path.index(i).field("tags"), &l.tags, reserved, v);
        }
        validate_collapsibility(&conf.listeners, &path, v);
    }
}

fn validate_listener(l: &Listener, path: &FieldPath, v: &mut Violations) {
    if !l.hostname.is_empty() {
        validate_gateway_hostname(&path.field("hostname"), &l.hostname, v);
    }
    validate_port(&path.field("port"), l.port, v);
    match l.protocol() {
        ListenerProtocol::None => v.add(&path.field("protocol"), "cannot be empty"),
        ListenerProtocol::Https => {
            if l.cross_mesh {
                v.add(
                    &path.field("protocol"),
                    "protocol is not supported with crossMesh",
                );
            } else if let Some(tls) = &l.tls {
                if tls.mode == Some(TlsMode::Passthrough) {
                    v.add(
                        &path.field("tls").field("mode"),
                        "mode is not supported on HTTPS listeners",
                    );
                }
            } else {
                v.add(&path.field("tls"), "cannot be empty");
            }
        }
        _ => {}
    }
    let Some(tls) = &l.tls else { return };
    let mode = tls.mode.unwrap_or(TlsMode::None);
    if l.cross_mesh {
        if mode != TlsMode::None || !tls.certificates.is_empty() {
            v.add(&path.field("tls"), "must be empty with crossMesh");
        }
        return;
    }
    match mode {
        TlsMode::None => v.add(&path.field("tls").field("mode"), "cannot be empty"),
        TlsMode::Terminate => match tls.certificates.len() {
            0 => v.add(
                &path.field("tls").field("certificates"),
                "cannot be empty in TLS termination mode",
            ),
            1 | 2 => {}
            _ => v.add(
                &path.field("tls").field("certificates"),
                "cannot have more than 2 certificates",
            ),
        },
        TlsMode::Passthrough => {}
    }
}

/// Listeners sharing a port must agree on protocol, differ in hostname and
/// agree on a connection limit, because they become one Envoy listener.
fn validate_collapsibility(listeners: &[Listener], path: &FieldPath, v: &mut Violations) {
    let mut by_port: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        by_port.entry(l.port).or_default().push(i);
    }
    for indexes in by_port.values() {
        let protocols: BTreeSet<&str> = indexes
            .iter()
            .map(|i| listeners[*i].protocol().as_str())
            .collect();
        if protocols.len() > 1 {
            for i in indexes {
                v.add(
                    &path.index(*i),
                    "protocol conflicts with other listeners on this port",
                );
            }
        }
        let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for i in indexes {
            by_host
                .entry(listeners[*i].hostname())
                .or_default()
                .push(*i);
        }
        for same in by_host.values().filter(|s| s.len() > 1) {
            for i in same {
                v.add(
                    &path.index(*i),
                    "multiple listeners for hostname on this port",
                );
            }
        }
        let limited: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|i| {
                listeners[*i]
                    .resources
                    .as_ref()
                    .is_some_and(|r| r.connection_limit != 0)
            })
            .collect();
        let limits: BTreeSet<u32> = limited
            .iter()
            .filter_map(|i| listeners[*i].resources.as_ref().map(|r| r.connection_limit))
            .collect();
        if limits.len() > 1 {
            for i in limited {
                v.add(
                    &path.index(i).field("resources").field("connectionLimit"),
                    "conflicting values for this port",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(yaml: &str) -> Vec<(String, String)> {
        crate::validation::yaml_violations::<MeshGatewaySpec>(yaml, "edge-gateway", Some("default"))
    }

    #[test]
    fn docs_example_is_valid() {
        let got = violations(
            r#"
selectors:
  - match:
      kuma.io/service: edge-gateway
conf:
  listeners:
    - port: 8080
      protocol: HTTP
      hostname: foo.example.com
      tags:
        port: http/8080
    - port: 8443
      protocol: HTTPS
      tls:
        mode: TERMINATE
        certificates:
          - secret: example-com-certificate
"#,
        );
        assert_eq!(got, vec![]);
    }

    #[test]
    fn several_violations() {
        let got = violations(
            r#"
selectors: [{match: {app: x}}]
tags: {kuma.io/service: x}
conf:
  listeners:
    - port: 80
      protocol: HTTP
    - port: 80
      protocol: TCP
    - port: 443
      protocol: HTTPS
"#,
        );
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "selectors[0].match",
                    r#"mandatory tag "kuma.io/service" is missing"#
                ),
                (
                    r#"tags["kuma.io/service"]"#,
                    r#"tag name must not be "kuma.io/service""#
                ),
                ("conf.listeners[2].tls", "cannot be empty"),
                (
                    "conf.listeners[0]",
                    "protocol conflicts with other listeners on this port"
                ),
                (
                    "conf.listeners[1]",
                    "protocol conflicts with other listeners on this port"
                ),
                (
                    "conf.listeners[0]",
                    "multiple listeners for hostname on this port"
                ),
                (
                    "conf.listeners[1]",
                    "multiple listeners for hostname on this port"
                ),
            ]
        );
    }
}
