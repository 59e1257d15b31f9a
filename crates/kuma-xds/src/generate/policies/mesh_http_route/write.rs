//! A route table entry's Envoy routes, written straight into the encoding
//! of their virtual host.
//!
//! An Envoy route is a message of over 2 KB in memory, most of it fields a
//! route table never sets: built, encoded field by field and dropped, each
//! cost a few thousand instructions, the dearest part of an outbound with
//! routes. Here the parts every route has (name, path, action, clusters and
//! weights) are written from the entry itself. What a match asks beyond
//! the path (method, headers, query parameters) is encoded once per entry,
//! and so is the route action its routes share; only what filters add goes
//! through a (small) message of its own.

use std::ops::Range;

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteMatch, route, route_match,
};
use kuma_api::policies::mesh_http_route::{Match, PathMatch};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, uint32};

use super::{EXACT, PATH_PREFIX, RouteEntry, Split, add_header_matches, add_query_matches};
use super::{exact, filters, fraction, regex, string_header};
use crate::generate::listener::{
    ROUTE_ACTION_WEIGHTED_CLUSTERS, ROUTE_MATCH, ROUTE_ROUTE_ACTION, VIRTUAL_HOST_ROUTES,
    WEIGHTED_CLUSTER_CLUSTERS, end_field, start_field,
};

/// Field numbers of what is written here (Envoy's `route.v3` protos).
const ROUTE_NAME: u32 = 14;
const ROUTE_REDIRECT: u32 = 3;
const ROUTE_DIRECT_RESPONSE: u32 = 7;
const DIRECT_RESPONSE_STATUS: u32 = 1;
const ROUTE_ACTION_CLUSTER: u32 = 1;
const CLUSTER_WEIGHT_NAME: u32 = 1;
const CLUSTER_WEIGHT_WEIGHT: u32 = 2;
const UINT32_VALUE: u32 = 1;
const MATCH_PREFIX: u32 = 1;
const MATCH_PATH: u32 = 2;
const MATCH_RUNTIME_FRACTION: u32 = 9;
const MATCH_SAFE_REGEX: u32 = 10;
const REGEX_MATCHER_REGEX: u32 = 2;

/// The path one Envoy route matches. A path prefix matches the path itself
/// or what follows a `/` after it: two Envoy routes, as Kuma makes them
/// (Envoy's `path_separated_prefix` would rewrite `/prefix/x` to `//x` when
/// the prefix is replaced by `/`). Other paths are one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoutePath<'a> {
    /// Paths starting with it.
    Prefix(&'a str),
    /// Paths under it: it and a `/`, as a prefix.
    Under(&'a str),
    Exact(&'a str),
    Regex(&'a str),
}

impl<'a> RoutePath<'a> {
    /// The paths of the routes of a match with `path` (every path when
    /// there is none).
    pub(crate) fn of(path: Option<&'a PathMatch>) -> (RoutePath<'a>, Option<RoutePath<'a>>) {
        let Some(path) = path else {
            return (RoutePath::Prefix("/"), None);
        };
        match path.kind.as_str() {
            EXACT => (RoutePath::Exact(&path.value), None),
            PATH_PREFIX if path.value == "/" => (RoutePath::Prefix("/"), None),
            PATH_PREFIX => {
                let trimmed = path.value.trim_end_matches('/');
                (RoutePath::Exact(trimmed), Some(RoutePath::Under(trimmed)))
            }
            _ => (RoutePath::Regex(&path.value), None),
        }
    }

    /// The typed form, for filters that read what a route matched.
    fn specifier(self) -> route_match::PathSpecifier {
        use route_match::PathSpecifier as P;
        match self {
            RoutePath::Prefix(p) => P::Prefix(p.to_string()),
            RoutePath::Under(p) => P::Prefix(format!("{p}/")),
            RoutePath::Exact(p) => P::Path(p.to_string()),
            RoutePath::Regex(r) => P::SafeRegex(regex(r)),
        }
    }

    /// Writes the path as the `path_specifier` of a match: a field even
    /// when its text is empty, as for any one-of.
    fn write(self, out: &mut Vec<u8>) {
        match self {
            RoutePath::Prefix(p) => write_text(MATCH_PREFIX, &[p], out),
            RoutePath::Under(p) => write_text(MATCH_PREFIX, &[p, "/"], out),
            RoutePath::Exact(p) => write_text(MATCH_PATH, &[p], out),
            RoutePath::Regex(r) => {
                let at = start_field(out, MATCH_SAFE_REGEX);
                write_string(REGEX_MATCHER_REGEX, r, out);
                end_field(out, at);
            }
        }
    }
}

/// What `matched` asks beyond the path (the method, headers and query
/// parameters), encoded as the fields of an Envoy match that follow its
/// path; empty when nothing.
fn other_conditions(matched: &Match) -> Vec<u8> {
    let none = |list: Option<usize>| list.is_none_or(|n| n == 0);
    if matched.method.is_none()
        && none(matched.headers.as_ref().map(Vec::len))
        && none(matched.query_params.as_ref().map(Vec::len))
    {
        return Vec::new();
    }
    let mut m = RouteMatch::default();
    if let Some(method) = &matched.method {
        m.headers.push(string_header(":method", exact(method)));
    }
    add_query_matches(&mut m, matched);
    add_header_matches(&mut m, matched);
    m.encode_to_vec()
}

/// The match of one route: its path, then `conditions` (see
/// [`other_conditions`]), then the share of requests it takes, if not all
/// (fields in the order prost writes them).
#[derive(Clone, Copy)]
struct RouteMatchParts<'a> {
    path: RoutePath<'a>,
    conditions: &'a [u8],
    share: Option<&'a RuntimeFractionalPercent>,
}

impl RouteMatchParts<'_> {
    fn write(self, out: &mut Vec<u8>) {
        self.path.write(out);
        out.extend_from_slice(self.conditions);
        if let Some(share) = self.share {
            prost::encoding::message::encode(MATCH_RUNTIME_FRACTION, share, out);
        }
    }
}

/// The route action written last and where it is in the output: routes
/// of a table mostly share their clusters (both routes of a path prefix
/// always), and copy it rather than write it again.
#[derive(Debug, Default)]
pub(crate) struct LastAction<'e> {
    written: Option<(&'e [Split], &'e [u8], Range<usize>)>,
}

