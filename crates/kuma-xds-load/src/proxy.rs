//! One simulated Envoy: what it holds (every resource decoded the way Envoy
//! decodes it), what it subscribes to, and how it reports reaching what a
//! scenario expects.

mod delta;
mod retry;
mod sotw;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use tokio::sync::{mpsc, watch};

pub(crate) use delta::run_delta;
pub(crate) use retry::{Attempts, Failure};
pub(crate) use sotw::run_sotw;

use crate::topology::Topology;

pub mod type_url {
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    pub const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    pub const TCP_PROXY: &str =
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
}

/// Why a response could not be applied, as Envoy would NACK it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("resource {name} of a {expected} response is a {found}")]
    WrongType {
        name: String,
        expected: String,
        found: String,
    },
    #[error("resource {name} ({type_url}) does not decode: {source}")]
    Proto {
        name: String,
        type_url: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error("resource type {0} is not one Envoy asked for")]
    UnknownType(String),
    #[error("resource {name}: {why}")]
    Invalid { name: String, why: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// The ClusterLoadAssignment name an EDS cluster waits for.
    pub eds_name: Option<String>,
    /// As Envoy reads it: 5 s when the cluster leaves it out.
    pub connect_timeout: Duration,
}

/// Envoy's connect timeout of a cluster that sets none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cluster's connect timeout as Envoy validates it: a well-formed
/// duration above zero, or absent.
fn connect_timeout(
    name: &str,
    d: Option<&envoy_types::pb::google::protobuf::Duration>,
) -> Result<Duration, DecodeError> {
    let Some(d) = d else {
        return Ok(DEFAULT_CONNECT_TIMEOUT);
    };
    let invalid = || DecodeError::Invalid {
        name: name.to_string(),
        why: format!(
            "connect_timeout {}s {}ns must be a duration above 0",
            d.seconds, d.nanos
        ),
    };
    let seconds = u64::try_from(d.seconds).map_err(|_| invalid())?;
    let nanos = u32::try_from(d.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(invalid)?;
    let timeout = Duration::new(seconds, nanos);
    if timeout.is_zero() {
        return Err(invalid());
    }
    Ok(timeout)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    pub port: Option<u32>,
    /// Whether its network filter is the HTTP connection manager.
    pub http: bool,
    /// Route configurations it loads by RDS.
    pub rds: Vec<String>,
}

/// A decoded resource, reduced to what scenarios check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Cluster(ClusterView),
    /// Endpoint addresses of a ClusterLoadAssignment.
    Endpoints(Vec<String>),
    Listener(ListenerView),
    Route,
    Secret,
}

fn proto<M: Message + Default>(name: &str, any: &Any) -> Result<M, DecodeError> {
    M::decode(any.value.as_slice()).map_err(|source| DecodeError::Proto {
        name: name.to_string(),
        type_url: any.type_url.clone(),
        source,
    })
}

