//! MeshHTTPRoute rules as route tables read them, prepared once per rule:
//! when the snapshot reads a MeshHTTPRoute conf (see `RouteConfs`), or when
//! a proxy's fold makes rules of its own.
//!
//! A route table's entries share their rule, its name and its route
//! rather than copy them, sort by a precedence worked out here, and tell
//! backendRefs apart by address: equal backendRefs of the confs a snapshot
//! reads are one value ([`SharedBackends`]). Copying each rule's parts was
//! most of what building a table cost, as each first read of them is a
//! read from memory the snapshot wrote long before.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, LazyLock, OnceLock};

use kuma_api::policies::mesh_http_route::{Filter, Match, PathMatch, Rule};
use kuma_api::policies::values::BackendRef;
use kuma_policy::inspect::hash_matches;

use super::{EXACT, PATH_PREFIX};

/// Equal backendRefs as one value, so that route tables compare them by
/// address. A snapshot update starts from the previous snapshot's (those
/// its kept confs still hold): equal backendRefs of kept and new confs are
/// one value too.
#[derive(Debug, Default)]
pub(crate) struct SharedBackends(HashSet<Arc<BackendRef>, foldhash::fast::RandomState>);

impl SharedBackends {
    /// The one value equal to `backend`.
    pub(crate) fn get(&mut self, backend: BackendRef) -> Arc<BackendRef> {
        if let Some(found) = self.0.get(&backend) {
            return found.clone();
        }
        let shared = Arc::new(backend);
        self.0.insert(shared.clone());
        shared
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values some rule still holds, for the next snapshot.
    pub(crate) fn still_held(&self) -> SharedBackends {
        SharedBackends(
            self.0
                .iter()
                .filter(|b| Arc::strong_count(b) > 1)
                .cloned()
                .collect(),
        )
    }
}

/// A match's place in Gateway API precedence: ordered as its fields are,
/// the first (least) route first. A path beats none, Exact beats
/// PathPrefix beats RegularExpression, a longer prefix or regex beats a
/// shorter one; then a method beats none; then more header matches, then
/// more query matches, come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MatchOrder {
    no_path: bool,
    path_rank: u8,
    /// Exact paths all rank alike: their length is left out.
    path_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    queries: Reverse<usize>,
}

impl MatchOrder {
    pub(crate) fn of(m: &Match) -> MatchOrder {
        let (path_rank, path_len) = match &m.path {
            None => (0, 0),
            Some(p) => match p.kind.as_str() {
                EXACT => (0, 0),
                PATH_PREFIX => (1, p.value.len()),
                _ => (2, p.value.len()),
            },
        };
        MatchOrder {
            no_path: m.path.is_none(),
            path_rank,
            path_len: Reverse(path_len),
            no_method: m.method.is_none(),
            headers: Reverse(m.headers.as_ref().map_or(0, Vec::len)),
            queries: Reverse(m.query_params.as_ref().map_or(0, Vec::len)),
        }
    }
}

/// One match of a rule as a route table sorts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReadMatch {
    pub order: MatchOrder,
    /// It matches every request: path prefix `/` and nothing else.
    pub catch_all: bool,
}

/// A MeshHTTPRoute rule, read for route tables.
#[derive(Debug, PartialEq)]
pub(crate) struct ReadRule {
    /// Its backendRefs are in `backends`, not here.
    rule: Rule,
    /// Kuma's name of its matches (the hash of their JSON).
    pub name: Arc<str>,
    /// Per match, in match order.
    pub matches: Vec<ReadMatch>,
    /// Its backendRefs, in order.
    pub backends: Vec<Arc<BackendRef>>,
    /// The backendRef of each RequestMirror filter, by filter index.
    pub mirrors: Vec<(usize, Arc<BackendRef>)>,
    /// A RequestRedirect filter answers its requests: no backend needed.
    pub redirect: bool,
    /// The heads of its matches' Envoy routes, written when a route table
    /// first writes the rule's routes and kept with the rule: snapshot
    /// updates keep the rules of the confs still there.
    heads: OnceLock<Heads>,
}

