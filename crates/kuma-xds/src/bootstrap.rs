//! Envoy v3 bootstrap for a data plane proxy: who it is, where its admin
//! interface listens, and how it reaches the control plane's ADS server.
//!
//! Built as JSON in Envoy's proto-JSON field names (Envoy reads JSON and
//! YAML bootstrap files alike), so kuma-dp can write it to disk unchanged.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

/// Name of the cluster that leads to the control plane.
pub const ADS_CLUSTER: &str = "ads_cluster";

/// Which flavour of the aggregated discovery service the proxy speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdsMode {
    /// Incremental xDS: only changed resources travel. Envoy's and our default.
    #[default]
    Delta,
    /// State of the world, for clients that cannot do delta.
    StateOfTheWorld,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapParams {
    pub mesh: String,
    /// Dataplane name; with the mesh it makes the node id `<mesh>.<name>`.
    pub name: String,
    /// The proxy's service (`kuma.io/service`), Envoy's node cluster.
    pub service: String,
    pub admin_address: String,
    pub admin_port: u16,
    pub xds_host: String,
    pub xds_port: u16,
    /// PEM of the CA that signed the control plane's certificate. `None`
    /// speaks plaintext, which only tests on loopback should want.
    pub ca_cert_pem: Option<String>,
    /// Dataplane token, sent on the ADS stream as `authorization: Bearer ..`.
    pub dataplane_token: Option<String>,
    pub ads_mode: AdsMode,
    /// Seconds Envoy drains listeners before it stops (`--drain-time-s`).
    pub drain_time_seconds: u32,
    /// Worker threads (`--concurrency`); `None` lets Envoy use every core.
    pub concurrency: Option<u32>,
    /// Extra node metadata (kuma-dp version, features, the Dataplane itself...).
    pub metadata: Map<String, Value>,
}

impl BootstrapParams {
    /// Defaults as Kuma's: admin on 127.0.0.1:9901, data plane server on 5678, delta ADS.
    pub fn new(mesh: &str, name: &str, service: &str, xds_host: &str) -> Self {
        Self {
            mesh: mesh.to_string(),
            name: name.to_string(),
            service: service.to_string(),
            admin_address: "127.0.0.1".to_string(),
            admin_port: 9901,
            xds_host: xds_host.to_string(),
            xds_port: 5678,
            ca_cert_pem: None,
            dataplane_token: None,
            ads_mode: AdsMode::Delta,
            drain_time_seconds: 30,
            concurrency: None,
            metadata: Map::new(),
        }
    }

    pub fn node_id(&self) -> String {
        format!("{}.{}", self.mesh, self.name)
    }

    /// Envoy command-line flags that belong with this bootstrap: drain and
    /// concurrency are not bootstrap fields in Envoy.
    pub fn envoy_args(&self) -> Vec<String> {
        let mut args = vec![
            "--drain-time-s".to_string(),
            self.drain_time_seconds.to_string(),
            // Several proxies share a host; hot restart would make them share memory.
            "--disable-hot-restart".to_string(),
        ];
        if let Some(c) = self.concurrency {
            args.extend(["--concurrency".to_string(), c.to_string()]);
        }
        args
    }
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

fn ads_source() -> Value {
    json!({ "ads": {}, "resource_api_version": "V3" })
}

fn xds_cluster(p: &BootstrapParams) -> Value {
    let host_is_ip = p.xds_host.parse::<IpAddr>().is_ok();
    let mut cluster = json!({
        "name": ADS_CLUSTER,
        "type": if host_is_ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADS_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": socket_address(&p.xds_host, p.xds_port)
            }}]}]
        },
        // gRPC needs HTTP/2; without it Envoy never opens the stream.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": { "keepalive_time": 300 }
        }
    });
    if let Some(ca) = &p.ca_cert_pem {
        // The control plane's certificate must chain to the CA and name the
        // host the proxy dials.
        let san_type = if host_is_ip { "IP_ADDRESS" } else { "DNS" };
        cluster["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": p.xds_host,
                "common_tls_context": {
                    "tls_params": { "tls_minimum_protocol_version": "TLSv1_2" },
                    "alpn_protocols": ["h2"],
                    "validation_context": {
                        "trusted_ca": { "inline_string": ca },
                        "match_typed_subject_alt_names": [{
                            "san_type": san_type,
                            "matcher": { "exact": p.xds_host }
                        }]
                    }
                }
            }
        });
    }
    cluster
}

/// The Envoy bootstrap for `params`.
pub fn bootstrap(params: &BootstrapParams) -> Value {
    let api_type = match params.ads_mode {
        AdsMode::Delta => "DELTA_GRPC",
        AdsMode::StateOfTheWorld => "GRPC",
    };
    let mut grpc_service = json!({ "envoy_grpc": { "cluster_name": ADS_CLUSTER } });
    if let Some(token) = &params.dataplane_token {
        grpc_service["initial_metadata"] = json!([{
            "key": "authorization",
            "value": format!("Bearer {token}")
        }]);
    }
    json!({
        "node": {
            "id": params.node_id(),
            "cluster": params.service,
            "metadata": Value::Object(params.metadata.clone())
        },
        "admin": {
            "address": socket_address(&params.admin_address, params.admin_port)
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [grpc_service]
            },
            "cds_config": ads_source(),
            "lds_config": ads_source()
        },
        "static_resources": {
            "clusters": [xds_cluster(params)]
        }
    })
}

#[cfg(test)]
mod tests;
