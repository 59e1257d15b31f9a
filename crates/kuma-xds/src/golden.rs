//! Envoy resources as YAML, for golden files and for reading in review.
//!
//! `envoy-types` has no serde, so a message is rendered from its `{:#?}`
//! text: structs become maps, `Some(x)` becomes `x`, defaults are left out,
//! oneofs are named by their member (as in Envoy's JSON), and every `Any`
//! of a type we emit is decoded so its typed config reads as a structure.
//! The result is close to what Envoy itself accepts as YAML.

mod debug;
mod yaml;

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::rbac::v3::Rbac;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::common::matching::v3::ExtensionWithMatcher;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit as HttpLocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::local_ratelimit::v3::LocalRateLimit as NetworkLocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::set_filter_state::v3::Config as SetFilterState;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::health_check::event_sinks::file::v3::HealthCheckEventFileSink;
use envoy_types::pb::envoy::extensions::retry::host::omit_host_metadata::v3::OmitHostMetadataConfig;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, Secret, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use crate::{ProxyResources, type_url};
use debug::Node;
use yaml::Yaml;

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("unreadable Debug text at character {offset}: {message}")]
    Parse { offset: usize, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} differs from the generated output (regenerate with UPDATE_GOLDEN=1 and review the diff):\n{diff}"
    )]
    Mismatch { path: PathBuf, diff: String },
}

/// Decodes the bytes of one message type into its Debug tree.
type TreeOf = fn(&[u8]) -> Option<Node>;

/// Debug tree of a packed message whose type we know; `None` for others.
fn decode_any(url: &str, bytes: &[u8]) -> Option<Node> {
    fn tree<M: Message + Default + Debug>(bytes: &[u8]) -> Option<Node> {
        let msg = M::decode(bytes).ok()?;
        debug::parse(&format!("{msg:#?}")).ok()
    }
    // The types our generators and bootstrap put inside an Any.
    let table: &[(String, TreeOf)] = &[
        (Listener::type_url(), tree::<Listener>),
        (Cluster::type_url(), tree::<Cluster>),
        (
            ClusterLoadAssignment::type_url(),
            tree::<ClusterLoadAssignment>,
        ),
        (RouteConfiguration::type_url(), tree::<RouteConfiguration>),
        (
            HttpConnectionManager::type_url(),
            tree::<HttpConnectionManager>,
        ),
        (Router::type_url(), tree::<Router>),
        (TcpProxy::type_url(), tree::<TcpProxy>),
        (HttpProtocolOptions::type_url(), tree::<HttpProtocolOptions>),
        (Secret::type_url(), tree::<Secret>),
        (UpstreamTlsContext::type_url(), tree::<UpstreamTlsContext>),
        (
            DownstreamTlsContext::type_url(),
            tree::<DownstreamTlsContext>,
        ),
        (NetworkRbac::type_url(), tree::<NetworkRbac>),
        (HttpRbac::type_url(), tree::<HttpRbac>),
        (TlsInspector::type_url(), tree::<TlsInspector>),
        (HttpLocalRateLimit::type_url(), tree::<HttpLocalRateLimit>),
        (
            NetworkLocalRateLimit::type_url(),
            tree::<NetworkLocalRateLimit>,
        ),
        (HttpFault::type_url(), tree::<HttpFault>),
        // Its matcher's inputs and actions are empty messages: their
        // `@type` alone says all.
        (
            ExtensionWithMatcher::type_url(),
            tree::<ExtensionWithMatcher>,
        ),
        (SetFilterState::type_url(), tree::<SetFilterState>),
        (
            PreviousPrioritiesConfig::type_url(),
            tree::<PreviousPrioritiesConfig>,
        ),
        (
            OmitHostMetadataConfig::type_url(),
            tree::<OmitHostMetadataConfig>,
        ),
        (
            PreviousHostsPredicate::type_url(),
            tree::<PreviousHostsPredicate>,
        ),
        (
            HealthCheckEventFileSink::type_url(),
            tree::<HealthCheckEventFileSink>,
        ),
    ];
    table
        .iter()
        .find(|(u, _)| u == url)
        .and_then(|(_, decode)| decode(bytes))
}

