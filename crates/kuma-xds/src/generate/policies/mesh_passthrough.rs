//! MeshPassthrough: what a transparent proxy may reach outside the mesh.
//!
//! As Kuma 2.x applies the folded conf to the `outbound:passthrough:*`
//! listeners (see `generate::passthrough`):
//! - `All`: the listeners keep forwarding every connection to its original
//!   destination;
//! - `None`: the original-destination clusters go away, so nothing outside
//!   the mesh is reachable;
//! - `Matched` (the default when a policy selects the proxy): the clusters go
//!   away and each listener gets one filter chain per distinct
//!   `appendMatch` (for its address family), each to a cluster of its own:
//!   TCP and TLS chains match on destination address (IP, CIDR), port and,
//!   for TLS domains, SNI; HTTP, HTTP/2 and gRPC domains of one port share a
//!   chain whose connection manager has a virtual host per domain and a 503
//!   for any other Host; HTTP by IP or CIDR gets a chain per address.
//!
//! Chains are ordered as Kuma orders them: TLS, then TCP, then L7; higher
//! ports first; IPs before CIDRs before domains; longer prefixes and
//! domains with more labels first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{CidrRange, DataSource, data_source};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::InternalAddressConfig;
use envoy_types::pb::google::protobuf::UInt32Value;
use kuma_api::policies::mesh_passthrough::{Conf, L7_PROTOCOLS, Match};

use crate::generate::cluster::original_dst_cluster;
use crate::generate::listener;
use crate::generate::snapshot::Protocol;

/// Kuma's answer to an HTTP request for a domain no match allows.
const NO_MATCH_MESSAGE: &str = "This response comes from Kuma Sidecar. No routes matched this domain - check configuration of your MeshPassthrough policy.\n";

/// `spec.default.passthroughMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    All,
    Matched,
    None,
}

/// The conf's mode; Kuma takes an absent (or unknown) one as `Matched`.
pub(crate) fn mode(conf: &Conf) -> Mode {
    match conf.passthrough_mode.as_deref() {
        Some("All") => Mode::All,
        Some("None") => Mode::None,
        _ => Mode::Matched,
    }
}

/// How an entry matches, in Kuma's order of specificity (lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MatchType {
    WildcardDomain,
    Domain,
    Cidr,
    CidrV6,
    Ip,
    IpV6,
}

impl MatchType {
    fn of(m: &Match) -> Option<MatchType> {
        let v6 = |s: &str| s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6());
        match m.kind.as_str() {
            "Domain" if m.value.starts_with('*') => Some(MatchType::WildcardDomain),
            "Domain" => Some(MatchType::Domain),
            "IP" if v6(&m.value) => Some(MatchType::IpV6),
            "IP" => Some(MatchType::Ip),
            "CIDR" if v6(m.value.split('/').next().unwrap_or_default()) => Some(MatchType::CidrV6),
            "CIDR" => Some(MatchType::Cidr),
            _ => None,
        }
    }

    fn is_domain(self) -> bool {
        matches!(self, MatchType::Domain | MatchType::WildcardDomain)
    }

    /// Whether chains of this match belong on the IPv6 (`true`) or IPv4
    /// listener; domains belong on both.
    fn fits(self, ipv6: bool) -> bool {
        match self {
            MatchType::Ip | MatchType::Cidr => !ipv6,
            MatchType::IpV6 | MatchType::CidrV6 => ipv6,
            MatchType::Domain | MatchType::WildcardDomain => true,
        }
    }
}

/// One filter chain to be: L7 domains of one protocol and port are grouped
/// in `routes` (with an empty `value`); everything else has its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Matcher {
    protocol: String,
    port: u32,
    match_type: MatchType,
    value: String,
}

/// A domain an L7 chain routes by Host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Domain {
    match_type: MatchType,
    value: String,
}

fn protocol_rank(protocol: &str) -> u8 {
    match protocol {
        "tls" => 0,
        "tcp" => 1,
        _ => 2,
    }
}

