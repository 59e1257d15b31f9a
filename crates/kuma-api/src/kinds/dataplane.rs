//! Dataplane: one proxy, its address, the services it serves (inbounds) and
//! consumes (outbounds), or the gateway it runs.

mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds::proto_enum::proto_enum;
use crate::kinds::tags::{PROTOCOL_TAG, SERVICE_TAG};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataplaneSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Probes>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(
        default,
        alias = "advertised_address",
        skip_serializing_if = "String::is_empty"
    )]
    pub advertised_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<Inbound>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<Outbound>,
    #[serde(
        default,
        alias = "transparent_proxying",
        skip_serializing_if = "Option::is_none"
    )]
    pub transparent_proxying: Option<TransparentProxying>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<EnvoyAdmin>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
}

proto_enum! {
    /// Whether an inbound receives traffic.
    InboundState { Ready("Ready", 0), NotReady("NotReady", 1), Ignored("Ignored", 2) }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inbound {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, alias = "service_port", skip_serializing_if = "is_zero")]
    pub service_port: u32,
    #[serde(
        default,
        alias = "service_address",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(
        default,
        alias = "service_probe",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_probe: Option<ServiceProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InboundState>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub ready: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProbe {
    /// Protobuf duration (`"10s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(
        default,
        alias = "unhealthy_threshold",
        skip_serializing_if = "Option::is_none"
    )]
    pub unhealthy_threshold: Option<u32>,
    #[serde(
        default,
        alias = "healthy_threshold",
        skip_serializing_if = "Option::is_none"
    )]
    pub healthy_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outbound {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(
        default,
        alias = "backend_ref",
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_ref: Option<BackendRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

proto_enum! {
    /// A delegated gateway is a third-party proxy; a builtin one is Kuma's own.
    GatewayType { Delegated("DELEGATED", 0), Builtin("BUILTIN", 1) }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<GatewayType>,
}

proto_enum! {
    IpFamilyMode {
        Unspecified("UnSpecified", 0),
        DualStack("DualStack", 1),
        IPv4("IPv4", 2),
        IPv6("IPv6", 3),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparentProxying {
    #[serde(
        default,
        alias = "redirect_port_inbound",
        skip_serializing_if = "is_zero"
    )]
    pub redirect_port_inbound: u32,
    #[serde(
        default,
        alias = "redirect_port_outbound",
        skip_serializing_if = "is_zero"
    )]
    pub redirect_port_outbound: u32,
    #[serde(
        default,
        alias = "direct_access_services",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub direct_access_services: Vec<String>,
    #[serde(
        default,
        alias = "reachable_services",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reachable_services: Vec<String>,
    #[serde(
        default,
        alias = "ip_family_mode",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_family_mode: Option<IpFamilyMode>,
    #[serde(
        default,
        alias = "reachable_backends",
        skip_serializing_if = "Option::is_none"
    )]
    pub reachable_backends: Option<ReachableBackends>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachableBackends {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<ReachableBackendRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachableBackendRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvoyAdmin {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
}

proto_enum! {
    ListenerType { Unspecified("Unspecified", 0), ZoneIngress("ZoneIngress", 1), ZoneEgress("ZoneEgress", 2) }
}

proto_enum! {
    ListenerState { Ready("Ready", 0), NotReady("NotReady", 1) }
}

/// An extra ZoneIngress/ZoneEgress listener run by this proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ListenerType>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ListenerState>,
}

/// A proxy's own metrics backend, overriding the mesh's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsBackend {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probes {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<ProbeEndpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeEndpoint {
    #[serde(default, alias = "inbound_port", skip_serializing_if = "is_zero")]
    pub inbound_port: u32,
    #[serde(
        default,
        alias = "inbound_path",
        skip_serializing_if = "String::is_empty"
    )]
    pub inbound_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Loopback address the workload listens on unless `serviceAddress` says otherwise.
pub const LOOPBACK_IPV4: &str = "127.0.0.1";

impl DataplaneSpec {
    pub fn gateway_type(&self) -> Option<GatewayType> {
        let gw = self.networking.as_ref()?.gateway.as_ref()?;
        Some(gw.type_.unwrap_or(GatewayType::Delegated))
    }