/// Enum fields left at their default, per message type we emit; read from
/// each type's `Default` Debug text, where every enum shows its zero value.
fn enum_defaults() -> &'static HashMap<String, HashMap<String, String>> {
    static DEFAULTS: LazyLock<HashMap<String, HashMap<String, String>>> = LazyLock::new(|| {
        fn of<M: Default + Debug>() -> Option<(String, HashMap<String, String>)> {
            let Ok(Node::Struct(name, fields)) = debug::parse(&format!("{:#?}", M::default()))
            else {
                return None;
            };
            let enums = fields
                .into_iter()
                .filter_map(|(f, v)| match v {
                    Node::Ident(i) if i != "None" && i != "false" => Some((f, i)),
                    _ => None,
                })
                .collect();
            Some((name, enums))
        }
        use envoy_types::pb::envoy::config::listener::v3 as listener;
        use envoy_types::pb::envoy::config::{cluster::v3 as cluster, core::v3 as core};
        use envoy_types::pb::envoy::config::{endpoint::v3 as endpoint, route::v3 as route};
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
        [
            of::<Listener>(),
            of::<listener::FilterChain>(),
            of::<listener::Filter>(),
            of::<core::Address>(),
            of::<core::SocketAddress>(),
            of::<core::ConfigSource>(),
            of::<core::ApiConfigSource>(),
            of::<core::GrpcService>(),
            of::<core::Http1ProtocolOptions>(),
            of::<core::Http2ProtocolOptions>(),
            of::<core::TransportSocket>(),
            of::<Cluster>(),
            of::<cluster::cluster::EdsClusterConfig>(),
            of::<ClusterLoadAssignment>(),
            of::<endpoint::LocalityLbEndpoints>(),
            of::<endpoint::LbEndpoint>(),
            of::<endpoint::Endpoint>(),
            of::<RouteConfiguration>(),
            of::<route::VirtualHost>(),
            of::<route::Route>(),
            of::<route::RouteMatch>(),
            of::<route::RouteAction>(),
            of::<HttpConnectionManager>(),
            of::<hcm::HttpFilter>(),
            of::<TcpProxy>(),
            of::<Router>(),
            of::<HttpProtocolOptions>(),
            of::<Secret>(),
            of::<UpstreamTlsContext>(),
            of::<DownstreamTlsContext>(),
            of::<tls::CommonTlsContext>(),
            of::<tls::CertificateValidationContext>(),
            of::<tls::TlsParameters>(),
            of::<tls::SubjectAltNameMatcher>(),
            of::<listener::FilterChainMatch>(),
            of::<listener::ListenerFilter>(),
            of::<NetworkRbac>(),
            of::<HttpRbac>(),
            of::<Rbac>(),
            of::<TlsInspector>(),
            of::<HttpLocalRateLimit>(),
            // The network filter's LocalRateLimit shares this Debug name and
            // has no enum fields.
            of::<HttpFault>(),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
    &DEFAULTS
}

fn to_yaml(debug_text: &str) -> Result<Option<Yaml>, GoldenError> {
    let node = debug::parse(debug_text)?;
    let schema = yaml::Schema {
        decode: &decode_any,
        enum_defaults: enum_defaults(),
    };
    Ok(yaml::convert(&node, &schema))
}

/// YAML of any prost message (or anything whose Debug text has that shape).
pub fn render_message<M: Debug>(message: &M) -> Result<String, GoldenError> {
    Ok(to_yaml(&format!("{message:#?}"))?
        .map(|y| yaml::emit(&y))
        .unwrap_or_else(|| "{}\n".to_string()))
}

/// YAML of a packed resource, its `@type` first.
pub fn render_any(any: &Any) -> Result<String, GoldenError> {
    render_message(any)
}

/// Short section names of the types we serve, in make-before-break order.
fn section(url: &str) -> &str {
    match url {
        type_url::CLUSTER => "clusters",
        type_url::ENDPOINT => "endpoints",
        type_url::LISTENER => "listeners",
        type_url::ROUTE => "routes",
        type_url::SECRET => "secrets",
        other => other,
    }
}

/// All of a proxy's resources: one section per type, resources by name.
pub fn render_proxy(resources: &ProxyResources) -> Result<String, GoldenError> {
    let mut sections = Vec::new();
    let known = type_url::ORDER.iter().map(|s| s.to_string());
    let others = resources
        .by_type
        .keys()
        .filter(|k| !type_url::ORDER.contains(&k.as_str()))
        .cloned();
    for url in known.chain(others) {
        let mut items = Vec::new();
        for r in resources.of_type(&url) {
            match to_yaml(&format!("{:#?}", r.body))? {
                // The section already says the type.
                Some(Yaml::Map(fields)) => items.push(Yaml::Map(
                    fields.into_iter().filter(|(k, _)| k != "'@type'").collect(),
                )),
                Some(other) => items.push(other),
                None => {}
            }
        }
        if !items.is_empty() {
            sections.push((section(&url).to_string(), Yaml::Seq(items)));
        }
    }
    if sections.is_empty() {
        return Ok("{}\n".to_string());
    }
    Ok(yaml::emit(&Yaml::Map(sections)))
}

/// Compares `actual` with the golden file at `path`, or rewrites the file
/// when `update` is set (tests pass `UPDATE_GOLDEN` from the environment).
pub fn check_golden(path: &Path, actual: &str, update: bool) -> Result<(), GoldenError> {
    let io = |source| GoldenError::Io {
        path: path.to_path_buf(),
        source,
    };
    if update {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        return std::fs::write(path, actual).map_err(io);
    }
    let expected = std::fs::read_to_string(path).map_err(io)?;
    if expected == actual {
        return Ok(());
    }
    Err(GoldenError::Mismatch {
        path: path.to_path_buf(),
        diff: line_diff(&expected, actual),
    })
}

/// A unified-style diff (`-` golden, `+` actual) with a little context.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let near_change = |k: usize| {
        let lo = k.saturating_sub(CONTEXT);
        let hi = (k + CONTEXT + 1).min(ops.len());
        ops[lo..hi].iter().any(|(op, _)| *op != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near_change(k) {
            out.push_str(&format!("{op} {line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("  ...\n");
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::XdsResource;
    use envoy_types::util::pack_any;
    use std::sync::Arc;

    #[test]
    fn nested_any_is_decoded() {
        let hcm = HttpConnectionManager {
            stat_prefix: "web".into(),
            ..HttpConnectionManager::default()
        };
        let text = render_any(&pack_any(hcm)).expect("renders");
        assert_eq!(
            text,
            "'@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\nstat_prefix: web\n"
        );
    }

    #[test]
    fn unknown_any_says_so() {
        let any = Any {
            type_url: "type.googleapis.com/x.Y".into(),
            value: vec![1, 2, 3],
        };
        assert!(
            render_any(&any)
                .expect("renders")
                .contains("undecoded_bytes: 3")
        );
    }

    #[test]
    fn proxy_sections_in_order() {
        let mut p = ProxyResources::default();
        let l = Listener {
            name: "l".into(),
            ..Listener::default()
        };
        let c = Cluster {
            name: "c".into(),
            ..Cluster::default()
        };
        p.insert(Arc::new(XdsResource::new("l", pack_any(l))));
        p.insert(Arc::new(XdsResource::new("c", pack_any(c))));
        assert_eq!(
            render_proxy(&p).expect("renders"),
            "clusters:\n- name: c\nlisteners:\n- name: l\n"
        );
    }

    #[test]
    fn mismatch_shows_a_diff_and_update_rewrites() {
        let dir = std::env::temp_dir().join(format!("kuma-xds-golden-{}", std::process::id()));
        let path = dir.join("x.golden.yaml");
        check_golden(&path, "a\nb\nc\n", true).expect("writes");
        check_golden(&path, "a\nb\nc\n", false).expect("equal");
        let err = check_golden(&path, "a\nB\nc\n", false).expect_err("differs");
        let GoldenError::Mismatch { diff, .. } = err else {
            panic!("mismatch expected");
        };
        assert_eq!(diff, "  a\n- b\n+ B\n  c\n");
        std::fs::remove_dir_all(dir).ok();
    }
}
