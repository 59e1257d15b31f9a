//! The mesh the generation benchmark builds: `services` services with
//! `instances` Dataplanes each (every instance declares outbounds to the
//! next [`OUTBOUNDS`] services), one transparent-proxy Dataplane that may
//! reach every service, and optionally targetRef policies of mixed kinds.
//! Every resource goes through kuma-api's parsing and validation, as an
//! applied one would.

use anyhow::Context;
use kuma_api::Resource;
use kuma_api::resource::ResourceDocument;
use serde_json::{Value, json};

pub const MESH: &str = "bench";
/// The Dataplane whose configuration covers every service.
pub const ALL_SERVICES_PROXY: &str = "all-services";
/// Declared outbounds per service instance.
pub const OUTBOUNDS: u32 = 3;

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub services: u32,
    pub instances: u32,
    pub policies: u32,
}

pub fn service(s: u32) -> String {
    format!("svc-{s}")
}

pub fn instance(s: u32, i: u32) -> String {
    format!("svc-{s}-{i}")
}

/// A distinct address per counter in the given /8.
fn address(first_octet: u8, n: u32) -> String {
    let n = n + 1;
    format!(
        "{first_octet}.{}.{}.{}",
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

/// The instances that declare an outbound to service `s`.
pub fn callers(shape: Shape, s: u32) -> Vec<String> {
    let mut out = Vec::new();
    for k in 1..=OUTBOUNDS.min(shape.services.saturating_sub(1)) {
        let caller = (s + shape.services - k) % shape.services;
        for i in 0..shape.instances {
            out.push(instance(caller, i));
        }
    }
    out
}

fn protocol(s: u32) -> &'static str {
    // Half HTTP (listeners with the HTTP connection manager), half TCP.
    if s.is_multiple_of(2) { "http" } else { "tcp" }
}

fn instance_doc(shape: Shape, s: u32, i: u32) -> Value {
    let outbound: Vec<Value> = (1..=OUTBOUNDS.min(shape.services.saturating_sub(1)))
        .map(|k| {
            json!({"port": 10000 + k,
                   "tags": {"kuma.io/service": service((s + k) % shape.services)}})
        })
        .collect();
    json!({
        "type": "Dataplane", "mesh": MESH, "name": instance(s, i),
        "networking": {
            "address": address(10, s * shape.instances + i),
            "inbound": [{"port": 8080, "servicePort": 18080,
                         "tags": {"kuma.io/service": service(s), "kuma.io/protocol": protocol(s)}}],
            "outbound": outbound,
        }
    })
}

fn all_services_doc() -> Value {
    json!({
        "type": "Dataplane", "mesh": MESH, "name": ALL_SERVICES_PROXY,
        "networking": {
            "address": "10.255.255.254",
            "inbound": [{"port": 8080, "servicePort": 18080,
                         "tags": {"kuma.io/service": "client", "kuma.io/protocol": "http"}}],
            "transparentProxying": {"redirectPortInbound": 15006, "redirectPortOutbound": 15001},
        }
    })
}

/// The address of extra instance `n`.
pub fn extra_address(n: u32) -> String {
    address(192, n)
}

/// One more instance of service `s`: an endpoint change for its callers.
pub fn extra_instance(n: u32, s: u32) -> anyhow::Result<Resource> {
    resource(json!({
        "type": "Dataplane", "mesh": MESH, "name": format!("extra-{n}"),
        "networking": {
            "address": extra_address(n),
            "inbound": [{"port": 8080, "servicePort": 18080,
                         "tags": {"kuma.io/service": service(s), "kuma.io/protocol": protocol(s)}}],
        }
    }))
}

/// Policy number `n` of six kinds in turn, each aimed at other services.
/// MeshHTTPRoutes come from even services (HTTP ones when there are an
/// even number of services) and aim at HTTP services, so that their route
/// tables are built.
pub fn policy_doc(shape: Shape, n: u32) -> Value {
    let from = service(n % shape.services);
    let to = service((n + 1) % shape.services);
    let name = format!("policy-{n}");
    let subset = json!({"kind": "MeshSubset", "tags": {"kuma.io/service": from}});
    let to_ref = json!({"kind": "MeshService", "name": to});
    let (kind, spec) = match n % 6 {
        0 => (
            "MeshTrafficPermission",
            json!({"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": to}},
                   "from": [{"targetRef": subset, "default": {"action": "Allow"}}]}),
        ),
        1 => (
            "MeshTimeout",
            json!({"targetRef": subset,
                   "to": [{"targetRef": to_ref, "default": {"connectionTimeout": "2s",
                           "idleTimeout": "20s", "http": {"requestTimeout": "5s"}}}]}),
        ),
        2 => (
            "MeshRetry",
            json!({"targetRef": {"kind": "Mesh"},
                   "to": [{"targetRef": to_ref, "default": {"tcp": {"maxConnectAttempt": 3},
                           "http": {"numRetries": 2}}}]}),
        ),
        3 => (
            "MeshCircuitBreaker",
            json!({"targetRef": subset,
                   "to": [{"targetRef": to_ref, "default": {"connectionLimits": {
                           "maxConnections": 100, "maxPendingRequests": 50}}}]}),
        ),
        4 => {
            // Routes apply to HTTP destinations only: aimed two services on
            // (HTTP like the `from` one, and among its outbounds), with a
            // tenth of the traffic to an HTTP service it does not declare.
            let to = service((n + 2) % shape.services);
            let canary = service((n + 4) % shape.services);
            (
                "MeshHTTPRoute",
                json!({"targetRef": subset,
                       "to": [{"targetRef": {"kind": "MeshService", "name": to}, "rules": [{
                           "matches": [{"path": {"type": "PathPrefix", "value": format!("/v{n}")}}],
                           "default": {"backendRefs": [
                               {"kind": "MeshService", "name": to, "weight": 90},
                               {"kind": "MeshService", "name": canary, "weight": 10}]}}]}]}),
            )
        }
        _ => (
            "MeshHealthCheck",
            json!({"targetRef": {"kind": "Mesh"},
                   "to": [{"targetRef": to_ref, "default": {"interval": "10s", "timeout": "2s",
                           "unhealthyThreshold": 3, "healthyThreshold": 1,
                           "http": {"path": "/health"}}}]}),
        ),
    };
    json!({"type": kind, "mesh": MESH, "name": name, "spec": spec})
}

