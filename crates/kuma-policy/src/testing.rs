//! Small builders for the tests of this crate.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::{Kind, Resource, ResourceDocument, ResourceMeta};

use crate::matcher::Proxy;
use crate::policy::Policy;

/// The sidecar `name` with `labels` and `spec`.
pub fn proxy<'a>(
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
    spec: &'a DataplaneSpec,
) -> Proxy<'a> {
    Proxy {
        name,
        labels,
        spec,
        gateway: None,
    }
}

/// A resource of `kind` named `name` in mesh `default` with `spec`.
pub fn mk_resource(kind: Kind, name: &str, spec: Value) -> Resource {
    let doc = json!({"type": kind.name(), "name": name, "mesh": "default", "spec": spec});
    let doc = ResourceDocument::from_json(doc).unwrap_or_else(|e| panic!("{kind} {name}: {e:?}"));
    Resource {
        meta: ResourceMeta {
            mesh: doc.mesh,
            name: doc.name,
            labels: doc.labels,
            creation_time: Default::default(),
            modification_time: Default::default(),
            version: 0,
        },
        spec: doc.spec,
    }
}

pub fn mk_policy(kind: Kind, name: &str, spec: Value) -> Policy {
    Policy::from_resource(&mk_resource(kind, name, spec)).unwrap()
}

pub fn with_labels(mut policy: Policy, labels: &[(&str, &str)]) -> Policy {
    for (k, v) in labels {
        policy.labels.insert(k.to_string(), v.to_string());
    }
    policy
}

/// Tags as written in a test: `&[("kuma.io/service", "web")]`.
pub type Pairs<'a> = &'a [(&'a str, &'a str)];

/// A Dataplane at 10.0.0.1 with one inbound per `(port, name, tags)`.
pub fn mk_dataplane(inbounds: &[(u32, &str, Pairs<'_>)]) -> DataplaneSpec {
    let inbound: Vec<Value> = inbounds
        .iter()
        .map(|(port, name, tags)| {
            let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
            let mut v = json!({"port": port, "tags": tags});
            if !name.is_empty() {
                v["name"] = json!(name);
            }
            v
        })
        .collect();
    serde_json::from_value(json!({"networking": {"address": "10.0.0.1", "inbound": inbound}}))
        .unwrap()
}

pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A small deterministic generator (xorshift), so that failures repeat.
pub struct Random(pub u64);

impl Random {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}