/// More labels first, then alphabetical.
fn domain_order(a: &str, b: &str) -> std::cmp::Ordering {
    let labels = |s: &str| s.split('.').count();
    labels(b).cmp(&labels(a)).then_with(|| a.cmp(b))
}

fn prefix_len(cidr: &str) -> u32 {
    cidr.split_once('/')
        .and_then(|(_, bits)| bits.parse().ok())
        .unwrap_or(0)
}

/// The distinct matchers of the conf in Kuma's chain order.
fn ordered(conf: &Conf) -> Vec<(Matcher, Vec<Domain>)> {
    let mut grouped: BTreeMap<Matcher, BTreeSet<Domain>> = BTreeMap::new();
    for m in conf.append_match.as_deref().unwrap_or_default() {
        let Some(match_type) = MatchType::of(m) else {
            continue;
        };
        // MySQL is proxied as plain TCP; both on one address would be
        // duplicate chains, which Envoy refuses.
        let protocol = if m.protocol == "mysql" {
            "tcp".to_string()
        } else {
            m.protocol.clone()
        };
        let port = m.port.unwrap_or(0);
        if L7_PROTOCOLS.contains(&protocol.as_str()) && match_type.is_domain() {
            // Exact and wildcard domains of a port share one chain (Host
            // matching tells them apart), so their matches never collide.
            let key = Matcher {
                protocol,
                port,
                match_type: MatchType::Domain,
                value: String::new(),
            };
            grouped.entry(key).or_default().insert(Domain {
                match_type,
                value: m.value.clone(),
            });
        } else {
            let key = Matcher {
                protocol,
                port,
                match_type,
                value: m.value.clone(),
            };
            grouped.entry(key).or_default();
        }
    }
    let mut matchers: Vec<(Matcher, Vec<Domain>)> = grouped
        .into_iter()
        .map(|(m, domains)| {
            let mut domains: Vec<Domain> = domains.into_iter().collect();
            domains.sort_by(|a, b| {
                a.match_type
                    .cmp(&b.match_type)
                    .then_with(|| domain_order(&a.value, &b.value))
            });
            (m, domains)
        })
        .collect();
    matchers.sort_by(|(a, _), (b, _)| {
        protocol_rank(&a.protocol)
            .cmp(&protocol_rank(&b.protocol))
            .then_with(|| b.port.cmp(&a.port))
            .then_with(|| b.match_type.cmp(&a.match_type))
            .then_with(|| match a.match_type {
                MatchType::Domain | MatchType::WildcardDomain => domain_order(&a.value, &b.value),
                MatchType::Cidr | MatchType::CidrV6 => {
                    prefix_len(&b.value).cmp(&prefix_len(&a.value))
                }
                _ => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.value.cmp(&b.value))
            .then_with(|| a.protocol.cmp(&b.protocol))
    });
    matchers
}

fn display_port(port: u32) -> String {
    if port == 0 {
        "*".to_string()
    } else {
        port.to_string()
    }
}

/// `meshpassthrough_<protocol>_<value>_<port or *>`, as Kuma names the
/// clusters and chains.
fn name(protocol: &str, value: &str, port: u32) -> String {
    format!("meshpassthrough_{protocol}_{value}_{}", display_port(port))
}

/// Stat names may not hold dots, colons or stars.
fn stat_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The network address of an IP or CIDR as Envoy matches it: host bits of
/// a CIDR cleared (so equal networks give equal chains).
fn cidr_range(match_type: MatchType, value: &str) -> Option<CidrRange> {
    let (ip, len) = match match_type {
        MatchType::Ip | MatchType::IpV6 => {
            let ip: IpAddr = value.parse().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
        MatchType::Cidr | MatchType::CidrV6 => {
            let (ip, bits) = value.split_once('/')?;
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u32 = bits.parse().ok()?;
            let network = match ip {
                IpAddr::V4(v4) => {
                    let mask = u32::MAX.checked_shl(32 - bits.min(32)).unwrap_or(0);
                    IpAddr::from((u32::from(v4) & mask).to_be_bytes())
                }
                IpAddr::V6(v6) => {
                    let mask = u128::MAX.checked_shl(128 - bits.min(128)).unwrap_or(0);
                    IpAddr::from((u128::from(v6) & mask).to_be_bytes())
                }
            };
            (network, bits)
        }
        MatchType::Domain | MatchType::WildcardDomain => return None,
    };
    Some(CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

/// The filter chains of one passthrough listener and the clusters they
/// forward to (by name).
#[derive(Debug, Default)]
pub(crate) struct Chains {
    pub(crate) chains: Vec<FilterChain>,
    pub(crate) clusters: BTreeMap<String, Cluster>,
}

/// The `Matched` chains of the IPv4 (`ipv6` false) or IPv6 listener; empty
/// when no match concerns that address family.
pub(crate) fn chains(conf: &Conf, ipv6: bool) -> Chains {
    let mut out = Chains::default();
    let mut seen: Vec<FilterChainMatch> = Vec::new();
    for (m, domains) in ordered(conf) {
        if !m.match_type.fits(ipv6) {
            continue;
        }
        let (chain, clusters) = if m.value.is_empty() {
            domain_chain(&m, &domains)
        } else {
            single_chain(&m)
        };
        // An IP and a CIDR of the same single address match alike; Envoy
        // refuses a listener with two equal matches, the first one wins.
        let Some(chain_match) = chain.filter_chain_match.clone() else {
            continue;
        };
        if seen.contains(&chain_match) {
            continue;
        }
        seen.push(chain_match);
        out.chains.push(chain);
        for c in clusters {
            out.clusters.insert(c.name.clone(), c);
        }
    }
    out
}

fn base_match(m: &Matcher, transport: &str) -> FilterChainMatch {
    FilterChainMatch {
        transport_protocol: transport.to_string(),
        destination_port: (m.port != 0).then_some(UInt32Value { value: m.port }),
        prefix_ranges: cidr_range(m.match_type, &m.value).into_iter().collect(),
        ..FilterChainMatch::default()
    }
}

/// A TCP or TLS chain, or an HTTP chain for one IP or CIDR.
fn single_chain(m: &Matcher) -> (FilterChain, Vec<Cluster>) {
    let chain_name = name(&m.protocol, &m.value, m.port);
    let cluster = cluster(&chain_name, m);
    let (chain_match, filter) = match m.protocol.as_str() {
        "tls" | "tcp" => {
            let tls = m.protocol == "tls";
            let mut chain_match = base_match(m, if tls { "tls" } else { "raw_buffer" });
            if tls && m.match_type.is_domain() {
                chain_match.server_names = vec![m.value.clone()];
            }
            let proxy = listener::tcp_proxy_config(&stat_name(&chain_name), &chain_name);
            (chain_match, listener::tcp_proxy_filter(proxy))
        }
        _ => {
            let mut chain_match = base_match(m, "raw_buffer");
            chain_match.application_protocols = http_protocols();
            let vhost = VirtualHost {
                name: m.value.clone(),
                domains: vec!["*".to_string()],
                routes: vec![route_to(&chain_name)],
                ..VirtualHost::default()
            };
            (chain_match, http_filter(&chain_name, vec![vhost]))
        }
    };
    let chain = FilterChain {
        name: chain_name,
        filter_chain_match: Some(chain_match),
        filters: vec![filter],
        ..FilterChain::default()
    };
    (chain, vec![cluster])
}

/// The chain of every HTTP domain of one protocol and port: a virtual host
/// per domain, Kuma's 503 for any other.
fn domain_chain(m: &Matcher, domains: &[Domain]) -> (FilterChain, Vec<Cluster>) {
    let chain_name = format!("meshpassthrough_{}_{}", m.protocol, display_port(m.port));
    let mut clusters = Vec::new();
    let mut vhosts = Vec::new();
    for d in domains {
        let cluster_name = name(&m.protocol, &d.value, m.port);
        // The Host header may carry the port (RFC 9110); without a port any
        // is allowed.
        let with_port = if m.port != 0 {
            format!("{}:{}", d.value, m.port)
        } else {
            format!("{}:*", d.value)
        };
        vhosts.push(VirtualHost {
            name: d.value.clone(),
            domains: vec![d.value.clone(), with_port],
            routes: vec![route_to(&cluster_name)],
            ..VirtualHost::default()
        });
        clusters.push(cluster(&cluster_name, m));
    }
    vhosts.push(VirtualHost {
        name: "no_match".to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            r#match: Some(prefix_match()),
            action: Some(route::Action::DirectResponse(DirectResponseAction {
                status: 503,
                body: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(
                        NO_MATCH_MESSAGE.to_string(),
                    )),
                    ..DataSource::default()
                }),
                ..DirectResponseAction::default()
            })),
            ..Route::default()
        }],
        ..VirtualHost::default()
    });
    let mut chain_match = base_match(m, "raw_buffer");
    chain_match.application_protocols = http_protocols();
    let chain = FilterChain {
        name: chain_name.clone(),
        filter_chain_match: Some(chain_match),
        filters: vec![http_filter(&chain_name, vhosts)],
        ..FilterChain::default()
    };
    (chain, clusters)
}

