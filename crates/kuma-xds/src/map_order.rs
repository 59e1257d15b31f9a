//! Protobuf maps written in key order.
//!
//! Protobuf lets map entries come in any order, and encoders write them in
//! their map's iteration order. The generated Envoy types (and
//! `prost_reflect::DynamicMessage`) hold maps as `HashMap`s seeded per map,
//! so the same message encodes to different bytes from one build to the
//! next, and from one control plane process to another. A resource's
//! version is a hash of its bytes: such a resource would look changed to
//! every proxy after a restart, or on another replica.
//!
//! Generators building messages by hand avoid maps of two or more entries
//! or encode them ordered. Where a message comes from elsewhere (a
//! MeshProxyPatch value is user-written proto JSON), [`sort_maps`] rewrites
//! its encoding with every map's entries in key order, at every depth,
//! `Any` payloads included. Only entries move: every length stays the
//! same and Envoy decodes the very same message.

use prost::DecodeError;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost_reflect::{Kind, MessageDescriptor};

const ANY: &str = "google.protobuf.Any";

/// `bytes`, an encoded message of type `desc`, with the entries of each
/// map (here and in nested messages) in key order. Fields of other types
/// and fields the descriptor does not know are kept as they are, where
/// they are; a map's entries all go where its first entry was.
pub fn sort_maps(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(bytes.len());
    write_sorted(desc, bytes, &mut out)?;
    Ok(out)
}

/// One field as written: its key and length prefix (`head`), then its
/// payload (for length-delimited fields, what the length covers).
struct Field<'a> {
    number: u32,
    wire_type: WireType,
    head: &'a [u8],
    payload: &'a [u8],
}

fn fields(mut bytes: &[u8]) -> impl Iterator<Item = Result<Field<'_>, DecodeError>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        Some(next_field(&mut bytes))
    })
}

fn next_field<'a>(bytes: &mut &'a [u8]) -> Result<Field<'a>, DecodeError> {
    let start: &'a [u8] = bytes;
    let (number, wire_type) = decode_key(bytes)?;
    let mut head_len = start.len() - bytes.len();
    if wire_type == WireType::LengthDelimited {
        // The length prefix belongs to the head; skip_field below checks
        // that the length is there.
        let mut prefix = *bytes;
        decode_varint(&mut prefix)?;
        head_len += bytes.len() - prefix.len();
    }
    skip_field(wire_type, number, bytes, DecodeContext::default())?;
    let (head, payload) = start[..start.len() - bytes.len()].split_at(head_len);
    Ok(Field {
        number,
        wire_type,
        head,
        payload,
    })
}

