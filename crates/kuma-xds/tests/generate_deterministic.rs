//! The same input encodes to the same bytes every time, and so to the same
//! versions in every control plane process: a restarted control plane, or
//! another replica, must not resend a proxy what it already has.
//!
//! Protobuf maps are `HashMap`s in the generated types, each with its own
//! random seed, so an encoding that follows their iteration order changes
//! from one build of a message to the next. Generating every golden
//! scenario several times in one process therefore catches what two
//! processes would disagree on.

use std::collections::BTreeMap;

use kuma_xds::ProxyResources;
use kuma_xds::generate::proto_json;
use kuma_xds::testing::encoded;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use prost_reflect::{Kind, MessageDescriptor};

/// How many times each scenario is generated: a map of two entries keeps
/// its order with probability about 1/2 per build, so twelve builds miss a
/// nondeterministic one with probability about 1/2048.
const BUILDS: usize = 12;

#[allow(dead_code)]
#[path = "support/scenario.rs"]
mod scenario;

use scenario::generate;

/// MeshProxyPatch values are user-written and may hold maps of many
/// entries, nested (a Struct in a Struct, a Struct packed in an `Any` in a
/// map); patched resources are encoded anew from proto JSON.
const PATCHED_MAPS: &str = r#"
proxy: web-1
---
type: Mesh
name: default
---
type: MeshProxyPatch
mesh: default
name: metadata
spec:
  targetRef:
    kind: Mesh
  default:
    appendModifications:
    - cluster:
        operation: Patch
        match:
          origin: outbound
        value: |
          metadata:
            filterMetadata:
              team.a: {owner: a, tier: gold, region: eu, zone: one}
              team.b: {owner: b, nested: {x: 1, y: 2, z: 3}}
              team.c: {owner: c}
            typedFilterMetadata:
              typed.a:
                '@type': type.googleapis.com/google.protobuf.Struct
                value: {p: 1, q: 2, r: 3, s: 4}
              typed.b:
                '@type': type.googleapis.com/google.protobuf.Struct
                value: {p: 1}
    - listener:
        operation: Patch
        match:
          name: inbound:10.0.0.1:8080
        value: |
          metadata:
            filterMetadata:
              l.a: {one: 1, two: 2, three: 3}
              l.b: {four: 4}
---
type: Dataplane
mesh: default
name: web-1
networking:
  address: 10.0.0.1
  inbound:
  - port: 8080
    servicePort: 18080
    tags:
      kuma.io/service: web
      kuma.io/protocol: http
  outbound:
  - port: 10001
    tags:
      kuma.io/service: backend
---
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
  - port: 8080
    tags:
      kuma.io/service: backend
      kuma.io/protocol: http
"#;

/// Every golden scenario, then [`PATCHED_MAPS`]: (label, resources).
fn every_input() -> Vec<(String, ProxyResources)> {
    let mut out: Vec<(String, ProxyResources)> = scenario::inputs()
        .into_iter()
        .map(|input| {
            let label = input
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (label, generate(&input))
        })
        .collect();
    out.push((
        "patched-maps".to_string(),
        scenario::generate_text(PATCHED_MAPS, "patched-maps"),
    ));
    out
}

#[test]
fn every_scenario_encodes_to_the_same_bytes_every_time() {
    let first: Vec<_> = every_input()
        .into_iter()
        .map(|(label, r)| (label, encoded(&r)))
        .collect();
    assert!(first.len() >= 8, "scenarios missing");
    let mut failures: Vec<String> = Vec::new();
    for _ in 1..BUILDS {
        for ((label, bytes), (_, again)) in first.iter().zip(every_input()) {
            let again = encoded(&again);
            assert_eq!(
                bytes.keys().collect::<Vec<_>>(),
                again.keys().collect::<Vec<_>>(),
                "{label}: different resources"
            );
            for ((url, name), b) in bytes {
                let line = format!("{label}: {url} {name}");
                if again[&(url.clone(), name.clone())] != *b && !failures.contains(&line) {
                    failures.push(line);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "encoded differently between builds:\n{}",
        failures.join("\n")
    );
}

/// Every input's resources as lines `label type name hex`.
fn dump() -> String {
    let mut out = String::new();
    for (label, resources) in every_input() {
        for ((url, name), bytes) in encoded(&resources) {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("{label} {url} {name} {hex}\n"));
        }
    }
    out
}

/// Run by [`another_process_encodes_the_same_bytes`] in a child process:
/// writes [`dump`] to the file `KUMA_XDS_DUMP` names (does nothing when
/// run as an ordinary test).
#[test]
fn dump_for_another_process() {
    if let Some(path) = std::env::var_os("KUMA_XDS_DUMP") {
        std::fs::write(path, dump()).expect("writes the dump");
    }
}

/// What a restarted control plane or another replica computes: this test
/// binary run again (so with other hash seeds) must write the same bytes.
#[test]
fn another_process_encodes_the_same_bytes() {
    let path = std::env::temp_dir().join(format!("kuma-xds-dump-{}", std::process::id()));
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["dump_for_another_process", "--exact", "--quiet"])
        .env("KUMA_XDS_DUMP", &path)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("child runs");
    assert!(status.success(), "child failed: {status}");
    let theirs = std::fs::read_to_string(&path).expect("child wrote its dump");
    let _ = std::fs::remove_file(&path);
    let ours = dump();
    assert!(theirs.lines().count() > 100, "a short dump:\n{theirs}");
    let ours_lines: Vec<&str> = ours.lines().collect();
    let theirs_lines: Vec<&str> = theirs.lines().collect();
    assert_eq!(ours_lines.len(), theirs_lines.len(), "different resources");
    let names = |line: &str| {
        line.rsplit_once(' ')
            .map_or(line, |(head, _)| head)
            .to_string()
    };
    let different: Vec<String> = ours_lines
        .iter()
        .zip(&theirs_lines)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| names(a))
        .collect();
    assert!(
        different.is_empty(),
        "encoded differently by another process:\n{}",
        different.join("\n")
    );
}