/// What the HTTP inspector reports for plaintext HTTP/1.1 and HTTP/2.
fn http_protocols() -> Vec<String> {
    vec!["http/1.1".to_string(), "h2c".to_string()]
}

fn prefix_match() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
        ..RouteMatch::default()
    }
}

fn route_to(cluster: &str) -> Route {
    Route {
        r#match: Some(prefix_match()),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            ..RouteAction::default()
        })),
        ..Route::default()
    }
}

fn http_filter(
    name: &str,
    virtual_hosts: Vec<VirtualHost>,
) -> envoy_types::pb::envoy::config::listener::v3::Filter {
    let mut hcm = listener::hcm(&stat_name(name), Vec::new());
    // Only the proxy's own loopback counts as internal, as Kuma sets it.
    hcm.internal_address_config = Some(InternalAddressConfig {
        cidr_ranges: vec![
            CidrRange {
                address_prefix: "127.0.0.1".to_string(),
                prefix_len: Some(UInt32Value { value: 32 }),
            },
            CidrRange {
                address_prefix: "::1".to_string(),
                prefix_len: Some(UInt32Value { value: 128 }),
            },
        ],
        ..InternalAddressConfig::default()
    });
    let routes = RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        ..RouteConfiguration::default()
    };
    listener::hcm_filter(hcm, routes)
}