impl LastAction<'_> {
    /// Where the action to `split` with `action_fields` was written, if it
    /// was the last one.
    fn copy(&self, split: &[Split], action_fields: &[u8]) -> Option<Range<usize>> {
        let (was, fields, at) = self.written.as_ref()?;
        (*was == split && *fields == action_fields).then(|| at.clone())
    }
}

/// Writes the Envoy routes of one entry as `routes` fields of a virtual
/// host: two for a path prefix other than `/`, each preceded by a route
/// answering 500 to the share of requests meant for backends that do not
/// exist. Route actions get `action_fields` after their own (the encoded
/// fields policies give them, see `listener::route_action_fields`).
pub(crate) fn write_envoy_routes<'e>(
    entry: &'e RouteEntry,
    action_fields: &'e [u8],
    last: &mut LastAction<'e>,
    out: &mut Vec<u8>,
) {
    // Most routes start with the head their rule wrote when it was read.
    if entry.unresolved_weight == 0
        && entry.filters().is_empty()
        && let Some(heads) = entry.heads()
    {
        for head in heads.into_iter().filter(|h| !h.is_empty()) {
            let start = start_field(out, VIRTUAL_HOST_ROUTES);
            out.extend_from_slice(head);
            if entry.unresolved {
                write_server_error_action(out, start);
            } else {
                write_plain_action(entry, action_fields, last, out, start);
            }
        }
        return;
    }
    let matched = entry.matched();
    let prefix = matched.path.as_ref().is_some_and(|p| p.kind == PATH_PREFIX);
    let conditions = other_conditions(matched);
    let (first, second) = RoutePath::of(matched.path.as_ref());
    for path in std::iter::once(first).chain(second) {
        let matched = RouteMatchParts {
            path,
            conditions: &conditions,
            share: None,
        };
        if entry.unresolved {
            // The Gateway API answers a rule with no usable backend with 500.
            let start = start_route(&entry.name, matched, out);
            write_server_error_action(out, start);
            continue;
        }
        if entry.unresolved_weight > 0 {
            let total: u32 = entry.split.iter().map(|s| s.weight).sum();
            let total = f64::from(total) + f64::from(entry.unresolved_weight);
            let share = fraction(f64::from(entry.unresolved_weight) * 100.0 / total);
            let share = RouteMatchParts {
                share: Some(&share),
                ..matched
            };
            let start = start_route(&entry.name, share, out);
            write_server_error_action(out, start);
        }
        let start = start_route(&entry.name, matched, out);
        if entry.filters().is_empty() {
            write_plain_action(entry, action_fields, last, out, start);
            continue;
        }
        // Filters change the route through its message: one holding only
        // what they set (and the path they read).
        let mut changed = Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(path.specifier()),
                ..RouteMatch::default()
            }),
            action: Some(route::Action::Route(RouteAction::default())),
            ..Route::default()
        };
        filters::apply(entry.filters(), &entry.mirrors, prefix, &mut changed);
        changed.r#match = None;
        match changed.action.take() {
            Some(route::Action::Route(own)) => {
                write_route_action(&entry.split, Some(&own), action_fields, out);
            }
            Some(route::Action::Redirect(redirect)) => {
                prost::encoding::message::encode(ROUTE_REDIRECT, &redirect, out);
            }
            _ => {}
        }
        // Header changes: the rest of the route.
        changed.encode_raw(out);
        end_field(out, start);
    }
}

