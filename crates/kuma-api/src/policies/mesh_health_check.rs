//! MeshHealthCheck: active health checking of upstream endpoints.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::policies::values::{
    GoDuration, HeaderModifier, IntOrString, TargetedConf, check_percentage,
    check_positive_duration,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshHealthCheckSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<TargetedConf<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_jitter: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_jitter: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_jitter_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_traffic_on_panic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_log_health_check_failures: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_traffic_interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_connection: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_to_add: Option<HeaderModifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_statuses: Option<Vec<i32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

impl Validate for MeshHealthCheckSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshGateway,
                K::MeshService,
                K::MeshServiceSubset,
                K::Dataplane,
            ])
            .gateway_listener_tags()
            .check(top, &spec.field("targetRef"), v);
        }
        for (i, item) in self.to.iter().flatten().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshService,
                K::MeshExternalService,
                K::MeshMultiZoneService,
            ])
            .check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(
                &item.default.clone().unwrap_or_default(),
                &path.field("default"),
                v,
            );
        }
    }
}

fn check_conf(c: &Conf, path: &FieldPath, v: &mut Violations) {
    for (field, d) in [
        ("interval", &c.interval),
        ("timeout", &c.timeout),
        ("initialJitter", &c.initial_jitter),
        ("intervalJitter", &c.interval_jitter),
    ] {
        check_positive_duration(d.as_ref(), &path.field(field), v);
    }
    for (field, n) in [
        ("unhealthyThreshold", c.unhealthy_threshold),
        ("healthyThreshold", c.healthy_threshold),
    ] {
        if n.is_some_and(|n| n <= 0) {
            v.add(&path.field(field), "must be greater than zero when defined");
        }
    }
    if c.interval_jitter_percent
        .is_some_and(|p| !(0..=100).contains(&p))
    {
        v.add(
            &path.field("intervalJitterPercent"),
            "must be in inclusive range [0, 100]",
        );
    }
    check_percentage(
        c.healthy_panic_threshold.as_ref(),
        &path.field("healthyPanicThreshold"),
        false,
        true,
        v,
    );
    check_positive_duration(
        c.no_traffic_interval.as_ref(),
        &path.field("noTrafficInterval"),
        v,
    );
    if c.event_log_path
        .as_deref()
        .is_some_and(|p| !is_file_path(p))
    {
        v.add(
            &path.field("eventLogPath"),
            "must be a valid path when defined",
        );
    }
    if let Some(h) = &c.http {
        let hp = path.field("http");
        if h.path.as_deref() == Some("") {
            v.add(&hp.field("path"), "must be defined");
        }
        if h.path.as_deref().is_some_and(has_line_break) {
            v.add(&hp.field("path"), NO_LINE_BREAKS);
        }
        for (i, status) in h.expected_statuses.iter().flatten().enumerate() {
            if !(100..600).contains(status) {
                v.add(
                    &hp.field("expectedStatuses").index(i),
                    "must be in inclusive range [100, 599]",
                );
            }
        }
        if let Some(headers) = &h.request_headers_to_add {
            check_headers(headers, &hp.field("requestHeadersToAdd"), v);
        }
    }
    if let Some(t) = &c.tcp {
        // Envoy refuses an empty payload; a connect-only check leaves them out.
        let tp = path.field("tcp");
        if t.send.as_deref() == Some("") {
            v.add(&tp.field("send"), "must not be empty when defined");
        }
        for (i, r) in t.receive.iter().flatten().enumerate() {
            if r.is_empty() {
                v.add(&tp.field("receive").index(i), "must not be empty");
            }
        }
    }
    if c.http.is_none() && c.tcp.is_none() && c.grpc.is_none() {
        v.add(path, "must have at least one defined: http, tcp, grpc");
    }
}

const NO_LINE_BREAKS: &str = "must not contain CR, LF or NUL characters";

