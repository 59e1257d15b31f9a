//! Traffic policies in a proxy's Envoy configuration.
//!
//! [`ProxyPolicies`] holds the rules of every policy kind of the mesh for one
//! proxy (computed once per generation by `kuma-policy`). From them come:
//! - [`DestinationPolicies`]: the folded `to` confs for one outbound
//!   destination, applied to its cluster and its outbound listener;
//! - [`InboundPolicies`]: the folded `from`/`rules` confs that apply to
//!   every client of one inbound, applied to its listener and cluster, and
//!   the per-client confs of the kinds that tell clients apart
//!   (MeshFaultInjection, MeshRateLimit).
//!
//! Each policy kind has its own module that knows how its conf changes
//! Envoy resources; the `apply_*` functions here call them in a fixed
//! order. The confs are also part of the keys under which shared clusters
//! and listeners are cached, so proxies given different confs for the same
//! destination get different resources and proxies given the same share one.

mod duration;
mod mesh_circuit_breaker;
pub(crate) mod mesh_fault_injection;
mod mesh_health_check;
pub(crate) mod mesh_http_route;
mod mesh_load_balancing_strategy;
pub(crate) use mesh_load_balancing_strategy::{Localities, Locality, LocalityPlan};
pub(crate) mod mesh_passthrough;
pub(crate) mod mesh_proxy_patch;
mod mesh_rate_limit;
mod mesh_retry;
pub(crate) mod mesh_tcp_route;
mod mesh_timeout;
mod mesh_tls;
mod rule_set;
pub(crate) use rule_set::ProxyRulesMemo;
use rule_set::{ConfPositions, RuleSet};

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::route::v3::{RouteAction, RouteConfiguration, route};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsParameters;
use kuma_api::Kind;
use kuma_api::kinds::mesh::MtlsMode;
use kuma_policy::{
    Element, Fingerprint, InboundKey, MergeStrategy, Proxy, ResourceId,
    engine::{SharedProxyRules, ToRules},
    fingerprint, inbound, rules,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::snapshot::route_confs::RouteConfs;
use super::snapshot::{ConfsKey, Destination, MeshSnapshot, Protocol};

/// The rules of every policy kind of the mesh for one proxy.
pub(crate) struct ProxyPolicies<'a> {
    snapshot: &'a MeshSnapshot,
    mesh: String,
    /// Shared with the proxies alike for matching.
    set: Arc<RuleSet>,
}

