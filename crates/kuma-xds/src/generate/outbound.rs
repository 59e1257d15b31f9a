//! Outbound side of a sidecar: what the proxy may call, each destination a
//! cluster whose endpoints arrive by EDS. With mTLS, each cluster originates
//! TLS and accepts only the destination's own identities.
//!
//! Routes (MeshHTTPRoute, MeshTCPRoute) may send an outbound's traffic to
//! other clusters: other services, or subsets of one by tags. Those
//! clusters are added beside the destination's own (see [`backends`]).

mod backends;
pub(crate) mod route_table;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::util::pack_any;
use kuma_api::kinds::dataplane::{DataplaneSpec, Outbound};
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_policy::Proxy;

use super::mtls::{ClientTls, MeshTls};
use super::policies::mesh_fault_injection;
use super::policies::mesh_http_route;
use super::policies::mesh_tcp_route;
use super::policies::{DestinationPolicies, DestinationRef, ProxyPolicies};
use super::snapshot::{CacheKey, ConfsKey, Destination, MeshSnapshot, Protocol};
use super::{cluster, endpoints, listener, names};
use crate::XdsResource;
use backends::Resolver;
use route_table::RouteTable;

const MESH_SERVICE: &str = "MeshService";

/// A destination the proxy declared: the cluster name it goes by and what is behind it.
struct Target<'a> {
    /// Borrowed for a `kuma.io/service` (its name), so that a transparent
    /// proxy's thousands of destinations cost no copy of it.
    cluster: Cow<'a, str>,
    /// A subset of a service is a filtered copy of its instances.
    destination: Cow<'a, Destination>,
    /// The `kuma.io/service` identities its instances may present; empty for
    /// a whole `kuma.io/service`, whose identity is its cluster's name (see
    /// [`Target::identities`]).
    services: Vec<String>,
    /// Tags a subset selects by (none for a whole destination): they go into
    /// the SNI as Kuma spells it.
    subset: BTreeMap<String, String>,
    /// The `to` policy confs this proxy has for it.
    policies: DestinationPolicies,
    /// The MeshHTTPRoutes that shaped its route table, in fold order (of a
    /// MeshService port; a `kuma.io/service`'s are found with its table).
    route_origins: Vec<String>,
    /// A MeshService port (not a `kuma.io/service`).
    mesh_service: bool,
}

/// An outbound to a service nobody serves yet: a cluster with no endpoints,
/// so the listener exists and starts working as soon as instances appear.
static UNSERVED: Destination = Destination {
    endpoints: Vec::new(),
    protocol: Protocol::Tcp,
};

/// The services behind a MeshService's endpoints (its name when it has none
/// yet): a MeshService selects instances that keep their own identities.
fn served_by(destination: &Destination, name: &str) -> Vec<String> {
    let mut services: Vec<String> = destination
        .endpoints
        .iter()
        .filter_map(|e| e.tags.get(SERVICE_TAG).cloned())
        .collect();
    services.sort();
    services.dedup();
    if services.is_empty() {
        services.push(name.to_string());
    }
    services
}

/// How `to` entries name a port of a MeshService: its name, else its number.
fn port_section(snapshot: &MeshSnapshot, name: &str, port: u32) -> String {
    snapshot
        .mesh_service(name)
        .and_then(|s| s.ports.iter().find(|p| p.port == port))
        .and_then(|p| p.name.clone())
        .unwrap_or_else(|| port.to_string())
}

fn target<'a>(
    snapshot: &'a MeshSnapshot,
    policies: &ProxyPolicies,
    outbound: &'a Outbound,
) -> Option<Target<'a>> {
    match &outbound.backend_ref {
        Some(r) if r.kind == MESH_SERVICE => {
            // An unknown MeshService or port has nothing to route to; Kuma
            // leaves such an outbound out.
            Some(mesh_service_target(snapshot, policies, &r.name, r.port)?)
        }
        // Other kinds (MeshExternalService, MeshMultiZoneService) are not generated yet.
        Some(_) => None,
        None => {
            let service = outbound.service()?;
            Some(service_target(snapshot, policies, Cow::Borrowed(service)))
        }
    }
}

fn mesh_service_target<'a>(
    snapshot: &'a MeshSnapshot,
    policies: &ProxyPolicies,
    name: &str,
    port: u32,
) -> Option<Target<'a>> {
    let destination = snapshot.mesh_service_port(name, port)?;
    let r = DestinationRef::MeshService {
        name,
        section: port_section(snapshot, name, port),
    };
    let confs = policies.destination(&r);
    Some(Target {
        cluster: Cow::Owned(names::mesh_service_cluster(snapshot.mesh(), name, port)),
        destination: Cow::Borrowed(destination),
        services: served_by(destination, name),
        subset: BTreeMap::new(),
        route_origins: policies.http_route_origins(&r, &confs),
        policies: confs,
        mesh_service: true,
    })
}