/// The entries of one map field, gathered to be written sorted.
struct MapEntries {
    number: u32,
    /// (sort key, the whole entry as it will be written).
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a message is written as: fields in their places, and a map where
/// its first entry was.
enum Piece<'a> {
    Field(&'a [u8], Vec<u8>),
    Map(usize),
}

fn write_sorted(
    desc: &MessageDescriptor,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    // An Any's payload is read as the type its URL names (when known).
    let packed = if desc.full_name() == ANY {
        packed_type(desc, bytes)?
    } else {
        None
    };
    let mut pieces: Vec<Piece> = Vec::new();
    let mut maps: Vec<MapEntries> = Vec::new();
    for field in fields(bytes) {
        let field = field?;
        let payload_desc = if field.wire_type != WireType::LengthDelimited {
            None
        } else if desc.full_name() == ANY {
            (field.number == 2).then(|| packed.clone()).flatten()
        } else {
            desc.get_field(field.number).and_then(|f| match f.kind() {
                Kind::Message(m) => Some(m),
                _ => None,
            })
        };
        let Some(payload_desc) = payload_desc else {
            pieces.push(Piece::Field(field.head, field.payload.to_vec()));
            continue;
        };
        let mut payload = Vec::with_capacity(field.payload.len());
        write_sorted(&payload_desc, field.payload, &mut payload)?;
        if !payload_desc.is_map_entry() {
            pieces.push(Piece::Field(field.head, payload));
            continue;
        }
        let key = entry_key(field.payload)?;
        let mut entry = Vec::with_capacity(field.head.len() + payload.len());
        entry.extend_from_slice(field.head);
        entry.extend_from_slice(&payload);
        match maps.iter_mut().find(|m| m.number == field.number) {
            Some(map) => map.entries.push((key, entry)),
            None => {
                pieces.push(Piece::Map(maps.len()));
                maps.push(MapEntries {
                    number: field.number,
                    entries: vec![(key, entry)],
                });
            }
        }
    }
    for piece in pieces {
        match piece {
            Piece::Field(head, payload) => {
                out.extend_from_slice(head);
                out.extend_from_slice(&payload);
            }
            Piece::Map(i) => {
                let entries = &mut maps[i].entries;
                // Stable: of repeated keys the last written stays last,
                // and so still wins when decoded.
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                for (_, entry) in entries.iter() {
                    out.extend_from_slice(entry);
                }
            }
        }
    }
    Ok(())
}

/// The message type an encoded Any packs, if the descriptors know it.
fn packed_type(
    any: &MessageDescriptor,
    bytes: &[u8],
) -> Result<Option<MessageDescriptor>, DecodeError> {
    for field in fields(bytes) {
        let field = field?;
        if field.number == 1 && field.wire_type == WireType::LengthDelimited {
            let url = String::from_utf8_lossy(field.payload);
            let name = url.rsplit('/').next().unwrap_or_default();
            return Ok(any.parent_pool().get_message_by_name(name));
        }
    }
    Ok(None)
}

/// A map entry's key as it sorts: a string's bytes; a number's varint
/// value big-endian, so that byte order is numeric order.
fn entry_key(entry: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut key = Vec::new();
    for field in fields(entry) {
        let field = field?;
        if field.number != 1 {
            continue;
        }
        key = match field.wire_type {
            WireType::Varint => {
                let mut p = field.payload;
                decode_varint(&mut p)?.to_be_bytes().to_vec()
            }
            // Fixed-width keys are little-endian: reversed they sort as
            // unsigned numbers, which is order enough for determinism.
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                field.payload.iter().rev().copied().collect()
            }
            _ => field.payload.to_vec(),
        };
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::proto_json;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};
    use prost::{Message, Name};
    use std::collections::HashMap;

    fn text(s: &str) -> Value {
        Value {
            kind: Some(value::Kind::StringValue(s.to_string())),
        }
    }

    fn mk_struct(keys: &[&str]) -> Struct {
        Struct {
            fields: keys.iter().map(|k| (k.to_string(), text(k))).collect(),
        }
    }