/// What an outbound leads to, as `to` entries name it.
pub(crate) enum DestinationRef<'a> {
    /// A `kuma.io/service`.
    Service(&'a str),
    /// A port of a MeshService: its name and the port's name (its number
    /// when unnamed).
    MeshService { name: &'a str, section: String },
}

impl<'a> ProxyPolicies<'a> {
    pub(crate) fn of(snapshot: &'a MeshSnapshot, proxy: &Proxy<'_>) -> ProxyPolicies<'a> {
        ProxyPolicies {
            snapshot,
            mesh: snapshot.mesh().to_string(),
            set: rule_set::of(snapshot, proxy),
        }
    }

    /// The proxy's rules of every kind, in kind order.
    fn rules(&self) -> &[(Kind, SharedProxyRules)] {
        &self.set.rules
    }

    /// The proxy's rules of `kind`, when the mesh has policies of it.
    fn rules_of(&self, kind: Kind) -> Option<&SharedProxyRules> {
        self.rules()
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, rules)| rules)
    }

    /// The folded `spec.default` of a policy kind that has neither `to` nor
    /// `from` (MeshPassthrough), when a policy of that kind selects the proxy.
    pub(crate) fn single_item<T: DeserializeOwned>(&self, kind: Kind) -> Option<T> {
        let rule = self.rules_of(kind)?.single_item.first()?;
        read_conf(kind, &rule.conf)
    }

    /// MeshProxyPatch edits of the proxy's finished resources: the
    /// `appendModifications` of every policy selecting it, in order.
    pub(crate) fn apply_proxy_patch(
        &self,
        dataplane: &kuma_api::kinds::dataplane::DataplaneSpec,
        out: &mut crate::ProxyResources,
    ) {
        if let Some(conf) = self.single_item(Kind::MeshProxyPatch) {
            mesh_proxy_patch::apply(&conf, dataplane, out);
        }
    }

    /// The `to` confs that apply to `destination`. Those of a served
    /// `kuma.io/service` are worked out once for the proxies sharing the
    /// rules, and kept with them.
    pub(crate) fn destination(&self, destination: &DestinationRef<'_>) -> DestinationPolicies {
        self.destination_kept(destination, true)
    }

    /// [`ProxyPolicies::destination`], not kept if worked out now: for the
    /// services a transparent proxy reaches.
    pub(crate) fn destination_once(&self, destination: &DestinationRef<'_>) -> DestinationPolicies {
        self.destination_kept(destination, false)
    }

    fn destination_kept(
        &self,
        destination: &DestinationRef<'_>,
        keep: bool,
    ) -> DestinationPolicies {
        let service = match destination {
            DestinationRef::Service(service) => service,
            DestinationRef::MeshService { name, section } => {
                let protocol = self.mesh_service_protocol(name, section);
                let id = ResourceId::new("MeshService", name, Some(section));
                let confs: Vec<(Kind, SharedConf)> = self
                    .rules()
                    .iter()
                    .filter_map(|(kind, rules)| {
                        let rule = rules.to_resources.compute(&id, &self.mesh)?;
                        Some((*kind, SharedConf::Own(rule.conf.clone())))
                    })
                    .collect();
                return DestinationPolicies::new(Confs::new(confs), protocol);
            }
        };
        self.service_kept(service, self.snapshot.service_entry(service), keep)
    }

    /// [`ProxyPolicies::destination`] of a `kuma.io/service` the snapshot
    /// serves, as [`MeshSnapshot::service_entry`] gave it (`name` is the
    /// snapshot's copy of its name): not looked up again.
    pub(crate) fn served_destination(
        &self,
        name: &str,
        destination: &Destination,
    ) -> DestinationPolicies {
        self.service_kept(name, Some((name, destination)), true)
    }

    /// The confs of `kuma.io/service` `service`, its entry in the snapshot
    /// (if served) at hand.
    fn service_kept(
        &self,
        service: &str,
        entry: Option<(&str, &Destination)>,
        keep: bool,
    ) -> DestinationPolicies {
        let protocol = entry.map_or(Protocol::Tcp, |(_, d)| d.protocol);
        let to_kinds = &self.set.to_kinds;
        if to_kinds.is_empty() {
            return DestinationPolicies::new(Confs::default(), protocol);
        }
        // A served service is known by where the snapshot keeps its name,
        // which no other name takes while the snapshot (and with it the
        // rule set) lives: no copy of the name is made to look it up.
        let at = entry.map(|(name, _)| name.as_ptr() as usize);
        let mut met = self.set.destinations();
        if let Some(found) = at.and_then(|at| met.by_service.get(&at)) {
            return found.clone();
        }
        let mut found: ConfPositions = Vec::with_capacity(to_kinds.len());
        let mut confs = Vec::with_capacity(to_kinds.len());
        for (kind, to) in to_kinds {
            if let Some(at) = to.for_service(service) {
                found.push((*kind, at));
                confs.push((*kind, SharedConf::ToRule(to.clone(), at)));
            }
        }
        let policies = if found.is_empty() {
            DestinationPolicies::new(Confs::default(), protocol)
        } else {
            let confs = Confs::new(confs);
            let key = match met.keys.get(&found) {
                Some(key) => *key,
                None => {
                    let key = confs.key(Some(self.snapshot.route_confs()));
                    met.keys.insert(found, key);
                    key
                }
            };
            DestinationPolicies {
                confs,
                protocol,
                key,
            }
        };
        if let Some(at) = at.filter(|_| keep) {
            met.by_service.insert(at, policies.clone());
        }
        policies
    }

    /// The protocol of the port `section` of MeshService `name`; some
    /// policies (MeshRetry) configure HTTP and gRPC routes differently.
    fn mesh_service_protocol(&self, name: &str, section: &str) -> Protocol {
        self.snapshot
            .mesh_service(name)
            .and_then(|s| {
                s.ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(section) || p.port.to_string() == section)
            })
            .and_then(|p| self.snapshot.mesh_service_port(name, p.port))
            .map_or(Protocol::Tcp, |d| d.protocol)
    }

    /// The `from`/`rules` confs of an inbound: those every client gets,
    /// and the per-client ones of the kinds that tell clients apart.
    pub(crate) fn inbound(&self, key: &InboundKey) -> InboundPolicies {
        let mut confs = Vec::new();
        let mut faults = Vec::new();
        let mut limits = Vec::new();
        for (kind, rules) in self.rules() {
            if *kind == Kind::MeshFaultInjection {
                let from = rules.from.get(key).map_or(&[][..], |r| r.as_slice());
                let entries = rules.inbound.get(key).map_or(&[][..], |r| r.as_slice());
                faults = mesh_fault_injection::per_client(from, entries);
                continue;
            }
            let matched = rules.inbound.get(key).filter(|r| !r.is_empty());
            let conf = match matched {
                Some(matched) => {
                    inbound::matches_all_incoming(matched, MergeStrategy::for_kind(*kind))
                }
                None => rules
                    .from
                    .get(key)
                    .and_then(|from| rules::compute(from, &Element::new()))
                    .map(|r| r.conf.clone()),
            };
            if *kind == Kind::MeshRateLimit
                && let Some(entries) = rules.inbound.get(key)
            {
                limits = mesh_rate_limit::per_client(entries, conf.as_ref());
            }
            if let Some(conf) = conf {
                confs.push((*kind, SharedConf::Own(conf)));
            }
        }
        InboundPolicies {
            every: Confs::new(confs),
            faults,
            limits,
            drop_tags_header: self.sends_tags_header(),
        }
    }

    /// Whether outbounds send the proxy's tags in `x-kuma-tags`: while the
    /// mesh has MeshFaultInjections, which may pick clients by tags (Kuma
    /// also sends them only then).
    pub(crate) fn sends_tags_header(&self) -> bool {
        self.rules_of(Kind::MeshFaultInjection).is_some()
    }

    /// The TLS versions and ciphers MeshTLS sets for the proxy's client
    /// side. As in Kuma, they are those of the conf every client of an
    /// inbound gets: versions and ciphers are allowed only on Mesh-wide
    /// policies, so the first inbound's stand for all. None without inbounds.
    pub(crate) fn outbound_tls_params(&self, proxy: &Proxy<'_>) -> Option<TlsParameters> {
        self.rules_of(Kind::MeshTLS)?;
        let inbound = proxy.spec.inbounds().first()?;
        self.inbound(&proxy.inbound_key(inbound)).tls_params()
    }
}

