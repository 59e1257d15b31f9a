//! Envoy clusters: EDS clusters of destinations, static clusters of local workloads.

use std::sync::OnceLock;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Http1ProtocolOptions,
    Http2ProtocolOptions, SocketAddress, TransportSocket, address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::{Any, Duration};
use envoy_types::util::pack_any;
use prost::Message;
use prost::encoding;

use super::snapshot::Protocol;
use crate::type_url;

/// Kuma's default connect timeout for every cluster.
const CONNECT_TIMEOUT_SECONDS: i64 = 5;

/// Key under which Envoy looks up upstream HTTP protocol options.
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub(crate) fn socket_address(address: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..SocketAddress::default()
        })),
    }
}

/// Endpoints come over the same ADS stream as everything else.
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(
            ConfigSourceSpecifier::Ads(AggregatedConfigSource::default()),
        ),
        resource_api_version: ApiVersion::V3 as i32,
        ..ConfigSource::default()
    }
}

fn base(name: &str, kind: DiscoveryType, protocol: Protocol) -> Cluster {
    let mut cluster = Cluster {
        name: name.to_string(),
        connect_timeout: Some(Duration {
            seconds: CONNECT_TIMEOUT_SECONDS,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        ..Cluster::default()
    };
    if protocol.is_http2() {
        // gRPC and http2 services speak HTTP/2 with prior knowledge.
        update_http_options(&mut cluster, protocol, |_| {});
    }
    cluster
}

/// Changes the cluster's upstream HTTP protocol options (created on first
/// use, speaking the destination's protocol, as Envoy requires one).
pub(crate) fn update_http_options(
    cluster: &mut Cluster,
    protocol: Protocol,
    update: impl FnOnce(&mut HttpProtocolOptions),
) {
    let mut options = cluster
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
        .and_then(|any| HttpProtocolOptions::decode(any.value.as_slice()).ok())
        .unwrap_or_else(|| {
            let config = if protocol.is_http2() {
                ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
            } else {
                ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
            };
            HttpProtocolOptions {
                upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                    ExplicitHttpConfig {
                        protocol_config: Some(config),
                    },
                )),
                ..HttpProtocolOptions::default()
            }
        });
    update(&mut options);
    cluster
        .typed_extension_protocol_options
        .insert(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(options));
}

/// A cluster packed as Envoy receives it. `pack_any` formats the type URL
/// anew for every message, which shows over thousands of destinations.
pub(crate) fn packed(cluster: &Cluster) -> Any {
    Any {
        type_url: type_url::CLUSTER.to_string(),
        value: cluster.encode_to_vec(),
    }
}

/// [`eds_cluster`] with `transport_socket` packed, for a destination no
/// policy conf changes: written as the cluster's name field, then the
/// encoding of the same cluster without a name (the same for every
/// destination of a protocol) with the transport socket put in its place.
/// Building a `Cluster` (a message of some hundred fields), encoding and
/// dropping it per destination was most of the cost of a transparent
/// proxy's clusters.
///
/// This relies on prost writing fields in tag order, so `name` (tag 1)
/// first; the tests hold it to `packed(&eds_cluster(..))`.
pub(crate) fn packed_eds(
    name: &str,
    protocol: Protocol,
    transport_socket: Option<&TransportSocket>,
) -> Any {
    let unnamed = unnamed_eds(protocol);
    named(
        name,
        &unnamed.bytes,
        unnamed.transport_socket_at,
        transport_socket,
    )
}

/// [`packed_eds`] from `template`, the encoding of a cluster with an
/// empty name and no transport socket that policy confs were applied to:
/// destinations with the same protocol and confs differ only in name and
/// TLS, so their clusters are written from one template.
pub(crate) fn packed_from_template(
    name: &str,
    template: &[u8],
    transport_socket: Option<&TransportSocket>,
) -> Any {
    let at = first_field_above(template, TRANSPORT_SOCKET);
    named(name, template, at, transport_socket)
}