/// Decodes a resource of a `type_url` response, nested filter configs included.
pub fn decode(type_url: &str, name: &str, any: &Any) -> Result<Decoded, DecodeError> {
    if any.type_url != type_url {
        return Err(DecodeError::WrongType {
            name: name.to_string(),
            expected: type_url.to_string(),
            found: any.type_url.clone(),
        });
    }
    Ok(match type_url {
        type_url::CLUSTER => {
            let c: Cluster = proto(name, any)?;
            let eds = c.cluster_discovery_type
                == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            let eds_name = eds.then(|| {
                c.eds_cluster_config
                    .as_ref()
                    .map(|e| e.service_name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| c.name.clone())
            });
            let connect_timeout = connect_timeout(name, c.connect_timeout.as_ref())?;
            Decoded::Cluster(ClusterView {
                eds_name,
                connect_timeout,
            })
        }
        type_url::ENDPOINT => {
            let cla: ClusterLoadAssignment = proto(name, any)?;
            let mut addresses = Vec::new();
            for group in &cla.endpoints {
                for lb in &group.lb_endpoints {
                    if let Some(HostIdentifier::Endpoint(e)) = &lb.host_identifier
                        && let Some(address::Address::SocketAddress(s)) =
                            e.address.as_ref().and_then(|a| a.address.as_ref())
                    {
                        addresses.push(s.address.clone());
                    }
                }
            }
            Decoded::Endpoints(addresses)
        }
        type_url::LISTENER => {
            let l: Listener = proto(name, any)?;
            let port = match l.address.as_ref().and_then(|a| a.address.as_ref()) {
                Some(address::Address::SocketAddress(s)) => match s.port_specifier {
                    Some(PortSpecifier::PortValue(p)) => Some(p),
                    _ => None,
                },
                _ => None,
            };
            let mut view = ListenerView {
                port,
                http: false,
                rds: Vec::new(),
            };
            for chain in &l.filter_chains {
                for filter in &chain.filters {
                    let Some(ConfigType::TypedConfig(config)) = &filter.config_type else {
                        continue;
                    };
                    match config.type_url.as_str() {
                        type_url::HCM => {
                            let hcm: HttpConnectionManager = proto(name, config)?;
                            view.http = true;
                            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                                view.rds.push(rds.route_config_name);
                            }
                        }
                        type_url::TCP_PROXY => {
                            let _: TcpProxy = proto(name, config)?;
                        }
                        _ => {}
                    }
                }
            }
            Decoded::Listener(view)
        }
        type_url::ROUTE => {
            let _: RouteConfiguration = proto(name, any)?;
            Decoded::Route
        }
        type_url::SECRET => {
            let _: Secret = proto(name, any)?;
            Decoded::Secret
        }
        other => return Err(DecodeError::UnknownType(other.to_string())),
    })
}

/// Everything one proxy holds, by type URL and name, and how its current
/// stream stands. What it holds outlives a stream, as Envoy's config does.
#[derive(Debug, Default)]
pub struct Held {
    by_type: BTreeMap<String, BTreeMap<String, Decoded>>,
    /// Delta: the version of each held resource, reported when reconnecting.
    versions: BTreeMap<String, BTreeMap<String, String>>,
    /// Streams the control plane accepted so far.
    pub streams: u32,
    /// Types asked for on the current stream and not answered yet.
    awaiting: BTreeSet<String>,
    /// Load assignments of EDS clusters added or changed since their
    /// endpoints last arrived. Envoy keeps such a cluster warming (using the
    /// old one, if any) until its endpoints come again, unchanged or not.
    warming: BTreeSet<String>,
}

impl Held {
    /// A resource received in a delta response: Envoy rebuilds a cluster
    /// it is sent (the server sends only changed ones).
    pub fn upsert(&mut self, type_url: &str, name: String, resource: Decoded) {
        self.warm_up(type_url, &name, &resource, true);
        self.by_type
            .entry(type_url.to_string())
            .or_default()
            .insert(name, resource);
    }

    pub fn set_version(&mut self, type_url: &str, name: &str, version: &str) {
        self.versions
            .entry(type_url.to_string())
            .or_default()
            .insert(name.to_string(), version.to_string());
    }