/// A folded conf, shared with the proxy's rules rather than copied out of
/// them: every destination of a proxy holds one per policy kind.
#[derive(Debug, Clone)]
enum SharedConf {
    /// The conf of the proxy's `to` rules at this position (see
    /// [`ToRules::for_service`]).
    ToRule(Arc<ToRules>, usize),
    Own(Value),
}

impl SharedConf {
    fn value(&self) -> &Value {
        static EMPTY: Value = Value::Null;
        match self {
            // The position came from these rules.
            SharedConf::ToRule(rules, at) => rules.conf(*at).unwrap_or(&EMPTY),
            SharedConf::Own(value) => value,
        }
    }
}

impl PartialEq for SharedConf {
    fn eq(&self, other: &SharedConf) -> bool {
        self.value() == other.value()
    }
}

/// The action of every route of `routes` that forwards to a cluster: what
/// route-level confs (timeouts, retries, hash policies) change. Direct
/// responses and redirects have none.
pub(crate) fn route_actions(
    routes: &mut RouteConfiguration,
) -> impl Iterator<Item = &mut RouteAction> {
    routes
        .virtual_hosts
        .iter_mut()
        .flat_map(|vh| vh.routes.iter_mut())
        .filter_map(|r| match &mut r.action {
            Some(route::Action::Route(action)) => Some(action),
            _ => None,
        })
}

