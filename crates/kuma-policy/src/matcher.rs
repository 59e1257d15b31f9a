//! Which parts of a proxy a policy's top-level targetRef selects.

use std::collections::BTreeMap;

use serde::Serialize;

use kuma_api::kinds::dataplane::{DataplaneSpec, Gateway, Inbound};
use kuma_api::kinds::mesh_gateway::MeshGatewaySpec;
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::{ProxyType, TargetRef, TargetRefKind};
use kuma_api::{Resource, Spec};

use crate::PolicyError;
use crate::policy::{NAMESPACE_LABEL, ORIGIN_LABEL, Policy, PolicyRole, ZONE_LABEL};

/// An inbound listener of a proxy: where Envoy listens for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct InboundKey {
    pub address: String,
    pub port: u32,
}

impl std::fmt::Display for InboundKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.address, self.port)
    }
}

/// The proxy rules are computed for: a Dataplane's name, labels and spec.
#[derive(Debug, Clone, Copy)]
pub struct Proxy<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub spec: &'a DataplaneSpec,
    /// For a builtin gateway: the MeshGateway (name, spec) it serves, as
    /// the caller resolved it from the gateway's selectors.
    pub gateway: Option<(&'a str, &'a MeshGatewaySpec)>,
}

impl<'a> Proxy<'a> {
    pub fn from_resource(resource: &'a Resource) -> Result<Proxy<'a>, PolicyError> {
        match &resource.spec {
            Spec::Dataplane(spec) => Ok(Proxy {
                name: &resource.meta.name,
                labels: &resource.meta.labels,
                spec,
                gateway: None,
            }),
            other => Err(PolicyError::NotADataplane(other.kind())),
        }
    }

    fn address(&self) -> &str {
        self.spec
            .networking
            .as_ref()
            .map_or("", |n| n.address.as_str())
    }

    pub fn inbound_key(&self, inbound: &Inbound) -> InboundKey {
        let address = if inbound.address.is_empty() {
            self.address()
        } else {
            &inbound.address
        };
        InboundKey {
            address: address.to_string(),
            port: inbound.port,
        }
    }

    /// Every inbound listener, in declaration order.
    pub fn inbound_keys(&self) -> impl Iterator<Item = InboundKey> + '_ {
        self.spec.inbounds().iter().map(|i| self.inbound_key(i))
    }

    /// The builtin gateway's listeners whose tags (proxy's, MeshGateway's
    /// and listener's, later ones winning) `selector` selects.
    fn gateway_listeners(&self, selector: &BTreeMap<String, String>) -> Vec<InboundKey> {
        let Some((_, gateway)) = self.gateway.filter(|_| self.spec.is_builtin_gateway()) else {
            return Vec::new();
        };
        let mut out: Vec<InboundKey> = Vec::new();
        for listener in gateway.conf.iter().flat_map(|c| &c.listeners) {
            let mut tags = self.gateway_tags().cloned().unwrap_or_default();
            tags.extend(gateway.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            tags.extend(listener.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            let key = InboundKey {
                address: self.address().to_string(),
                port: listener.port,
            };
            if tags_match(selector, &tags) && !out.contains(&key) {
                out.push(key);
            }
        }
        out
    }

    fn proxy_type(&self) -> ProxyType {
        let gateway = self
            .spec
            .networking
            .as_ref()
            .is_some_and(|n| n.gateway.is_some());
        if gateway {
            ProxyType::Gateway
        } else {
            ProxyType::Sidecar
        }
    }

    /// Whether the proxy is a delegated gateway whose tags `selector`
    /// selects.
    fn delegated_gateway_selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        self.spec.is_delegated_gateway()
            && self.gateway_tags().is_some_and(|t| tags_match(selector, t))
    }

    fn gateway_tags(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .networking
            .as_ref()?
            .gateway
            .as_ref()
            .map(|g| &g.tags)
    }
}

/// What matching may tell two proxies apart by besides their labels,
/// gateway and inbounds' tags, ports and names: their names (when a policy
/// selects Dataplanes by name) and their addresses (when rules are kept
/// per inbound listener, which an address names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchedBy {
    pub name: bool,
    pub addresses: bool,
}

impl MatchedBy {
    pub fn or(self, other: MatchedBy) -> MatchedBy {
        MatchedBy {
            name: self.name || other.name,
            addresses: self.addresses || other.addresses,
        }
    }
}

