//! MeshRateLimit: local HTTP request and TCP connection rate limits.
//!
//! As in Kuma 2.14, `from` entries may only target `Mesh`: a limit per
//! group of clients is written as `rules` with `spiffeID` matches (HTTP
//! only). Other kinds in `from` are refused at
//! `spec.from[i].targetRef.kind`.

use serde::{Deserialize, Serialize};

use crate::policies::mesh_fault_injection::GATEWAY_FROM;
use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{
    GoDuration, HeaderModifier, MatchedRule, TargetedConf, check_match, check_match_types,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshRateLimitSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<MatchedRule<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Local>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Local {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<LocalHttp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<LocalTcp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalHttp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_rate_limit: Option<OnRateLimit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnRateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderModifier>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalTcp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_rate: Option<Rate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    #[serde(default)]
    pub num: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
}

impl Validate for MeshRateLimitSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let to = self.to.as_deref().unwrap_or_default();
        let from = self.from.as_deref().unwrap_or_default();
        let rules = self.rules.as_deref().unwrap_or_default();
        if !rules.is_empty() && (!to.is_empty() || !from.is_empty()) {
            v.add(
                &spec,
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            );
        }
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshService,
                K::MeshServiceSubset,
                K::Dataplane,
            ])
            .inbound(!from.is_empty() || !rules.is_empty())
            .check(top, &spec.field("targetRef"), v);
        }
        let top = top_level(&self.target_ref);
        if top.includes_gateways() && !rules.is_empty() {
            v.add(&spec.field("rules"), "must not be defined");
        }
        if top.kind == K::MeshHTTPRoute && !rules.is_empty() {
            v.add(&spec.field("rules"), "must not be defined");
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = spec.field("rules").index(i);
            let mut has_spiffe_id = false;
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                let mp = path.field("matches").index(j);
                check_match(m, &mp, v);
                check_match_types(m, &mp, v);
                has_spiffe_id |= m.spiffe_id.is_some();
            }
            let tcp = rule
                .default
                .as_ref()
                .and_then(|d| d.local.as_ref())
                .and_then(|l| l.tcp.as_ref());
            if has_spiffe_id && tcp.is_some() {
                // Connection limits apply before the caller's identity is known.
                v.add(
                    &path.field("default").field("local").field("tcp"),
                    "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity",
                );
            }
            check_conf(rule.default.as_ref(), &path.field("default"), v);
        }
        if top.includes_gateways() && !from.is_empty() {
            v.add(&spec.field("from"), GATEWAY_FROM);
        }
        if top.kind == K::MeshHTTPRoute && !from.is_empty() {
            v.add(
                &spec.field("from"),
                "must not be defined when spec.kind is MeshHTTPRoute",
            );
        }
        for (i, item) in from.iter().enumerate() {
            let path = spec.field("from").index(i);
            TargetRefRules::kinds(&[K::Mesh]).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), v);
        }
        if !top.includes_gateways() && !to.is_empty() {
            v.add(&spec.field("to"), "must not be defined");
        }
        for (i, item) in to.iter().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(&[K::Mesh]).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), v);
        }
    }
}

/// The status codes Envoy's `HttpStatus` accepts.
const ENVOY_STATUS_CODES: &[u32] = &[
    100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421,
    422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
];

/// Envoy's limit on headers added to a rate limited response.
const MAX_RESPONSE_HEADERS: usize = 10;

fn check_conf(conf: Option<&Conf>, path: &FieldPath, v: &mut Violations) {
    let path = path.field("local");
    let Some(local) = conf.and_then(|c| c.local.as_ref()) else {
        v.add(&path, "must be defined");
        return;
    };
    if local.tcp.is_none() && local.http.is_none() {
        v.add(&path, "must have at least one defined: tcp, http");
    }
    if let Some(h) = &local.http {
        let hp = path.field("http");
        if h.disabled.is_none() && h.request_rate.is_none() && h.on_rate_limit.is_none() {
            v.add(
                &hp,
                "must have at least one defined: disabled, requestRate, onRateLimit",
            );
        }
        if let Some(r) = &h.request_rate {
            check_rate(r, &hp.field("requestRate"), v);
        }
        let on_limit = h.on_rate_limit.as_ref();
        match on_limit.and_then(|o| o.status) {
            Some(0) => v.add(
                &hp.field("onRateLimit").field("status"),
                "must be greater than 0",
            ),
            // Envoy refuses a status outside its list of known codes.
            Some(code) if !ENVOY_STATUS_CODES.contains(&code) => v.add(
                &hp.field("onRateLimit").field("status"),
                "must be an HTTP status code Envoy knows (e.g. 429, 503)",
            ),
            _ => {}
        }
        let headers = on_limit.and_then(|o| o.headers.as_ref());
        let count = headers.map_or(0, |h| {
            h.set.as_ref().map_or(0, Vec::len) + h.add.as_ref().map_or(0, Vec::len)
        });
        if count > MAX_RESPONSE_HEADERS {
            v.add(
                &hp.field("onRateLimit").field("headers"),
                "must have at most 10 headers in set and add together",
            );
        }
        if let Some(headers) = headers {
            check_headers(headers, &hp.field("onRateLimit").field("headers"), v);
        }
    }
    if let Some(t) = &local.tcp {
        let tp = path.field("tcp");
        if t.disabled.is_none() && t.connection_rate.is_none() {
            v.add(
                &tp,
                "must have at least one defined: disabled, connectionRate",
            );
        }
        if let Some(r) = &t.connection_rate {
            check_rate(r, &tp.field("connectionRate"), v);
        }
    }
}