/// `unnamed` with the name field first and `transport_socket` put in at
/// `transport_socket_at`.
fn named(
    name: &str,
    unnamed: &[u8],
    transport_socket_at: usize,
    transport_socket: Option<&TransportSocket>,
) -> Any {
    let (before, after) = unnamed.split_at(transport_socket_at.min(unnamed.len()));
    let socket_len =
        transport_socket.map_or(0, |ts| encoding::message::encoded_len(TRANSPORT_SOCKET, ts));
    let mut value = Vec::with_capacity(
        1 + prost::length_delimiter_len(name.len()) + name.len() + unnamed.len() + socket_len,
    );
    if !name.is_empty() {
        // Cluster.name = 1, length-delimited; prost leaves an empty one out.
        encoding::encode_key(1, encoding::WireType::LengthDelimited, &mut value);
        encoding::encode_varint(name.len() as u64, &mut value);
        value.extend_from_slice(name.as_bytes());
    }
    value.extend_from_slice(before);
    if let Some(ts) = transport_socket {
        encoding::message::encode(TRANSPORT_SOCKET, ts, &mut value);
    }
    value.extend_from_slice(after);
    Any {
        type_url: type_url::CLUSTER.to_string(),
        value,
    }
}

/// Tag of `Cluster.transport_socket`.
const TRANSPORT_SOCKET: u32 = 24;

/// An encoded [`eds_cluster`] with an empty name, and where in it a
/// transport socket goes: before the first field of a higher tag.
struct Unnamed {
    bytes: Vec<u8>,
    transport_socket_at: usize,
}

/// The [`Unnamed`] cluster of `protocol`, built once per process (it
/// depends on nothing else).
fn unnamed_eds(protocol: Protocol) -> &'static Unnamed {
    static UNNAMED: [OnceLock<Unnamed>; 4] = [const { OnceLock::new() }; 4];
    let slot = match protocol {
        Protocol::Tcp => 0,
        Protocol::Http => 1,
        Protocol::Http2 => 2,
        Protocol::Grpc => 3,
    };
    UNNAMED[slot].get_or_init(|| {
        let bytes = eds_cluster("", protocol).encode_to_vec();
        let transport_socket_at = first_field_above(&bytes, TRANSPORT_SOCKET);
        Unnamed {
            bytes,
            transport_socket_at,
        }
    })
}

/// The offset of the first field of the encoded message `bytes` whose tag
/// is above `tag`; the end when there is none (or the bytes do not read,
/// which prost's own encoding always does).
fn first_field_above(bytes: &[u8], tag: u32) -> usize {
    let mut rest = bytes;
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let Ok((field, wire_type)) = encoding::decode_key(&mut rest) else {
            break;
        };
        if field > tag {
            return at;
        }
        if encoding::skip_field(
            wire_type,
            field,
            &mut rest,
            encoding::DecodeContext::default(),
        )
        .is_err()
        {
            break;
        }
    }
    bytes.len()
}

/// A destination's cluster, round robin over endpoints delivered by EDS.
pub(crate) fn eds_cluster(name: &str, protocol: Protocol) -> Cluster {
    Cluster {
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        ..base(name, DiscoveryType::Eds, protocol)
    }
}

/// A cluster to wherever each connection was going (its original
/// destination), `alt_stat_name` in Envoy's stats.
pub(crate) fn original_dst_cluster(
    name: &str,
    alt_stat_name: String,
    protocol: Protocol,
) -> Cluster {
    Cluster {
        alt_stat_name,
        lb_policy: LbPolicy::ClusterProvided as i32,
        ..base(name, DiscoveryType::OriginalDst, protocol)
    }
}