/// `conf` read as the typed conf of `kind`. A conf that does not read
/// (validation keeps these out of the store) is as if absent.
pub(crate) fn read_conf<T: DeserializeOwned>(kind: Kind, conf: &Value) -> Option<T> {
    match T::deserialize(conf) {
        Ok(conf) => Some(conf),
        Err(e) => {
            tracing::warn!(%kind, error = %e, "policy conf does not read; ignored");
            None
        }
    }
}

/// Folded confs by policy kind, in kind order: a destination has a few, so
/// a list sorted once does better than a map.
#[derive(Debug, Clone, Default, PartialEq)]
struct Confs(Vec<(Kind, SharedConf)>);

impl Confs {
    /// The confs of `confs`, one per kind.
    fn new(mut confs: Vec<(Kind, SharedConf)>) -> Confs {
        // Usually sorted already: they are gathered in kind order.
        confs.sort_by_key(|(kind, _)| *kind);
        Confs(confs)
    }

    /// The conf of `kind`, as it is held.
    fn conf(&self, kind: Kind) -> Option<&SharedConf> {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, conf)| conf)
    }

    fn has(&self, kind: Kind) -> bool {
        self.conf(kind).is_some()
    }

    /// The conf of `kind` read as its typed form ([`read_conf`]); a rule's
    /// conf is read once for every proxy sharing the rules.
    fn get<T: DeserializeOwned + Send + Sync + 'static>(&self, kind: Kind) -> Option<Arc<T>> {
        match self.conf(kind)? {
            SharedConf::ToRule(rules, at) => rules.typed(*at, |conf| read_conf(kind, conf)),
            SharedConf::Own(conf) => read_conf(kind, conf).map(Arc::new),
        }
    }

    /// The confs whose keyed lists, joined, make the conf of `kind`, when
    /// it is such a join ([`ToRules::joined`]).
    fn joined(&self, kind: Kind) -> Option<&[Arc<Value>]> {
        match self.conf(kind)? {
            SharedConf::ToRule(rules, at) => rules.joined(*at),
            SharedConf::Own(_) => None,
        }
    }

    /// The confs' cache key: the fingerprint of each conf after its kind's
    /// name, in kind order. A rule's conf has its fingerprint made once for
    /// every proxy sharing the rules. With `routes`, a MeshHTTPRoute conf
    /// that is the conf of MeshHTTPRoutes read there (one route's, or a
    /// join of routes') has the fingerprint made of theirs instead.
    fn key(&self, routes: Option<&RouteConfs>) -> ConfsKey {
        if self.0.is_empty() {
            return ConfsKey::default();
        }
        let mut encoder = fingerprint::Encoder::default();
        for (kind, conf) in &self.0 {
            encoder.str(kind.name());
            let fingerprint = match conf {
                SharedConf::ToRule(rules, at) => routes
                    .filter(|_| *kind == Kind::MeshHTTPRoute)
                    .and_then(|routes| match rules.joined(*at) {
                        Some(parts) => routes.fingerprint(parts.iter().map(|p| &**p)),
                        None => routes.fingerprint([conf.value()]),
                    })
                    .or_else(|| rules.fingerprint(*at)),
                SharedConf::Own(value) => Some(Fingerprint::of(value)),
            };
            // The position came from these rules.
            encoder.fingerprint(fingerprint.unwrap_or_else(|| Fingerprint::of(&Value::Null)));
        }
        ConfsKey::new(encoder.finish())
    }
}

/// The `to` confs one proxy has for one destination.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DestinationPolicies {
    confs: Confs,
    protocol: Protocol,
    /// The confs' cache key ([`Confs::key`]).
    key: ConfsKey,
}

impl DestinationPolicies {
    fn new(confs: Confs, protocol: Protocol) -> DestinationPolicies {
        let key = confs.key(None);
        DestinationPolicies {
            confs,
            protocol,
            key,
        }
    }

    /// Part of the cache key of resources built with these confs.
    pub(crate) fn key(&self) -> &ConfsKey {
        &self.key
    }

