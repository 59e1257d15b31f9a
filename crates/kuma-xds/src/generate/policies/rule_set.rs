//! A proxy's rules of every policy kind, shared by the proxies that
//! matching tells apart from no other: the instances of a service are
//! selected by the same policies, so the first one's rules serve the rest
//! (without matching every policy kind again for each of them). What their
//! declared outbounds and route backends got from the rules is kept with
//! them too.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kuma_api::Kind;
use kuma_policy::engine::{SharedProxyRules, ToRules};
use kuma_policy::{MatchedBy, Proxy};

use super::DestinationPolicies;
use crate::generate::snapshot::{ConfsKey, MeshSnapshot};

/// A proxy's rules of every policy kind, and the confs they gave the
/// destinations of the proxies that have them.
#[derive(Debug)]
pub(crate) struct RuleSet {
    /// By kind, in kind order (the snapshot lists its kinds so).
    pub(super) rules: Vec<(Kind, SharedProxyRules)>,
    /// The kinds whose `to` rules give some service a conf, in kind order.
    pub(super) to_kinds: Vec<(Kind, Arc<ToRules>)>,
    destinations: Mutex<Destinations>,
}

/// Which `to` conf of each kind a destination gets: a kind and a position
/// in that kind's rules (see [`ToRules::for_service`]).
pub(super) type ConfPositions = Vec<(Kind, usize)>;

/// What the destinations of proxies with one rule set got so far.
#[derive(Debug, Default)]
pub(super) struct Destinations {
    /// Per served `kuma.io/service` (by the address of the snapshot's
    /// copy of its name), its confs.
    pub(super) by_service: foldhash::HashMap<usize, DestinationPolicies>,
    /// The cache key of each combination of confs: most destinations share
    /// a few.
    pub(super) keys: foldhash::HashMap<ConfPositions, ConfsKey>,
}

impl RuleSet {
    fn new(rules: Vec<(Kind, SharedProxyRules)>) -> RuleSet {
        let to_kinds = rules
            .iter()
            .filter(|(_, r)| !r.to.is_empty())
            .map(|(kind, r)| (*kind, r.to.clone()))
            .collect();
        RuleSet {
            rules,
            to_kinds,
            destinations: Mutex::default(),
        }
    }

    pub(super) fn destinations(&self) -> MutexGuard<'_, Destinations> {
        self.destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The rule sets of a snapshot's proxies that matching tells apart from no
/// other, by the hash of what matching reads of them
/// ([`Proxy::hash_for_matching`]), each with the Dataplane it was computed
/// for: the instances of a service have the same rules.
pub(crate) type ProxyRulesMemo = Mutex<HashMap<u64, Vec<(String, Arc<RuleSet>)>>>;

/// Policy kinds a proxy's rules are made of: permissions are applied on
/// their own (only with mTLS on).
fn rule_kinds(snapshot: &MeshSnapshot) -> impl Iterator<Item = Kind> + '_ {
    snapshot
        .policy_kinds()
        .filter(|k| *k != Kind::MeshTrafficPermission)
}

