//! MeshHTTPRoute: matching, filtering and splitting HTTP traffic.

use serde::{Deserialize, Serialize};

use crate::policies::mesh_tcp_route::{BACKEND_KINDS, ROUTE_TOP_KINDS, route_to_kinds};
use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{
    BackendRef, HeaderMatch, HeaderModifier, IntOrString, check_backend_ref, check_percentage,
    check_regex,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshHttpRouteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct To {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    #[serde(default = "TargetRef::unset")]
    pub target_ref: TargetRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Match>,
    #[serde(default)]
    pub default: RuleConf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<Vec<QueryParamsMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HeaderMatch>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathMatch {
    #[serde(default)]
    pub value: String,
    /// `Exact`, `PathPrefix` or `RegularExpression`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryParamsMatch {
    /// `Exact` or `RegularExpression`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<BackendRef>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`,
    /// `URLRewrite` or `RequestMirror`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRewrite {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_to_backend_hostname: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
    #[serde(default)]
    pub backend_ref: BackendRef,
}

/// The folded `to` conf one destination gets: every route rule of the
/// MeshHTTPRoutes aimed at it (rules with equal `matches` folded into one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
}

/// HTTP methods a match may name (Kuma's enum).
const METHODS: &[&str] = &[
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// Redirect status codes Envoy has a response code for.
const REDIRECT_CODES: &[i32] = &[301, 302, 303, 307, 308];

/// Kuma lets routes point at this placeholder while a backend is unresolved.
const UNRESOLVED_BACKEND: &str = "kuma.io/unresolved-backend";

impl Validate for MeshHttpRouteSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(ROUTE_TOP_KINDS).check(top, &spec.field("targetRef"), v);
        }
        let top = top_level(&self.target_ref).kind;
        for (i, to) in self.to.iter().flatten().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(route_to_kinds(&top)).check(
                &to.target_ref,
                &path.field("targetRef"),
                v,
            );
            for (j, rule) in to.rules.iter().enumerate() {
                check_rule(rule, &top, &path.field("rules").index(j), v);
            }
            if top != K::MeshGateway && to.hostnames.as_ref().is_some_and(|h| !h.is_empty()) {
                v.add(&path.field("hostnames"), "must not be defined");
            }
        }
    }
}

