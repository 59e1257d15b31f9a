//! MeshRetry: retry policies for TCP, HTTP and gRPC outbounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{
    GoDuration, HeaderMatch, TargetedConf, check_non_negative_duration, check_one_of,
    check_positive_duration, check_regex,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshRetrySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<TargetedConf<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Tcp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Grpc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tcp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connect_attempt: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    /// `5xx`, `GatewayError`, `HttpMethodGet`, ... or an HTTP status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retriable_response_headers: Option<Vec<HeaderMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retriable_request_headers: Option<Vec<HeaderMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_selection: Option<Vec<Predicate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_selection_max_attempts: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grpc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackOff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitedBackOff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_headers: Option<Vec<ResetHeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResetHeader {
    #[serde(default)]
    pub name: String,
    /// `Seconds` or `UnixTimestamp`.
    #[serde(default)]
    pub format: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    /// `OmitPreviousHosts`, `OmitHostsWithTags` or `OmitPreviousPriorities`.
    #[serde(default)]
    pub predicate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub update_frequency: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

const HTTP_RETRY_ON: &[&str] = &[
    "5xx",
    "GatewayError",
    "Reset",
    "Retriable4xx",
    "ConnectFailure",
    "EnvoyRatelimited",
    "RefusedStream",
    "Http3PostConnectFailure",
    "HttpMethodConnect",
    "HttpMethodDelete",
    "HttpMethodGet",
    "HttpMethodHead",
    "HttpMethodOptions",
    "HttpMethodPatch",
    "HttpMethodPost",
    "HttpMethodPut",
    "HttpMethodTrace",
];

const GRPC_RETRY_ON: &[&str] = &[
    "Canceled",
    "DeadlineExceeded",
    "Internal",
    "ResourceExhausted",
    "Unavailable",
];

/// Status codes Go's `http.StatusText` knows; Kuma accepts those as retryOn items.
fn is_known_status(code: &str) -> bool {
    const KNOWN: &[u16] = &[
        100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303,
        304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413,
        414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502,
        503, 504, 505, 506, 507, 508, 510, 511,
    ];
    code.parse::<u16>().is_ok_and(|c| KNOWN.contains(&c))
}

impl Validate for MeshRetrySpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshService,
                K::MeshServiceSubset,
                K::Dataplane,
            ])
            .check(top, &spec.field("targetRef"), v);
        }
        let to_kinds: &[K] = match top_level(&self.target_ref).kind {
            K::MeshGateway | K::MeshHTTPRoute => &[K::Mesh, K::MeshExternalService],
            _ => &[
                K::Mesh,
                K::MeshService,
                K::MeshExternalService,
                K::MeshMultiZoneService,
                K::MeshHTTPRoute,
            ],
        };
        for (i, item) in self.to.iter().flatten().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(to_kinds).check(&item.target_ref, &path.field("targetRef"), v);
            // Kuma reports these under `default.conf`; kept for compatibility.
            let conf_path = path.field("default").field("conf");
            check_conf(&item.default.clone().unwrap_or_default(), &conf_path, v);
        }
    }
}