/// Ends the route started at `start` with the entry's action (no filter
/// changes it): a copy of the last one written when it is the same.
fn write_plain_action<'e>(
    entry: &'e RouteEntry,
    action_fields: &'e [u8],
    last: &mut LastAction<'e>,
    out: &mut Vec<u8>,
    start: usize,
) {
    let action_len = match last.copy(&entry.split, action_fields) {
        Some(range) => {
            out.extend_from_within(range.clone());
            range.len()
        }
        None => {
            let before = out.len();
            write_route_action(&entry.split, None, action_fields, out);
            out.len() - before
        }
    };
    end_field(out, start);
    // Ending the route may move it along, never past its end: the action
    // is still the last thing written.
    last.written = Some((
        &entry.split,
        action_fields,
        out.len() - action_len..out.len(),
    ));
}

/// The start of each Envoy route of a match named `name` (one, or two for
/// a path prefix): its name and match fields, as [`start_route`] writes
/// them without a share. Written the first time a route table writes the
/// rule's routes and kept with the rule; later routes copy them.
pub(crate) fn route_heads(name: &str, matched: &Match, out: &mut Vec<u8>) -> [Range<u32>; 2] {
    let conditions = other_conditions(matched);
    let (first, second) = RoutePath::of(matched.path.as_ref());
    let mut head = |path: RoutePath<'_>| {
        let from = out.len() as u32;
        write_head(
            name,
            RouteMatchParts {
                path,
                conditions: &conditions,
                share: None,
            },
            out,
        );
        from..out.len() as u32
    };
    let first = head(first);
    let second = second.map_or(first.end..first.end, head);
    [first, second]
}

/// A route's name and match fields.
fn write_head(name: &str, matched: RouteMatchParts<'_>, out: &mut Vec<u8>) {
    write_string(ROUTE_NAME, name, out);
    let at = start_field(out, ROUTE_MATCH);
    matched.write(out);
    end_field(out, at);
}

/// Starts a route of the virtual host with its name and match; returns
/// where it starts, for `end_field`.
fn start_route(name: &str, matched: RouteMatchParts<'_>, out: &mut Vec<u8>) -> usize {
    let start = start_field(out, VIRTUAL_HOST_ROUTES);
    write_head(name, matched, out);
    start
}

/// Ends a route started at `start` with an answer of 500.
fn write_server_error_action(out: &mut Vec<u8>, start: usize) {
    let at = start_field(out, ROUTE_DIRECT_RESPONSE);
    uint32::encode(DIRECT_RESPONSE_STATUS, &500, out);
    end_field(out, at);
    end_field(out, start);
}

/// A route action to `split`'s clusters: the cluster, or weighted clusters;
/// then what filters set on it (`own`), then `action_fields`.
fn write_route_action(
    split: &[Split],
    own: Option<&RouteAction>,
    action_fields: &[u8],
    out: &mut Vec<u8>,
) {
    let at = start_field(out, ROUTE_ROUTE_ACTION);
    match split {
        [one] => write_string(ROUTE_ACTION_CLUSTER, &one.cluster, out),
        many => {
            let weighted = start_field(out, ROUTE_ACTION_WEIGHTED_CLUSTERS);
            for s in many {
                let cluster = start_field(out, WEIGHTED_CLUSTER_CLUSTERS);
                write_string(CLUSTER_WEIGHT_NAME, &s.cluster, out);
                let weight = start_field(out, CLUSTER_WEIGHT_WEIGHT);
                if s.weight != 0 {
                    uint32::encode(UINT32_VALUE, &s.weight, out);
                }
                end_field(out, weight);
                end_field(out, cluster);
            }
            end_field(out, weighted);
        }
    }
    if let Some(own) = own {
        own.encode_raw(out);
    }
    out.extend_from_slice(action_fields);
    end_field(out, at);
}

/// A string field, as prost writes one that is not empty.
#[inline]
fn write_string(field: u32, value: &str, out: &mut Vec<u8>) {
    if !value.is_empty() {
        write_text(field, &[value], out);
    }
}

/// A string field made of `parts`, written even when empty.
#[inline]
fn write_text(field: u32, parts: &[&str], out: &mut Vec<u8>) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(parts.iter().map(|p| p.len()).sum::<usize>() as u64, out);
    for part in parts {
        out.extend_from_slice(part.as_bytes());
    }
}
