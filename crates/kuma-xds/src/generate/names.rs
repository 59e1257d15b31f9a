//! Envoy resource names, spelled as Kuma spells them so that dashboards,
//! stats and `config_dump` habits carry over.

/// `inbound:<address>:<port>`.
pub fn inbound_listener(address: &str, port: u32) -> String {
    format!("inbound:{address}:{port}")
}

/// `localhost:<servicePort>`: the cluster of the workload behind an inbound.
pub fn inbound_cluster(service_port: u32) -> String {
    format!("localhost:{service_port}")
}

/// `inbound:<service>`.
pub fn inbound_route(service: &str) -> String {
    format!("inbound:{service}")
}

/// `outbound:<address>:<port>`.
pub fn outbound_listener(address: &str, port: u32) -> String {
    format!("outbound:{address}:{port}")
}

/// `outbound:<cluster>`.
pub fn outbound_route(cluster: &str) -> String {
    format!("outbound:{cluster}")
}

/// Cluster (and ClusterLoadAssignment) of a MeshService port:
/// `<mesh>_<name>_<namespace>_<zone>_msvc_<port>`. Universal single-zone
/// MeshServices have neither namespace nor zone, hence `default_backend___msvc_80`.
pub fn mesh_service_cluster(mesh: &str, name: &str, port: u32) -> String {
    format!("{mesh}_{name}___msvc_{port}")
}

/// SDS secret of the proxy's identity certificate: `identity_cert:secret:<mesh>`.
pub fn identity_secret(mesh: &str) -> String {
    format!("identity_cert:secret:{mesh}")
}

/// SDS secret of the CA(s) a mesh's proxies trust: `mesh_ca:secret:<mesh>`.
pub fn mesh_ca_secret(mesh: &str) -> String {
    format!("mesh_ca:secret:{mesh}")
}

/// SPIFFE identity of a service: `spiffe://<mesh>/<service>`.
pub fn spiffe_id(mesh: &str, service: &str) -> String {
    format!("spiffe://{mesh}/{service}")
}

/// URI SAN carrying one of a proxy's tags: `kuma://<key>/<value>`.
pub fn tag_uri(key: &str, value: &str) -> String {
    format!("kuma://{key}/{value}")
}

/// SNI of an mTLS connection to a service: `<service>{mesh=<mesh>}`.
pub fn sni(service: &str, mesh: &str) -> String {
    format!("{service}{{mesh={mesh}}}")
}

/// Stat prefixes may not contain `:` or `.` segments Envoy would split on.
pub fn stat_prefix(name: &str) -> String {
    name.chars()
        .map(|c| if c == ':' || c == '.' { '_' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kuma() {
        assert_eq!(inbound_listener("10.0.0.1", 8080), "inbound:10.0.0.1:8080");
        assert_eq!(inbound_cluster(8080), "localhost:8080");
        assert_eq!(
            outbound_listener("127.0.0.1", 10001),
            "outbound:127.0.0.1:10001"
        );
        assert_eq!(
            mesh_service_cluster("default", "backend", 80),
            "default_backend___msvc_80"
        );
        assert_eq!(stat_prefix("localhost:8080"), "localhost_8080");
        assert_eq!(identity_secret("default"), "identity_cert:secret:default");
        assert_eq!(mesh_ca_secret("default"), "mesh_ca:secret:default");
        assert_eq!(spiffe_id("default", "web"), "spiffe://default/web");
        assert_eq!(tag_uri("version", "v1"), "kuma://version/v1");
        assert_eq!(sni("backend", "default"), "backend{mesh=default}");
    }
}
