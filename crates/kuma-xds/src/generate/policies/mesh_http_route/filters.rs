//! MeshHTTPRoute filters on one Envoy route, in the order they are listed.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, Route, RouteAction, redirect_action, route, route_action, route_match,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use kuma_api::policies::mesh_http_route::{Filter, PathRewrite};
use kuma_api::policies::values::HeaderModifier;

use super::{fraction, regex};

const REPLACE_FULL_PATH: &str = "ReplaceFullPath";
const REPLACE_PREFIX_MATCH: &str = "ReplacePrefixMatch";

/// Applies `filters` to `r`; `prefix` tells that the route came from a path
/// prefix match (rewrites of the prefix need it). `mirrors` holds the
/// cluster of each RequestMirror filter, by index.
pub(super) fn apply(
    filters: &[Filter],
    mirrors: &BTreeMap<usize, String>,
    prefix: bool,
    r: &mut Route,
) {
    for (i, f) in filters.iter().enumerate() {
        match f.kind.as_str() {
            "RequestHeaderModifier" => {
                if let Some(m) = &f.request_header_modifier {
                    let (add, remove) = header_changes(m);
                    r.request_headers_to_add.extend(add);
                    r.request_headers_to_remove.extend(remove);
                }
            }
            "ResponseHeaderModifier" => {
                if let Some(m) = &f.response_header_modifier {
                    let (add, remove) = header_changes(m);
                    r.response_headers_to_add.extend(add);
                    r.response_headers_to_remove.extend(remove);
                }
            }
            "RequestRedirect" => {
                if let Some(redirect) = &f.request_redirect {
                    let action = redirect_action(redirect, prefix, r);
                    r.action = Some(route::Action::Redirect(action));
                }
            }
            "URLRewrite" => {
                let matched_path = matched_path(r);
                if let (Some(rewrite), Some(route::Action::Route(action))) =
                    (&f.url_rewrite, r.action.as_mut())
                {
                    if let Some(host) = &rewrite.hostname {
                        action.host_rewrite_specifier = Some(
                            route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
                        );
                    }
                    if let Some(path) = &rewrite.path {
                        rewrite_path(path, prefix, &matched_path, action);
                    }
                }
            }
            "RequestMirror" => {
                let cluster = mirrors.get(&i);
                if let (Some(mirror), Some(cluster), Some(route::Action::Route(action))) =
                    (&f.request_mirror, cluster, r.action.as_mut())
                {
                    let runtime_fraction = mirror
                        .percentage
                        .as_ref()
                        .and_then(|p| p.as_f64())
                        .map(fraction);
                    action
                        .request_mirror_policies
                        .push(route_action::RequestMirrorPolicy {
                            cluster: cluster.clone(),
                            runtime_fraction,
                            ..route_action::RequestMirrorPolicy::default()
                        });
                }
            }
            _ => {}
        }
    }
}

/// The Envoy match a prefix rule produced: the exact path, or the path
/// with a `/` after it.
enum MatchedPath {
    Exact,
    Prefix,
    Other,
}

fn matched_path(r: &Route) -> MatchedPath {
    match r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()) {
        Some(route_match::PathSpecifier::Path(_)) => MatchedPath::Exact,
        Some(route_match::PathSpecifier::Prefix(_)) => MatchedPath::Prefix,
        _ => MatchedPath::Other,
    }
}

/// The whole path replaced by `value`.
fn full_path(value: &str) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute {
        pattern: Some(regex(".*")),
        substitution: value.to_string(),
    }
}

/// What replaces the `<prefix>/` Envoy matched, so that the `/` after the
/// prefix survives (`/api/x` with `/v2` becomes `/v2/x`, with `/` becomes `/x`).
fn prefix_replacement(value: &str) -> String {
    if value.ends_with('/') {
        value.to_string()
    } else {
        format!("{value}/")
    }
}

fn rewrite_path(path: &PathRewrite, prefix: bool, matched: &MatchedPath, action: &mut RouteAction) {
    match path.kind.as_str() {
        REPLACE_FULL_PATH => {
            if let Some(value) = &path.replace_full_path {
                action.regex_rewrite = Some(full_path(value));
            }
        }
        REPLACE_PREFIX_MATCH if prefix => {
            let Some(value) = &path.replace_prefix_match else {
                return;
            };
            match matched {
                MatchedPath::Exact => action.regex_rewrite = Some(full_path(value)),
                MatchedPath::Prefix => action.prefix_rewrite = prefix_replacement(value),
                MatchedPath::Other => {}
            }
        }
        _ => {}
    }
}

fn redirect_action(
    redirect: &kuma_api::policies::mesh_http_route::RequestRedirect,
    prefix: bool,
    r: &Route,
) -> RedirectAction {
    use redirect_action::{PathRewriteSpecifier as P, RedirectResponseCode as Code};
    let response_code = match redirect.status_code {
        Some(301) => Code::MovedPermanently,
        Some(303) => Code::SeeOther,
        Some(307) => Code::TemporaryRedirect,
        Some(308) => Code::PermanentRedirect,
        _ => Code::Found,
    };
    let mut action = RedirectAction {
        host_redirect: redirect.hostname.clone().unwrap_or_default(),
        port_redirect: redirect
            .port
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        response_code: response_code as i32,
        scheme_rewrite_specifier: redirect
            .scheme
            .clone()
            .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
        ..RedirectAction::default()
    };
    if let Some(path) = &redirect.path {
        action.path_rewrite_specifier = match path.kind.as_str() {
            REPLACE_FULL_PATH => path
                .replace_full_path
                .as_deref()
                .map(|v| P::RegexRewrite(full_path(v))),
            REPLACE_PREFIX_MATCH if prefix => {
                path.replace_prefix_match
                    .as_deref()
                    .and_then(|v| match matched_path(r) {
                        MatchedPath::Exact => Some(P::RegexRewrite(full_path(v))),
                        MatchedPath::Prefix => Some(P::PrefixRewrite(prefix_replacement(v))),
                        MatchedPath::Other => None,
                    })
            }
            _ => None,
        };
    }
    action
}

/// `set` overwrites, `add` appends; `remove` names headers to drop.
fn header_changes(m: &HeaderModifier) -> (Vec<HeaderValueOption>, Vec<String>) {
    use header_value_option::HeaderAppendAction as A;
    let option = |name: &str, value: &str, action: A| HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            value: value.to_string(),
            ..HeaderValue::default()
        }),
        append_action: action as i32,
        ..HeaderValueOption::default()
    };
    let set = m
        .set
        .iter()
        .flatten()
        .map(|h| option(&h.name, &h.value, A::OverwriteIfExistsOrAdd));
    let add = m
        .add
        .iter()
        .flatten()
        .map(|h| option(&h.name, &h.value, A::AppendIfExistsOrAdd));
    (
        set.chain(add).collect(),
        m.remove.clone().unwrap_or_default(),
    )
}
