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
    }
}