fn check_rule(rule: &Rule, top: &K, path: &FieldPath, v: &mut Violations) {
    // A rule without matches would never be routed to.
    if rule.matches.is_empty() {
        v.add(&path.field("matches"), "must not be empty");
    }
    for (i, m) in rule.matches.iter().enumerate() {
        let mp = path.field("matches").index(i);
        if let Some(p) = &m.path {
            let vp = mp.field("path").field("value");
            match p.kind.as_str() {
                "RegularExpression" => check_regex(&p.value, &vp, v),
                "PathPrefix" if p.value == "/" => {}
                "PathPrefix" => {
                    if p.value.ends_with('/') {
                        v.add(&vp, "does not need a trailing slash because only a `/`-separated prefix or an entire path is matched");
                    }
                    if !p.value.starts_with('/') {
                        v.add(&vp, "must be an absolute path");
                    }
                }
                "Exact" if !p.value.starts_with('/') => v.add(&vp, "must be an absolute path"),
                "Exact" => {}
                other => v.add(
                    &mp.field("path").field("type"),
                    format!("value '{other}' is not supported"),
                ),
            }
        }
        if let Some(method) = &m.method
            && !METHODS.contains(&method.as_str())
        {
            v.add(
                &mp.field("method"),
                format!("value '{method}' is not supported"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (j, q) in m.query_params.iter().flatten().enumerate() {
            let qp = mp.field("queryParams").index(j);
            if !seen.insert(q.name.as_str()) {
                v.add(
                    &qp.field("name"),
                    format!("multiple entries for name {}", q.name),
                );
            }
            match q.kind.as_str() {
                "RegularExpression" => check_regex(&q.value, &qp.field("value"), v),
                "Exact" => {}
                other => v.add(
                    &qp.field("type"),
                    format!("value '{other}' is not supported"),
                ),
            }
        }
        for (j, h) in m.headers.iter().flatten().enumerate() {
            let hp = mp.field("headers").index(j).field("value");
            match h.kind.as_deref().unwrap_or("Exact") {
                "Present" | "Absent" if !h.value.is_empty() => v.add(&hp, "must not be defined"),
                "RegularExpression" => check_regex(&h.value, &hp, v),
                "Exact" | "Present" | "Absent" | "Prefix" => {}
                other => v.add(
                    &mp.field("headers").index(j).field("type"),
                    format!("value '{other}' is not supported"),
                ),
            }
        }
    }
    let filters = rule.default.filters.as_deref().unwrap_or_default();
    let fp = path.field("default").field("filters");
    let all_prefix = rule
        .matches
        .iter()
        .all(|m| m.path.as_ref().is_some_and(|p| p.kind == "PathPrefix"));
    for (i, f) in filters.iter().enumerate() {
        let p = fp.index(i);
        match f.kind.as_str() {
            "RequestHeaderModifier" => check_modifier(
                f.request_header_modifier.as_ref(),
                &p.field("requestHeaderModifier"),
                v,
            ),
            "ResponseHeaderModifier" => check_modifier(
                f.response_header_modifier.as_ref(),
                &p.field("responseHeaderModifier"),
                v,
            ),
            "RequestRedirect" => {
                let rp = p.field("requestRedirect");
                let Some(r) = &f.request_redirect else {
                    v.add(&rp, "must be defined");
                    continue;
                };
                if r.path
                    .as_ref()
                    .is_some_and(|p| p.replace_prefix_match.is_some())
                    && !all_prefix
                {
                    v.add(
                        &rp.field("path").field("replacePrefixMatch"),
                        "can only appear if all matches match a path prefix",
                    );
                }
                check_hostname(r.hostname.as_deref(), &rp.field("hostname"), v);
                if let Some(code) = r.status_code
                    && !REDIRECT_CODES.contains(&code)
                {
                    v.add(
                        &rp.field("statusCode"),
                        "must be one of 301, 302, 303, 307, 308",
                    );
                }
                if let Some(port) = r.port
                    && !(1..=65535).contains(&port)
                {
                    v.add(&rp.field("port"), "must be in inclusive range [1, 65535]");
                }
                check_path_rewrite(r.path.as_ref(), &rp.field("path"), v);
            }
            "URLRewrite" => {
                let up = p.field("urlRewrite");
                let Some(u) = &f.url_rewrite else {
                    v.add(&up, "must be defined");
                    continue;
                };
                if u.path
                    .as_ref()
                    .is_some_and(|p| p.replace_prefix_match.is_some())
                    && !all_prefix
                {
                    v.add(
                        &up.field("path").field("replacePrefixMatch"),
                        "can only appear if all matches match a path prefix",
                    );
                }
                check_hostname(u.hostname.as_deref(), &up.field("hostname"), v);
                check_path_rewrite(u.path.as_ref(), &up.field("path"), v);
                if u.host_to_backend_hostname == Some(true) {
                    if *top != K::MeshGateway {
                        v.add(
                            &up.field("hostToBackendHostname"),
                            "can only be set with MeshGateway",
                        );
                    }
                    if u.hostname.is_some() {
                        v.add(
                            &up.field("hostToBackendHostname"),
                            "cannot be set together with hostname",
                        );
                    }
                }
            }
            "RequestMirror" => {
                let mp = p.field("requestMirror");
                let Some(m) = &f.request_mirror else {
                    v.add(&mp, "must be defined");
                    continue;
                };
                let bp = mp.field("backendRef");
                check_percentage(
                    m.percentage.as_ref(),
                    &mp.field("percentage"),
                    false,
                    true,
                    v,
                );
                TargetRefRules::kinds(BACKEND_KINDS).check(&m.backend_ref.target_ref, &bp, v);
                check_backend_ref(&m.backend_ref, &bp, v);
            }
            _ => {}
        }
    }
    let bp = path.field("default").field("backendRefs");
    let refs = rule.default.backend_refs.as_deref().unwrap_or_default();
    if refs.is_empty()
        && *top == K::MeshGateway
        && !filters.iter().any(|f| f.kind == "RequestRedirect")
    {
        v.add(&bp, "must not be empty");
    }
    for (i, b) in refs.iter().enumerate() {
        TargetRefRules::kinds(BACKEND_KINDS)
            .allow_names(&[UNRESOLVED_BACKEND])
            .check(&b.target_ref, &bp.index(i), v);
        check_backend_ref(b, &bp.index(i), v);
    }
}

fn check_modifier(m: Option<&HeaderModifier>, path: &FieldPath, v: &mut Violations) {
    let Some(m) = m else {
        v.add(path, "must be defined");
        return;
    };
    if m.set.is_none() && m.add.is_none() && m.remove.is_none() {
        v.add(path, "must have at least one defined: set, add, remove");
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let names = m
        .set
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, h)| ("set", i, h.name.as_str()));
    let names = names.chain(
        m.add
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, h)| ("add", i, h.name.as_str())),
    );
    let names = names.chain(
        m.remove
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, n)| ("remove", i, n.as_str())),
    );
    for (field, i, name) in names {
        if !seen.insert(name) {
            v.add(
                &path.field(field).index(i).field("name"),
                "duplicate header name",
            );
        }
    }
}

/// A path rewrite names its kind and carries the value of that kind: Envoy
/// has nothing to rewrite with otherwise.
fn check_path_rewrite(p: Option<&PathRewrite>, path: &FieldPath, v: &mut Violations) {
    let Some(p) = p else { return };
    match p.kind.as_str() {
        "ReplaceFullPath" if p.replace_full_path.is_none() => {
            v.add(&path.field("replaceFullPath"), "must be defined")
        }
        "ReplacePrefixMatch" if p.replace_prefix_match.is_none() => {
            v.add(&path.field("replacePrefixMatch"), "must be defined")
        }
        "ReplaceFullPath" | "ReplacePrefixMatch" => {}
        other => v.add(
            &path.field("type"),
            format!("value '{other}' is not supported"),
        ),
    }
}

