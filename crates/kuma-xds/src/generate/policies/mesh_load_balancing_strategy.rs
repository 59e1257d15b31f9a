//! MeshLoadBalancingStrategy: the cluster's load balancer and the routes'
//! hash policies.
//!
//! As Kuma applies a folded `to` conf: `loadBalancer.type` picks the
//! cluster's policy (RoundRobin, LeastRequest, RingHash, Random, Maglev)
//! with its settings; for RingHash and Maglev the hash policies go to every
//! route of the outbound listener (root-level `hashPolicies`, Kuma's form
//! for `to` entries aimed at a MeshHTTPRoute, take precedence and apply to
//! that route's rules only). Locality awareness (priorities by zone,
//! weights by affinity tags) shapes the proxy's load assignments
//! ([`locality`]); with affinity tags the cluster balances by locality
//! weights.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::{
    LocalityConfigSpecifier, LocalityWeightedLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    CommonLbConfig, LbConfig, LbPolicy, LeastRequestLbConfig, MaglevLbConfig, RingHashLbConfig,
    ring_hash_lb_config::HashFunction,
};
use envoy_types::pb::envoy::config::core::v3::RuntimeDouble;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route_action::{HashPolicy, hash_policy};
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};
use kuma_api::Kind;
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::tags::DEFAULT_ZONE;
use kuma_api::policies::mesh_load_balancing_strategy::{Conf, HashPolicy as KumaHashPolicy};

use super::DestinationPolicies;
use super::duration::proto;
use crate::generate::snapshot::MeshSnapshot;

mod locality;

pub(crate) use locality::{Localities, Locality, LocalityPlan};

impl DestinationPolicies {
    /// How `proxy`'s load assignment of this destination groups endpoints
    /// by locality (see [`locality`]); `None` when nothing asks for
    /// locality awareness (no MeshLoadBalancingStrategy for it, the Mesh's
    /// switch off), as for most destinations.
    pub(crate) fn locality_plan(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &DataplaneSpec,
    ) -> Option<LocalityPlan> {
        let mesh_aware = snapshot
            .mesh_spec()
            .is_some_and(|m| m.locality_aware_load_balancing());
        let conf: Option<std::sync::Arc<Conf>> = self.confs.get(Kind::MeshLoadBalancingStrategy);
        if conf.is_none() && !mesh_aware {
            return None;
        }
        Some(LocalityPlan::new(
            conf.as_deref(),
            proxy,
            DEFAULT_ZONE,
            mesh_aware,
        ))
    }
}

pub(crate) fn cluster(conf: &Conf, cluster: &mut Cluster) {
    if LocalityPlan::weighted(conf) {
        cluster
            .common_lb_config
            .get_or_insert_with(CommonLbConfig::default)
            .locality_config_specifier = Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            LocalityWeightedLbConfig::default(),
        ));
    }
    let Some(lb) = &conf.load_balancer else {
        return;
    };
    match lb.kind.as_str() {
        "RoundRobin" => cluster.lb_policy = LbPolicy::RoundRobin as i32,
        "Random" => cluster.lb_policy = LbPolicy::Random as i32,
        "LeastRequest" => {
            cluster.lb_policy = LbPolicy::LeastRequest as i32;
            let Some(lr) = &lb.least_request else { return };
            let config = LeastRequestLbConfig {
                choice_count: lr.choice_count.map(|value| UInt32Value { value }),
                active_request_bias: lr
                    .active_request_bias
                    .as_ref()
                    .and_then(|b| b.as_f64())
                    .map(|default_value| RuntimeDouble {
                        default_value,
                        runtime_key: String::new(),
                    }),
                ..LeastRequestLbConfig::default()
            };
            if config.choice_count.is_some() || config.active_request_bias.is_some() {
                cluster.lb_config = Some(LbConfig::LeastRequestLbConfig(config));
            }
        }
        "RingHash" => {
            cluster.lb_policy = LbPolicy::RingHash as i32;
            let Some(rh) = &lb.ring_hash else { return };
            let hash_function = match rh.hash_function.as_deref() {
                Some("MurmurHash2") => HashFunction::MurmurHash2,
                _ => HashFunction::XxHash,
            };
            cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: rh.min_ring_size.map(|n| UInt64Value { value: n.into() }),
                maximum_ring_size: rh.max_ring_size.map(|n| UInt64Value { value: n.into() }),
                hash_function: hash_function as i32,
            }));
        }
        "Maglev" => {
            cluster.lb_policy = LbPolicy::Maglev as i32;
            if let Some(size) = lb.maglev.as_ref().and_then(|m| m.table_size) {
                cluster.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                    table_size: Some(UInt64Value { value: size.into() }),
                }));
            }
        }
        _ => {}
    }
}