/// The cluster of the workload behind an inbound: one fixed address.
pub(crate) fn static_cluster(name: &str, address: &str, port: u32, protocol: Protocol) -> Cluster {
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(address, port)),
            ..Endpoint::default()
        })),
        ..LbEndpoint::default()
    };
    Cluster {
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        }),
        ..base(name, DiscoveryType::Static, protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_as_pack_any_packs() {
        let c = eds_cluster("svc", Protocol::Grpc);
        assert_eq!(packed(&c), pack_any(c));
    }

    #[test]
    fn eds_clusters_are_packed_as_prost_packs_them() {
        let long = "l".repeat(300);
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
            TlsParameters, tls_parameters::TlsProtocol,
        };
        let upstream = |params| {
            super::super::mtls::upstream("default", "svc{mesh=default}", &["svc".into()], params)
        };
        let socket = upstream(None);
        // MeshTLS versions and ciphers ride in the transport socket: the
        // plain cluster carries them as well as a built one does.
        let with_params = upstream(Some(TlsParameters {
            tls_maximum_protocol_version: TlsProtocol::TlSv12 as i32,
            cipher_suites: vec!["ECDHE-RSA-AES256-GCM-SHA384".into()],
            ..TlsParameters::default()
        }));
        for protocol in [
            Protocol::Tcp,
            Protocol::Http,
            Protocol::Http2,
            Protocol::Grpc,
        ] {
            for name in ["", "svc", "default_backend___msvc_80", long.as_str()] {
                let mut cluster = eds_cluster(name, protocol);
                assert_eq!(
                    packed_eds(name, protocol, None),
                    packed(&cluster),
                    "{protocol:?} {name}"
                );
                for socket in [&socket, &with_params] {
                    cluster.transport_socket = Some(socket.clone());
                    assert_eq!(
                        packed_eds(name, protocol, Some(socket)),
                        packed(&cluster),
                        "{protocol:?} {name} with TLS"
                    );
                }
            }
        }
    }

    #[test]
    fn clusters_from_a_template_are_packed_as_prost_packs_them() {
        use envoy_types::pb::envoy::config::cluster::v3::{
            CircuitBreakers, OutlierDetection, cluster::CommonLbConfig, cluster::LbPolicy,
        };
        use envoy_types::pb::envoy::config::core::v3::HealthCheck;
        use envoy_types::pb::envoy::r#type::v3::Percent;
        // Policy confs set fields on both sides of the transport socket's
        // tag (24): health checks (8), circuit breakers (10), outlier
        // detection (19), the balancing config (27).
        let with_confs = |name: &str, protocol| Cluster {
            lb_policy: LbPolicy::LeastRequest as i32,
            health_checks: vec![HealthCheck {
                timeout: Some(Duration {
                    seconds: 2,
                    nanos: 0,
                }),
                ..HealthCheck::default()
            }],
            circuit_breakers: Some(CircuitBreakers::default()),
            outlier_detection: Some(OutlierDetection::default()),
            common_lb_config: Some(CommonLbConfig {
                healthy_panic_threshold: Some(Percent { value: 30.0 }),
                ..CommonLbConfig::default()
            }),
            ..eds_cluster(name, protocol)
        };
        let socket =
            super::super::mtls::upstream("default", "svc{mesh=default}", &["svc".into()], None);
        for protocol in [Protocol::Tcp, Protocol::Http, Protocol::Grpc] {
            let template = packed(&with_confs("", protocol)).value;
            for name in ["svc", "default_backend___msvc_80"] {
                let mut cluster = with_confs(name, protocol);
                assert_eq!(
                    packed_from_template(name, &template, None),
                    packed(&cluster),
                    "{protocol:?} {name}"
                );
                cluster.transport_socket = Some(socket.clone());
                assert_eq!(
                    packed_from_template(name, &template, Some(&socket)),
                    packed(&cluster),
                    "{protocol:?} {name} with TLS"
                );
            }
        }
    }

    #[test]
    fn http2_destinations_get_explicit_http2() {
        let grpc = eds_cluster("svc", Protocol::Grpc);
        assert!(
            grpc.typed_extension_protocol_options
                .contains_key(HTTP_PROTOCOL_OPTIONS)
        );
        let http = eds_cluster("svc", Protocol::Http);
        assert!(http.typed_extension_protocol_options.is_empty());
        assert_eq!(
            http.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
    }
}
