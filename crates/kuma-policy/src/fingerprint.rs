//! Fingerprints of confs: 128-bit hashes of a JSON value's structure.
//!
//! Caches of generated resources are keyed by the confs they were built
//! with. A fingerprint stands for a conf in such a key without writing its
//! JSON text: the value is encoded into bytes without escaping or number
//! formatting (each item tagged and every string and list prefixed with
//! its length, so different values never encode alike) and the bytes are
//! hashed once with XXH3-128. The hash is seeded at random once per
//! process, so a conf cannot be written to collide with another on purpose;
//! fingerprints therefore mean nothing outside the process that made them.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// A conf's fingerprint: equal for equal values (keys in the same order),
/// different otherwise but with negligible probability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u128);

impl Fingerprint {
    /// The fingerprint of `value`.
    pub fn of(value: &Value) -> Fingerprint {
        let mut encoder = Encoder::default();
        encoder.value(value);
        encoder.finish()
    }

    /// The fingerprint of `{field: [...]}` where the list is the lists
    /// `field` of `parts` one after another: what folding confs that only
    /// join that list makes, without making it.
    pub fn of_joined(field: &str, parts: &[Arc<Value>]) -> Fingerprint {
        let lists = || parts.iter().filter_map(|p| p.get(field)?.as_array());
        let mut encoder = Encoder::default();
        encoder.tagged(Tag::Object, 1);
        encoder.str(field);
        encoder.tagged(Tag::Array, lists().map(Vec::len).sum());
        for entry in lists().flatten() {
            encoder.value(entry);
        }
        encoder.finish()
    }

    /// The low 64 bits, for hash tables: already well mixed.
    pub fn low_bits(self) -> u64 {
        self.0 as u64
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Tag {
    Null,
    False,
    True,
    Unsigned,
    Signed,
    Float,
    String,
    Array,
    Object,
    Fingerprint,
}

/// Writes values, strings and fingerprints as bytes that only equal inputs
/// share, then hashes them.
#[derive(Debug)]
pub struct Encoder(Vec<u8>);

impl Default for Encoder {
    fn default() -> Encoder {
        // Most confs encode in a few hundred bytes.
        Encoder(Vec::with_capacity(256))
    }
}

impl Encoder {
    /// Adds a string.
    pub fn str(&mut self, text: &str) {
        self.tagged(Tag::String, text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    /// Adds a fingerprint made elsewhere.
    pub fn fingerprint(&mut self, fingerprint: Fingerprint) {
        self.0.push(Tag::Fingerprint as u8);
        self.0.extend_from_slice(&fingerprint.0.to_le_bytes());
    }

    /// Adds a JSON value.
    pub fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.0.push(Tag::Null as u8),
            Value::Bool(false) => self.0.push(Tag::False as u8),
            Value::Bool(true) => self.0.push(Tag::True as u8),
            Value::Number(n) => {
                let (tag, bits) = if let Some(u) = n.as_u64() {
                    (Tag::Unsigned, u)
                } else if let Some(i) = n.as_i64() {
                    (Tag::Signed, i as u64)
                } else {
                    (Tag::Float, n.as_f64().map_or(0, f64::to_bits))
                };
                self.0.push(tag as u8);
                self.0.extend_from_slice(&bits.to_le_bytes());
            }
            Value::String(text) => self.str(text),
            Value::Array(items) => {
                self.tagged(Tag::Array, items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.tagged(Tag::Object, map.len());
                for (key, item) in map {
                    self.str(key);
                    self.value(item);
                }
            }
        }
    }

    /// The fingerprint of everything added.
    pub fn finish(self) -> Fingerprint {
        Fingerprint(xxhash_rust::xxh3::xxh3_128_with_seed(&self.0, seed()))
    }

    fn tagged(&mut self, tag: Tag, len: usize) {
        self.0.push(tag as u8);
        self.0.extend_from_slice(&(len as u64).to_le_bytes());
    }
}

/// This process's seed.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x6b75_6d61_u64)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_values_share_a_fingerprint_and_different_ones_do_not() {
        let a = json!({"http": {"numRetries": 2, "retryOn": ["5xx"]}});
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&a.clone()));
        let different = [
            json!({"http": {"numRetries": 3, "retryOn": ["5xx"]}}),
            json!({"http": {"numRetries": 2, "retryOn": ["5xx", "reset"]}}),
            json!({"http": {"numRetries": 2.0, "retryOn": ["5xx"]}}),
            json!({"http": {"numRetries": -2, "retryOn": ["5xx"]}}),
            json!({"http": {"numRetries": "2", "retryOn": ["5xx"]}}),
            json!({"http": {"numRetries": 2, "retryOn": "5xx"}}),
            json!({"http": {"numRetries": 2}}),
            json!({"grpc": {"numRetries": 2, "retryOn": ["5xx"]}}),
        ];
        for other in &different {
            assert_ne!(Fingerprint::of(&a), Fingerprint::of(other), "{other}");
        }
    }

    #[test]
    fn lengths_keep_neighbouring_strings_and_lists_apart() {
        let pairs = [
            (json!(["ab", "c"]), json!(["a", "bc"])),
            (json!([[1], []]), json!([[], [1]])),
            (json!({"a": null, "b": null}), json!({"a": {"b": null}})),
            (json!(null), json!(false)),
        ];
        for (a, b) in &pairs {
            assert_ne!(Fingerprint::of(a), Fingerprint::of(b), "{a} / {b}");
        }
    }

    #[test]
    fn a_join_has_the_fingerprint_of_its_fold() {
        let parts = vec![
            Arc::new(json!({"rules": [{"a": 1}, {"b": 2}]})),
            Arc::new(json!({})),
            Arc::new(json!({"rules": [{"c": 3}]})),
        ];
        let folded = json!({"rules": [{"a": 1}, {"b": 2}, {"c": 3}]});
        assert_eq!(
            Fingerprint::of_joined("rules", &parts),
            Fingerprint::of(&folded)
        );
        let other = json!({"rules": [{"a": 1}, {"c": 3}, {"b": 2}]});
        assert_ne!(
            Fingerprint::of_joined("rules", &parts),
            Fingerprint::of(&other)
        );
    }

    #[test]
    fn encoded_fingerprints_and_strings_feed_the_result() {
        let conf = Fingerprint::of(&json!({"connectionTimeout": "2s"}));
        let key = |kind: &str, conf| {
            let mut encoder = Encoder::default();
            encoder.str(kind);
            encoder.fingerprint(conf);
            encoder.finish()
        };
        assert_eq!(key("MeshTimeout", conf), key("MeshTimeout", conf));
        assert_ne!(key("MeshTimeout", conf), key("MeshRetry", conf));
        let other = Fingerprint::of(&json!({"connectionTimeout": "3s"}));
        assert_ne!(key("MeshTimeout", conf), key("MeshTimeout", other));
        assert_eq!(format!("{conf}").len(), 32);
    }
}