/// `proxy`'s rules of every policy kind. Proxies selected alike by every
/// policy (the instances of a service) share them: the first one's are
/// computed, the others find them.
pub(super) fn of(snapshot: &MeshSnapshot, proxy: &Proxy<'_>) -> Arc<RuleSet> {
    let compute = || -> Arc<RuleSet> {
        let rules = rule_kinds(snapshot)
            .map(|kind| {
                // Shared too: the parts proxies selected by the same
                // policies have in common are computed once per snapshot.
                let rules = snapshot
                    .policy_index(kind)
                    .shared_rules_for(proxy, snapshot.policy_context());
                (kind, rules)
            })
            .collect();
        Arc::new(RuleSet::new(rules))
    };
    if proxy.gateway.is_some() || rule_kinds(snapshot).next().is_none() {
        return compute();
    }
    let by = rule_kinds(snapshot)
        .map(|kind| snapshot.policy_index(kind).matched_by())
        .fold(MatchedBy::default(), MatchedBy::or);
    let mut hasher = foldhash::fast::FixedState::default().build_hasher();
    proxy.hash_for_matching(by, &mut hasher);
    let hash = hasher.finish();
    let memo = || {
        snapshot
            .proxy_rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    let alike = |name: &str| {
        snapshot.dataplane(name).is_some_and(|spec| {
            let other = Proxy {
                name,
                labels: snapshot.dataplane_labels(name),
                spec,
                gateway: None,
            };
            proxy.matched_alike(&other, by)
        })
    };
    let found = memo().get(&hash).and_then(|entries| {
        entries
            .iter()
            .find(|(name, _)| alike(name))
            .map(|(_, rules)| rules.clone())
    });
    if let Some(rules) = found {
        return rules;
    }
    // Computed outside the lock so generation of other proxies proceeds.
    let rules = compute();
    memo()
        .entry(hash)
        .or_default()
        .push((proxy.name.to_string(), rules.clone()));
    rules
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use kuma_api::ResourceDocument;

    use super::*;

    fn snapshot(yamls: &[String]) -> MeshSnapshot {
        let resources = yamls.iter().map(|yaml| {
            let mut doc = ResourceDocument::from_yaml(yaml).expect("reads");
            if doc.kind() != Kind::Mesh {
                doc.mesh = Some("default".to_string());
            }
            doc.into_resource(DateTime::<Utc>::MIN_UTC)
        });
        MeshSnapshot::from_resources("default", resources)
    }

    fn rules_of(snapshot: &MeshSnapshot, name: &str) -> Arc<RuleSet> {
        let proxy = Proxy {
            name,
            labels: snapshot.dataplane_labels(name),
            spec: snapshot.dataplane(name).expect("a dataplane"),
            gateway: None,
        };
        of(snapshot, &proxy)
    }

    #[test]
    fn instances_of_a_service_share_one_rule_set_and_others_have_their_own() {
        let web = |name: &str, address: &str, service: &str| {
            format!(
                "type: Dataplane\nname: {name}\nnetworking:\n  address: {address}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: {service}\n"
            )
        };
        let timeout = "type: MeshTimeout\nname: t\nspec:\n  targetRef:\n    kind: MeshSubset\n    tags:\n      kuma.io/service: web\n  to:\n  - targetRef:\n      kind: Mesh\n    default:\n      connectionTimeout: 3s\n";
        let mut yamls = vec![
            "type: Mesh\nname: default".to_string(),
            web("web-1", "10.0.0.1", "web"),
            web("web-2", "10.0.0.2", "web"),
            web("api-1", "10.0.0.3", "api"),
        ];
        let s = snapshot(&yamls);
        // No policies: nothing to share.
        assert!(rules_of(&s, "web-1").rules.is_empty());
        yamls.push(timeout.to_string());
        let s = snapshot(&yamls);
        let (first, second) = (rules_of(&s, "web-1"), rules_of(&s, "web-2"));
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &rules_of(&s, "api-1")));
        assert_eq!(first.rules.len(), 1);
        assert_eq!(first.to_kinds.len(), 1);
        assert!(rules_of(&s, "api-1").to_kinds.is_empty());
        // What a destination got is kept for the others, but for the
        // services a transparent proxy reaches.
        let proxy = Proxy {
            name: "web-2",
            labels: s.dataplane_labels("web-2"),
            spec: s.dataplane("web-2").expect("web-2"),
            gateway: None,
        };
        let policies = super::super::ProxyPolicies::of(&s, &proxy);
        let api = super::super::DestinationRef::Service("api");
        let once = policies.destination_once(&api);
        assert!(first.destinations().by_service.is_empty());
        assert_eq!(policies.destination(&api), once);
        assert_eq!(first.destinations().by_service.len(), 1);
        assert_eq!(policies.destination_once(&api), once);
    }
}