    pub fn is_delegated_gateway(&self) -> bool {
        self.gateway_type() == Some(GatewayType::Delegated)
    }

    pub fn is_builtin_gateway(&self) -> bool {
        self.gateway_type() == Some(GatewayType::Builtin)
    }

    pub fn inbounds(&self) -> &[Inbound] {
        self.networking.as_ref().map_or(&[], |n| &n.inbound)
    }

    pub fn outbounds(&self) -> &[Outbound] {
        self.networking.as_ref().map_or(&[], |n| &n.outbound)
    }

    pub fn address(&self) -> &str {
        self.networking.as_ref().map_or("", |n| &n.address)
    }

    /// The service this proxy represents: the gateway's, else the first inbound's.
    pub fn service_tag(&self) -> Option<&str> {
        let networking = self.networking.as_ref()?;
        if let Some(gw) = &networking.gateway {
            return gw.tags.get(SERVICE_TAG).map(String::as_str);
        }
        networking
            .inbound
            .iter()
            .find_map(|i| i.tags.get(SERVICE_TAG))
            .map(String::as_str)
    }

    /// Every distinct `kuma.io/service` this proxy serves, in inbound order.
    pub fn service_tags(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let gateway = self.networking.as_ref().and_then(|n| n.gateway.as_ref());
        let tag_sets = gateway
            .map(|g| &g.tags)
            .into_iter()
            .chain(self.inbounds().iter().map(|i| &i.tags));
        for tags in tag_sets {
            if let Some(s) = tags.get(SERVICE_TAG)
                && !out.contains(&s.as_str())
            {
                out.push(s);
            }
        }
        out
    }

    /// Envoy admin port, if the proxy sets one.
    pub fn admin_port(&self) -> Option<u32> {
        self.networking
            .as_ref()
            .and_then(|n| n.admin.as_ref())
            .map(|a| a.port)
            .filter(|p| *p != 0)
    }

    pub fn transparent_proxying(&self) -> Option<&TransparentProxying> {
        self.networking
            .as_ref()
            .and_then(|n| n.transparent_proxying.as_ref())
    }
}

impl Inbound {
    /// `protocol`, else the `kuma.io/protocol` tag, else `tcp`.
    pub fn protocol(&self) -> &str {
        if !self.protocol.is_empty() {
            return &self.protocol;
        }
        self.tags.get(PROTOCOL_TAG).map_or("tcp", String::as_str)
    }

    pub fn service_tag(&self) -> Option<&str> {
        self.tags.get(SERVICE_TAG).map(String::as_str)
    }

    /// Address Envoy listens on for this inbound.
    pub fn dataplane_address<'a>(&'a self, networking_address: &'a str) -> &'a str {
        if self.address.is_empty() {
            networking_address
        } else {
            &self.address
        }
    }

    /// Address of the workload behind the inbound.
    pub fn workload_address(&self) -> &str {
        if self.service_address.is_empty() {
            LOOPBACK_IPV4
        } else {
            &self.service_address
        }
    }

    /// Port of the workload behind the inbound (`servicePort`, else `port`).
    pub fn workload_port(&self) -> u32 {
        if self.service_port == 0 {
            self.port
        } else {
            self.service_port
        }
    }

    pub fn state(&self) -> InboundState {
        self.state.unwrap_or(InboundState::Ready)
    }

    /// Whether traffic should reach this inbound (state and health both agree).
    pub fn is_ready(&self) -> bool {
        self.state() == InboundState::Ready && self.health.as_ref().is_none_or(|h| h.ready)
    }
}

impl Outbound {
    /// The `kuma.io/service` this outbound reaches, for tag-based outbounds.
    pub fn service(&self) -> Option<&str> {
        self.tags.get(SERVICE_TAG).map(String::as_str)
    }

    /// Address the outbound listens on; loopback unless set.
    pub fn address(&self) -> &str {
        if self.address.is_empty() {
            LOOPBACK_IPV4
        } else {
            &self.address
        }
    }
}

#[cfg(test)]
mod tests;
