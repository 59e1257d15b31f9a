//! MeshTCPRoute: where a TCP outbound's connections go.
//!
//! The first rule's backendRefs become the TCP proxy's cluster, or weighted
//! clusters when there are several. Which cluster a backendRef leads to is
//! the outbound's business (it may have to create it).

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use kuma_api::Kind;
use kuma_api::policies::mesh_tcp_route::Conf;

use super::DestinationPolicies;
use super::mesh_http_route::Split;

impl DestinationPolicies {
    /// The destination's folded MeshTCPRoute, if a route aims at it.
    pub(crate) fn tcp_route(&self) -> Option<std::sync::Arc<Conf>> {
        self.confs.get(Kind::MeshTCPRoute)
    }
}

/// Sends the proxy's connections to `split` (left as it is when empty:
/// nothing routable was named, the destination keeps its traffic).
pub(crate) fn split(tcp: &mut TcpProxy, split: &[Split]) {
    let specifier = match split {
        [] => return,
        [one] => tcp_proxy::ClusterSpecifier::Cluster(one.cluster.clone()),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(|s| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: s.cluster.clone(),
                    weight: s.weight,
                    ..tcp_proxy::weighted_cluster::ClusterWeight::default()
                })
                .collect(),
        }),
    };
    tcp.cluster_specifier = Some(specifier);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::listener::tcp_proxy_config;

    #[test]
    fn one_backend_is_a_cluster_several_are_weighted() {
        let mut tcp = tcp_proxy_config("db", "db");
        split(&mut tcp, &[]);
        assert_eq!(
            tcp.cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster("db".into()))
        );
        let s = |c: &str, w| Split {
            cluster: c.into(),
            weight: w,
        };
        split(&mut tcp, &[s("db-v2", 1)]);
        assert_eq!(
            tcp.cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster("db-v2".into()))
        );
        split(&mut tcp, &[s("db-v1", 90), s("db-v2", 10)]);
        let Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) = &tcp.cluster_specifier else {
            panic!("weighted clusters expected");
        };
        let got: Vec<(&str, u32)> = w
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect();
        assert_eq!(got, [("db-v1", 90), ("db-v2", 10)]);
    }
}
