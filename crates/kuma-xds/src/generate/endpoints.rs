//! ClusterLoadAssignment of a destination, written straight to protobuf wire
//! format.
//!
//! Two reasons not to go through `envoy-types`' messages:
//! - endpoint metadata is a protobuf map, which `envoy-types` holds in a
//!   `HashMap`: encoding it would order entries at random, so equal content
//!   would get different bytes, hence different versions, in every process;
//! - a load assignment is the largest resource of most proxies and is
//!   rebuilt whenever a destination's instances change: building it as
//!   messages first costs an allocation per address, tag key and tag value
//!   and more than doubles the time of encoding alone.
//!
//! The bytes are exactly what prost writes for the same message (fields in
//! tag order, sorted map entries, empty strings left out as prost leaves
//! them out); the tests hold the encoder to that.

use envoy_types::pb::google::protobuf::Any;

use super::policies::{Localities, Locality};
use super::snapshot::{self, Destination, Endpoint};
use crate::type_url;

/// Filter metadata namespace the load balancer's subset matching reads.
const LB_METADATA: &str = "envoy.lb";

/// Protobuf wire types used here.
const VARINT: u8 = 0;
const LEN: u8 = 2;

/// The encoded ClusterLoadAssignment named `cluster` for `destination`.
pub(crate) fn load_assignment(cluster: &str, destination: &Destination) -> Any {
    let sizes: Vec<Sizes> = destination.endpoints.iter().map(Sizes::of).collect();
    let locality: usize = sizes.iter().map(|s| field_len(s.lb_endpoint)).sum();
    let total = string_field_len(cluster)
        + if sizes.is_empty() {
            0
        } else {
            field_len(locality)
        };
    let mut buf = Vec::with_capacity(total);
    // ClusterLoadAssignment.cluster_name = 1, endpoints = 2 (one locality,
    // none without endpoints).
    put_string(&mut buf, 1, cluster);
    if !sizes.is_empty() {
        put_len(&mut buf, 2, locality);
        for (e, s) in destination.endpoints.iter().zip(&sizes) {
            // LocalityLbEndpoints.lb_endpoints = 2
            put_len(&mut buf, 2, s.lb_endpoint);
            put_lb_endpoint(&mut buf, e, s);
        }
    }
    debug_assert_eq!(buf.len(), total);
    Any {
        type_url: type_url::ENDPOINT.to_string(),
        value: buf,
    }
}

/// The encoded ClusterLoadAssignment named `cluster` with its endpoints
/// in `localities` (one proxy's view of a destination under locality-aware
/// load balancing), with the overprovisioning factor when set.
pub(crate) fn load_assignment_by_locality(cluster: &str, localities: &Localities<'_>) -> Any {
    let mut buf = Vec::new();
    // ClusterLoadAssignment.cluster_name = 1, endpoints = 2, policy = 4.
    put_string(&mut buf, 1, cluster);
    for locality in &localities.localities {
        let body = locality_endpoints(locality);
        put_len(&mut buf, 2, body.len());
        buf.extend_from_slice(&body);
    }
    if let Some(factor) = localities.overprovisioning {
        // Policy.overprovisioning_factor = 3.
        let factor = uint32_value(factor);
        put_len(&mut buf, 4, field_len(factor.len()));
        put_len(&mut buf, 3, factor.len());
        buf.extend_from_slice(&factor);
    }
    Any {
        type_url: type_url::ENDPOINT.to_string(),
        value: buf,
    }
}

/// One LocalityLbEndpoints: locality = 1 (Locality: zone = 2,
/// sub_zone = 3), lb_endpoints = 2, load_balancing_weight = 3 (when
/// weighted), priority = 5 (when not 0).
fn locality_endpoints(locality: &Locality<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(
        &mut out,
        1,
        string_field_len(locality.zone) + string_field_len(&locality.sub_zone),
    );
    put_string(&mut out, 2, locality.zone);
    put_string(&mut out, 3, &locality.sub_zone);
    for e in &locality.endpoints {
        let sizes = Sizes::of(e);
        put_len(&mut out, 2, sizes.lb_endpoint);
        put_lb_endpoint(&mut out, e, &sizes);
    }
    if locality.weight > 0 {
        let weight = uint32_value(locality.weight);
        put_len(&mut out, 3, weight.len());
        out.extend_from_slice(&weight);
    }
    if locality.priority > 0 {
        put_tag(&mut out, 5, VARINT);
        put_varint(&mut out, u64::from(locality.priority));
    }
    out
}