/// The hash policies the conf puts on routes, if any.
fn hash_policies(conf: &Conf) -> Option<&[KumaHashPolicy]> {
    if let Some(root) = &conf.hash_policies {
        return Some(root);
    }
    let lb = conf.load_balancer.as_ref()?;
    match lb.kind.as_str() {
        "RingHash" => lb.ring_hash.as_ref()?.hash_policies.as_deref(),
        "Maglev" => lb.maglev.as_ref()?.hash_policies.as_deref(),
        _ => None,
    }
}

pub(crate) fn routes(conf: &Conf, routes: &mut RouteConfiguration) {
    let Some(policies) = hash_policies(conf) else {
        return;
    };
    let policies: Vec<HashPolicy> = policies.iter().filter_map(hash_policy).collect();
    if policies.is_empty() {
        return;
    }
    let actions = super::route_actions(routes);
    // Set, not added to: a MeshHTTPRoute rule's own conf, applied after
    // the destination's, replaces the destination's hash policies.
    for action in actions {
        action.hash_policy = policies.clone();
    }
}

fn hash_policy(p: &KumaHashPolicy) -> Option<HashPolicy> {
    use hash_policy::PolicySpecifier as S;
    let specifier = match p.kind.as_str() {
        "Header" => S::Header(hash_policy::Header {
            header_name: p.header.as_ref()?.name.clone(),
            ..hash_policy::Header::default()
        }),
        "Cookie" => {
            let c = p.cookie.as_ref()?;
            S::Cookie(hash_policy::Cookie {
                name: c.name.clone(),
                ttl: c.ttl.as_ref().and_then(proto),
                path: c.path.clone().unwrap_or_default(),
                ..hash_policy::Cookie::default()
            })
        }
        "Connection" | "SourceIP" => S::ConnectionProperties(hash_policy::ConnectionProperties {
            source_ip: p.connection.as_ref()?.source_ip.unwrap_or_default(),
        }),
        "QueryParameter" => S::QueryParameter(hash_policy::QueryParameter {
            name: p.query_parameter.as_ref()?.name.clone(),
        }),
        "FilterState" => S::FilterState(hash_policy::FilterState {
            key: p.filter_state.as_ref()?.key.clone(),
        }),
        _ => return None,
    };
    Some(HashPolicy {
        policy_specifier: Some(specifier),
        terminal: p.terminal.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::cluster::eds_cluster;
    use crate::generate::listener::route_to_cluster;
    use crate::generate::snapshot::Protocol;
    use envoy_types::pb::envoy::config::route::v3::route;
    use kuma_api::policies::mesh_load_balancing_strategy::{
        LeastRequest, LoadBalancer, Maglev, Named, RingHash,
    };
    use kuma_api::policies::values::IntOrString;

    fn lb(kind: &str) -> LoadBalancer {
        LoadBalancer {
            kind: kind.to_string(),
            ..LoadBalancer::default()
        }
    }

    fn header(name: &str) -> KumaHashPolicy {
        KumaHashPolicy {
            kind: "Header".to_string(),
            header: Some(Named {
                name: name.to_string(),
            }),
            ..KumaHashPolicy::default()
        }
    }

    #[test]
    fn ring_hash_sets_cluster_and_route_hash_policies() {
        let conf = Conf {
            load_balancer: Some(LoadBalancer {
                ring_hash: Some(RingHash {
                    hash_function: Some("MurmurHash2".to_string()),
                    min_ring_size: Some(64),
                    max_ring_size: Some(1024),
                    hash_policies: Some(vec![header("x-user")]),
                }),
                ..lb("RingHash")
            }),
            ..Conf::default()
        };
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c);
        assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);
        let Some(LbConfig::RingHashLbConfig(rh)) = c.lb_config else {
            panic!("ring hash config expected");
        };
        assert_eq!(rh.hash_function, HashFunction::MurmurHash2 as i32);
        assert_eq!(rh.maximum_ring_size.map(|v| v.value), Some(1024));

        let mut r = route_to_cluster("r", "backend", "backend");
        routes(&conf, &mut r);
        let Some(route::Action::Route(action)) = &r.virtual_hosts[0].routes[0].action else {
            panic!("route action expected");
        };
        assert_eq!(action.hash_policy.len(), 1);
    }

    #[test]
    fn least_request_maglev_and_random() {
        let conf = Conf {
            load_balancer: Some(LoadBalancer {
                least_request: Some(LeastRequest {
                    choice_count: Some(3),
                    active_request_bias: Some(IntOrString::String("1.5".to_string())),
                }),
                ..lb("LeastRequest")
            }),
            ..Conf::default()
        };
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c);
        let Some(LbConfig::LeastRequestLbConfig(lr)) = &c.lb_config else {
            panic!("least request config expected");
        };
        assert_eq!(lr.choice_count.map(|v| v.value), Some(3));
        assert_eq!(
            lr.active_request_bias.as_ref().map(|b| b.default_value),
            Some(1.5)
        );

        let maglev = Conf {
            load_balancer: Some(LoadBalancer {
                maglev: Some(Maglev {
                    table_size: Some(65537),
                    hash_policies: None,
                }),
                ..lb("Maglev")
            }),
            ..Conf::default()
        };
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&maglev, &mut c);
        assert_eq!(c.lb_policy, LbPolicy::Maglev as i32);
        let mut r = route_to_cluster("r", "backend", "backend");
        routes(&maglev, &mut r);
        let Some(route::Action::Route(action)) = &r.virtual_hosts[0].routes[0].action else {
            panic!("route action expected");
        };
        assert!(action.hash_policy.is_empty());

        let random = Conf {
            load_balancer: Some(lb("Random")),
            ..Conf::default()
        };
        let mut c = eds_cluster("backend", Protocol::Tcp);
        cluster(&random, &mut c);
        assert_eq!(c.lb_policy, LbPolicy::Random as i32);
        assert!(c.lb_config.is_none());
    }

    #[test]
    fn a_routes_own_hash_policies_replace_the_destinations() {
        let destination = Conf {
            load_balancer: Some(LoadBalancer {
                maglev: Some(Maglev {
                    table_size: None,
                    hash_policies: Some(vec![header("x-a"), header("x-b")]),
                }),
                ..lb("Maglev")
            }),
            ..Conf::default()
        };
        let route = Conf {
            hash_policies: Some(vec![header("x-route")]),
            ..Conf::default()
        };
        let mut r = route_to_cluster("r", "backend", "backend");
        routes(&destination, &mut r);
        routes(&route, &mut r);
        let Some(route::Action::Route(action)) = &r.virtual_hosts[0].routes[0].action else {
            panic!("route action expected");
        };
        let names: Vec<_> = action
            .hash_policy
            .iter()
            .filter_map(|p| match &p.policy_specifier {
                Some(hash_policy::PolicySpecifier::Header(h)) => Some(h.header_name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec!["x-route"]);
    }
}
