//! The mesh's MeshHTTPRoute `to` confs, each read once into its typed
//! rules together with the name Kuma gives each rule's matches (the hash of
//! their JSON). Route tables used to read the same JSON again, and hash the
//! same matches again, for every destination a route reaches; now they
//! look the conf up.
//!
//! A conf is found by its address. Policies hold their confs behind `Arc`,
//! and the joins the engine folds MeshHTTPRoute rules into hold those very
//! values. Each entry holds its conf, so no other value can take that
//! address while the entry lives. Snapshot updates keep the entries of the
//! confs that are still there: a conf is read once per version of its
//! MeshHTTPRoute, not once per snapshot.
//!
//! A conf also tells which MeshHTTPRoute it belongs to, so a route table
//! read from it knows where each of its rules came from without searching
//! the routes for the rule's matches.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use kuma_api::policies::mesh_http_route::Conf;
use kuma_policy::{Fingerprint, Policy, fingerprint};

use crate::generate::policies::mesh_http_route::{ReadRule, SharedBackends};

/// One MeshHTTPRoute `to` conf, read.
#[derive(Debug)]
pub(crate) struct RouteConf {
    /// Held: its address is the key it is found by.
    value: Arc<Value>,
    /// The MeshHTTPRoute whose `to` entry the conf is.
    route: Arc<str>,
    /// `None` when the conf does not read (validation keeps such confs
    /// out of the store).
    rules: Option<Vec<Arc<ReadRule>>>,
    /// The fingerprint of the conf's value.
    fingerprint: Fingerprint,
}

impl RouteConf {
    fn read(route: &str, value: Arc<Value>, backends: &mut SharedBackends) -> RouteConf {
        let rules = match Conf::deserialize(&*value) {
            Ok(conf) => Some(
                conf.rules
                    .into_iter()
                    .map(|rule| Arc::new(ReadRule::read(rule, backends)))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "MeshHTTPRoute conf does not read; ignored");
                None
            }
        };
        RouteConf {
            fingerprint: Fingerprint::of(&value),
            route: route.into(),
            value,
            rules,
        }
    }

    /// The rules, read and named; `None` when the conf does not read.
    pub(crate) fn rules(&self) -> Option<&[Arc<ReadRule>]> {
        self.rules.as_deref()
    }
}

/// Every MeshHTTPRoute `to` conf of a snapshot, read.
#[derive(Debug, Default)]
pub(crate) struct RouteConfs {
    /// By the address of the conf's value.
    by_address: HashMap<usize, Arc<RouteConf>, foldhash::fast::RandomState>,
    /// Each MeshHTTPRoute's confs, in `to` order, by its name.
    by_route: HashMap<String, Vec<Arc<RouteConf>>, foldhash::fast::RandomState>,
    /// Addresses of confs that more than one MeshHTTPRoute holds: which
    /// route such a conf's rules came from is not known by the conf.
    shared: Vec<usize>,
    /// The backendRefs of every rule, equal ones one value.
    backends: SharedBackends,
}

fn address(value: &Value) -> usize {
    std::ptr::from_ref(value) as usize
}

impl RouteConfs {
    /// The confs of `routes` (the mesh's MeshHTTPRoutes); those `previous`
    /// read already are taken from it.
    pub(crate) fn new(routes: &[Arc<Policy>], previous: Option<&RouteConfs>) -> RouteConfs {
        let mut confs = RouteConfs {
            backends: previous
                .map(|p| p.backends.still_held())
                .unwrap_or_default(),
            ..RouteConfs::default()
        };
        for route in routes {
            let read: Vec<Arc<RouteConf>> = route
                .to
                .iter()
                .map(|entry| {
                    let at = address(&entry.conf);
                    if let Some(conf) = confs.by_address.get(&at) {
                        if *conf.route != *route.name && !confs.shared.contains(&at) {
                            confs.shared.push(at);
                        }
                        return conf.clone();
                    }
                    let conf = previous
                        .and_then(|p| p.by_address.get(&at))
                        .filter(|conf| {
                            Arc::ptr_eq(&conf.value, &entry.conf) && *conf.route == *route.name
                        })
                        .cloned()
                        .unwrap_or_else(|| {
                            let (name, value) = (&route.name, entry.conf.clone());
                            Arc::new(RouteConf::read(name, value, &mut confs.backends))
                        });
                    confs.by_address.insert(at, conf.clone());
                    conf
                })
                .collect();
            confs.by_route.insert(route.name.clone(), read);
        }
        confs
    }

