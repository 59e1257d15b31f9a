//! MeshTimeout: connection, idle and HTTP timeouts.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{
    GoDuration, MatchedRule, TargetedConf, check_match, check_match_types,
    check_non_negative_duration, check_positive_duration,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTimeoutSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<MatchedRule<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout: Option<GoDuration>,
}

impl Validate for MeshTimeoutSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let to = self.to.as_deref().unwrap_or_default();
        let from = self.from.as_deref().unwrap_or_default();
        let rules = self.rules.as_deref().unwrap_or_default();
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::Dataplane,
                K::MeshSubset,
                K::MeshService,
                K::MeshServiceSubset,
            ])
            .inbound(!from.is_empty() || !rules.is_empty())
            .check(top, &spec.field("targetRef"), v);
        }
        if !rules.is_empty() && (!to.is_empty() || !from.is_empty()) {
            v.add(
                &spec,
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            );
        }
        if rules.is_empty() && to.is_empty() && from.is_empty() {
            v.add(
                &spec,
                "at least one of 'from', 'to' or 'rules' has to be defined",
            );
        }
        let top = top_level(&self.target_ref).kind;
        let route_or_gateway = matches!(top, K::MeshHTTPRoute | K::MeshGateway);
        if route_or_gateway && !from.is_empty() {
            v.add(&spec.field("from"), "must not be defined");
        } else {
            for (i, item) in from.iter().enumerate() {
                let path = spec.field("from").index(i);
                TargetRefRules::kinds(&[K::Mesh]).check(
                    &item.target_ref,
                    &path.field("targetRef"),
                    v,
                );
                check_conf(item.default.as_ref(), &path.field("default"), &top, v);
            }
        }
        let to_kinds: &[K] = if route_or_gateway {
            &[K::Mesh, K::MeshExternalService]
        } else {
            &[
                K::Mesh,
                K::MeshService,
                K::MeshExternalService,
                K::MeshMultiZoneService,
                K::MeshHTTPRoute,
            ]
        };
        for (i, item) in to.iter().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(to_kinds).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), &top, v);
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = spec.field("rules").index(i);
            let mut has_spiffe_id = false;
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                let mpath = path.field("matches").index(j);
                check_match(m, &mpath, v);
                check_match_types(m, &mpath, v);
                has_spiffe_id |= m.spiffe_id.is_some();
            }
            let dpath = path.field("default");
            if has_spiffe_id && let Some(d) = &rule.default {
                // These settings live on the listener or connection, before
                // the caller's identity is known.
                let msg = "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity";
                forbid(
                    &d.connection_timeout,
                    &dpath.field("connectionTimeout"),
                    msg,
                    v,
                );
                forbid(&d.idle_timeout, &dpath.field("idleTimeout"), msg, v);
                if let Some(h) = &d.http {
                    let hp = dpath.field("http");
                    forbid(
                        &h.request_headers_timeout,
                        &hp.field("requestHeadersTimeout"),
                        msg,
                        v,
                    );
                    forbid(
                        &h.max_stream_duration,
                        &hp.field("maxStreamDuration"),
                        msg,
                        v,
                    );
                    forbid(
                        &h.max_connection_duration,
                        &hp.field("maxConnectionDuration"),
                        msg,
                        v,
                    );
                }
            }
            check_conf(rule.default.as_ref(), &dpath, &top, v);
        }
    }
}

fn forbid<T>(value: &Option<T>, path: &FieldPath, msg: &str, v: &mut Violations) {
    if value.is_some() {
        v.add(path, msg);
    }
}

fn check_conf(conf: Option<&Conf>, path: &FieldPath, top: &K, v: &mut Violations) {
    let conf = conf.cloned().unwrap_or_default();
    if conf.connection_timeout.is_none() && conf.idle_timeout.is_none() && conf.http.is_none() {
        v.add(path, "at least one timeout should be configured");
        return;
    }
    if *top == K::MeshHTTPRoute {
        let msg = "can't be specified when top-level TargetRef is referencing MeshHTTPRoute";
        forbid(
            &conf.connection_timeout,
            &path.field("connectionTimeout"),
            msg,
            v,
        );
        forbid(&conf.idle_timeout, &path.field("idleTimeout"), msg, v);
        if let Some(h) = &conf.http {
            forbid(
                &h.max_stream_duration,
                &path.field("http").field("maxStreamDuration"),
                msg,
                v,
            );
            forbid(
                &h.max_connection_duration,
                &path.field("http").field("maxConnectionDuration"),
                msg,
                v,
            );
        }
    }
    check_positive_duration(
        conf.connection_timeout.as_ref(),
        &path.field("connectionTimeout"),
        v,
    );
    check_non_negative_duration(conf.idle_timeout.as_ref(), &path.field("idleTimeout"), v);
    let Some(h) = &conf.http else { return };
    let hp = path.field("http");
    if h.request_timeout.is_none()
        && h.stream_idle_timeout.is_none()
        && h.max_stream_duration.is_none()
        && h.max_connection_duration.is_none()
    {
        v.add(
            &hp,
            "at least one timeout in this section should be configured",
        );
    }
    for (field, d) in [
        ("requestTimeout", &h.request_timeout),
        ("streamIdleTimeout", &h.stream_idle_timeout),
        ("maxStreamDuration", &h.max_stream_duration),
        ("maxConnectionDuration", &h.max_connection_duration),
        ("requestHeadersTimeout", &h.request_headers_timeout),
    ] {
        check_non_negative_duration(d.as_ref(), &hp.field(field), v);
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshTimeout
name: timeout-global
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 2s
        idleTimeout: 20s
        http:
          requestTimeout: 2s
          streamIdleTimeout: 1h
          maxStreamDuration: 0s
          maxConnectionDuration: 0s
"#,
        );
        assert_valid_round_trip(
            r#"
type: MeshTimeout
name: inbound
mesh: default
spec:
  targetRef:
    kind: Dataplane
    labels:
      app: backend
    sectionName: http
  rules:
    - default:
        http:
          requestTimeout: 5s
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshTimeout
name: bad
mesh: default
spec:
  targetRef:
    kind: Dataplane
    sectionName: http
  to:
    - targetRef:
        kind: MeshSubset
      default:
        connectionTimeout: 0s
        idleTimeout: -1s
        http:
          requestHeadersTimeout: 1s
    - targetRef:
        kind: Mesh
      default: {}
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.targetRef.sectionName",
                    "can only be used with inbound policies"
                ),
                (
                    "spec.to[0].targetRef.kind",
                    "value 'MeshSubset' is not supported"
                ),
                (
                    "spec.to[0].default.connectionTimeout",
                    "must be greater than zero when defined"
                ),
                (
                    "spec.to[0].default.idleTimeout",
                    "must not be negative when defined"
                ),
                (
                    "spec.to[0].default.http",
                    "at least one timeout in this section should be configured"
                ),
                (
                    "spec.to[1].default",
                    "at least one timeout should be configured"
                ),
            ]
        );
    }

    #[test]
    fn spiffe_id_matches_forbid_connection_settings() {
        let got = violations(
            r#"
type: MeshTimeout
name: bad
mesh: default
spec:
  rules:
    - matches:
        - spiffeID:
            type: Regex
            value: spiffe://default/x
      default:
        idleTimeout: 1s
        http:
          requestTimeout: 1s
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.rules[0].matches[0].spiffeID.type",
                    "unrecognized type \"Regex\", supported values are: Exact, Prefix"
                ),
                (
                    "spec.rules[0].default.idleTimeout",
                    "can't be specified when matches contain spiffeID because this field cannot be conditioned on source identity"
                ),
            ]
        );
    }
}