/// Where in `bytes` (a message of type `desc`, found at `path`) a map's
/// entries are not written in key order. Entries in key order are what an
/// encoding that does not depend on a hash seed writes; a map encoded from
/// a `HashMap` of two or more entries breaks the order about half the time.
/// `Any` values are followed into the message they pack.
fn unordered_maps(desc: &MessageDescriptor, mut bytes: &[u8], path: &str, out: &mut Vec<String>) {
    // Per map field number: the last key seen.
    let mut last_keys: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let any = desc.full_name() == "google.protobuf.Any";
    let mut any_url = None;
    let mut any_value = None;
    while bytes.has_remaining() {
        let (number, wire_type) = decode_key(&mut bytes).expect("a field key");
        let field = desc.get_field(number);
        let len = match wire_type {
            WireType::LengthDelimited => decode_varint(&mut bytes).expect("a length") as usize,
            WireType::Varint => {
                decode_varint(&mut bytes).expect("a varint");
                continue;
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            other => panic!("{path}: unexpected wire type {other:?}"),
        };
        let (value, rest) = bytes.split_at(len);
        bytes = rest;
        let Some(field) = field else { continue };
        if wire_type != WireType::LengthDelimited {
            continue;
        }
        let here = format!("{path}.{}", field.name());
        if any {
            match number {
                1 => any_url = Some(String::from_utf8_lossy(value).into_owned()),
                2 => any_value = Some(value),
                _ => {}
            }
            continue;
        }
        let Kind::Message(inner) = field.kind() else {
            continue;
        };
        if field.is_map() {
            let (key, entry_value) = map_entry(value);
            let shown = String::from_utf8_lossy(&key).into_owned();
            if let Some(previous) = last_keys.get(&number)
                && *previous >= key
            {
                out.push(format!(
                    "{here}: key {shown:?} after {:?}",
                    String::from_utf8_lossy(previous)
                ));
            }
            last_keys.insert(number, key);
            if let (Some(v), Kind::Message(value_desc)) =
                (entry_value, inner.map_entry_value_field().kind())
            {
                unordered_maps(&value_desc, v, &format!("{here}[{shown}]"), out);
            }
        } else {
            unordered_maps(&inner, value, &here, out);
        }
    }
    if let (Some(url), Some(value)) = (any_url, any_value) {
        let name = url.rsplit('/').next().unwrap_or_default();
        if let Some(packed) = desc.parent_pool().get_message_by_name(name) {
            unordered_maps(&packed, value, &format!("{path}<{name}>"), out);
        }
    }
}

/// A map entry's key (as written: a string's bytes, a number's varint
/// read big-endian so that bytes compare as numbers) and value bytes.
fn map_entry(mut bytes: &[u8]) -> (Vec<u8>, Option<&[u8]>) {
    let mut key = Vec::new();
    let mut value = None;
    while bytes.has_remaining() {
        let (number, wire_type) = decode_key(&mut bytes).expect("an entry key");
        match wire_type {
            WireType::LengthDelimited => {
                let len = decode_varint(&mut bytes).expect("a length") as usize;
                let (v, rest) = bytes.split_at(len);
                bytes = rest;
                match number {
                    1 => key = v.to_vec(),
                    _ => value = Some(v),
                }
            }
            WireType::Varint => {
                let v = decode_varint(&mut bytes).expect("a varint");
                if number == 1 {
                    key = v.to_be_bytes().to_vec();
                }
            }
            other => panic!("map entry: unexpected wire type {other:?}"),
        }
    }
    (key, value)
}

#[test]
fn every_map_is_encoded_in_key_order() {
    let mut failures = Vec::new();
    for _ in 0..BUILDS {
        for (label, resources) in every_input() {
            for (url, by_name) in &resources.by_type {
                let type_name = url.rsplit('/').next().unwrap_or_default();
                let desc = proto_json::message(type_name).expect("a known type");
                for (name, r) in by_name {
                    let mut found = Vec::new();
                    unordered_maps(&desc, &r.body.value, name, &mut found);
                    for f in found {
                        let line = format!("{label}: {type_name} {f}");
                        if !failures.contains(&line) {
                            failures.push(line);
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "maps not in key order:\n{}",
        failures.join("\n")
    );
}