    /// The conf at `value`'s address, when `value` is one of the confs
    /// read (not merely an equal value).
    pub(crate) fn get(&self, value: &Value) -> Option<&RouteConf> {
        self.by_address.get(&address(value)).map(|conf| &**conf)
    }

    /// The MeshHTTPRoute whose `to` entry `value` is, when `value` is one
    /// of the confs read and only that route holds it.
    pub(crate) fn route_of(&self, value: &Value) -> Option<&Arc<str>> {
        let at = address(value);
        if self.shared.contains(&at) {
            return None;
        }
        self.by_address.get(&at).map(|conf| &conf.route)
    }

    /// The fingerprint of the confs `parts` (folded in this order, or one
    /// conf alone), when every one of them is read here: made of the
    /// fingerprints of the confs, each made once when it was read. It is
    /// not the fingerprint of the fold itself: equal lists of confs have
    /// equal ones, and different lists (but by chance) different ones.
    pub(crate) fn fingerprint<'v>(
        &self,
        parts: impl IntoIterator<Item = &'v Value>,
    ) -> Option<Fingerprint> {
        let mut encoder = fingerprint::Encoder::default();
        encoder.str("MeshHTTPRoute confs");
        for part in parts {
            encoder.fingerprint(self.get(part)?.fingerprint);
        }
        Some(encoder.finish())
    }

    /// The MeshHTTPRoute `name`'s confs (none for an unknown route), and
    /// its name as kept here.
    pub(crate) fn of_route(&self, name: &str) -> Option<(&str, &[Arc<RouteConf>])> {
        self.by_route
            .get_key_value(name)
            .map(|(name, confs)| (name.as_str(), confs.as_slice()))
    }
}