/// A `kuma.io/service` destination. The MeshHTTPRoutes that shaped its
/// route table are found only when the table is built ([`route_table`]).
fn service_target<'a>(
    snapshot: &'a MeshSnapshot,
    policies: &ProxyPolicies,
    service: Cow<'a, str>,
) -> Target<'a> {
    match snapshot.service_entry(&service) {
        Some((name, destination)) => served_target(policies, name, destination),
        None => {
            let confs = policies.destination(&DestinationRef::Service(&service));
            service_with(service, None, confs)
        }
    }
}

/// The target of a `kuma.io/service` the snapshot serves, as
/// [`MeshSnapshot::service_entry`] gave it.
fn served_target<'a>(
    policies: &ProxyPolicies,
    name: &'a str,
    destination: &'a Destination,
) -> Target<'a> {
    let confs = policies.served_destination(name, destination);
    service_with(Cow::Borrowed(name), Some(destination), confs)
}

/// A `kuma.io/service` as a transparent proxy reaches it: its cluster and
/// load assignment only (no listener, so no route origins). `destination`
/// is what the snapshot has for it (`None` while nobody serves it).
fn reachable_service<'a>(
    policies: &ProxyPolicies,
    service: Cow<'a, str>,
    destination: Option<&'a Destination>,
) -> Target<'a> {
    // Not kept for the proxies sharing the rules: a transparent proxy
    // reaches every service, and so many confs per set of rules would add
    // up to the square of the mesh's size.
    let policies = policies.destination_once(&DestinationRef::Service(&service));
    service_with(service, destination, policies)
}

/// The target of a `kuma.io/service` with the proxy's `policies` for it.
fn service_with<'a>(
    service: Cow<'a, str>,
    destination: Option<&'a Destination>,
    policies: DestinationPolicies,
) -> Target<'a> {
    let destination = Cow::Borrowed(destination.unwrap_or(&UNSERVED));
    Target {
        cluster: service,
        destination,
        services: Vec::new(),
        subset: BTreeMap::new(),
        policies,
        route_origins: Vec::new(),
        mesh_service: false,
    }
}

impl Target<'_> {
    /// The `kuma.io/service` identities its instances may present.
    fn identities(&self) -> Cow<'_, [String]> {
        if self.services.is_empty() {
            Cow::Owned(vec![self.cluster.to_string()])
        } else {
            Cow::Borrowed(&self.services)
        }
    }
}

pub(crate) fn generate<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &Proxy<'a>,
    policies: &ProxyPolicies,
    tls: Option<&MeshTls<'_>>,
    out: &mut Vec<Arc<XdsResource>>,
) {
    let dataplane = proxy.spec;
    // As Kuma's outbounds do, tell callees who calls while fault injections
    // may pick clients by tags.
    let tags_header = policies
        .sends_tags_header()
        .then(|| mesh_fault_injection::tags_header_value(dataplane));
    // As in Kuma, the proxy's own MeshTLS versions and ciphers apply to its
    // client side too, on every mesh TLS cluster.
    let client = tls.map(|tls| ClientTls::new(tls, policies.outbound_tls_params(proxy)));
    let tls = client.as_ref();
    for outbound in dataplane.outbounds() {
        let Some(t) = target(snapshot, policies, outbound) else {
            continue;
        };
        let address = outbound.address();
        let protocol = t.destination.protocol;
        let mut resolver = Resolver::new(snapshot, policies, &t);
        let shape = Shape::of(snapshot, &t, &mut resolver, policies);
        let tags = tags_header.as_deref().filter(|_| shape.is_http());
        let (routes, route_policies) = shape.key();
        let key = CacheKey::OutboundListener {
            address: address.to_string(),
            port: outbound.port,
            cluster: t.cluster.to_string(),
            protocol,
            policies: *t.policies.key(),
            routes,
            route_policies,
            tags: tags.map(str::to_string),
        };
        out.push(snapshot.shared(key, || {
            let name = names::outbound_listener(address, outbound.port);
            let filter = shape.filter(&t, tags);
            let l = listener::listener(
                &name,
                address,
                outbound.port,
                TrafficDirection::Outbound,
                filter,
            );
            XdsResource::new(name, pack_any(l))
        }));
        add_destination(snapshot, dataplane, &t, tls, out);
        for backend in resolver.into_backends() {
            add_destination(snapshot, dataplane, &backend, tls, out);
        }
    }

    // Transparent proxying redirects any connection, so the proxy needs the
    // clusters of what it may reach. Without VIPs (not modelled yet) there are
    // no per-service listeners: only clusters and their endpoints.
    if let Some(tp) = dataplane.transparent_proxying() {
        // Each service with its destination at hand, rather than searched
        // for again by name.
        let services: Box<dyn Iterator<Item = (&str, Option<&Destination>)>> =
            if tp.reachable_services.is_empty() {
                Box::new(snapshot.services().map(|(name, d)| (name, Some(d))))
            } else {
                Box::new(
                    tp.reachable_services
                        .iter()
                        .map(|name| (name.as_str(), snapshot.service(name))),
                )
            };
        for (service, destination) in services {
            let t = reachable_service(policies, Cow::Borrowed(service), destination);
            add_destination(snapshot, dataplane, &t, tls, out);
        }
    }
}