impl Proxy<'_> {
    /// Whether every policy selects the same of `self` as of `other`, when
    /// the policies tell proxies apart by no more than `by`: matching reads
    /// nothing else of a proxy than what is compared here. A builtin
    /// gateway is alike no other proxy (its listeners are its MeshGateway's).
    pub fn matched_alike(&self, other: &Proxy<'_>, by: MatchedBy) -> bool {
        let (mine, theirs) = (self.spec.inbounds(), other.spec.inbounds());
        self.gateway.is_none()
            && other.gateway.is_none()
            && (!by.name || self.name == other.name)
            && (!by.addresses || self.address() == other.address())
            && self.labels == other.labels
            && gateway_of(self.spec) == gateway_of(other.spec)
            && mine.len() == theirs.len()
            && mine.iter().zip(theirs).all(|(a, b)| {
                a.port == b.port
                    && a.name == b.name
                    && a.tags == b.tags
                    && (!by.addresses || a.address == b.address)
            })
    }

    /// Feeds `state` what [`Proxy::matched_alike`] compares (with `by`):
    /// alike proxies hash alike.
    pub fn hash_for_matching<H: std::hash::Hasher>(&self, by: MatchedBy, state: &mut H) {
        use std::hash::Hash;
        if by.name {
            self.name.hash(state);
        }
        if by.addresses {
            self.address().hash(state);
        }
        self.labels.hash(state);
        for inbound in self.spec.inbounds() {
            inbound.port.hash(state);
            inbound.name.hash(state);
            inbound.tags.hash(state);
            if by.addresses {
                inbound.address.hash(state);
            }
        }
    }
}

fn gateway_of(spec: &DataplaneSpec) -> Option<&Gateway> {
    spec.networking.as_ref()?.gateway.as_ref()
}

/// An inbound's name for `sectionName`: its name, else its port.
pub fn section_name(inbound: &Inbound) -> String {
    if inbound.name.is_empty() {
        inbound.port.to_string()
    } else {
        inbound.name.clone()
    }
}

/// What of a proxy one policy selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub inbounds: Vec<InboundKey>,
    /// The proxy is a gateway whose tags the policy selects.
    pub gateway: bool,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.inbounds.is_empty() && !self.gateway
    }
}

/// Kuma's tag selector: each key present with the same value, or `*`.
pub fn tags_match(selector: &BTreeMap<String, String>, tags: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|t| v == "*" || t == v))
}

/// What `policy` (whose top-level targetRef is `target_ref`, the route's
/// own when the policy targets a MeshHTTPRoute) selects of `proxy`.
pub fn select(policy: &Policy, target_ref: &TargetRef, proxy: &Proxy<'_>) -> Selection {
    if !selected_by_zone(policy, proxy) || !selected_by_namespace(policy, proxy) {
        return Selection::default();
    }
    let proxy_type_ok = || proxy_type_selected(target_ref, proxy);
    let by_tags = |selector: &BTreeMap<String, String>| {
        let mut inbounds: Vec<InboundKey> = proxy
            .spec
            .inbounds()
            .iter()
            .filter(|i| tags_match(selector, &i.tags))
            .map(|i| proxy.inbound_key(i))
            .collect();
        inbounds.extend(proxy.gateway_listeners(selector));
        Selection {
            inbounds,
            gateway: proxy.delegated_gateway_selected_by(selector),
        }
    };
    let name = target_ref.name.as_deref().unwrap_or_default();
    // Borrowed: every proxy is matched against every candidate policy.
    let tags = target_ref.tags.as_ref().unwrap_or(&NO_TAGS);
    match target_ref.kind {
        TargetRefKind::Mesh | TargetRefKind::MeshSubset if !proxy_type_ok() => Selection::default(),
        TargetRefKind::Mesh => by_tags(&NO_TAGS),
        TargetRefKind::MeshSubset => by_tags(tags),
        TargetRefKind::MeshService => by_tags(&service_selector(name, BTreeMap::new())),
        TargetRefKind::MeshServiceSubset => by_tags(&service_selector(name, tags.clone())),
        TargetRefKind::Dataplane => select_dataplane(target_ref, proxy),
        // Selects the listeners (all, or those with the ref's tags) of the
        // named MeshGateway, on the builtin gateways that serve it.
        TargetRefKind::MeshGateway => match proxy.gateway {
            Some((gateway_name, _)) if gateway_name == name => Selection {
                inbounds: proxy.gateway_listeners(tags),
                gateway: false,
            },
            _ => Selection::default(),
        },
        _ => Selection::default(),
    }
}

