//! Envoy configuration for data plane proxies.
//!
//! Generation is a pure function of (mesh snapshot, proxy): no store, no
//! clock, no randomness. Its output is a set of encoded resources, each
//! versioned by a hash of its content, which the ADS server sends to Envoy.

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

pub mod bootstrap;
pub mod generate;
pub mod golden;
pub mod server;

/// xDS resource type URLs, in the order Envoy must receive them to make
/// before it breaks: clusters, then their endpoints, then listeners, then routes.
pub mod type_url {
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

    /// Make-before-break order of the types the control plane serves.
    pub const ORDER: &[&str] = &[CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];
}

/// One encoded Envoy resource. Built once, shared (behind `Arc`) by every
/// proxy that receives identical content.
#[derive(Debug, Clone, PartialEq)]
pub struct XdsResource {
    pub name: String,
    /// The resource packed as Envoy receives it.
    pub body: Any,
    /// Hash of `body`: the resource's version in delta xDS.
    pub hash: u64,
}

impl XdsResource {
    pub fn new(name: impl Into<String>, body: Any) -> Self {
        let hash = content_hash(&body);
        Self {
            name: name.into(),
            body,
            hash,
        }
    }

    pub fn type_url(&self) -> &str {
        &self.body.type_url
    }

    /// The version string sent to Envoy for this resource.
    pub fn version(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

/// Stable within one build of the control plane; a restarted control plane
/// computes the same hashes for the same content, so reconnecting proxies
/// are not resent what they already have.
fn content_hash(body: &Any) -> u64 {
    // FNV-1a: fixed, seedless, fast on short inputs.
    let mut h = Fnv1a::default();
    body.type_url.hash(&mut h);
    body.value.hash(&mut h);
    h.finish()
}

#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Everything one proxy should have: per type URL, resources by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyResources {
    pub by_type: BTreeMap<String, BTreeMap<String, Arc<XdsResource>>>,
}

impl ProxyResources {
    pub fn insert(&mut self, resource: Arc<XdsResource>) {
        self.by_type
            .entry(resource.type_url().to_string())
            .or_default()
            .insert(resource.name.clone(), resource);
    }

    /// Resources of one type (empty if none).
    pub fn of_type(&self, type_url: &str) -> impl Iterator<Item = &Arc<XdsResource>> {
        self.by_type
            .get(type_url)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// A version for a whole type, for state-of-the-world responses: changes
    /// whenever any resource of that type is added, removed or changed.
    pub fn type_version(&self, type_url: &str) -> String {
        let mut h = Fnv1a::default();
        for r in self.of_type(type_url) {
            r.name.hash(&mut h);
            r.hash.hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: &[u8]) -> Any {
        Any {
            type_url: type_url.into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn same_content_same_version_different_content_different_version() {
        let a = XdsResource::new("c", any(type_url::CLUSTER, b"one"));
        let b = XdsResource::new("c", any(type_url::CLUSTER, b"one"));
        let c = XdsResource::new("c", any(type_url::CLUSTER, b"two"));
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
    }

    #[test]
    fn type_version_follows_membership_and_content() {
        let mut p = ProxyResources::default();
        p.insert(Arc::new(XdsResource::new(
            "a",
            any(type_url::CLUSTER, b"1"),
        )));
        let v1 = p.type_version(type_url::CLUSTER);
        p.insert(Arc::new(XdsResource::new(
            "b",
            any(type_url::CLUSTER, b"1"),
        )));
        let v2 = p.type_version(type_url::CLUSTER);
        p.insert(Arc::new(XdsResource::new(
            "b",
            any(type_url::CLUSTER, b"2"),
        )));
        let v3 = p.type_version(type_url::CLUSTER);
        assert_ne!(v1, v2);
        assert_ne!(v2, v3);
        assert_eq!(p.of_type(type_url::LISTENER).count(), 0);
    }
}