/// Text Envoy puts into a request as is: a line break would end it.
fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

/// Headers Envoy adds to its own check requests: it refuses empty names,
/// line breaks, pseudo-headers and `host` (the check's host is its own).
fn check_headers(m: &HeaderModifier, path: &FieldPath, v: &mut Violations) {
    for (field, list) in [("add", &m.add), ("set", &m.set)] {
        for (i, h) in list.iter().flatten().enumerate() {
            let hp = path.field(field).index(i);
            if h.name.is_empty() {
                v.add(&hp.field("name"), "must not be empty");
            } else if has_line_break(&h.name) {
                v.add(&hp.field("name"), NO_LINE_BREAKS);
            } else if h.name.starts_with(':') || h.name.eq_ignore_ascii_case("host") {
                v.add(
                    &hp.field("name"),
                    "pseudo-headers and host cannot be modified",
                );
            }
            if has_line_break(&h.value) {
                v.add(&hp.field("value"), NO_LINE_BREAKS);
            }
        }
    }
}

/// An absolute Unix or Windows path, roughly as govalidator's IsFilePath sees it.
fn is_file_path(p: &str) -> bool {
    let unix = p.starts_with('/') && !p.contains('\0');
    let bytes = p.as_bytes();
    let windows =
        bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'\\';
    unix || windows
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshHealthCheck
name: web-to-backend-check
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        interval: 10s
        timeout: 2s
        unhealthyThreshold: 3
        healthyThreshold: 1
        healthyPanicThreshold: 60
        eventLogPath: /tmp/health-check.log
        http:
          path: /health
          expectedStatuses: [200, 201]
          requestHeadersToAdd:
            set:
              - name: x-check
                value: "1"
        tcp:
          send: Zm9v
          receive: [YmFy]
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshHealthCheck
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: Mesh
      default:
        interval: 0s
        healthyThreshold: 0
        intervalJitterPercent: 110
        eventLogPath: relative
        http:
          path: ""
          expectedStatuses: [99]
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].default.interval",
                    "must be greater than zero when defined"
                ),
                (
                    "spec.to[0].default.healthyThreshold",
                    "must be greater than zero when defined"
                ),
                (
                    "spec.to[0].default.intervalJitterPercent",
                    "must be in inclusive range [0, 100]"
                ),
                (
                    "spec.to[0].default.eventLogPath",
                    "must be a valid path when defined"
                ),
                ("spec.to[0].default.http.path", "must be defined"),
                (
                    "spec.to[0].default.http.expectedStatuses[0]",
                    "must be in inclusive range [100, 599]"
                ),
            ]
        );
    }

    #[test]
    fn refuses_what_envoy_would_reject() {
        let got = violations(
            r#"
type: MeshHealthCheck
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
          path: "/health\r\nx: y"
          requestHeadersToAdd:
            add:
              - name: ""
                value: a
              - name: ":authority"
                value: b
            set:
              - name: Host
                value: c
              - name: x-ok
                value: "d\ne"
        tcp:
          send: ""
          receive: ["ok", ""]
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].default.http.path",
                    "must not contain CR, LF or NUL characters"
                ),
                (
                    "spec.to[0].default.http.requestHeadersToAdd.add[0].name",
                    "must not be empty"
                ),
                (
                    "spec.to[0].default.http.requestHeadersToAdd.add[1].name",
                    "pseudo-headers and host cannot be modified"
                ),
                (
                    "spec.to[0].default.http.requestHeadersToAdd.set[0].name",
                    "pseudo-headers and host cannot be modified"
                ),
                (
                    "spec.to[0].default.http.requestHeadersToAdd.set[1].value",
                    "must not contain CR, LF or NUL characters"
                ),
                (
                    "spec.to[0].default.tcp.send",
                    "must not be empty when defined"
                ),
                ("spec.to[0].default.tcp.receive[1]", "must not be empty"),
            ]
        );
    }
}
