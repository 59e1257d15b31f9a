//! Kuma's rules for a Dataplane. Paths start at the document root
//! (`networking.inbound[0].port`), as Dataplane is written inline.

use std::collections::BTreeMap;

use super::{
    DataplaneSpec, Gateway, Inbound, LOOPBACK_IPV4, Networking, Outbound, Probes, ServiceProbe,
    TransparentProxying,
};
use crate::duration::parse_proto_duration;
use crate::kinds::address::{is_ip, is_rfc1123_subdomain, validate_port, validate_proxy_address};
use crate::kinds::dataplane::ListenerType;
use crate::kinds::mesh::validate_prometheus;
use crate::kinds::tags::{
    PROTOCOL_TAG, SERVICE_TAG, SUPPORTED_PROTOCOLS, TagRules, allowed_values_hint,
    is_supported_protocol, validate_tags,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

/// Kinds an outbound `backendRef` may point at, sorted as Kuma lists them.
const BACKEND_KINDS: &[&str] = &["MeshExternalService", "MeshMultiZoneService", "MeshService"];

impl Validate for DataplaneSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let net = FieldPath::of("networking");
        let Some(networking) = &self.networking else {
            v.add(&net, "must be defined");
            return;
        };
        if let Some(admin) = &networking.admin {
            let p = net.field("admin").field("port");
            if uses_inbound_port(networking, LOOPBACK_IPV4, admin.port) {
                v.add(&p, "must differ from inbound");
            }
            if uses_outbound_port(networking, LOOPBACK_IPV4, admin.port) {
                v.add(&p, "must differ from outbound");
            }
        }
        if self.is_delegated_gateway() {
            if !networking.inbound.is_empty() {
                v.add(
                    &net.field("inbound"),
                    "inbound cannot be defined for delegated gateways",
                );
            }
            if !networking.listeners.is_empty() {
                v.add(
                    &net.field("listeners"),
                    "listeners cannot be defined for delegated gateways",
                );
            }
            validate_gateway(networking.gateway.as_ref(), &net.field("gateway"), v);
            validate_networking(networking, &net, v);
            validate_probes(self.probes.as_ref(), v);
        } else if self.is_builtin_gateway() {
            if !networking.inbound.is_empty() {
                v.add(
                    &net.field("inbound"),
                    "inbound cannot be defined for builtin gateways",
                );
            }
            if !networking.outbound.is_empty() {
                v.add(
                    &net.field("outbound"),
                    "outbound cannot be defined for builtin gateways",
                );
            }
            if !networking.listeners.is_empty() {
                v.add(
                    &net.field("listeners"),
                    "listeners cannot be defined for builtin gateways",
                );
            }
            if self.probes.is_some() {
                v.add(
                    &net.field("probes"),
                    "probes cannot be defined for builtin gateways",
                );
            }
            validate_gateway(networking.gateway.as_ref(), &net.field("gateway"), v);
            validate_networking(networking, &net, v);
        } else {
            validate_networking(networking, &net, v);
            validate_probes(self.probes.as_ref(), v);
            if let Some(metrics) = &self.metrics {
                let p = FieldPath::of("metrics");
                if metrics.type_ == "prometheus" {
                    validate_prometheus(metrics.conf.as_ref(), &p.field("conf"), v);
                } else {
                    v.add(
                        &p.field("type"),
                        r#"unknown backend type. Available backends: "prometheus""#,
                    );
                }
            }
            validate_listeners(networking, &net.field("listeners"), v);
        }
    }
}

/// Whether `address:port` is taken by an inbound, on Envoy's side or the workload's.
fn uses_inbound_port(n: &Networking, address: &str, port: u32) -> bool {
    let overlaps = |a: &str| a == address || a == "0.0.0.0" || a == "::";
    n.inbound.iter().any(|i| {
        (overlaps(i.dataplane_address(&n.address)) && i.port == port)
            || (overlaps(i.workload_address()) && i.workload_port() == port)
    })
}

fn uses_outbound_port(n: &Networking, address: &str, port: u32) -> bool {
    n.outbound
        .iter()
        .any(|o| (o.address() == address || o.address() == "0.0.0.0") && o.port == port)
}

fn validate_networking(n: &Networking, path: &FieldPath, v: &mut Violations) {
    validate_proxy_address(&path.field("address"), &n.address, v);
    for (i, inbound) in n.inbound.iter().enumerate() {
        let p = path.field("inbound").index(i);
        validate_inbound(inbound, &n.address, &p, v);
        // Inbounds without tags are allowed (Kuma's tag-less inbound mode);
        // tagged ones must name their service.
        if !inbound.tags.is_empty() && !inbound.tags.contains_key(SERVICE_TAG) {
            v.add(&p.field("tags").key(SERVICE_TAG), "tag has to exist");
        }
    }
    for (i, outbound) in n.outbound.iter().enumerate() {
        validate_outbound(outbound, &path.field("outbound").index(i), v);
    }
    if let Some(tp) = &n.transparent_proxying {
        validate_transparent_proxying(tp, &path.field("transparentProxying"), v);
    }
}