    /// The destination's cluster.
    pub(crate) fn apply_cluster(&self, cluster: &mut Cluster, protocol: Protocol) {
        if let Some(conf) = self.confs.get(Kind::MeshTimeout) {
            mesh_timeout::cluster(&conf, cluster, protocol);
        }
        if let Some(conf) = self.confs.get(Kind::MeshLoadBalancingStrategy) {
            mesh_load_balancing_strategy::cluster(&conf, cluster);
        }
        // Health checks before the circuit breaker, as Kuma orders them:
        // both may set the healthy panic threshold and the breaker wins.
        if let Some(conf) = self.confs.get(Kind::MeshHealthCheck) {
            mesh_health_check::cluster(&conf, cluster, protocol);
        }
        if let Some(conf) = self.confs.get(Kind::MeshCircuitBreaker) {
            mesh_circuit_breaker::cluster(&conf, cluster);
        }
    }

    /// The outbound listener's HTTP connection manager and its routes.
    pub(crate) fn apply_http(
        &self,
        hcm: &mut HttpConnectionManager,
        routes: &mut RouteConfiguration,
    ) {
        // `apply_manager` and `apply_route` in one, the timeouts read once.
        if let Some(conf) = self.confs.get(Kind::MeshTimeout) {
            mesh_timeout::http(&conf, hcm, routes);
        }
        self.apply_route_after_timeouts(routes);
    }

    /// What [`DestinationPolicies::apply_http`] does to the connection
    /// manager; [`DestinationPolicies::apply_route`] does the rest.
    pub(crate) fn apply_manager(&self, hcm: &mut HttpConnectionManager) {
        if let Some(conf) = self.confs.get(Kind::MeshTimeout) {
            mesh_timeout::manager(&conf, hcm);
        }
    }

    /// The outbound listener's TCP proxy.
    pub(crate) fn apply_tcp(&self, tcp: &mut TcpProxy) {
        if let Some(conf) = self.confs.get(Kind::MeshTimeout) {
            mesh_timeout::tcp(&conf, tcp);
        }
        if let Some(conf) = self.confs.get(Kind::MeshRetry) {
            mesh_retry::tcp(&conf, tcp);
        }
    }

    /// The routes of `routes`: what [`DestinationPolicies::apply_http`]
    /// does to them, or with the confs of `to` entries aimed at one
    /// MeshHTTPRoute (see `ProxyPolicies::route`), what those do to the
    /// routes of its rules after the destination's confs, so they win.
    pub(crate) fn apply_route(&self, routes: &mut RouteConfiguration) {
        if let Some(conf) = self.confs.get(Kind::MeshTimeout) {
            mesh_timeout::routes(&conf, routes);
        }
        self.apply_route_after_timeouts(routes);
    }

    fn apply_route_after_timeouts(&self, routes: &mut RouteConfiguration) {
        if let Some(conf) = self.confs.get(Kind::MeshRetry) {
            mesh_retry::routes(&conf, self.protocol, routes);
        }
        if let Some(conf) = self.confs.get(Kind::MeshLoadBalancingStrategy) {
            mesh_load_balancing_strategy::routes(&conf, routes);
        }
    }
}

/// The `from`/`rules` confs of one inbound.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct InboundPolicies {
    /// What every client gets, by kind.
    every: Confs,
    /// MeshFaultInjection: groups of faults, each for its own clients.
    faults: Vec<mesh_fault_injection::ClientFaults>,
    /// MeshRateLimit: HTTP limits of callers by identity.
    limits: Vec<mesh_rate_limit::ClientLimit>,
    /// Clients send their tags header: the inbound drops it.
    drop_tags_header: bool,
}

impl InboundPolicies {
    /// Part of the cache key of resources built with these confs: the
    /// per-client confs too, or proxies whose clients get different faults
    /// would share a listener.
    pub(crate) fn key(&self) -> String {
        let mut key = self.every.key(None).to_string();
        if !self.faults.is_empty() {
            let faults = serde_json::to_string(&self.faults).unwrap_or_default();
            key.push_str("|faults=");
            key.push_str(&faults);
        }
        if !self.limits.is_empty() {
            let limits = serde_json::to_string(&self.limits).unwrap_or_default();
            key.push_str("|limits=");
            key.push_str(&limits);
        }
        if self.drop_tags_header {
            key.push_str("|drop-tags");
        }
        key
    }