fn check_hostname(h: Option<&str>, path: &FieldPath, v: &mut Violations) {
    let Some(h) = h else { return };
    if h.parse::<std::net::IpAddr>().is_ok() {
        v.add(path, "cannot be an IP address");
        return;
    }
    let valid = h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid {
        v.add(
            path,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshHTTPRoute
name: http-route-1
mesh: default
spec:
  targetRef:
    kind: MeshSubset
    tags:
      kuma.io/service: frontend
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path:
                type: PathPrefix
                value: /api
              method: GET
              headers:
                - type: Exact
                  name: x-version
                  value: v2
          default:
            filters:
              - type: RequestHeaderModifier
                requestHeaderModifier:
                  set:
                    - name: x-custom
                      value: "1"
                  remove: [x-old]
              - type: URLRewrite
                urlRewrite:
                  path:
                    type: ReplacePrefixMatch
                    replacePrefixMatch: /v2
            backendRefs:
              - kind: MeshService
                name: backend
                port: 8080
                weight: 100
"#,
        );
    }

    #[test]
    fn refuses_what_envoy_could_not_route() {
        let got = violations(
            r#"
type: MeshHTTPRoute
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - default: {}
        - matches:
            - method: FETCH
              path:
                type: Suffix
                value: /x
              headers:
                - type: Contains
                  name: a
                  value: b
              queryParams:
                - type: Prefix
                  name: q
                  value: "1"
          default:
            filters:
              - type: RequestRedirect
                requestRedirect:
                  statusCode: 200
                  port: 70000
                  path:
                    type: ReplaceFullPath
              - type: RequestMirror
                requestMirror:
                  percentage: 150
                  backendRef:
                    kind: MeshService
                    name: backend
"#,
        );
        assert_eq!(
            got,
            vec![
                ("spec.to[0].rules[0].matches", "must not be empty"),
                (
                    "spec.to[0].rules[1].matches[0].path.type",
                    "value 'Suffix' is not supported"
                ),
                (
                    "spec.to[0].rules[1].matches[0].method",
                    "value 'FETCH' is not supported"
                ),
                (
                    "spec.to[0].rules[1].matches[0].queryParams[0].type",
                    "value 'Prefix' is not supported"
                ),
                (
                    "spec.to[0].rules[1].matches[0].headers[0].type",
                    "value 'Contains' is not supported"
                ),
                (
                    "spec.to[0].rules[1].default.filters[0].requestRedirect.statusCode",
                    "must be one of 301, 302, 303, 307, 308"
                ),
                (
                    "spec.to[0].rules[1].default.filters[0].requestRedirect.port",
                    "must be in inclusive range [1, 65535]"
                ),
                (
                    "spec.to[0].rules[1].default.filters[0].requestRedirect.path.replaceFullPath",
                    "must be defined"
                ),
                (
                    "spec.to[0].rules[1].default.filters[1].requestMirror.percentage",
                    "must be in inclusive range [0.0, 100.0]"
                ),
            ]
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshHTTPRoute
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: MeshService
        name: backend
      hostnames: [example.com]
      rules:
        - matches:
            - path:
                type: Exact
                value: api
            - path:
                type: RegularExpression
                value: "(unclosed"
              queryParams:
                - type: Exact
                  name: a
                  value: "1"
                - type: Exact
                  name: a
                  value: "2"
          default:
            filters:
              - type: URLRewrite
                urlRewrite:
                  hostname: 10.0.0.1
                  path:
                    type: ReplacePrefixMatch
                    replacePrefixMatch: /x
              - type: RequestHeaderModifier
                requestHeaderModifier: {}
            backendRefs:
              - kind: Mesh
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].rules[0].matches[0].path.value",
                    "must be an absolute path"
                ),
                (
                    "spec.to[0].rules[0].matches[1].path.value",
                    "must be a valid regular expression"
                ),
                (
                    "spec.to[0].rules[0].matches[1].queryParams[1].name",
                    "multiple entries for name a"
                ),
                (
                    "spec.to[0].rules[0].default.filters[0].urlRewrite.path.replacePrefixMatch",
                    "can only appear if all matches match a path prefix"
                ),
                (
                    "spec.to[0].rules[0].default.filters[0].urlRewrite.hostname",
                    "cannot be an IP address"
                ),
                (
                    "spec.to[0].rules[0].default.filters[1].requestHeaderModifier",
                    "must have at least one defined: set, add, remove"
                ),
                (
                    "spec.to[0].rules[0].default.backendRefs[0].kind",
                    "value 'Mesh' is not supported"
                ),
                ("spec.to[0].hostnames", "must not be defined"),
            ]
        );
    }
}
