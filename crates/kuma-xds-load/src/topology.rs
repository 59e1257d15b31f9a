//! The mesh the load generator builds: who serves which service, who calls
//! whom, and the Dataplane resources that say so.
//!
//! Proxy `i` serves `svc-(i mod S)` and declares outbounds to the next
//! [`OUTBOUNDS`] services, plus one to [`MESH_WIDE_SERVICE`], which nobody
//! serves until the mesh-wide-endpoint scenario starts an instance of it.
//! Each outbound's cluster is named after its service.

use serde_json::{Value, json};

/// Declared outbounds to other services per proxy.
pub const OUTBOUNDS: u32 = 3;

/// A service every proxy declares an outbound to and nobody serves at
/// first: an instance of it appearing is a change every proxy receives.
pub const MESH_WIDE_SERVICE: &str = "mesh-wide";

/// Port of the outbound to [`MESH_WIDE_SERVICE`]; the others follow it.
pub const FIRST_OUTBOUND_PORT: u32 = 10000;

/// Inbound port of every simulated workload.
pub const INBOUND_PORT: u32 = 8080;

/// The shape of the simulated mesh.
#[derive(Debug, Clone)]
pub struct Topology {
    pub mesh: String,
    pub proxies: u32,
    pub services: u32,
}

/// One declared outbound of a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub port: u32,
    pub service: String,
}

impl Topology {
    pub fn proxy_name(&self, i: u32) -> String {
        format!("dp-{i}")
    }

    /// Envoy's node id for proxy `i`: `<mesh>.<name>`.
    pub fn node_id(&self, i: u32) -> String {
        format!("{}.{}", self.mesh, self.proxy_name(i))
    }

    pub fn service_name(&self, s: u32) -> String {
        format!("svc-{s}")
    }

    /// The service proxy `i` serves.
    pub fn service_of(&self, i: u32) -> u32 {
        i % self.services
    }

    /// A distinct address per proxy in 10.0.0.0/8.
    pub fn address(&self, i: u32) -> String {
        let n = i + 1;
        format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
    }

    pub fn outbounds(&self, i: u32) -> Vec<Outbound> {
        let own = self.service_of(i);
        let mut out = vec![Outbound {
            port: FIRST_OUTBOUND_PORT,
            service: MESH_WIDE_SERVICE.to_string(),
        }];
        for k in 1..=OUTBOUNDS {
            out.push(Outbound {
                port: FIRST_OUTBOUND_PORT + k,
                service: self.service_name((own + k) % self.services),
            });
        }
        out
    }

    /// Whether proxy `i` declares an outbound to `service`.
    pub fn calls(&self, i: u32, service: &str) -> bool {
        self.outbounds(i).iter().any(|o| o.service == service)
    }

    /// Ports of proxy `i`'s outbounds to `service` (empty when it does not call it).
    pub fn outbound_ports_to(&self, i: u32, service: &str) -> Vec<u32> {
        self.outbounds(i)
            .into_iter()
            .filter(|o| o.service == service)
            .map(|o| o.port)
            .collect()
    }

    /// Listeners a converged proxy holds: its inbound and every outbound.
    pub fn expected_listeners(&self) -> usize {
        1 + 1 + OUTBOUNDS as usize
    }

    /// The simulated proxy `i`'s Dataplane, its inbound speaking `protocol`.
    pub fn dataplane(&self, i: u32, protocol: &str) -> Value {
        let outbound: Vec<Value> = self
            .outbounds(i)
            .into_iter()
            .map(|o| json!({"port": o.port, "tags": {"kuma.io/service": o.service}}))
            .collect();
        json!({
            "type": "Dataplane", "mesh": self.mesh, "name": self.proxy_name(i),
            "networking": {
                "address": self.address(i),
                "inbound": [{
                    "port": INBOUND_PORT, "servicePort": 18080,
                    "tags": {"kuma.io/service": self.service_name(self.service_of(i)), "kuma.io/protocol": protocol},
                }],
                "outbound": outbound,
            }
        })
    }

    /// A Dataplane with no simulated proxy behind it: one more endpoint of `service`.
    pub fn extra_dataplane(&self, name: &str, address: &str, service: &str) -> Value {
        json!({
            "type": "Dataplane", "mesh": self.mesh, "name": name,
            "networking": {
                "address": address,
                "inbound": [{
                    "port": INBOUND_PORT, "servicePort": 18080,
                    "tags": {"kuma.io/service": service, "kuma.io/protocol": "tcp"},
                }],
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_topology(proxies: u32, services: u32) -> Topology {
        Topology {
            mesh: "m".into(),
            proxies,
            services,
        }
    }

    #[test]
    fn every_proxy_calls_the_next_services_and_the_mesh_wide_one() {
        let t = mk_topology(10, 5);
        let services: Vec<String> = t.outbounds(4).into_iter().map(|o| o.service).collect();
        assert_eq!(services, ["mesh-wide", "svc-0", "svc-1", "svc-2"]);
        assert_eq!(t.outbound_ports_to(4, "svc-1"), [10002]);
        assert!(t.outbound_ports_to(0, "svc-0").is_empty());
        assert_eq!(t.outbound_ports_to(0, MESH_WIDE_SERVICE), [10000]);
        assert!(t.calls(4, "svc-0") && t.calls(0, MESH_WIDE_SERVICE));
        assert!(!t.calls(0, "svc-0"));
    }

    #[test]
    fn addresses_are_distinct() {
        let t = mk_topology(70_000, 10);
        let a: std::collections::BTreeSet<String> = (0..70_000).map(|i| t.address(i)).collect();
        assert_eq!(a.len(), 70_000);
        assert_eq!(t.address(0), "10.0.0.1");
        assert_eq!(t.address(255), "10.0.1.0");
    }

    #[test]
    fn dataplane_declares_inbound_and_outbounds() {
        let t = mk_topology(4, 2);
        let dp = t.dataplane(1, "http");
        assert_eq!(
            dp["networking"]["inbound"][0]["tags"]["kuma.io/service"],
            "svc-1"
        );
        assert_eq!(
            dp["networking"]["inbound"][0]["tags"]["kuma.io/protocol"],
            "http"
        );
        assert_eq!(dp["networking"]["outbound"].as_array().unwrap().len(), 4);
    }
}
