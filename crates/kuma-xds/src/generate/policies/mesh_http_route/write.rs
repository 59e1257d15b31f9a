//! A route table entry's Envoy routes, written straight into the encoding
//! of their virtual host.
//!
//! An Envoy route is a message of over 2 KB in memory, most of it fields a
//! route table never sets: built, encoded field by field and dropped, each
//! cost a few thousand instructions, the dearest part of an outbound with
//! routes. Here the parts every route has (name, action, clusters and
//! weights) are written from the entry itself; only its match, and what
//! filters add, go through their (small) messages.

use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteMatch, route};
use prost::Message;
use prost::encoding::uint32;

use super::{PATH_PREFIX, RouteEntry, Split, add_header_matches, add_query_matches};
use super::{exact, filters, fraction, path_matches, string_header};
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

/// Writes the Envoy routes of one entry as `routes` fields of a virtual
/// host: two for a path prefix other than `/`, each preceded by a route
/// answering 500 to the share of requests meant for backends that do not
/// exist. Route actions get `action_fields` after their own (the encoded
/// fields policies give them, see `listener::route_action_fields`).
pub(crate) fn write_envoy_routes(entry: &RouteEntry, action_fields: &[u8], out: &mut Vec<u8>) {
    let prefix = entry
        .matched
        .path
        .as_ref()
        .is_some_and(|p| p.kind == PATH_PREFIX);
    let (first, second) = path_matches(entry.matched.path.as_ref());
    for mut m in std::iter::once(first).chain(second) {
        if let Some(method) = &entry.matched.method {
            m.headers.push(string_header(":method", exact(method)));
        }
        add_query_matches(&mut m, &entry.matched);
        add_header_matches(&mut m, &entry.matched);
        if entry.unresolved {
            // The Gateway API answers a rule with no usable backend with 500.
            write_server_error(&entry.name, &m, out);
            continue;
        }
        if entry.unresolved_weight > 0 {
            let total: u32 = entry.split.iter().map(|s| s.weight).sum();
            let total = f64::from(total) + f64::from(entry.unresolved_weight);
            let mut share = m.clone();
            share.runtime_fraction =
                Some(fraction(f64::from(entry.unresolved_weight) * 100.0 / total));
            write_server_error(&entry.name, &share, out);
        }
        let start = start_route(&entry.name, &m, out);
        if entry.filters.is_empty() {
            write_route_action(&entry.split, None, action_fields, out);
        } else {
            // Filters change the route through its message: one holding
            // only what they set (and the match they read).
            let mut changed = Route {
                r#match: Some(m),
                action: Some(route::Action::Route(RouteAction::default())),
                ..Route::default()
            };
            filters::apply(&entry.filters, &entry.mirrors, prefix, &mut changed);
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
        }
        end_field(out, start);
    }
}

/// Starts a route of the virtual host with its name and match; returns
/// where it starts, for `end_field`.
fn start_route(name: &str, m: &RouteMatch, out: &mut Vec<u8>) -> usize {
    let start = start_field(out, VIRTUAL_HOST_ROUTES);
    write_string(ROUTE_NAME, name, out);
    let at = start_field(out, ROUTE_MATCH);
    m.encode_raw(out);
    end_field(out, at);
    start
}

/// A route answering 500.
fn write_server_error(name: &str, m: &RouteMatch, out: &mut Vec<u8>) {
    let start = start_route(name, m, out);
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
    if value.is_empty() {
        return;
    }
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(value.len() as u64, out);
    out.extend_from_slice(value.as_bytes());
}
