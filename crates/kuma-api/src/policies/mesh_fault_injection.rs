//! MeshFaultInjection: aborts, delays and bandwidth limits on HTTP traffic.
//!
//! As in Kuma 2.14, `from` entries may name clients by tags (`Mesh`,
//! `MeshSubset`, `MeshService`, `MeshServiceSubset`; Kuma deprecates `from`
//! in favour of `rules`), and `rules` entries by the caller's `spiffeID` or
//! SNI; `to` only with a gateway in scope.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{
    GoDuration, IntOrString, MatchedRule, TargetedConf, check_match, check_percentage,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshFaultInjectionSpec {
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
    pub http: Option<Vec<FaultInjection>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultInjection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bandwidth: Option<ResponseBandwidth>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    #[serde(default)]
    pub http_status: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseBandwidth {
    /// `10kbps`, `5 Mbps`, `1Gbps`.
    #[serde(default)]
    pub limit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

pub(crate) const GATEWAY_FROM: &str = "must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to";

impl Validate for MeshFaultInjectionSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let to = self.to.as_deref().unwrap_or_default();
        let from = self.from.as_deref().unwrap_or_default();
        let rules = self.rules.as_deref().unwrap_or_default();
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
        if !from.is_empty() && !rules.is_empty() {
            v.add(&spec, "field 'from' must be empty when 'rules' is defined");
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = spec.field("rules").index(i);
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                check_match(m, &path.field("matches").index(j), v);
            }
            check_conf(rule.default.as_ref(), &path.field("default"), v);
        }
        if top.includes_gateways() && !from.is_empty() {
            v.add(&spec.field("from"), GATEWAY_FROM);
        }
        for (i, item) in from.iter().enumerate() {
            let path = spec.field("from").index(i);
            TargetRefRules::kinds(&[K::Mesh, K::MeshSubset, K::MeshServiceSubset, K::MeshService])
                .check(&item.target_ref, &path.field("targetRef"), v);
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

/// Kuma writes `<section>[i]` after the section name (`http.abort[0]`), not
/// `http[0].abort`; kept so paths match what Kuma users see.
fn check_conf(conf: Option<&Conf>, path: &FieldPath, v: &mut Violations) {
    let path = path.field("http");
    for (i, fault) in conf
        .and_then(|c| c.http.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(a) = &fault.abort {
            let p = path.field("abort").index(i);
            if !(100..600).contains(&a.http_status) {
                v.add(
                    &p.field("httpStatus"),
                    "must be in inclusive range [100, 599]",
                );
            } else if a.http_status < 200 {
                // Envoy aborts only with a final response.
                v.add(
                    &p.field("httpStatus"),
                    "must be in inclusive range [200, 599]: Envoy cannot abort with an informational status",
                );
            }
            check_percentage(a.percentage.as_ref(), &p.field("percentage"), true, true, v);
        }
        if let Some(d) = &fault.delay {
            let p = path.field("delay").index(i);
            match d.value.as_ref().map(GoDuration::nanos) {
                None => v.add(&p.field("value"), "must be defined"),
                Some(None) => v.add(&p.field("value"), "must be a valid duration"),
                Some(Some(n)) if n < 0 => {
                    v.add(&p.field("value"), "must not be negative when defined")
                }
                // Envoy refuses a fixed delay of zero.
                Some(Some(0)) => v.add(&p.field("value"), "must be greater than 0s"),
                Some(Some(_)) => {}
            }
            check_percentage(d.percentage.as_ref(), &p.field("percentage"), true, true, v);
        }
        if let Some(b) = &fault.response_bandwidth {
            let p = path.field("responseBandwidth").index(i);
            if b.limit.is_empty() {
                v.add(&p.field("limit"), "must be defined");
            } else if !is_bandwidth(&b.limit) {
                v.add(&p.field("limit"), "must be in kbps/Mbps/Gbps units");
            } else if !has_bandwidth(&b.limit) {
                // Envoy's fixed limit is at least 1 kbps.
                v.add(&p.field("limit"), "must be at least 1kbps");
            }
            check_percentage(b.percentage.as_ref(), &p.field("percentage"), true, true, v);
        }
    }
}

/// A positive number in front of the unit; the pattern above lets `kbps`
/// and `0kbps` through, which Envoy refuses.
fn has_bandwidth(s: &str) -> bool {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u64>().is_ok_and(|n| n > 0)
}

/// Kuma's `^(\d*)\s?([GMk]+bps)$`.
fn is_bandwidth(s: &str) -> bool {
    regex::Regex::new(r"^(\d*)\s?([GMk]+bps)$").is_ok_and(|r| r.is_match(s))
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshFaultInjection
name: default-fault-injection
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: backend
  from:
    - targetRef:
        kind: MeshSubset
        tags:
          kuma.io/service: frontend
      default:
        http:
          - abort:
              httpStatus: 500
              percentage: "2.5"
          - abort:
              httpStatus: 500
              percentage: 10
          - delay:
              value: 5s
              percentage: 5
          - responseBandwidth:
              limit: 100kbps
              percentage: 50
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshFaultInjection
name: bad
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: backend
  to:
    - targetRef:
        kind: Mesh
      default:
        http:
          - abort:
              httpStatus: 700
              percentage: 101
            delay:
              value: -1s
              percentage: "abc"
          - responseBandwidth:
              limit: 10 mbit
          - abort:
              httpStatus: 102
              percentage: 1
            delay:
              value: 0s
              percentage: 1
            responseBandwidth:
              limit: 0kbps
              percentage: 1
"#,
        );
        assert_eq!(
            got,
            vec![
                ("spec.to", "must not be defined"),
                (
                    "spec.to[0].default.http.abort[0].httpStatus",
                    "must be in inclusive range [100, 599]"
                ),
                (
                    "spec.to[0].default.http.abort[0].percentage",
                    "must be in inclusive range [0.0, 100.0]"
                ),
                (
                    "spec.to[0].default.http.delay[0].value",
                    "must not be negative when defined"
                ),
                (
                    "spec.to[0].default.http.delay[0].percentage",
                    "string must be a valid number"
                ),
                (
                    "spec.to[0].default.http.responseBandwidth[1].limit",
                    "must be in kbps/Mbps/Gbps units"
                ),
                (
                    "spec.to[0].default.http.responseBandwidth[1].percentage",
                    "must be defined"
                ),
                (
                    "spec.to[0].default.http.abort[2].httpStatus",
                    "must be in inclusive range [200, 599]: Envoy cannot abort with an informational status"
                ),
                (
                    "spec.to[0].default.http.delay[2].value",
                    "must be greater than 0s"
                ),
                (
                    "spec.to[0].default.http.responseBandwidth[2].limit",
                    "must be at least 1kbps"
                ),
            ]
        );
    }
}