/// The cluster and ClusterLoadAssignment of a destination, shared by every
/// proxy that reaches it (the load assignment by every proxy alike, where
/// locality-aware load balancing regroups its endpoints).
fn add_destination(
    snapshot: &MeshSnapshot,
    proxy: &DataplaneSpec,
    t: &Target<'_>,
    tls: Option<&ClientTls<'_>>,
    out: &mut Vec<Arc<XdsResource>>,
) {
    let protocol = t.destination.protocol;
    let confs = t.policies.key();
    // Without confs the cluster is its protocol's plain one but for its name
    // and TLS (MeshTLS params included), which are written into the plain
    // one's encoding; with confs, into the template of its protocol and
    // confs, built once per snapshot.
    let template_key = (!confs.is_empty()).then_some(CacheKey::ClusterTemplate {
        protocol,
        policies: *confs,
    });
    // The TLS settings name secrets, not their content: one cluster still
    // serves every proxy of the mesh with the same MeshTLS params.
    let key = CacheKey::Cluster {
        name: t.cluster.to_string(),
        mtls: tls.is_some(),
        policies: *confs,
        tls: tls.map(|tls| tls.key().to_string()).unwrap_or_default(),
    };
    out.push(snapshot.shared(key, || {
        let transport_socket = tls.map(|tls| {
            let mesh = tls.tls.mesh;
            let sni_service = t.services.first().map_or(&*t.cluster, String::as_str);
            let sni = if t.subset.is_empty() {
                names::sni(sni_service, mesh)
            } else {
                backends::subset_sni(sni_service, mesh, &t.subset)
            };
            tls.upstream(&sni, &t.identities())
        });
        let packed = match template_key {
            None => cluster::packed_eds(&t.cluster, protocol, transport_socket.as_ref()),
            Some(key) => {
                // Not under the cache's lock here: `shared` builds outside it.
                let template = snapshot.shared(key, || {
                    let mut c = cluster::eds_cluster("", protocol);
                    t.policies.apply_cluster(&mut c, protocol);
                    XdsResource::new("", cluster::packed(&c))
                });
                cluster::packed_from_template(
                    &t.cluster,
                    &template.body.value,
                    transport_socket.as_ref(),
                )
            }
        };
        XdsResource::new(&*t.cluster, packed)
    }));
    let plan = t
        .policies
        .locality_plan(snapshot, proxy)
        .filter(|plan| plan.applies_to(&t.destination));
    let assignment = if let Some(plan) = plan {
        let key = CacheKey::LocalityLoadAssignment {
            cluster: t.cluster.to_string(),
            plan: plan.clone(),
        };
        // Grouped only when not cached yet: proxies alike share it.
        snapshot.shared(key, || {
            let localities = plan.localities(&t.destination);
            XdsResource::new(
                &*t.cluster,
                endpoints::load_assignment_by_locality(&t.cluster, &localities),
            )
        })
    } else {
        snapshot.shared(CacheKey::LoadAssignment(t.cluster.to_string()), || {
            XdsResource::new(
                &*t.cluster,
                endpoints::load_assignment(&t.cluster, &t.destination),
            )
        })
    };
    out.push(assignment);
}