/// The head (name and match fields) of each Envoy route of each match of a
/// rule ([`super::write::route_heads`]).
#[derive(Debug, PartialEq)]
struct Heads {
    /// Per match, where its routes' heads are in `bytes` (the second empty
    /// for one route).
    ranges: Vec<[Range<u32>; 2]>,
    bytes: Vec<u8>,
}

impl Heads {
    fn of(name: &str, matches: &[Match]) -> Heads {
        // Room for the name, path and a few fields per route, two routes
        // for a path prefix: no growing for plain matches.
        let room = |m: &Match| 2 * (name.len() + m.path.as_ref().map_or(1, |p| p.value.len()) + 16);
        let mut bytes = Vec::with_capacity(matches.iter().map(room).sum());
        let ranges = matches
            .iter()
            .map(|m| super::write::route_heads(name, m, &mut bytes))
            .collect();
        Heads { ranges, bytes }
    }
}

impl ReadRule {
    /// `rule` read, its backendRefs made one with the equal ones of
    /// `shared`.
    pub(crate) fn read(mut rule: Rule, shared: &mut SharedBackends) -> ReadRule {
        let backends = rule
            .default
            .backend_refs
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|b| shared.get(b))
            .collect();
        let mirrors = rule
            .default
            .filters
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, f)| {
                let mirror = f
                    .request_mirror
                    .as_ref()
                    .filter(|_| f.kind == "RequestMirror")?;
                Some((i, shared.get(mirror.backend_ref.clone())))
            })
            .collect();
        let redirect = rule
            .default
            .filters
            .iter()
            .flatten()
            .any(|f| f.kind == "RequestRedirect");
        static CATCH_ALL_MATCH: LazyLock<Match> = LazyLock::new(catch_all_match);
        let matches = rule
            .matches
            .iter()
            .map(|m| ReadMatch {
                order: MatchOrder::of(m),
                catch_all: *m == *CATCH_ALL_MATCH,
            })
            .collect();
        ReadRule {
            name: hash_matches(&rule.matches).into(),
            heads: OnceLock::new(),
            rule,
            matches,
            backends,
            mirrors,
            redirect,
        }
    }

    /// `rule` read on its own: its backendRefs shared with no other rule's.
    pub(crate) fn alone(rule: Rule) -> ReadRule {
        ReadRule::read(rule, &mut SharedBackends::default())
    }

    /// The rule sending every request to the outbound's own cluster, that
    /// route tables end with unless a rule already catches all.
    pub(crate) fn catch_all() -> Arc<ReadRule> {
        static CATCH_ALL: LazyLock<Arc<ReadRule>> = LazyLock::new(|| {
            Arc::new(ReadRule::alone(Rule {
                matches: vec![catch_all_match()],
                ..Rule::default()
            }))
        });
        CATCH_ALL.clone()
    }

    /// Match `at` of the rule.
    pub(crate) fn matched(&self, at: usize) -> &Match {
        &self.rule.matches[at]
    }

    /// Every match of the rule.
    pub(crate) fn all_matches(&self) -> &[Match] {
        &self.rule.matches
    }

    pub(crate) fn filters(&self) -> &[Filter] {
        self.rule.default.filters.as_deref().unwrap_or_default()
    }

    /// The heads of the Envoy routes of match `at`, named after the rule's
    /// matches (the second empty when the match makes one route).
    pub(crate) fn heads(&self, at: usize) -> Option<[&[u8]; 2]> {
        let heads = self
            .heads
            .get_or_init(|| Heads::of(&self.name, &self.rule.matches));
        let [first, second] = heads.ranges.get(at)?;
        let part = |r: &Range<u32>| heads.bytes.get(r.start as usize..r.end as usize);
        Some([part(first)?, part(second)?])
    }
}