fn check_conf(conf: &Conf, path: &FieldPath, v: &mut Violations) {
    if conf.tcp.is_none() && conf.http.is_none() && conf.grpc.is_none() {
        v.add(
            path,
            "at least one of the 'tcp', 'http', 'grpc' must be specified",
        );
    }
    if let Some(tcp) = &conf.tcp {
        match tcp.max_connect_attempt {
            None => v.add(&path.field("tcp"), "must not be empty"),
            Some(0) => v.add(
                &path.field("tcp").field("maxConnectAttempt"),
                "must be greater than 0",
            ),
            Some(_) => {}
        }
    }
    if let Some(h) = &conf.http {
        let hp = path.field("http");
        if h.num_retries.is_none()
            && h.per_try_timeout.is_none()
            && h.back_off.is_none()
            && h.retry_on.is_none()
            && h.retriable_request_headers.is_none()
            && h.retriable_response_headers.is_none()
            && h.rate_limited_back_off.is_none()
            && h.host_selection.is_none()
        {
            v.add(&hp, "must not be empty");
        }
        check_durations(h.per_try_timeout.as_ref(), h.back_off.as_ref(), &hp, v);
        check_rate_limited(h.rate_limited_back_off.as_ref(), &hp, v);
        for (field, headers) in [
            ("retriableResponseHeaders", &h.retriable_response_headers),
            ("retriableRequestHeaders", &h.retriable_request_headers),
        ] {
            for (i, header) in headers.iter().flatten().enumerate() {
                check_header(header, &hp.field(field).index(i), v);
            }
        }
        for (i, item) in h.retry_on.iter().flatten().enumerate() {
            if !HTTP_RETRY_ON.contains(&item.as_str()) && !is_known_status(item) {
                v.add(
                    &hp.field("retryOn").index(i),
                    format!("unknown item '{item}'"),
                );
            }
        }
        let mut priority_set = false;
        for (i, p) in h.host_selection.iter().flatten().enumerate() {
            let pp = hp.field("hostSelection").index(i);
            match p.predicate.as_str() {
                "OmitHostsWithTags" if p.tags.is_none() => {
                    v.add(&pp.field("tags"), "must be defined")
                }
                "OmitPreviousPriorities" => {
                    if priority_set {
                        v.add(
                            &pp.field("predicate"),
                            "OmitPreviousPriorities must only be specified once",
                        );
                    }
                    if p.update_frequency <= 0 {
                        v.add(
                            &pp.field("updateFrequency"),
                            "must be defined and greater than zero",
                        );
                    }
                    priority_set = true;
                }
                "OmitHostsWithTags" | "OmitPreviousHosts" => {}
                other => v.add(
                    &pp.field("predicate"),
                    format!("unknown predicate type '{other}'"),
                ),
            }
        }
    }
    if let Some(g) = &conf.grpc {
        let gp = path.field("grpc");
        if g.num_retries.is_none()
            && g.per_try_timeout.is_none()
            && g.back_off.is_none()
            && g.retry_on.is_none()
            && g.rate_limited_back_off.is_none()
        {
            v.add(&gp, "must not be empty");
        }
        check_durations(g.per_try_timeout.as_ref(), g.back_off.as_ref(), &gp, v);
        check_rate_limited(g.rate_limited_back_off.as_ref(), &gp, v);
        for (i, item) in g.retry_on.iter().flatten().enumerate() {
            if !GRPC_RETRY_ON.contains(&item.as_str()) {
                v.add(
                    &gp.field("retryOn").index(i),
                    format!("unknown item '{item}'"),
                );
            }
        }
    }
}

/// Kuma checks these parse; Envoy also refuses a negative timeout, a
/// back-off interval that is not positive and a maximum below the base.
fn check_durations(
    per_try: Option<&GoDuration>,
    back_off: Option<&BackOff>,
    path: &FieldPath,
    v: &mut Violations,
) {
    check_non_negative_duration(per_try, &path.field("perTryTimeout"), v);
    if let Some(b) = back_off {
        let bp = path.field("backOff");
        if b.base_interval.is_none() && b.max_interval.is_none() {
            v.add(&bp, "must not be empty");
        }
        check_positive_duration(b.base_interval.as_ref(), &bp.field("baseInterval"), v);
        check_positive_duration(b.max_interval.as_ref(), &bp.field("maxInterval"), v);
        let nanos = |d: &Option<GoDuration>| d.as_ref().and_then(GoDuration::nanos);
        if let (Some(base), Some(max)) = (nanos(&b.base_interval), nanos(&b.max_interval))
            && base > 0
            && max < base
        {
            v.add(
                &bp.field("maxInterval"),
                "must be greater than or equal to baseInterval",
            );
        }
    }
}

/// A header condition Envoy accepts: a name, a known type, a regex that
/// compiles.
fn check_header(h: &HeaderMatch, path: &FieldPath, v: &mut Violations) {
    if h.name.is_empty() {
        v.add(&path.field("name"), "must not be empty");
    }
    let kind = h.kind.as_deref().unwrap_or("Exact");
    check_one_of(
        kind,
        &["Exact", "Present", "RegularExpression", "Absent", "Prefix"],
        &path.field("type"),
        v,
    );
    if kind == "RegularExpression" {
        check_regex(&h.value, &path.field("value"), v);
    }
}

