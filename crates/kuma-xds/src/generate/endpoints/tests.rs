use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint};
use envoy_types::pb::google::protobuf::{UInt32Value, Value, value::Kind};
use prost::{Message, Name};

use super::*;
use crate::generate::cluster::socket_address;
use crate::generate::snapshot::{Endpoint as Instance, Protocol};

// The load assignment as prost encodes it from messages, the way this module
// built it before writing bytes itself: the reference the encoder must match.
// Maps are sorted (`btree_map`) so that the reference is deterministic.

#[derive(Clone, PartialEq, Message)]
struct LoadAssignmentRef {
    #[prost(string, tag = "1")]
    cluster_name: String,
    #[prost(message, repeated, tag = "2")]
    endpoints: Vec<LocalityEndpointsRef>,
}

#[derive(Clone, PartialEq, Message)]
struct LocalityEndpointsRef {
    #[prost(message, repeated, tag = "2")]
    lb_endpoints: Vec<LbEndpointRef>,
}

#[derive(Clone, PartialEq, Message)]
struct LbEndpointRef {
    #[prost(message, optional, tag = "1")]
    endpoint: Option<Endpoint>,
    #[prost(message, optional, tag = "3")]
    metadata: Option<MetadataRef>,
    #[prost(message, optional, tag = "4")]
    load_balancing_weight: Option<UInt32Value>,
}

#[derive(Clone, PartialEq, Message)]
struct MetadataRef {
    #[prost(btree_map = "string, message", tag = "1")]
    filter_metadata: BTreeMap<String, StructRef>,
}

#[derive(Clone, PartialEq, Message)]
struct StructRef {
    #[prost(btree_map = "string, message", tag = "1")]
    fields: BTreeMap<String, Value>,
}

fn reference(cluster: &str, destination: &Destination) -> Vec<u8> {
    let lb_endpoints: Vec<LbEndpointRef> = destination
        .endpoints
        .iter()
        .map(|e| {
            let fields: BTreeMap<String, Value> = snapshot::lb_tags(&e.tags)
                .map(|(k, v)| {
                    let value = Value {
                        kind: Some(Kind::StringValue(v.to_string())),
                    };
                    (k.to_string(), value)
                })
                .collect();
            let metadata = (!fields.is_empty()).then(|| MetadataRef {
                filter_metadata: [(LB_METADATA.to_string(), StructRef { fields })].into(),
            });
            LbEndpointRef {
                endpoint: Some(Endpoint {
                    address: Some(socket_address(&e.address, e.port)),
                    ..Endpoint::default()
                }),
                metadata,
                load_balancing_weight: Some(UInt32Value { value: 1 }),
            }
        })
        .collect();
    let endpoints = if lb_endpoints.is_empty() {
        Vec::new()
    } else {
        vec![LocalityEndpointsRef { lb_endpoints }]
    };
    LoadAssignmentRef {
        cluster_name: cluster.to_string(),
        endpoints,
    }
    .encode_to_vec()
}

