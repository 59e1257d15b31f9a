//! Inbound side of a sidecar: a listener per inbound, forwarding to the
//! local workload. With mTLS, clients must present a mesh identity (STRICT)
//! or may also come in plaintext (PERMISSIVE), and MeshTrafficPermission
//! decides which identities get through.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::util::pack_any;
use kuma_api::kinds::dataplane::InboundState;
use kuma_api::kinds::mesh::MtlsMode;
use kuma_policy::Proxy;
use kuma_policy::engine::SharedProxyRules;

use super::mtls::{self, MeshTls};
use super::permissions::{self, Permissions};
use super::policies::{InboundPolicies, ProxyPolicies};
use super::snapshot::{CacheKey, MeshSnapshot, Protocol};
use super::{GenerateError, cluster, listener, names};
use crate::XdsResource;

pub(crate) fn generate(
    snapshot: &MeshSnapshot,
    proxy: &Proxy<'_>,
    policies: &ProxyPolicies,
    tls: Option<&MeshTls<'_>>,
    out: &mut Vec<Arc<XdsResource>>,
) -> Result<(), GenerateError> {
    let name = proxy.name;
    let dataplane = proxy.spec;
    let networking_address = dataplane.address();
    // As in Kuma, permissions only mean something once identities do.
    let rules: Option<SharedProxyRules> = tls.map(|_| {
        snapshot
            .traffic_permissions()
            .shared_rules_for(proxy, snapshot.policy_context())
    });
    for inbound in dataplane.inbounds() {
        // An ignored inbound is as if it were not declared; a not-ready one
        // still listens, it is only withheld from other proxies' endpoints.
        if inbound.state() == InboundState::Ignored {
            continue;
        }
        let address = inbound.dataplane_address(networking_address);
        if address.is_empty() {
            return Err(GenerateError::NoInboundAddress {
                dataplane: name.to_string(),
                port: inbound.port,
            });
        }
        let protocol = Protocol::parse(inbound.protocol());
        let service = inbound.service_tag().unwrap_or_default();
        let cluster_name = names::inbound_cluster(inbound.workload_port());
        let workload_address = inbound.workload_address();
        let inbound_policies = policies.inbound(&proxy.inbound_key(inbound));
        let key = CacheKey::InboundCluster {
            address: workload_address.to_string(),
            port: inbound.workload_port(),
            protocol,
            policies: inbound_policies.key(),
        };
        out.push(snapshot.shared(key, || {
            let mut c = cluster::static_cluster(
                &cluster_name,
                workload_address,
                inbound.workload_port(),
                protocol,
            );
            inbound_policies.apply_cluster(&mut c, protocol);
            XdsResource::new(&cluster_name, pack_any(c))
        }));

        let stat_prefix = names::stat_prefix(&cluster_name);
        let listener_name = names::inbound_listener(address, inbound.port);
        let routes = protocol.is_http().then(|| {
            listener::route_to_cluster(&names::inbound_route(service), service, &cluster_name)
        });
        let chain = Chain {
            stat_prefix: &stat_prefix,
            cluster: &cluster_name,
            routes,
            policies: &inbound_policies,
        };
        let l = match tls {
            None => listener::listener_with_chains(
                &listener_name,
                address,
                inbound.port,
                TrafficDirection::Inbound,
                vec![FilterChain {
                    filters: chain.plaintext(),
                    ..FilterChain::default()
                }],
                false,
            ),
            Some(tls) => {
                // MeshTLS may set this inbound's mode apart from the mesh's.
                let permissive =
                    inbound_policies.tls_mode().unwrap_or(tls.mode) == MtlsMode::Permissive;
                let from = rules
                    .as_ref()
                    .and_then(|r| r.from.get(&proxy.inbound_key(inbound)))
                    .map(|rules| rules.as_slice())
                    .unwrap_or_default();
                let permissions = Permissions::from_rules(tls.mesh, from);
                let rbac_prefix = names::stat_prefix(&listener_name);
                let mut chains = vec![listener::filter_chain(
                    chain.with_permissions(&rbac_prefix, &permissions),
                    Some(mtls::downstream(tls.mesh, inbound_policies.tls_params())),
                    permissive,
                )];
                if permissive {
                    // Plaintext clients carry no identity to check.
                    chains.push(FilterChain {
                        filters: chain.plaintext(),
                        ..FilterChain::default()
                    });
                }
                listener::listener_with_chains(
                    &listener_name,
                    address,
                    inbound.port,
                    TrafficDirection::Inbound,
                    chains,
                    permissive,
                )
            }
        };
        out.push(Arc::new(XdsResource::new(listener_name, pack_any(l))));
    }
    Ok(())
}

/// What an inbound's filter chain forwards to.
struct Chain<'a> {
    stat_prefix: &'a str,
    cluster: &'a str,
    /// HTTP inbounds: their routes; TCP inbounds: none.
    routes: Option<RouteConfiguration>,
    /// The policies every client of the inbound gets.
    policies: &'a InboundPolicies,
}

impl Chain<'_> {
    fn plaintext(&self) -> Vec<Filter> {
        self.forward(Vec::new())
    }

    /// The forwarding filter (behind the network filters policies put
    /// before a TCP proxy); `http_filters` run before the router.
    fn forward(&self, http_filters: Vec<HttpFilter>) -> Vec<Filter> {
        match &self.routes {
            Some(routes) => {
                let mut routes = routes.clone();
                let mut hcm = listener::hcm(self.stat_prefix, http_filters);
                self.policies.apply_http(&mut hcm, &mut routes);
                let mut filters = self.policies.http_network_filters();
                filters.push(listener::hcm_filter(hcm, routes));
                filters
            }
            None => {
                let mut tcp = listener::tcp_proxy_config(self.stat_prefix, self.cluster);
                self.policies.apply_tcp(&mut tcp);
                let mut filters = self.policies.tcp_filters();
                filters.push(listener::tcp_proxy_filter(tcp));
                filters
            }
        }
    }

    /// The forwarding filter behind an RBAC check of the client's identity.
    fn with_permissions(&self, rbac_prefix: &str, permissions: &Permissions) -> Vec<Filter> {
        match &self.routes {
            Some(_) => self.forward(vec![permissions::http_filter(permissions)]),
            None => {
                let mut filters = vec![permissions::network_filter(rbac_prefix, permissions)];
                filters.extend(self.forward(Vec::new()));
                filters
            }
        }
    }
}
