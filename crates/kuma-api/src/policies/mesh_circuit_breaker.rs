//! MeshCircuitBreaker: connection limits and outlier detection.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::policies::values::{
    GoDuration, IntOrString, PlainRule, TargetedConf, check_percentage, check_positive_duration,
    check_uint_percentage,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshCircuitBreakerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<PlainRule<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limits: Option<ConnectionLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_pools: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_and_local_errors: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectors: Option<Detectors>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detectors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_failures: Option<Consecutive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_failures: Option<Consecutive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_origin_failures: Option<Consecutive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage: Option<FailurePercentage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consecutive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessRate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_deviation_factor: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailurePercentage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
}

impl Validate for MeshCircuitBreakerSpec {
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
                K::MeshGateway,
                K::MeshServiceSubset,
                K::Dataplane,
            ])
            .gateway_listener_tags()
            .inbound(!from.is_empty() || !rules.is_empty())
            .check(top, &spec.field("targetRef"), v);
        }
        if rules.is_empty() && to.is_empty() && from.is_empty() {
            v.add(
                &spec,
                "at least one of 'from', 'to' or 'rules' has to be defined",
            );
        }
        if !rules.is_empty() && (!to.is_empty() || !from.is_empty()) {
            v.add(
                &spec,
                "fields 'to' and 'from' must be empty when 'rules' is defined",
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            // Kuma reports rule problems under `from[i]`; kept for compatibility.
            check_conf(
                rule.default.as_ref(),
                &spec.field("from").index(i).field("default"),
                v,
            );
        }
        for (i, item) in from.iter().enumerate() {
            let path = spec.field("from").index(i);
            TargetRefRules::kinds(&[K::Mesh]).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), v);
        }
        for (i, item) in to.iter().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshService,
                K::MeshExternalService,
                K::MeshMultiZoneService,
            ])
            .check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), v);
        }
    }
}

fn positive(n: Option<u32>, path: FieldPath, v: &mut Violations) {
    if n == Some(0) {
        v.add(&path, "must be greater than 0");
    }
}

fn check_conf(conf: Option<&Conf>, path: &FieldPath, v: &mut Violations) {
    let conf = conf.cloned().unwrap_or_default();
    if conf.connection_limits.is_none() && conf.outlier_detection.is_none() {
        v.add(
            path,
            "at least one of: 'connectionLimits' or 'outlierDetection' should be configured",
        );
    }
    if let Some(l) = &conf.connection_limits {
        let lp = path.field("connectionLimits");
        positive(l.max_connections, lp.field("maxConnections"), v);
        positive(l.max_connection_pools, lp.field("maxConnectionPools"), v);
        positive(l.max_pending_requests, lp.field("maxPendingRequests"), v);
        positive(l.max_retries, lp.field("maxRetries"), v);
        positive(l.max_requests, lp.field("maxRequests"), v);
    }
    let Some(od) = &conf.outlier_detection else {
        return;
    };
    let op = path.field("outlierDetection");
    check_positive_duration(od.interval.as_ref(), &op.field("interval"), v);
    check_positive_duration(
        od.base_ejection_time.as_ref(),
        &op.field("baseEjectionTime"),
        v,
    );
    check_uint_percentage(od.max_ejection_percent, &op.field("maxEjectionPercent"), v);
    check_percentage(
        od.healthy_panic_threshold.as_ref(),
        &op.field("healthyPanicThreshold"),
        false,
        true,
        v,
    );
    let dp = op.field("detectors");
    let Some(d) = &od.detectors else {
        v.add(&dp, "must be defined");
        return;
    };
    if d.total_failures.is_none()
        && d.gateway_failures.is_none()
        && d.local_origin_failures.is_none()
        && d.success_rate.is_none()
        && d.failure_percentage.is_none()
    {
        v.add(
            &dp,
            "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage",
        );
    }
    for (field, c) in [
        ("totalFailures", &d.total_failures),
        ("gatewayFailures", &d.gateway_failures),
        ("localOriginFailures", &d.local_origin_failures),
    ] {
        if let Some(c) = c {
            positive(c.consecutive, dp.field(field).field("consecutive"), v);
        }
    }
    if let Some(s) = &d.success_rate {
        let sp = dp.field("successRate");
        positive(s.minimum_hosts, sp.field("minimumHosts"), v);
        positive(s.request_volume, sp.field("requestVolume"), v);
        match s
            .standard_deviation_factor
            .as_ref()
            .map(IntOrString::as_f64)
        {
            Some(None) => v.add(&sp.field("standardDeviationFactor"), "invalid number"),
            Some(Some(f)) if f <= 0.0 => v.add(
                &sp.field("standardDeviationFactor"),
                "must be greater than 0",
            ),
            // Envoy takes the factor in thousandths, as a 32-bit integer.
            Some(Some(f)) if f * 1000.0 > f64::from(u32::MAX) => v.add(
                &sp.field("standardDeviationFactor"),
                "must be at most 4294967.295",
            ),
            _ => {}
        }
    }
    if let Some(f) = &d.failure_percentage {
        let fp = dp.field("failurePercentage");
        positive(f.minimum_hosts, fp.field("minimumHosts"), v);
        positive(f.request_volume, fp.field("requestVolume"), v);
        check_uint_percentage(f.threshold, &fp.field("threshold"), v);
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshCircuitBreaker
name: circuit-breaker
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionLimits:
          maxConnections: 1024
          maxPendingRequests: 1024
          maxRequests: 1024
          maxRetries: 3
        outlierDetection:
          disabled: false
          interval: 5s
          baseEjectionTime: 30s
          maxEjectionPercent: 20
          splitExternalAndLocalErrors: false
          healthyPanicThreshold: "50.5"
          detectors:
            totalFailures:
              consecutive: 5
            successRate:
              minimumHosts: 5
              requestVolume: 10
              standardDeviationFactor: "1.9"
            failurePercentage:
              requestVolume: 10
              minimumHosts: 5
              threshold: 85
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshCircuitBreaker
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: MeshHTTPRoute
        name: r
      default:
        connectionLimits:
          maxConnections: 0
        outlierDetection:
          interval: 0s
          maxEjectionPercent: 101
          detectors: {}
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].targetRef.kind",
                    "value 'MeshHTTPRoute' is not supported"
                ),
                (
                    "spec.to[0].default.connectionLimits.maxConnections",
                    "must be greater than 0"
                ),
                (
                    "spec.to[0].default.outlierDetection.interval",
                    "must be greater than zero when defined"
                ),
                (
                    "spec.to[0].default.outlierDetection.maxEjectionPercent",
                    "must be in inclusive range [0, 100]"
                ),
                (
                    "spec.to[0].default.outlierDetection.detectors",
                    "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage"
                ),
            ]
        );
    }

    #[test]
    fn refuses_a_deviation_factor_envoy_cannot_hold() {
        let got = violations(
            r#"
type: MeshCircuitBreaker
name: bad
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        outlierDetection:
          detectors:
            successRate:
              standardDeviationFactor: "5000000"
"#,
        );
        assert_eq!(
            got,
            vec![(
                "spec.to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor",
                "must be at most 4294967.295"
            )]
        );
    }
}
