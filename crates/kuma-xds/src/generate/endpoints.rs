//! ClusterLoadAssignment of a destination.
//!
//! Endpoint metadata is a protobuf map, which `envoy-types` holds in a
//! `HashMap`: encoding it directly would order entries at random, so equal
//! content would get different bytes, hence different versions, in every
//! process. These few wire-compatible messages hold the same fields in
//! sorted maps; Envoy (and `envoy-types`) decode them as the real thing.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint};
use envoy_types::pb::google::protobuf::{Any, UInt32Value, Value, value::Kind};
use prost::{Message, Name};

use super::cluster::socket_address;
use super::snapshot::{self, Destination};

#[derive(Clone, PartialEq, Message)]
struct LoadAssignmentWire {
    #[prost(string, tag = "1")]
    cluster_name: String,
    #[prost(message, repeated, tag = "2")]
    endpoints: Vec<LocalityEndpointsWire>,
}

#[derive(Clone, PartialEq, Message)]
struct LocalityEndpointsWire {
    #[prost(message, repeated, tag = "2")]
    lb_endpoints: Vec<LbEndpointWire>,
}

#[derive(Clone, PartialEq, Message)]
struct LbEndpointWire {
    /// `host_identifier.endpoint`: a oneof member is encoded like any field.
    #[prost(message, optional, tag = "1")]
    endpoint: Option<Endpoint>,
    #[prost(message, optional, tag = "3")]
    metadata: Option<MetadataWire>,
    #[prost(message, optional, tag = "4")]
    load_balancing_weight: Option<UInt32Value>,
}

#[derive(Clone, PartialEq, Message)]
struct MetadataWire {
    #[prost(btree_map = "string, message", tag = "1")]
    filter_metadata: BTreeMap<String, StructWire>,
}

#[derive(Clone, PartialEq, Message)]
struct StructWire {
    #[prost(btree_map = "string, message", tag = "1")]
    fields: BTreeMap<String, Value>,
}

/// Filter metadata namespace the load balancer's subset matching reads.
const LB_METADATA: &str = "envoy.lb";

/// The encoded ClusterLoadAssignment named `cluster` for `destination`.
pub(crate) fn load_assignment(cluster: &str, destination: &Destination) -> Any {
    let lb_endpoints = destination
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
            let metadata = (!fields.is_empty()).then(|| MetadataWire {
                filter_metadata: [(LB_METADATA.to_string(), StructWire { fields })].into(),
            });
            LbEndpointWire {
                endpoint: Some(Endpoint {
                    address: Some(socket_address(&e.address, e.port)),
                    ..Endpoint::default()
                }),
                metadata,
                load_balancing_weight: Some(UInt32Value { value: 1 }),
            }
        })
        .collect::<Vec<_>>();
    let endpoints = if lb_endpoints.is_empty() {
        Vec::new()
    } else {
        vec![LocalityEndpointsWire { lb_endpoints }]
    };
    let wire = LoadAssignmentWire {
        cluster_name: cluster.to_string(),
        endpoints,
    };
    Any {
        type_url: ClusterLoadAssignment::type_url(),
        value: wire.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::snapshot::{Endpoint as Instance, Protocol};
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;

    fn mk_destination(tags: &[(&str, &str)]) -> Destination {
        Destination {
            endpoints: vec![Instance {
                dataplane: "dp-1".into(),
                address: "10.0.0.7".into(),
                port: 8080,
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            protocol: Protocol::Http,
        }
    }

    #[test]
    fn decodes_as_envoy_cluster_load_assignment() {
        let tags = [("kuma.io/service", "web"), ("version", "v1"), ("zone", "a")];
        let any = load_assignment("web", &mk_destination(&tags));
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
}