fn protocol_message(prefix: &str, value: &str) -> String {
    format!(
        "{prefix}has an invalid value {value:?}. {}",
        allowed_values_hint(SUPPORTED_PROTOCOLS)
    )
}

fn validate_inbound(inbound: &Inbound, dp_address: &str, path: &FieldPath, v: &mut Violations) {
    validate_port(&path.field("port"), inbound.port, v);
    if inbound.service_port != 0 {
        validate_port(&path.field("servicePort"), inbound.service_port, v);
    }
    let same_port = inbound.service_port == 0 || inbound.service_port == inbound.port;
    let collision = "serviceAddress and servicePort has to differ from address and port";
    if !inbound.service_address.is_empty() {
        if !is_ip(&inbound.service_address) {
            v.add(
                &path.field("serviceAddress"),
                "serviceAddress has to be valid IP address",
            );
        }
        if inbound.service_address == dp_address && same_port {
            v.add(&path.field("serviceAddress"), collision);
        }
    }
    if !inbound.address.is_empty() {
        if !is_ip(&inbound.address) {
            v.add(&path.field("address"), "address has to be valid IP address");
        }
        if inbound.address == inbound.service_address && same_port {
            v.add(&path.field("serviceAddress"), collision);
        }
    }
    let tags_path = path.field("tags");
    if let Some(p) = inbound.tags.get(PROTOCOL_TAG)
        && !is_supported_protocol(&p.to_ascii_lowercase())
    {
        v.add(
            &tags_path.key(PROTOCOL_TAG),
            protocol_message(&format!("tag {PROTOCOL_TAG:?} "), p),
        );
    }
    validate_tags(&tags_path, &inbound.tags, TagRules::default(), v);
    if !inbound.protocol.is_empty()
        && !is_supported_protocol(&inbound.protocol.to_ascii_lowercase())
    {
        v.add(
            &path.field("protocol"),
            protocol_message("", &inbound.protocol),
        );
    }
    if let Some(probe) = &inbound.service_probe {
        validate_service_probe(probe, &path.field("serviceProbe"), v);
    }
}

fn validate_service_probe(probe: &ServiceProbe, path: &FieldPath, v: &mut Violations) {
    for (field, value) in [("interval", &probe.interval), ("timeout", &probe.timeout)] {
        let Some(value) = value else { continue };
        match parse_proto_duration(value) {
            Err(_) => v.add(&path.field(field), "must have a valid value"),
            Ok(d) if d.is_zero() => v.add(&path.field(field), "must have a positive value"),
            Ok(_) => {}
        }
    }
    for (field, value) in [
        ("unhealthyThreshold", probe.unhealthy_threshold),
        ("healthyThreshold", probe.healthy_threshold),
    ] {
        if value == Some(0) {
            v.add(&path.field(field), "must have a positive value");
        }
    }
}

fn validate_outbound(outbound: &Outbound, path: &FieldPath, v: &mut Violations) {
    validate_port(&path.field("port"), outbound.port, v);
    if !outbound.address.is_empty() && !is_ip(&outbound.address) {
        v.add(&path.field("address"), "address has to be valid IP address");
    }
    if let Some(backend) = &outbound.backend_ref {
        let bp = path.field("backendRef");
        if !BACKEND_KINDS.contains(&backend.kind.as_str()) {
            v.add(
                &bp.field("kind"),
                format!(
                    "invalid value. Available values are: {}",
                    BACKEND_KINDS.join(",")
                ),
            );
        }
        if backend.name.is_empty() && backend.labels.is_empty() {
            v.add(&bp, "either 'name' or 'labels' should be specified");
        }
        // A MeshExternalService's port comes from its endpoints.
        if backend.kind != "MeshExternalService" {
            validate_port(&bp.field("port"), backend.port, v);
        }
        if !outbound.tags.is_empty() {
            v.add(&bp, "both backendRef and tags/service cannot be defined");
        }
    } else if outbound.tags.is_empty() {
        v.add(
            &path.field("tags"),
            format!("mandatory tag {SERVICE_TAG:?} is missing"),
        );
    } else {
        let rules = TagRules {
            require_service: true,
            ..Default::default()
        };
        validate_tags(&path.field("tags"), &outbound.tags, rules, v);
    }
}