/// A MeshHTTPRoute `name` of mesh `default` to `backend`, a rule per path
/// prefix of `paths`, each sending to MeshService `backend` (for tests).
#[cfg(test)]
pub(crate) fn route(name: &str, paths: &[&str]) -> Arc<Policy> {
    let rules: Vec<Value> = paths
        .iter()
        .map(|p| {
            // Spelled out: the type compares as the default would.
            serde_json::json!({"matches": [{"path": {"type": "PathPrefix", "value": p}}],
                               "default": {"backendRefs": [{"kind": "MeshService", "name": "backend"}]}})
        })
        .collect();
    let spec = serde_json::json!({"targetRef": {"kind": "Mesh"},
        "to": [{"targetRef": {"kind": "MeshService", "name": "backend"}, "rules": rules}]});
    let spec = kuma_api::Spec::from_json(kuma_api::Kind::MeshHTTPRoute, spec).expect("a route");
    let policy = Policy::from_spec("default", name, &Default::default(), spec);
    Arc::new(policy.expect("a route policy"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuma_api::policies::mesh_http_route::Match;
    use kuma_policy::inspect::hash_matches;

    #[test]
    fn confs_are_found_by_address_with_their_rules_named() {
        let routes = vec![route("a", &["/x", "/y"]), route("b", &["/z"])];
        let confs = RouteConfs::new(&routes, None);
        let conf = confs.get(&routes[0].to[0].conf).expect("read");
        let read: Vec<(String, String)> = conf
            .rules()
            .expect("reads")
            .iter()
            .map(|rule| {
                (
                    rule.matched(0).path.as_ref().unwrap().value.clone(),
                    rule.name.to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = routes[0].to[0].conf["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| {
                let matches: Vec<Match> = serde_json::from_value(rule["matches"].clone()).unwrap();
                (
                    matches[0].path.as_ref().unwrap().value.clone(),
                    hash_matches(&matches),
                )
            })
            .collect();
        assert_eq!(read, expected);
        // An equal value elsewhere is not the conf.
        let copy = (*routes[0].to[0].conf).clone();
        assert!(confs.get(&copy).is_none());
        let (name, of_b) = confs.of_route("b").expect("b");
        assert_eq!(name, "b");
        assert_eq!(of_b[0].rules().expect("reads").len(), 1);
        assert!(confs.of_route("c").is_none());
    }

    #[test]
    fn a_conf_names_its_route_unless_several_routes_hold_it() {
        let routes = vec![route("a", &["/x"]), route("b", &["/z"])];
        let mut also_a = (*routes[0]).clone();
        also_a.name = "also-a".to_string();
        let confs = RouteConfs::new(&routes, None);
        assert_eq!(
            confs.route_of(&routes[0].to[0].conf).map(|r| &**r),
            Some("a")
        );
        assert_eq!(
            confs.route_of(&routes[1].to[0].conf).map(|r| &**r),
            Some("b")
        );
        assert_eq!(confs.route_of(&(*routes[1].to[0].conf).clone()), None);
        // The very conf of `a` held by another route too.
        let with_copy = vec![routes[0].clone(), Arc::new(also_a), routes[1].clone()];
        let confs = RouteConfs::new(&with_copy, None);
        assert_eq!(confs.route_of(&routes[0].to[0].conf), None);
        assert!(confs.get(&routes[0].to[0].conf).is_some());
        assert_eq!(
            confs.route_of(&routes[1].to[0].conf).map(|r| &**r),
            Some("b")
        );
        // Read again for an update, where `a` alone holds it once more.
        let after = RouteConfs::new(&routes, Some(&confs));
        assert_eq!(
            after.route_of(&routes[0].to[0].conf).map(|r| &**r),
            Some("a")
        );
    }

    #[test]
    fn lists_of_confs_have_the_fingerprint_of_their_confs_in_order() {
        let routes = vec![
            route("a", &["/x"]),
            route("b", &["/z"]),
            route("c", &["/x"]),
        ];
        let confs = RouteConfs::new(&routes, None);
        let conf = |i: usize| &*routes[i].to[0].conf;
        let of = |parts: &[&Value]| confs.fingerprint(parts.iter().copied());
        let ab = of(&[conf(0), conf(1)]).expect("read");
        assert_eq!(Some(ab), of(&[conf(0), conf(1)]));
        assert_ne!(Some(ab), of(&[conf(1), conf(0)]));
        assert_ne!(Some(ab), of(&[conf(0)]));
        assert_ne!(Some(ab), of(&[conf(0), conf(1), conf(1)]));
        // Equal confs of two routes (read apart) are one conf.
        assert_eq!(of(&[conf(0)]), of(&[conf(2)]));
        assert_ne!(of(&[conf(0)]), of(&[conf(1)]));
        let unread = serde_json::json!({"rules": []});
        assert_eq!(of(&[conf(0), &unread]), None);
    }

    #[test]
    fn an_update_keeps_what_was_read_of_the_routes_still_there() {
        let routes = vec![route("a", &["/x"]), route("b", &["/z"])];
        let before = RouteConfs::new(&routes, None);
        let changed = vec![routes[0].clone(), route("b", &["/w"])];
        let after = RouteConfs::new(&changed, Some(&before));
        let kept = |confs: &RouteConfs, policy: &Policy| {
            std::ptr::from_ref(confs.get(&policy.to[0].conf).expect("read"))
        };
        assert_eq!(kept(&before, &routes[0]), kept(&after, &routes[0]));
        let b = after.get(&changed[1].to[0].conf).expect("read");
        let rule = &b.rules().expect("reads")[0];
        assert_eq!(rule.matched(0).path.as_ref().unwrap().value, "/w");
        assert!(after.get(&routes[1].to[0].conf).is_none());
    }

    #[test]
    fn equal_backend_refs_of_every_conf_are_one_value_across_updates() {
        let backend_of = |confs: &RouteConfs, policy: &Policy, rule: usize| {
            let read = confs.get(&policy.to[0].conf).expect("read");
            read.rules().expect("reads")[rule].backends[0].clone()
        };
        let routes = vec![route("a", &["/x", "/y"]), route("b", &["/z"])];
        let before = RouteConfs::new(&routes, None);
        let first = backend_of(&before, &routes[0], 0);
        assert_eq!(first.target_ref.name.as_deref(), Some("backend"));
        assert!(Arc::ptr_eq(&first, &backend_of(&before, &routes[0], 1)));
        assert!(Arc::ptr_eq(&first, &backend_of(&before, &routes[1], 0)));
        // A new conf read for an update shares the kept confs' value.
        let changed = vec![routes[0].clone(), route("b", &["/w"])];
        let after = RouteConfs::new(&changed, Some(&before));
        assert!(Arc::ptr_eq(&first, &backend_of(&after, &changed[1], 0)));
        // Values no rule holds any more are not carried on.
        drop((before, first));
        let later = RouteConfs::new(&[], Some(&after));
        drop((after, changed, routes));
        assert!(later.backends.still_held().is_empty());
    }
}