/// The name of the mesh-wide MeshTimeout [`mesh_wide_timeout`] writes.
pub const MESH_WIDE_TIMEOUT: &str = "bench-mesh-wide-timeout";

/// A MeshTimeout for every proxy and every destination (`targetRef: Mesh`
/// both), connecting with a timeout of `millis`: a policy change that
/// reaches every proxy of the mesh.
pub fn mesh_wide_timeout(millis: u64) -> anyhow::Result<Resource> {
    resource(json!({
        "type": "MeshTimeout", "mesh": MESH, "name": MESH_WIDE_TIMEOUT,
        "spec": {"targetRef": {"kind": "Mesh"},
                 "to": [{"targetRef": {"kind": "Mesh"},
                         "default": {"connectionTimeout": format!("{millis}ms")}}]}
    }))
}

fn resource(doc: Value) -> anyhow::Result<Resource> {
    let name = doc["name"].as_str().unwrap_or_default().to_string();
    let doc = ResourceDocument::from_json(doc).with_context(|| format!("reading {name}"))?;
    doc.validate()
        .with_context(|| format!("{name} is not valid"))?;
    Ok(doc.into_resource(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

/// Every resource of the benchmark mesh, validated.
pub fn build(shape: Shape) -> anyhow::Result<Vec<Resource>> {
    let mut out = vec![resource(json!({"type": "Mesh", "name": MESH}))?];
    for s in 0..shape.services {
        for i in 0..shape.instances {
            out.push(resource(instance_doc(shape, s, i))?);
        }
    }
    out.push(resource(all_services_doc())?);
    for n in 0..shape.policies {
        out.push(resource(policy_doc(shape, n))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_shape(services: u32, policies: u32) -> Shape {
        Shape {
            services,
            instances: 2,
            policies,
        }
    }

    #[test]
    fn every_policy_kind_is_valid() {
        let resources = build(mk_shape(10, 12)).expect("valid");
        let kinds: std::collections::BTreeSet<String> = resources
            .iter()
            .map(|r| format!("{:?}", r.kind()))
            .collect();
        assert_eq!(kinds.len(), 1 + 1 + 6, "{kinds:?}");
        assert_eq!(resources.len(), 1 + 20 + 1 + 12);
    }

    #[test]
    fn http_routes_are_built_and_reach_their_canary() {
        // Policy 4 routes svc-4's calls to svc-6, a tenth to svc-8, which
        // svc-4 does not declare: its cluster comes from the route.
        let shape = mk_shape(10, 12);
        let snapshot =
            kuma_xds::generate::MeshSnapshot::from_resources(MESH, build(shape).unwrap());
        let proxy = kuma_xds::generate::generate_proxy(&snapshot, &instance(4, 0)).unwrap();
        let clusters = &proxy.by_type[kuma_xds::type_url::CLUSTER];
        assert!(clusters.contains_key(&service(8)), "{:?}", clusters.keys());
        let unrouted = kuma_xds::generate::generate_proxy(&snapshot, &instance(5, 0)).unwrap();
        assert!(!unrouted.by_type[kuma_xds::type_url::CLUSTER].contains_key(&service(9)));
    }

    #[test]
    fn callers_are_the_instances_of_the_previous_services() {
        let shape = mk_shape(10, 0);
        assert_eq!(
            callers(shape, 1),
            [
                "svc-0-0", "svc-0-1", "svc-9-0", "svc-9-1", "svc-8-0", "svc-8-1"
            ]
        );
    }
}