fn validate_transparent_proxying(tp: &TransparentProxying, path: &FieldPath, v: &mut Violations) {
    for (field, port) in [
        ("redirectPortInbound", tp.redirect_port_inbound),
        ("redirectPortOutbound", tp.redirect_port_outbound),
    ] {
        if port > 65535 {
            v.add(
                &path.field(field),
                "value must be less than or equal to 65535",
            );
        }
    }
    let Some(reachable) = &tp.reachable_backends else {
        return;
    };
    let refs = path.field("reachableBackends").field("refs");
    for (i, r) in reachable.refs.iter().enumerate() {
        let p = refs.index(i);
        if !BACKEND_KINDS.contains(&r.kind.as_str()) {
            v.add(
                &p.field("kind"),
                format!(
                    "invalid value. Available values are: {}",
                    BACKEND_KINDS.join(",")
                ),
            );
        }
        if !r.name.is_empty() && !is_rfc1123_subdomain(&r.name) {
            v.add(
                &p.field("name"),
                "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
        if r.name.is_empty() && r.namespace.is_empty() && r.labels.is_empty() {
            v.add(&p.field("name"), "name or labels are required");
        }
        if r.name.is_empty() && !r.namespace.is_empty() {
            v.add(
                &p.field("name"),
                "name is required, when namespace is defined",
            );
        }
        if (!r.name.is_empty() || !r.namespace.is_empty()) && !r.labels.is_empty() {
            v.add(
                &p.field("labels"),
                "labels cannot be defined when name is specified",
            );
        }
    }
}

fn validate_gateway(gateway: Option<&Gateway>, path: &FieldPath, v: &mut Violations) {
    let Some(gateway) = gateway else { return };
    let tags = path.field("tags");
    if let Some(p) = gateway.tags.get(PROTOCOL_TAG)
        && !p.eq_ignore_ascii_case("tcp")
    {
        v.add(
            &tags.key(PROTOCOL_TAG),
            format!("other values than tcp are not allowed, provided value {p:?}"),
        );
    }
    // Tag-less gateways are allowed; tagged ones must name their service.
    let rules = TagRules {
        require_service: !gateway.tags.is_empty(),
        ..Default::default()
    };
    validate_tags(&tags, &gateway.tags, rules, v);
}

fn validate_probes(probes: Option<&Probes>, v: &mut Violations) {
    let Some(probes) = probes else { return };
    let path = FieldPath::of("probes");
    validate_port(&path.field("port"), probes.port, v);
    for (i, e) in probes.endpoints.iter().enumerate() {
        let p = path.field("endpoints").index(i);
        validate_port(&p.field("inboundPort"), e.inbound_port, v);
        for (field, value) in [("inboundPath", &e.inbound_path), ("path", &e.path)] {
            if !is_request_uri(value) {
                v.add(&p.field(field), "should be a valid URL Path");
            }
        }
    }
}

/// An absolute path (`/healthz`) or an absolute URL, as a request line allows.
fn is_request_uri(s: &str) -> bool {
    if s.contains(char::is_whitespace) {
        return false;
    }
    s.starts_with('/')
        || s.split_once("://")
            .is_some_and(|(scheme, _)| !scheme.is_empty())
}

fn validate_listeners(n: &Networking, path: &FieldPath, v: &mut Violations) {
    let mut names: Vec<&str> = n
        .inbound
        .iter()
        .map(|i| i.name.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let mut taken: BTreeMap<String, Option<ListenerType>> = BTreeMap::new();
    for (i, l) in n.listeners.iter().enumerate() {
        let p = path.index(i);
        let ty = l.type_.unwrap_or(ListenerType::Unspecified);
        if ty == ListenerType::Unspecified {
            v.add(&p.field("type"), "type must be ZoneIngress or ZoneEgress");
        }
        validate_proxy_address(&p.field("address"), &l.address, v);
        validate_port(&p.field("port"), l.port, v);
        if !l.name.is_empty() {
            if names.contains(&l.name.as_str()) {
                v.add(
                    &p.field("name"),
                    format!(
                        "name {:?} must be unique across inbounds and listeners",
                        l.name
                    ),
                );
            }
            names.push(&l.name);
        }
        let key = format!("{}:{}", l.address, l.port);
        match taken.get(&key) {
            Some(existing) if *existing == l.type_ => v.add(
                &p,
                format!("address:port {key} is already used by another listener"),
            ),
            Some(_) => v.add(
                &p,
                format!("address:port {key} is used by listeners of different types"),
            ),
            None => {
                taken.insert(key.clone(), l.type_);
            }
        }
        let collides = n
            .inbound
            .iter()
            .any(|i| format!("{}:{}", i.dataplane_address(&n.address), i.port) == key);
        if collides {
            v.add(
                &p,
                format!("address:port {key} collides with an inbound listener"),
            );
        }
    }
}