/// Headers of a limited response: Envoy refuses empty names, line breaks,
/// pseudo-headers and `host`.
fn check_headers(m: &HeaderModifier, path: &FieldPath, v: &mut Violations) {
    let line_break = |s: &str| s.contains(['\r', '\n', '\0']);
    for (field, list) in [("set", &m.set), ("add", &m.add)] {
        for (i, h) in list.iter().flatten().enumerate() {
            let hp = path.field(field).index(i);
            if h.name.is_empty() {
                v.add(&hp.field("name"), "must not be empty");
            } else if line_break(&h.name) {
                v.add(&hp.field("name"), "must not contain line breaks");
            } else if h.name.starts_with(':') || h.name.eq_ignore_ascii_case("host") {
                v.add(&hp.field("name"), "pseudo-headers and host cannot be set");
            }
            if line_break(&h.value) {
                v.add(&hp.field("value"), "must not contain line breaks");
            }
        }
    }
}

fn check_rate(r: &Rate, path: &FieldPath, v: &mut Violations) {
    if r.num == 0 {
        v.add(&path.field("num"), "must be greater than 0");
    }
    // Envoy's token bucket refuses fill intervals of 50ms or less.
    match r.interval.as_ref().map(GoDuration::nanos) {
        None => v.add(&path.field("interval"), "must be defined"),
        Some(None) => v.add(&path.field("interval"), "must be a valid duration"),
        Some(Some(n)) if n <= 50_000_000 => {
            v.add(&path.field("interval"), "must be greater than: 50ms")
        }
        Some(Some(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshRateLimit
name: backend-rate-limit
mesh: default
spec:
  targetRef:
    kind: Dataplane
    labels:
      app: backend
  rules:
    - default:
        local:
          http:
            requestRate:
              num: 5
              interval: 10s
            onRateLimit:
              status: 423
              headers:
                set:
                  - name: x-kuma-rate-limited
                    value: "true"
          tcp:
            connectionRate:
              num: 5
              interval: 10s
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshRateLimit
name: bad
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: backend
  from:
    - targetRef:
        kind: Mesh
      default:
        local:
          http:
            requestRate:
              num: 0
              interval: 10ms
            onRateLimit:
              status: 444
              headers:
                set:
                - name: ":status"
                  value: "200"
                add:
                - name: ""
                  value: x
          tcp: {}
    - targetRef:
        kind: Mesh
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.from[0].default.local.http.requestRate.num",
                    "must be greater than 0"
                ),
                (
                    "spec.from[0].default.local.http.requestRate.interval",
                    "must be greater than: 50ms"
                ),
                (
                    "spec.from[0].default.local.http.onRateLimit.status",
                    "must be an HTTP status code Envoy knows (e.g. 429, 503)"
                ),
                (
                    "spec.from[0].default.local.http.onRateLimit.headers.set[0].name",
                    "pseudo-headers and host cannot be set"
                ),
                (
                    "spec.from[0].default.local.http.onRateLimit.headers.add[0].name",
                    "must not be empty"
                ),
                (
                    "spec.from[0].default.local.tcp",
                    "must have at least one defined: disabled, connectionRate"
                ),
                ("spec.from[1].default.local", "must be defined"),
            ]
        );
    }

    #[test]
    fn from_takes_only_the_whole_mesh() {
        for kind in ["MeshSubset", "MeshService", "MeshServiceSubset"] {
            let got = violations(&format!(
                r#"
type: MeshRateLimit
name: per-client
mesh: default
spec:
  targetRef:
    kind: Mesh
    proxyTypes: ["Sidecar"]
  from:
    - targetRef:
        kind: {kind}
        name: web
        tags:
          kuma.io/service: web
      default:
        local:
          http:
            requestRate:
              num: 5
              interval: 10s
"#
            ));
            assert_eq!(
                got,
                vec![(
                    "spec.from[0].targetRef.kind",
                    format!("value '{kind}' is not supported").as_str()
                )],
                "{kind}"
            );
        }
    }
}