/// Whether [`select`] selects anything of `proxy`, answered without listing
/// the inbounds (nor copying their addresses) for the `Mesh` and
/// `MeshSubset` targetRefs of sidecars: what matching needs for kinds whose
/// rules do not depend on which inbounds a policy selects.
pub fn selects(policy: &Policy, target_ref: &TargetRef, proxy: &Proxy<'_>) -> bool {
    let tags = match target_ref.kind {
        // A builtin gateway's listeners are looked up by tags of their own.
        _ if proxy.gateway.is_some() => return !select(policy, target_ref, proxy).is_empty(),
        TargetRefKind::Mesh => &NO_TAGS,
        TargetRefKind::MeshSubset => target_ref.tags.as_ref().unwrap_or(&NO_TAGS),
        _ => return !select(policy, target_ref, proxy).is_empty(),
    };
    selected_by_zone(policy, proxy)
        && selected_by_namespace(policy, proxy)
        && proxy_type_selected(target_ref, proxy)
        && (proxy
            .spec
            .inbounds()
            .iter()
            .any(|i| tags_match(tags, &i.tags))
            || proxy.delegated_gateway_selected_by(tags))
}

/// The selector of a targetRef without tags.
static NO_TAGS: BTreeMap<String, String> = BTreeMap::new();

/// Whether the targetRef's `proxyTypes` (all when absent) hold the proxy's.
fn proxy_type_selected(target_ref: &TargetRef, proxy: &Proxy<'_>) -> bool {
    let types = target_ref.proxy_types.as_deref().unwrap_or_default();
    types.is_empty() || types.contains(&proxy.proxy_type())
}

fn service_selector(name: &str, mut tags: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.insert(SERVICE_TAG.to_string(), name.to_string());
    tags
}

fn select_dataplane(target_ref: &TargetRef, proxy: &Proxy<'_>) -> Selection {
    let name = target_ref.name.as_deref().unwrap_or_default();
    let namespace = target_ref.namespace.as_deref().unwrap_or_default();
    let all = name.is_empty() && namespace.is_empty() && target_ref.labels.is_none();
    let by_name = !name.is_empty() && name == proxy.name && namespace_matches(namespace, proxy);
    let by_labels = target_ref
        .labels
        .as_ref()
        .is_some_and(|l| l.iter().all(|(k, v)| proxy.labels.get(k) == Some(v)));
    // Builtin gateways are reached through MeshGateway refs instead.
    if proxy.gateway.is_some() || !(all || by_name || by_labels) {
        return Selection::default();
    }
    let section = target_ref.section_name.as_deref().unwrap_or_default();
    Selection {
        inbounds: proxy
            .spec
            .inbounds()
            .iter()
            .filter(|i| section.is_empty() || section_name(i) == section)
            .map(|i| proxy.inbound_key(i))
            .collect(),
        gateway: proxy.spec.is_delegated_gateway(),
    }
}

fn namespace_matches(namespace: &str, proxy: &Proxy<'_>) -> bool {
    namespace.is_empty()
        || proxy
            .labels
            .get(NAMESPACE_LABEL)
            .is_some_and(|n| n == namespace)
}

/// Consumer and workload-owner policies only reach proxies of their own
/// Kubernetes namespace.
fn selected_by_namespace(policy: &Policy, proxy: &Proxy<'_>) -> bool {
    match policy.role() {
        PolicyRole::Consumer | PolicyRole::WorkloadOwner => policy
            .labels
            .get(NAMESPACE_LABEL)
            .is_some_and(|ns| proxy.labels.get(NAMESPACE_LABEL) == Some(ns)),
        _ => true,
    }
}

/// Whether `policy` passes [`selected_by_zone`] and
/// [`selected_by_namespace`] whatever the proxy.
pub(crate) fn selects_any_zone_and_namespace(policy: &Policy) -> bool {
    let role = policy.role();
    let namespace_free = !matches!(role, PolicyRole::Consumer | PolicyRole::WorkloadOwner);
    let zone_free = role == PolicyRole::Producer
        || policy.labels.get(ORIGIN_LABEL).map(String::as_str) != Some("zone")
        || !policy.labels.contains_key(ZONE_LABEL);
    namespace_free && zone_free
}