/// A route table of one catch-all virtual host, as outbounds have.
fn route_config(name: &str, virtual_host: &str, routes: Vec<Route>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: virtual_host.to_string(),
            domains: vec!["*".to_string()],
            routes,
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

/// What an outbound listener does with its traffic, per the routes aimed
/// at its destination.
enum Shape {
    /// Everything to the destination's own cluster (no route).
    Http,
    /// A MeshHTTPRoute's table, with the per-route policy confs of each
    /// MeshHTTPRoute it names.
    HttpRoutes {
        table: Arc<RouteTable>,
        per_route: BTreeMap<String, DestinationPolicies>,
    },
    /// A TCP proxy, split by a MeshTCPRoute when one applies.
    Tcp(Vec<mesh_http_route::Split>),
}

impl Shape {
    /// An HTTP route wins over a TCP route on an HTTP outbound (as in Kuma);
    /// a TCP route alone turns any outbound into a TCP proxy.
    fn of(
        snapshot: &MeshSnapshot,
        t: &Target<'_>,
        resolver: &mut Resolver<'_, '_>,
        policies: &ProxyPolicies,
    ) -> Shape {
        let protocol = t.destination.protocol;
        if protocol.is_http() && t.policies.has_http_route() {
            resolver.require_http(true);
            if let Some(table) = route_table::of(snapshot, t, resolver, policies) {
                // Only MeshHTTPRoutes that policies aim confs at change
                // their routes.
                let per_route = if policies.aims_at_resources() {
                    table
                        .entries
                        .iter()
                        .filter_map(|e| e.origin.as_deref())
                        .map(|name| (name.to_string(), policies.route(name, &t.policies)))
                        .filter(|(_, confs)| !confs.key().is_empty())
                        .collect()
                } else {
                    BTreeMap::new()
                };
                return Shape::HttpRoutes { table, per_route };
            }
        }
        if let Some(conf) = t.policies.tcp_route() {
            resolver.require_http(false);
            let split = backends::tcp_split(&conf, resolver);
            return Shape::Tcp(split);
        }
        if protocol.is_http() {
            Shape::Http
        } else {
            Shape::Tcp(Vec::new())
        }
    }

    /// Part of the listener's cache key beyond the destination's confs:
    /// the route names and the names of the MeshHTTPRoutes with per-route
    /// confs, and those confs' keys in the same order. Route names depend
    /// on which MeshHTTPRoute a rule came from, not only on the confs: both
    /// are part of the key. Nothing to allocate without routes.
    fn key(&self) -> (String, Vec<ConfsKey>) {
        match self {
            Shape::HttpRoutes { table, per_route } => {
                let mut names = table.names.clone();
                for name in per_route.keys() {
                    names.push_str("|=");
                    names.push_str(name);
                }
                let confs = per_route.values().map(|p| *p.key()).collect();
                (names, confs)
            }
            _ => (String::new(), Vec::new()),
        }
    }

    fn is_http(&self) -> bool {
        !matches!(self, Shape::Tcp(_))
    }

    /// `tags`: the `x-kuma-tags` value HTTP routes send, if any.
    fn filter(&self, t: &Target<'_>, tags: Option<&str>) -> Filter {
        let stat_prefix = names::stat_prefix(&t.cluster);
        let route_name = names::outbound_route(&t.cluster);
        let send_tags = |routes: &mut RouteConfiguration| {
            if let Some(tags) = tags {
                mesh_fault_injection::send_tags_header(routes, tags);
            }
        };
        match self {
            Shape::Http => {
                let mut routes = listener::route_to_cluster(&route_name, &t.cluster, &t.cluster);
                send_tags(&mut routes);
                let mut hcm = listener::hcm(&stat_prefix, Vec::new());
                t.policies.apply_http(&mut hcm, &mut routes);
                listener::hcm_filter(hcm, routes)
            }
            Shape::HttpRoutes { table, per_route } => {
                // The confs change the connection manager; what they give
                // every route's action is worked out once, on a route of
                // its own, and written into each route as it is written.
                let mut routes = route_config(&route_name, &t.cluster, Vec::new());
                let mut hcm = listener::hcm(&stat_prefix, Vec::new());
                t.policies.apply_manager(&mut hcm);
                send_tags(&mut routes);
                let mut given = listener::route_to_cluster("", "", "");
                t.policies.apply_route(&mut given);
                let fields = listener::route_action_fields(&given);
                // Confs aimed at a MeshHTTPRoute change only the routes of
                // its rules, after the destination's.
                let route_fields: BTreeMap<&str, Vec<u8>> = per_route
                    .iter()
                    .map(|(name, policies)| {
                        let mut own = given.clone();
                        policies.apply_route(&mut own);
                        (name.as_str(), listener::route_action_fields(&own))
                    })
                    .collect();
                let count = 2 * table.entries.len();
                listener::hcm_filter_writing_routes(hcm, routes, count, |out| {
                    let mut last = mesh_http_route::LastAction::default();
                    for entry in &table.entries {
                        let fields = entry
                            .origin
                            .as_deref()
                            .and_then(|origin| route_fields.get(origin))
                            .unwrap_or(&fields);
                        mesh_http_route::write_envoy_routes(entry, fields, &mut last, out);
                    }
                })
            }
            Shape::Tcp(split) => {
                let mut tcp = listener::tcp_proxy_config(&stat_prefix, &t.cluster);
                mesh_tcp_route::split(&mut tcp, split);
                t.policies.apply_tcp(&mut tcp);
                listener::tcp_proxy_filter(tcp)
            }
        }
    }
}

#[cfg(test)]
mod tests;