fn mk_instance(address: &str, port: u32, tags: &[(&str, &str)]) -> Instance {
    Instance {
        dataplane: "dp-1".into(),
        address: address.into(),
        port,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn mk_destination(tags: &[(&str, &str)]) -> Destination {
    Destination {
        endpoints: vec![mk_instance("10.0.0.7", 8080, tags)],
        protocol: Protocol::Http,
    }
}

#[test]
fn decodes_as_envoy_cluster_load_assignment() {
    let tags = [("kuma.io/service", "web"), ("version", "v1"), ("zone", "a")];
    let any = load_assignment("web", &mk_destination(&tags));
    assert_eq!(any.type_url, ClusterLoadAssignment::type_url());
    let cla = ClusterLoadAssignment::decode(any.value.as_slice()).expect("decodes");
    assert_eq!(cla.cluster_name, "web");
    let lb = &cla.endpoints[0].lb_endpoints[0];
    let Some(HostIdentifier::Endpoint(ep)) = &lb.host_identifier else {
        panic!("endpoint expected: {lb:?}");
    };
    let Some(address::Address::SocketAddress(sa)) =
        ep.address.as_ref().and_then(|a| a.address.clone())
    else {
        panic!("socket address expected");
    };
    assert_eq!(sa.address, "10.0.0.7");
    assert_eq!(
        sa.port_specifier,
        Some(socket_address::PortSpecifier::PortValue(8080))
    );
    let md = &lb.metadata.as_ref().expect("metadata").filter_metadata["envoy.lb"];
    let mut keys: Vec<_> = md.fields.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["version", "zone"], "service tag left out");
    assert_eq!(lb.load_balancing_weight.as_ref().map(|w| w.value), Some(1));
}

#[test]
fn encoding_is_deterministic_whatever_the_tags() {
    let tags: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = load_assignment("web", &mk_destination(&refs));
    let b = load_assignment("web", &mk_destination(&refs));
    assert_eq!(a, b);
    // And it is the canonical encoding: re-encoding Envoy's decoded form of a
    // single-entry map gives the same bytes.
    let one = load_assignment("web", &mk_destination(&[("version", "v1")]));
    let cla = ClusterLoadAssignment::decode(one.value.as_slice()).expect("decodes");
    assert_eq!(cla.encode_to_vec(), one.value);
}

#[test]
fn no_endpoints_no_locality() {
    let empty = Destination {
        endpoints: vec![],
        protocol: Protocol::Tcp,
    };
    let cla = ClusterLoadAssignment::decode(load_assignment("x", &empty).value.as_slice())
        .expect("decodes");
    assert!(cla.endpoints.is_empty());
}

#[test]
fn writes_the_bytes_prost_writes() {
    let long = "x".repeat(200);
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("tag-{i:02}"), "v".repeat(i * 7)))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let endpoints = vec![
        mk_instance("10.0.0.1", 8080, &[("kuma.io/service", "web")]),
        mk_instance("10.0.0.2", 0, &[("version", "v1"), ("zone", "")]),
        mk_instance("", 65535, &[("", "empty key"), ("k", "v")]),
        mk_instance(&long, 1 << 20, &[(long.as_str(), long.as_str())]),
        mk_instance("fd00::1", 80, &many),
        mk_instance("10.0.0.3", 127, &[]),
        mk_instance("10.0.0.4", 128, &[("kuma.io/service", "web"), ("a", "b")]),
    ];
    // Enough endpoints for the locality's length to take three bytes.
    let crowd: Vec<Instance> = (0..300)
        .map(|i| mk_instance(&format!("10.1.{}.{}", i / 256, i % 256), 8080, &many[..3]))
        .collect();
    let cases = [
        ("web", endpoints.clone()),
        ("", endpoints),
        ("", Vec::new()),
        (long.as_str(), Vec::new()),
        ("crowd", crowd),
    ];
    for (cluster, endpoints) in cases {
        let destination = Destination {
            endpoints,
            protocol: Protocol::Tcp,
        };
        let ours = load_assignment(cluster, &destination);
        assert_eq!(
            ours.value,
            reference(cluster, &destination),
            "cluster {cluster:?} with {} endpoints",
            destination.endpoints.len()
        );
        ClusterLoadAssignment::decode(ours.value.as_slice()).expect("Envoy's message decodes it");
    }
}

#[test]
fn varint_lengths_match_what_is_written() {
    for v in [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        assert_eq!(buf.len(), varint_len(v), "{v}");
        assert_eq!(buf.len(), prost::encoding::encoded_len_varint(v), "{v}");
    }
}

#[test]
fn localities_are_written_as_prost_writes_them() {
    let a = mk_instance("10.0.0.1", 8080, &[("kuma.io/service", "web")]);
    let b = mk_instance("10.0.0.2", 8080, &[("rack", "r1")]);
    let c = mk_instance("10.0.0.3", 300, &[]);
    let localities = |overprovisioning| Localities {
        localities: vec![
            Locality {
                zone: "default",
                sub_zone: String::new(),
                priority: 0,
                weight: 1,
                endpoints: vec![&a, &c],
            },
            Locality {
                zone: "default",
                sub_zone: "rack=r1".to_string(),
                priority: 0,
                weight: 9_000,
                endpoints: vec![&b],
            },
            Locality {
                zone: "zone-2",
                sub_zone: String::new(),
                priority: 300,
                weight: 0,
                endpoints: vec![&c],
            },
        ],
        overprovisioning,
    };
    for overprovisioning in [None, Some(0), Some(200), Some(100_000)] {
        let any = load_assignment_by_locality("web", &localities(overprovisioning));
        assert_eq!(any.type_url, ClusterLoadAssignment::type_url());
        let cla = ClusterLoadAssignment::decode(any.value.as_slice()).expect("decodes");
        // Canonical: Envoy's decoded form encodes to the same bytes.
        assert_eq!(cla.encode_to_vec(), any.value, "{overprovisioning:?}");
        assert_eq!(cla.cluster_name, "web");
        let got: Vec<(String, String, u32, Option<u32>, usize)> = cla
            .endpoints
            .iter()
            .map(|l| {
                let locality = l.locality.clone().expect("locality");
                (
                    locality.zone,
                    locality.sub_zone,
                    l.priority,
                    l.load_balancing_weight.as_ref().map(|w| w.value),
                    l.lb_endpoints.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("default".into(), String::new(), 0, Some(1), 2),
                ("default".into(), "rack=r1".into(), 0, Some(9_000), 1),
                ("zone-2".into(), String::new(), 300, None, 1),
            ]
        );
        let factor = cla
            .policy
            .as_ref()
            .and_then(|p| p.overprovisioning_factor.as_ref())
            .map(|f| f.value);
        assert_eq!(factor, overprovisioning);
        // Each endpoint as the shared assignment writes it.
        let shared = ClusterLoadAssignment::decode(
            load_assignment(
                "web",
                &Destination {
                    endpoints: vec![a.clone(), c.clone()],
                    protocol: Protocol::Http,
                },
            )
            .value
            .as_slice(),
        )
        .expect("decodes");
        assert_eq!(
            cla.endpoints[0].lb_endpoints,
            shared.endpoints[0].lb_endpoints
        );
    }
}