/// A policy created in one zone reaches only that zone's proxies (producer
/// policies excepted: they travel with their service).
fn selected_by_zone(policy: &Policy, proxy: &Proxy<'_>) -> bool {
    if policy.role() == PolicyRole::Producer {
        return true;
    }
    match proxy.labels.get(ORIGIN_LABEL).map(String::as_str) {
        None | Some("global") => return true,
        _ => {}
    }
    if policy.labels.get(ORIGIN_LABEL).map(String::as_str) != Some("zone") {
        return true;
    }
    match policy.labels.get(ZONE_LABEL) {
        None => true,
        Some(zone) => proxy.labels.get(ZONE_LABEL).is_none_or(|z| z == zone),
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{DefaultHasher, Hasher};

    use kuma_api::kinds::dataplane::{GatewayType, Networking};

    use super::*;
    use crate::testing::{mk_dataplane, proxy, tags};

    fn hash(proxy: &Proxy<'_>, by: MatchedBy) -> u64 {
        let mut hasher = DefaultHasher::new();
        proxy.hash_for_matching(by, &mut hasher);
        hasher.finish()
    }

    #[test]
    fn proxies_are_alike_by_what_matching_reads_of_them() {
        const WEB: &[(&str, &str)] = &[(SERVICE_TAG, "web"), ("version", "v1")];
        let web = mk_dataplane(&[(8080, "http", WEB)]);
        let with = |change: &dyn Fn(&mut Networking)| {
            let mut spec = web.clone();
            change(spec.networking.as_mut().expect("networking"));
            spec
        };
        let moved = with(&|n| n.address = "10.0.0.2".into());
        let inbound_moved = with(&|n| n.inbound[0].address = "10.0.0.9".into());
        let unlike = [
            mk_dataplane(&[(8080, "http", &[(SERVICE_TAG, "web"), ("version", "v2")])]),
            mk_dataplane(&[(8081, "http", WEB)]),
            mk_dataplane(&[(8080, "main", WEB)]),
            mk_dataplane(&[(8080, "http", WEB), (9090, "admin", WEB)]),
            with(&|n| {
                n.gateway = Some(Gateway {
                    tags: tags(WEB),
                    type_: Some(GatewayType::Delegated),
                })
            }),
        ];
        let (none, team) = (BTreeMap::new(), tags(&[("team", "a")]));
        let base = proxy("web-1", &none, &web);
        let nothing = MatchedBy::default();
        let name = MatchedBy {
            name: true,
            addresses: false,
        };
        let addresses = MatchedBy {
            name: false,
            addresses: true,
        };
        for other in [
            proxy("web-2", &none, &moved),
            proxy("web-2", &none, &inbound_moved),
        ] {
            assert!(base.matched_alike(&other, nothing));
            assert_eq!(hash(&base, nothing), hash(&other, nothing));
            assert!(!base.matched_alike(&other, name));
            assert!(!base.matched_alike(&other, addresses));
            assert!(!base.matched_alike(&other, name.or(addresses)));
        }
        let renamed_only = proxy("web-2", &none, &web);
        assert!(base.matched_alike(&renamed_only, addresses));
        assert_eq!(hash(&base, addresses), hash(&renamed_only, addresses));
        let moved_only = proxy("web-1", &none, &moved);
        assert!(base.matched_alike(&moved_only, name));
        assert_eq!(hash(&base, name), hash(&moved_only, name));
        let labelled = proxy("web-1", &team, &web);
        for other in unlike
            .iter()
            .map(|spec| proxy("web-1", &none, spec))
            .chain([labelled])
        {
            assert!(!base.matched_alike(&other, nothing), "{:?}", other.spec);
            assert!(!other.matched_alike(&base, nothing), "{:?}", other.spec);
        }
        // A builtin gateway is alike no proxy, not even itself.
        let conf = MeshGatewaySpec::default();
        let builtin = Proxy {
            gateway: Some(("edge", &conf)),
            ..base
        };
        assert!(!builtin.matched_alike(&builtin, nothing));
        assert!(base.matched_alike(&base, name.or(addresses)));
    }
}