/// The cluster a chain forwards to: as Kuma makes every MeshPassthrough
/// cluster, to the connection's original destination (for a domain, the
/// address the application resolved and dialled).
fn cluster(name: &str, m: &Matcher) -> Cluster {
    original_dst_cluster(name, stat_name(name), Protocol::parse(&m.protocol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, LbPolicy,
    };

    fn conf(yaml: &str) -> Conf {
        serde_yaml::from_str(yaml).expect("conf")
    }

    fn names(chains: &Chains) -> Vec<&str> {
        chains.chains.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn modes_default_to_matched() {
        assert_eq!(mode(&conf("passthroughMode: All")), Mode::All);
        assert_eq!(mode(&conf("passthroughMode: None")), Mode::None);
        assert_eq!(mode(&conf("appendMatch: []")), Mode::Matched);
    }

    #[test]
    fn chains_follow_kuma_order_and_address_family() {
        let c = conf(
            r#"
appendMatch:
- {type: Domain, value: api.example.com, protocol: http, port: 80}
- {type: Domain, value: "*.example.com", protocol: http, port: 80}
- {type: CIDR, value: 10.0.0.0/8, protocol: tcp, port: 5432}
- {type: CIDR, value: 10.1.0.0/16, protocol: tcp, port: 5432}
- {type: IP, value: 10.1.2.3, protocol: tcp, port: 5432}
- {type: IP, value: "fd00::1", protocol: tcp, port: 5432}
- {type: Domain, value: a.b.example.org, protocol: tls, port: 443}
- {type: Domain, value: example.org, protocol: tls, port: 443}
"#,
        );
        let v4 = chains(&c, false);
        assert_eq!(
            names(&v4),
            vec![
                "meshpassthrough_tls_a.b.example.org_443",
                "meshpassthrough_tls_example.org_443",
                "meshpassthrough_tcp_10.1.2.3_5432",
                "meshpassthrough_tcp_10.1.0.0/16_5432",
                "meshpassthrough_tcp_10.0.0.0/8_5432",
                "meshpassthrough_http_80",
            ]
        );
        let v6 = chains(&c, true);
        assert_eq!(
            names(&v6),
            vec![
                "meshpassthrough_tls_a.b.example.org_443",
                "meshpassthrough_tls_example.org_443",
                "meshpassthrough_tcp_fd00::1_5432",
                "meshpassthrough_http_80",
            ]
        );
        // One cluster per domain of the HTTP chain, wildcard included.
        assert!(
            v4.clusters
                .contains_key("meshpassthrough_http_*.example.com_80")
        );
        assert!(
            v4.clusters
                .contains_key("meshpassthrough_http_api.example.com_80")
        );
    }

    #[test]
    fn every_cluster_follows_the_original_destination() {
        let c = conf(
            r#"
appendMatch:
- {type: Domain, value: api.example.com, protocol: tls, port: 443}
- {type: Domain, value: "*.example.com", protocol: tls, port: 443}
- {type: IP, value: 10.0.0.1, protocol: grpc, port: 9000}
"#,
        );
        let out = chains(&c, false);
        assert_eq!(out.clusters.len(), 3);
        for (name, cluster) in &out.clusters {
            assert_eq!(
                cluster.cluster_discovery_type,
                Some(ClusterDiscoveryType::Type(
                    DiscoveryType::OriginalDst as i32
                )),
                "{name}"
            );
            assert_eq!(
                cluster.lb_policy,
                LbPolicy::ClusterProvided as i32,
                "{name}"
            );
            assert!(cluster.load_assignment.is_none(), "{name}");
        }
        let grpc = &out.clusters["meshpassthrough_grpc_10.0.0.1_9000"];
        assert!(
            !grpc.typed_extension_protocol_options.is_empty(),
            "gRPC speaks HTTP/2"
        );
        let tls = &out.chains[0];
        let m = tls.filter_chain_match.as_ref().expect("match");
        assert_eq!(m.server_names, vec!["api.example.com".to_string()]);
        assert_eq!(m.transport_protocol, "tls");
    }

    #[test]
    fn an_ip_and_its_single_address_cidr_make_one_chain() {
        let c = conf(
            r#"
appendMatch:
- {type: CIDR, value: 10.0.0.7/32, protocol: tcp, port: 80}
- {type: IP, value: 10.0.0.7, protocol: tcp, port: 80}
- {type: IP, value: 10.0.0.7, protocol: mysql, port: 80}
- {type: CIDR, value: 10.9.9.9/8, protocol: tcp}
"#,
        );
        let out = chains(&c, false);
        assert_eq!(
            names(&out),
            vec![
                "meshpassthrough_tcp_10.0.0.7_80",
                "meshpassthrough_tcp_10.9.9.9/8_*"
            ]
        );
        let cidr = out.chains[1].filter_chain_match.as_ref().expect("match");
        assert_eq!(cidr.prefix_ranges[0].address_prefix, "10.0.0.0");
        assert_eq!(cidr.destination_port, None);
    }
}