    /// Delta: what a reconnecting proxy tells it holds of one type.
    pub fn versions(&self, type_url: &str) -> std::collections::HashMap<String, String> {
        self.versions
            .get(type_url)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// What receiving `resource` does to warming: a cluster (when
    /// `rebuilt`) waits for its endpoints, endpoints end that wait.
    fn warm_up(&mut self, type_url: &str, name: &str, resource: &Decoded, rebuilt: bool) {
        match resource {
            Decoded::Cluster(ClusterView {
                eds_name: Some(eds),
                ..
            }) if rebuilt => {
                self.warming.insert(eds.clone());
            }
            Decoded::Endpoints(_) if type_url == type_url::ENDPOINT => {
                self.warming.remove(name);
            }
            _ => {}
        }
    }

    pub fn remove(&mut self, type_url: &str, name: &str) {
        if type_url == type_url::CLUSTER {
            self.warming.remove(name);
        }
        if let Some(m) = self.by_type.get_mut(type_url) {
            m.remove(name);
        }
        if let Some(m) = self.versions.get_mut(type_url) {
            m.remove(name);
        }
    }

    /// A new stream was accepted; `awaiting` are the types it must answer
    /// before the proxy is back in sync.
    pub fn stream_opened(&mut self, awaiting: impl IntoIterator<Item = String>) {
        self.streams += 1;
        self.awaiting = awaiting.into_iter().collect();
    }

    pub fn answered(&mut self, type_url: &str) {
        self.awaiting.remove(type_url);
    }

    /// State of the world: the response is the whole type.
    /// Envoy rebuilds only the clusters whose content changed.
    pub fn replace(&mut self, type_url: &str, all: BTreeMap<String, Decoded>) {
        for (name, resource) in &all {
            let rebuilt = self.by_type.get(type_url).and_then(|m| m.get(name)) != Some(resource);
            self.warm_up(type_url, name, resource, rebuilt);
        }
        self.by_type.insert(type_url.to_string(), all);
    }

    /// Names held of one type.
    pub fn names(&self, type_url: &str) -> impl Iterator<Item = &String> {
        self.of(type_url).map(|(n, _)| n)
    }

    fn of(&self, type_url: &str) -> impl Iterator<Item = (&String, &Decoded)> {
        self.by_type.get(type_url).into_iter().flatten()
    }

    /// Load assignments the held EDS clusters wait for.
    pub fn eds_names(&self) -> BTreeSet<String> {
        self.of(type_url::CLUSTER)
            .filter_map(|(_, d)| match d {
                Decoded::Cluster(c) => c.eds_name.clone(),
                _ => None,
            })
            .collect()
    }

    /// Route configurations the held listeners load by RDS.
    pub fn rds_names(&self) -> BTreeSet<String> {
        self.of(type_url::LISTENER)
            .flat_map(|(_, d)| match d {
                Decoded::Listener(l) => l.rds.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn listeners(&self) -> impl Iterator<Item = &ListenerView> {
        self.of(type_url::LISTENER).filter_map(|(_, d)| match d {
            Decoded::Listener(l) => Some(l),
            _ => None,
        })
    }

    fn cluster(&self, name: &str) -> Option<&ClusterView> {
        match self.by_type.get(type_url::CLUSTER)?.get(name)? {
            Decoded::Cluster(c) => Some(c),
            _ => None,
        }
    }

    fn endpoints(&self, cluster: &str) -> Option<&Vec<String>> {
        match self.by_type.get(type_url::ENDPOINT)?.get(cluster)? {
            Decoded::Endpoints(e) => Some(e),
            _ => None,
        }
    }

    /// Fully configured: every listener there, every EDS cluster warm, every
    /// RDS route loaded.
    fn configured(&self, listeners: usize) -> bool {
        let have_routes: BTreeSet<&String> = self.of(type_url::ROUTE).map(|(n, _)| n).collect();
        self.listeners().count() >= listeners
            && self
                .eds_names()
                .iter()
                .all(|n| self.endpoints(n).is_some() && !self.warming.contains(n))
            && self.rds_names().iter().all(|n| have_routes.contains(n))
    }
}

/// What a scenario waits for each targeted proxy to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The proxy's whole initial configuration.
    Configured,
    /// The load assignment of `cluster` lists an endpoint at `address`.
    Endpoint { cluster: String, address: String },
    /// The clusters of the proxy's outbounds to `to` have connect timeout
    /// `timeout` (and every cluster is warm).
    ConnectTimeout { to: Outbounds, timeout: Duration },
    /// Back in sync on a stream opened after the one it had (`baseline`,
    /// by proxy, is the count of streams it had then): every type asked
    /// for on it answered, and the whole configuration held.
    Resynced { baseline: Arc<Vec<u32>> },
    /// Nothing to wait for: every ACK of load assignments is reported as
    /// [`ProxyEvent::Endpoints`] and the runner judges.
    Observe,
}

impl Condition {
    pub fn holds(&self, held: &Held, topology: &Topology, proxy: u32) -> bool {
        match self {
            Condition::Configured => held.configured(topology.expected_listeners()),
            Condition::Endpoint { cluster, address } => held
                .endpoints(cluster)
                .is_some_and(|e| e.iter().any(|a| a == address)),
            Condition::ConnectTimeout { to, timeout } => {
                let services: Vec<String> = topology
                    .outbounds(proxy)
                    .into_iter()
                    .map(|o| o.service)
                    .filter(|s| to.includes(s))
                    .collect();
                // An updated cluster counts once it is warm again.
                !services.is_empty()
                    && held.configured(0)
                    && services.iter().all(|s| {
                        held.cluster(s)
                            .is_some_and(|c| c.connect_timeout == *timeout)
                    })
            }
            Condition::Resynced { baseline } => {
                held.streams > baseline.get(proxy as usize).copied().unwrap_or(u32::MAX)
                    && held.awaiting.is_empty()
                    && held.configured(topology.expected_listeners())
            }
            Condition::Observe => false,
        }
    }
}

/// Which of a proxy's outbounds a condition is about (each outbound's
/// cluster is named after its service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbounds {
    /// Every outbound but those to these services.
    AllExcept(Vec<String>),
    /// The outbounds to one service.
    To(String),
}

impl Outbounds {
    fn includes(&self, service: &str) -> bool {
        match self {
            Outbounds::AllExcept(except) => !except.iter().any(|e| e == service),
            Outbounds::To(s) => s == service,
        }
    }
}

/// The current scenario's expectation, published to every proxy.
#[derive(Debug)]
pub struct Expectation {
    pub id: u64,
    pub condition: Condition,
    /// Indexed by proxy: whether the scenario waits for it.
    pub targets: Vec<bool>,
}

#[derive(Debug)]
pub enum ProxyEvent {
    /// The proxy ACKed a response after which it holds what expectation `id` wants.
    Met { proxy: u32, id: u64, at: Instant },
    /// The stream failed or the proxy had to NACK.
    Failed { proxy: u32, error: String },
    /// The control plane refused the stream as unavailable; the proxy retries.
    Retried { proxy: u32 },
    /// An established stream ended; the proxy reconnects, as Envoy does.
    Disconnected { proxy: u32, at: Instant },
    /// The proxy NACKed a response (it keeps what it had).
    Nacked { proxy: u32, error: String },
    /// Observing: the proxy ACKed these load assignments (cluster, endpoint
    /// addresses; `None` when removed).
    Endpoints {
        proxy: u32,
        at: Instant,
        clusters: Vec<(String, Option<Vec<String>>)>,
    },
}

/// What a simulated proxy shares with the scenario runner.
#[derive(Clone)]
pub struct Probe {
    pub proxy: u32,
    pub topology: Arc<Topology>,
    pub expect: watch::Receiver<Arc<Expectation>>,
    pub events: mpsc::UnboundedSender<ProxyEvent>,
    pub held: Arc<Mutex<Held>>,
    /// The last expectation this proxy reported meeting.
    pub reported: u64,
}

impl Probe {
    pub fn held(&self) -> MutexGuard<'_, Held> {
        // Held is replaced whole per response; a panic cannot leave half of one.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called right after an ACK of `acked` (type URL and resource names;
    /// `None` right after a stream opened): reports meeting the current
    /// expectation, or what it observes.
    pub fn after_ack(&mut self, at: Instant, acked: Option<(&str, &[String])>) {
        let expectation = self.expect.borrow().clone();
        if expectation.condition == Condition::Observe {
            if let Some((type_url::ENDPOINT, names)) = acked {
                self.observe(at, names);
            }
            return;
        }
        if expectation.id == self.reported
            || !expectation
                .targets
                .get(self.proxy as usize)
                .copied()
                .unwrap_or(false)
        {
            return;
        }
        let met = expectation
            .condition
            .holds(&self.held(), &self.topology, self.proxy);
        if met {
            self.reported = expectation.id;
            let _ = self.events.send(ProxyEvent::Met {
                proxy: self.proxy,
                id: expectation.id,
                at,
            });
        }
    }

    fn observe(&self, at: Instant, names: &[String]) {
        let clusters = {
            let held = self.held();
            names
                .iter()
                .map(|n| (n.clone(), held.endpoints(n).cloned()))
                .collect()
        };
        let _ = self.events.send(ProxyEvent::Endpoints {
            proxy: self.proxy,
            at,
            clusters,
        });
    }

    pub fn nack(&self, error: String) {
        let _ = self.events.send(ProxyEvent::Nacked {
            proxy: self.proxy,
            error,
        });
    }

    pub fn fail(&self, error: String) {
        let _ = self.events.send(ProxyEvent::Failed {
            proxy: self.proxy,
            error,
        });
    }
}

#[cfg(test)]
mod tests;