    /// The cluster of the local workload behind the inbound.
    pub(crate) fn apply_cluster(&self, cluster: &mut Cluster, protocol: Protocol) {
        if let Some(conf) = self.every.get(Kind::MeshTimeout) {
            mesh_timeout::cluster(&conf, cluster, protocol);
        }
        if let Some(conf) = self.every.get(Kind::MeshCircuitBreaker) {
            mesh_circuit_breaker::cluster(&conf, cluster);
        }
    }

    /// The inbound listener's HTTP connection manager and its routes.
    pub(crate) fn apply_http(
        &self,
        hcm: &mut HttpConnectionManager,
        routes: &mut RouteConfiguration,
    ) {
        if let Some(conf) = self.every.get(Kind::MeshTimeout) {
            mesh_timeout::http(&conf, hcm, routes);
        }
        if self.drop_tags_header {
            mesh_fault_injection::drop_tags_header(routes);
        }
        // Both go before the router, faults first, as Kuma orders them.
        mesh_fault_injection::http(&self.faults, hcm);
        if let Some(conf) = self.every.get(Kind::MeshRateLimit) {
            mesh_rate_limit::http(&conf, hcm, routes);
        }
        mesh_rate_limit::http_per_client(&self.limits, hcm, routes);
    }

    /// Network filters an HTTP inbound runs before its connection manager.
    pub(crate) fn http_network_filters(&self) -> Vec<Filter> {
        mesh_rate_limit::identity_state(&self.limits)
            .into_iter()
            .collect()
    }

    /// Network filters a TCP inbound runs before its TCP proxy.
    pub(crate) fn tcp_filters(&self) -> Vec<Filter> {
        self.every
            .get(Kind::MeshRateLimit)
            .and_then(|conf| mesh_rate_limit::tcp(&conf))
            .into_iter()
            .collect()
    }

    /// The mTLS mode MeshTLS sets for this inbound in place of the mesh's.
    pub(crate) fn tls_mode(&self) -> Option<MtlsMode> {
        mesh_tls::mode(&*self.mesh_tls()?)
    }

    /// The TLS versions and ciphers MeshTLS sets for mesh TLS.
    pub(crate) fn tls_params(&self) -> Option<TlsParameters> {
        mesh_tls::params(&*self.mesh_tls()?)
    }

    /// The MeshTLS conf every client of the inbound gets.
    fn mesh_tls(&self) -> Option<Arc<kuma_api::policies::mesh_tls::Conf>> {
        self.every.get(Kind::MeshTLS)
    }

    /// The inbound listener's TCP proxy.
    pub(crate) fn apply_tcp(&self, tcp: &mut TcpProxy) {
        if let Some(conf) = self.every.get(Kind::MeshTimeout) {
            mesh_timeout::tcp(&conf, tcp);
        }
    }
}

#[cfg(test)]
mod confs_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_cache_key_stands_for_the_confs_by_kind_however_they_are_held() {
        assert!(Confs::default().key(None).is_empty());
        let timeout = json!({"idleTimeout": "20s"});
        let rules = Arc::new(ToRules::from_rules(vec![kuma_policy::Rule {
            subset: kuma_policy::Subset::mesh(),
            conf: timeout.clone(),
            origins: Vec::new(),
        }]));
        let retry = json!({"http": {"numRetries": 2}, "tcp": {"x": "a\"b"}});
        let confs = |timeout: SharedConf| {
            Confs::new(Vec::from([
                (Kind::MeshRetry, SharedConf::Own(retry.clone())),
                (Kind::MeshTimeout, timeout),
            ]))
        };
        let shared = confs(SharedConf::ToRule(rules, 0)).key(None);
        assert!(!shared.is_empty());
        assert_eq!(shared, confs(SharedConf::Own(timeout.clone())).key(None));
        let longer = json!({"idleTimeout": "30s"});
        assert_ne!(shared, confs(SharedConf::Own(longer)).key(None));
        // The same conf under another kind is another key.
        let swapped = Confs::new(Vec::from([
            (Kind::MeshRetry, SharedConf::Own(retry.clone())),
            (Kind::MeshCircuitBreaker, SharedConf::Own(timeout)),
        ]));
        assert_ne!(shared, swapped.key(None));
    }
}