    /// A cluster with maps at three depths: metadata's map of Structs (each
    /// a map), and a Struct packed in an Any in a map.
    fn mk_cluster() -> Cluster {
        let keys = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];
        let nested = Struct {
            fields: HashMap::from([(
                "inner".to_string(),
                Value {
                    kind: Some(value::Kind::StructValue(mk_struct(&keys))),
                },
            )]),
        };
        let packed = Any {
            type_url: Struct::type_url(),
            value: mk_struct(&keys).encode_to_vec(),
        };
        Cluster {
            name: "c".to_string(),
            metadata: Some(Metadata {
                filter_metadata: keys
                    .iter()
                    .map(|k| (k.to_string(), mk_struct(&keys)))
                    .collect(),
                typed_filter_metadata: HashMap::from([("typed".to_string(), packed)]),
            }),
            typed_extension_protocol_options: keys
                .iter()
                .map(|k| {
                    let any = Any {
                        type_url: Struct::type_url(),
                        value: nested.encode_to_vec(),
                    };
                    (k.to_string(), any)
                })
                .collect(),
            ..Cluster::default()
        }
    }

    fn sorted(c: &Cluster) -> Vec<u8> {
        let desc = proto_json::message(&Cluster::full_name()).expect("descriptor");
        sort_maps(&desc, &c.encode_to_vec()).expect("sorts")
    }

    #[test]
    fn builds_that_encode_differently_sort_to_the_same_bytes() {
        // Eight keys: two builds keep the same order about once in 40 000.
        let builds: Vec<Cluster> = (0..4).map(|_| mk_cluster()).collect();
        let raw: Vec<Vec<u8>> = builds.iter().map(Message::encode_to_vec).collect();
        assert!(raw.iter().any(|r| *r != raw[0]), "hash maps kept one order");
        let first = sorted(&builds[0]);
        for b in &builds {
            assert_eq!(sorted(b), first);
        }
    }

    #[test]
    fn sorting_keeps_the_message() {
        let c = mk_cluster();
        let bytes = sorted(&c);
        assert_eq!(bytes.len(), c.encoded_len());
        // Read through every Any: packed bytes differ, their messages not.
        let name = Cluster::full_name();
        let before = proto_json::to_json(&name, &c.encode_to_vec()).expect("reads");
        let after = proto_json::to_json(&name, &bytes).expect("reads");
        assert_eq!(after, before);
        assert!(after.to_string().contains("k8"), "{after}");
    }

    /// The payloads of field `number` of the encoded message `bytes`.
    fn payloads(bytes: &[u8], number: u32) -> Vec<&[u8]> {
        fields(bytes)
            .map(|f| f.expect("reads"))
            .filter(|f| f.number == number)
            .map(|f| f.payload)
            .collect()
    }

    /// The entries of map field `number`, asserting their keys ascend;
    /// their values' payloads.
    fn ordered_values(bytes: &[u8], number: u32) -> Vec<&[u8]> {
        let entries = payloads(bytes, number);
        let keys: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| entry_key(e).expect("a key"))
            .collect();
        assert!(
            keys.len() >= 2,
            "field {number}: a map of {} entries",
            keys.len()
        );
        assert!(
            keys.is_sorted(),
            "field {number}: keys out of order: {keys:?}"
        );
        entries.iter().map(|e| payloads(e, 2)[0]).collect()
    }

    #[test]
    fn entries_come_in_key_order_at_every_depth() {
        let bytes = sorted(&mk_cluster());
        let metadata = payloads(&bytes, 25)[0];
        // filter_metadata: a map of Structs, each a map (fields = 1).
        for s in ordered_values(metadata, 1) {
            ordered_values(s, 1);
        }
        // typed_filter_metadata: a Struct packed in an Any (value = 2).
        let typed = payloads(metadata, 2);
        let any = payloads(typed[0], 2)[0];
        ordered_values(payloads(any, 2)[0], 1);
        // typed_extension_protocol_options: Any > Struct > Value >
        // struct_value (5) > Struct.
        for any in ordered_values(&bytes, 36) {
            let outer = payloads(any, 2)[0];
            let inner_value = payloads(payloads(outer, 1)[0], 2)[0];
            ordered_values(payloads(inner_value, 5)[0], 1);
        }
    }

    #[test]
    fn unknown_packed_types_and_fields_are_kept() {
        let c = Cluster {
            name: "c".to_string(),
            typed_extension_protocol_options: HashMap::from([(
                "x".to_string(),
                Any {
                    type_url: "type.googleapis.com/not.a.Known".to_string(),
                    value: vec![0x0a, 0x01, 0x62, 0x0a, 0x01, 0x61],
                },
            )]),
            ..Cluster::default()
        };
        let mut bytes = c.encode_to_vec();
        // An unknown field (number 9999, varint 1) at the end.
        prost::encoding::encode_key(9999, WireType::Varint, &mut bytes);
        prost::encoding::encode_varint(1, &mut bytes);
        let desc = proto_json::message(&Cluster::full_name()).expect("descriptor");
        assert_eq!(sort_maps(&desc, &bytes).expect("sorts"), bytes);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = mk_cluster().encode_to_vec();
        let desc = proto_json::message(&Cluster::full_name()).expect("descriptor");
        assert!(sort_maps(&desc, &bytes[..bytes.len() - 3]).is_err());
    }
}