fn check_rate_limited(r: Option<&RateLimitedBackOff>, path: &FieldPath, v: &mut Violations) {
    let Some(r) = r else { return };
    let rp = path.field("rateLimitedBackOff");
    if let Some(max) = &r.max_interval
        && max.nanos().is_none_or(|n| n <= 0)
    {
        v.add(
            &rp.field("maxInterval"),
            "must be defined and greater than zero",
        );
    }
    match &r.reset_headers {
        None => v.add(&rp.field("resetHeaders"), "must be defined"),
        // Envoy needs at least one header to read the reset time from.
        Some(headers) if headers.is_empty() => {
            v.add(&rp.field("resetHeaders"), "must not be empty")
        }
        Some(headers) => {
            for (i, h) in headers.iter().enumerate() {
                let hp = rp.field("resetHeaders").index(i);
                if h.name.is_empty() {
                    v.add(&hp.field("name"), "must be defined");
                }
                check_one_of(
                    &h.format,
                    &["Seconds", "UnixTimestamp"],
                    &hp.field("format"),
                    v,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshRetry
name: retry-policy
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
        namespace: kuma-demo
        sectionName: http
      default:
        http:
          numRetries: 10
          backOff:
            baseInterval: 15s
            maxInterval: 20m
          retryOn:
            - 5xx
            - "503"
        tcp:
          maxConnectAttempt: 5
        grpc:
          retryOn:
            - Unavailable
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshRetry
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: Mesh
      default:
        tcp:
          maxConnectAttempt: 0
        http:
          retryOn: [5xx, Foo, "999"]
          rateLimitedBackOff:
            maxInterval: 0s
          hostSelection:
            - predicate: OmitHostsWithTags
        grpc: {}
    - targetRef:
        kind: Mesh
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].default.conf.tcp.maxConnectAttempt",
                    "must be greater than 0"
                ),
                (
                    "spec.to[0].default.conf.http.rateLimitedBackOff.maxInterval",
                    "must be defined and greater than zero"
                ),
                (
                    "spec.to[0].default.conf.http.rateLimitedBackOff.resetHeaders",
                    "must be defined"
                ),
                (
                    "spec.to[0].default.conf.http.retryOn[1]",
                    "unknown item 'Foo'"
                ),
                (
                    "spec.to[0].default.conf.http.retryOn[2]",
                    "unknown item '999'"
                ),
                (
                    "spec.to[0].default.conf.http.hostSelection[0].tags",
                    "must be defined"
                ),
                ("spec.to[0].default.conf.grpc", "must not be empty"),
                (
                    "spec.to[1].default.conf",
                    "at least one of the 'tcp', 'http', 'grpc' must be specified"
                ),
            ]
        );
    }

    #[test]
    fn refuses_what_envoy_would_reject() {
        let got = violations(
            r#"
type: MeshRetry
name: bad
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        http:
          perTryTimeout: -1s
          backOff:
            baseInterval: 1s
            maxInterval: 100ms
          rateLimitedBackOff:
            resetHeaders:
              - name: retry-after
                format: Minutes
          retriableResponseHeaders:
            - name: x-retry
              type: RegularExpression
              value: "(unclosed"
            - name: ""
              type: Suffix
        grpc:
          backOff:
            baseInterval: 0s
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].default.conf.http.perTryTimeout",
                    "must not be negative when defined"
                ),
                (
                    "spec.to[0].default.conf.http.backOff.maxInterval",
                    "must be greater than or equal to baseInterval"
                ),
                (
                    "spec.to[0].default.conf.http.rateLimitedBackOff.resetHeaders[0].format",
                    "format must be one of: Seconds, UnixTimestamp"
                ),
                (
                    "spec.to[0].default.conf.http.retriableResponseHeaders[0].value",
                    "must be a valid regular expression"
                ),
                (
                    "spec.to[0].default.conf.http.retriableResponseHeaders[1].name",
                    "must not be empty"
                ),
                (
                    "spec.to[0].default.conf.http.retriableResponseHeaders[1].type",
                    "type must be one of: Exact, Present, RegularExpression, Absent, Prefix"
                ),
                (
                    "spec.to[0].default.conf.grpc.backOff.baseInterval",
                    "must be greater than zero when defined"
                ),
            ]
        );
    }
}