/// The body of a `google.protobuf.UInt32Value` (value = 1, left out when 0).
fn uint32_value(value: u32) -> Vec<u8> {
    let mut out = Vec::new();
    if value > 0 {
        put_tag(&mut out, 1, VARINT);
        put_varint(&mut out, u64::from(value));
    }
    out
}

/// Encoded lengths of one endpoint's nested messages, computed once.
struct Sizes {
    socket_address: usize,
    address: usize,
    endpoint: usize,
    /// `google.protobuf.Struct` of the tags; 0 when there are none.
    tags: usize,
    filter_metadata_entry: usize,
    metadata: usize,
    lb_endpoint: usize,
}

/// `google.protobuf.UInt32Value { value: 1 }`, the weight of every endpoint.
const WEIGHT_ONE: [u8; 2] = [VARINT | (1 << 3), 1];

impl Sizes {
    fn of(e: &Endpoint) -> Sizes {
        // SocketAddress.address = 2, port_value = 3 (a oneof member: written
        // even when 0).
        let socket_address = string_field_len(&e.address) + 1 + varint_len(u64::from(e.port));
        // Address.socket_address = 1 (oneof), Endpoint.address = 1.
        let address = field_len(socket_address);
        let endpoint = field_len(address);
        let tags: usize = tags(e).map(|(k, v)| field_len(tag_entry_len(k, v))).sum();
        let filter_metadata_entry = string_field_len(LB_METADATA) + field_len(tags);
        let metadata = field_len(filter_metadata_entry);
        let mut lb_endpoint = field_len(endpoint) + field_len(WEIGHT_ONE.len());
        if tags > 0 {
            lb_endpoint += field_len(metadata);
        }
        Sizes {
            socket_address,
            address,
            endpoint,
            tags,
            filter_metadata_entry,
            metadata,
            lb_endpoint,
        }
    }
}

/// The tags that go into an endpoint's metadata.
fn tags(e: &Endpoint) -> impl Iterator<Item = (&str, &str)> {
    snapshot::lb_tags(&e.tags)
}

/// One `fields` entry of a Struct: key = 1, value = 2 (a Value whose
/// `string_value` = 3, a oneof member written even when empty).
fn tag_entry_len(key: &str, value: &str) -> usize {
    string_field_len(key) + field_len(1 + varint_len(value.len() as u64) + value.len())
}

fn put_lb_endpoint(buf: &mut Vec<u8>, e: &Endpoint, s: &Sizes) {
    // LbEndpoint.endpoint = 1 (host_identifier), metadata = 3,
    // load_balancing_weight = 4.
    put_len(buf, 1, s.endpoint);
    put_len(buf, 1, s.address);
    put_len(buf, 1, s.socket_address);
    put_string(buf, 2, &e.address);
    put_tag(buf, 3, VARINT);
    put_varint(buf, u64::from(e.port));
    if s.tags > 0 {
        // Metadata.filter_metadata = 1: one entry, key = 1, value = 2.
        put_len(buf, 3, s.metadata);
        put_len(buf, 1, s.filter_metadata_entry);
        put_string(buf, 1, LB_METADATA);
        put_len(buf, 2, s.tags);
        for (k, v) in tags(e) {
            // Struct.fields = 1
            put_len(buf, 1, tag_entry_len(k, v));
            put_string(buf, 1, k);
            put_len(buf, 2, 1 + varint_len(v.len() as u64) + v.len());
            put_tag(buf, 3, LEN);
            put_varint(buf, v.len() as u64);
            buf.extend_from_slice(v.as_bytes());
        }
    }
    put_len(buf, 4, WEIGHT_ONE.len());
    buf.extend_from_slice(&WEIGHT_ONE);
}

/// A length-delimited field of `len` bytes, key and length included (field
/// numbers here are all below 16: their key is one byte).
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// A string field as prost writes it: nothing when empty.
fn string_field_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { field_len(s.len()) }
}

fn varint_len(v: u64) -> usize {
    // 7 bits per byte, at least one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_tag(buf: &mut Vec<u8>, field: u8, wire_type: u8) {
    buf.push((field << 3) | wire_type);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_len(buf: &mut Vec<u8>, field: u8, len: usize) {
    put_tag(buf, field, LEN);
    put_varint(buf, len as u64);
}

fn put_string(buf: &mut Vec<u8>, field: u8, s: &str) {
    if !s.is_empty() {
        put_len(buf, field, s.len());
        buf.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests;