/// The match of every request: path prefix `/`.
fn catch_all_match() -> Match {
    Match {
        path: Some(PathMatch {
            value: "/".to_string(),
            kind: PATH_PREFIX.to_string(),
        }),
        ..Match::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuma_api::policies::mesh_http_route::{QueryParamsMatch, RequestMirror, RuleConf};
    use kuma_api::policies::values::HeaderMatch;

    use super::super::tests::path as with_path;

    fn backend(name: &str) -> BackendRef {
        serde_json::from_value(serde_json::json!({"kind": "MeshService", "name": name}))
            .expect("a backendRef")
    }

    #[test]
    fn matches_order_by_gateway_api_precedence() {
        let header = HeaderMatch {
            kind: None,
            name: "x".into(),
            value: "1".into(),
        };
        let query = QueryParamsMatch {
            kind: "Exact".into(),
            name: "q".into(),
            value: "1".into(),
        };
        let prefix = with_path(PATH_PREFIX, "/a");
        let ordered = [
            with_path(EXACT, "/long/exact"),
            with_path(PATH_PREFIX, "/abc"),
            Match {
                method: Some("GET".into()),
                ..prefix.clone()
            },
            Match {
                headers: Some(vec![header.clone(), header.clone()]),
                ..prefix.clone()
            },
            Match {
                headers: Some(vec![header.clone()]),
                ..prefix.clone()
            },
            Match {
                query_params: Some(vec![query]),
                ..prefix.clone()
            },
            prefix.clone(),
            with_path("RegularExpression", "^/abcdef$"),
            with_path("RegularExpression", "^/a$"),
            Match {
                headers: Some(vec![header]),
                ..Match::default()
            },
        ];
        for pair in ordered.windows(2) {
            assert!(
                MatchOrder::of(&pair[0]) < MatchOrder::of(&pair[1]),
                "{pair:?}"
            );
        }
        // Exact paths rank alike whatever their length.
        assert_eq!(
            MatchOrder::of(&with_path(EXACT, "/a")),
            MatchOrder::of(&with_path(EXACT, "/long/exact"))
        );
    }

    #[test]
    fn a_rule_is_read_with_its_backends_shared_and_its_mirrors_found() {
        let mirror = Filter {
            kind: "RequestMirror".into(),
            request_mirror: Some(RequestMirror {
                backend_ref: backend("shadow"),
                percentage: None,
            }),
            ..Filter::default()
        };
        let header_only = Filter {
            kind: "RequestHeaderModifier".into(),
            ..Filter::default()
        };
        let rule = |matches: Vec<Match>, backends: Vec<BackendRef>, filters: Vec<Filter>| Rule {
            matches,
            default: RuleConf {
                filters: Some(filters),
                backend_refs: Some(backends),
            },
        };
        let mut shared = SharedBackends::default();
        let first = ReadRule::read(
            rule(
                vec![with_path(PATH_PREFIX, "/"), with_path(EXACT, "/x")],
                vec![backend("web"), backend("shadow")],
                vec![header_only, mirror],
            ),
            &mut shared,
        );
        let second = ReadRule::read(
            rule(vec![with_path(EXACT, "/")], vec![backend("web")], vec![]),
            &mut shared,
        );
        assert!(Arc::ptr_eq(&first.backends[0], &second.backends[0]));
        assert_eq!(first.mirrors.len(), 1);
        assert_eq!(first.mirrors[0].0, 1, "the mirror is the second filter");
        assert!(Arc::ptr_eq(&first.mirrors[0].1, &first.backends[1]));
        assert_eq!(first.filters().len(), 2);
        assert_eq!(
            first
                .matches
                .iter()
                .map(|m| m.catch_all)
                .collect::<Vec<_>>(),
            [true, false]
        );
        assert!(!second.matches[0].catch_all, "an exact `/` is no catch-all");
        assert_eq!(&*first.name, hash_matches(first.all_matches()));
        // Read alone, equal backends are other values.
        let alone = ReadRule::alone(rule(vec![], vec![backend("web")], vec![]));
        assert!(!Arc::ptr_eq(&alone.backends[0], &second.backends[0]));
        assert_eq!(alone.backends[0], second.backends[0]);
    }
}
