//! MeshCircuitBreaker: connection limits and outlier detection on a cluster
//! (a destination's for `to`, the local workload's for `from`/`rules`).
//!
//! As Kuma maps a conf:
//! - `connectionLimits` fill the default-priority circuit breaker
//!   thresholds, which also track remaining capacity (for the
//!   `remaining_*` stats); absent limits keep Envoy's defaults;
//! - `outlierDetection` (unless `disabled`) replaces the cluster's outlier
//!   detection. Envoy enforces its consecutive-5xx, gateway and local
//!   origin detectors by default, so every detector the conf does not name
//!   is switched off (enforcing 0) and every named one is enforced at 100%;
//! - `outlierDetection.healthyPanicThreshold` is the cluster's
//!   `common_lb_config.healthy_panic_threshold`.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as EnvoyOutlierDetection;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::CommonLbConfig;
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt32Value;
use kuma_api::policies::mesh_circuit_breaker::{
    Conf, ConnectionLimits, Consecutive, Detectors, FailurePercentage, SuccessRate,
};
use kuma_api::policies::values::IntOrString;

use super::duration::proto;

const ENFORCED: u32 = 100;
const NOT_ENFORCED: u32 = 0;

fn uint(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

pub(crate) fn cluster(conf: &Conf, cluster: &mut Cluster) {
    connection_limits(conf.connection_limits.as_ref(), cluster);
    let Some(od) = &conf.outlier_detection else {
        return;
    };
    if od.disabled == Some(true) {
        return;
    }
    let mut envoy = OutlierDetection {
        interval: od.interval.as_ref().and_then(proto),
        base_ejection_time: od.base_ejection_time.as_ref().and_then(proto),
        split_external_local_origin_errors: od.split_external_and_local_errors.unwrap_or(false),
        max_ejection_percent: od.max_ejection_percent.and_then(uint),
        ..OutlierDetection::default()
    };
    detectors(
        od.detectors.as_ref().unwrap_or(&Detectors::default()),
        &mut envoy,
    );
    cluster.outlier_detection = Some(envoy);
    if let Some(threshold) = od.healthy_panic_threshold.as_ref().and_then(percent) {
        cluster
            .common_lb_config
            .get_or_insert_with(CommonLbConfig::default)
            .healthy_panic_threshold = Some(threshold);
    }
}

/// A percentage written as an integer or a decimal string.
pub(crate) fn percent(value: &IntOrString) -> Option<Percent> {
    value.as_f64().map(|value| Percent { value })
}

/// The default-priority thresholds, created when the cluster has none.
fn default_thresholds(cluster: &mut Cluster) -> &mut Thresholds {
    let breakers = cluster
        .circuit_breakers
        .get_or_insert_with(CircuitBreakers::default);
    let default = RoutingPriority::Default as i32;
    let index = match breakers
        .thresholds
        .iter()
        .position(|t| t.priority == default)
    {
        Some(index) => index,
        None => {
            breakers.thresholds.push(Thresholds {
                priority: default,
                ..Thresholds::default()
            });
            breakers.thresholds.len() - 1
        }
    };
    &mut breakers.thresholds[index]
}

fn connection_limits(limits: Option<&ConnectionLimits>, cluster: &mut Cluster) {
    let thresholds = default_thresholds(cluster);
    thresholds.track_remaining = true;
    let Some(limits) = limits else {
        return;
    };
    let set = |target: &mut Option<UInt32Value>, value: Option<u32>| {
        if let Some(value) = value {
            *target = uint(value);
        }
    };
    set(&mut thresholds.max_connections, limits.max_connections);
    set(
        &mut thresholds.max_pending_requests,
        limits.max_pending_requests,
    );
    set(&mut thresholds.max_requests, limits.max_requests);
    set(&mut thresholds.max_retries, limits.max_retries);
    set(
        &mut thresholds.max_connection_pools,
        limits.max_connection_pools,
    );
}

/// A consecutive-errors detector: enforced with its count when named with
/// one, off otherwise.
fn consecutive(
    detector: Option<&Consecutive>,
    count: &mut Option<UInt32Value>,
    enforcing: &mut Option<UInt32Value>,
) {
    match detector.and_then(|d| d.consecutive) {
        Some(n) => {
            *enforcing = uint(ENFORCED);
            *count = uint(n);
        }
        None => *enforcing = uint(NOT_ENFORCED),
    }
}

fn detectors(d: &Detectors, od: &mut EnvoyOutlierDetection) {
    consecutive(
        d.total_failures.as_ref(),
        &mut od.consecutive_5xx,
        &mut od.enforcing_consecutive_5xx,
    );
    consecutive(
        d.local_origin_failures.as_ref(),
        &mut od.consecutive_local_origin_failure,
        &mut od.enforcing_consecutive_local_origin_failure,
    );
    consecutive(
        d.gateway_failures.as_ref(),
        &mut od.consecutive_gateway_failure,
        &mut od.enforcing_consecutive_gateway_failure,
    );
    success_rate(d.success_rate.as_ref(), od);
    failure_percentage(d.failure_percentage.as_ref(), od);
}

fn success_rate(conf: Option<&SuccessRate>, od: &mut EnvoyOutlierDetection) {
    // The local origin variant only counts with split errors; Kuma sets
    // both together.
    let Some(conf) = conf else {
        od.enforcing_success_rate = uint(NOT_ENFORCED);
        od.enforcing_local_origin_success_rate = uint(NOT_ENFORCED);
        return;
    };
    od.enforcing_success_rate = uint(ENFORCED);
    od.enforcing_local_origin_success_rate = uint(ENFORCED);
    if let Some(n) = conf.minimum_hosts {
        od.success_rate_minimum_hosts = uint(n);
    }
    if let Some(n) = conf.request_volume {
        od.success_rate_request_volume = uint(n);
    }
    if let Some(factor) = conf
        .standard_deviation_factor
        .as_ref()
        .and_then(stdev_factor)
    {
        od.success_rate_stdev_factor = uint(factor);
    }
}

/// Envoy reads the factor in thousandths (1900 is 1.9); the fraction
/// beyond is cut off, as Kuma does.
fn stdev_factor(value: &IntOrString) -> Option<u32> {
    let thousandths = (value.as_f64()? * 1000.0).trunc();
    (0.0..=f64::from(u32::MAX))
        .contains(&thousandths)
        .then_some(thousandths as u32)
}

fn failure_percentage(conf: Option<&FailurePercentage>, od: &mut EnvoyOutlierDetection) {
    let Some(conf) = conf else {
        od.enforcing_failure_percentage = uint(NOT_ENFORCED);
        od.enforcing_failure_percentage_local_origin = uint(NOT_ENFORCED);
        return;
    };
    od.enforcing_failure_percentage = uint(ENFORCED);
    od.enforcing_failure_percentage_local_origin = uint(ENFORCED);
    if let Some(n) = conf.minimum_hosts {
        od.failure_percentage_minimum_hosts = uint(n);
    }
    if let Some(n) = conf.request_volume {
        od.failure_percentage_request_volume = uint(n);
    }
    if let Some(n) = conf.threshold {
        od.failure_percentage_threshold = uint(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::cluster::eds_cluster;
    use crate::generate::snapshot::Protocol;
    use kuma_api::policies::mesh_circuit_breaker::OutlierDetection as KumaOutlierDetection;
    use kuma_api::policies::values::GoDuration;

    fn u(n: u32) -> Option<UInt32Value> {
        uint(n)
    }

    fn conf_from(yaml: &str) -> Conf {
        serde_yaml::from_str(yaml).expect("valid conf")
    }

    #[test]
    fn limits_fill_the_default_thresholds_and_track_remaining() {
        let conf = conf_from(
            "connectionLimits: {maxConnections: 2, maxPendingRequests: 3, maxRequests: 4, maxRetries: 5, maxConnectionPools: 6}",
        );
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c);
        let breakers = c.circuit_breakers.expect("circuit breakers");
        assert_eq!(breakers.thresholds.len(), 1);
        let t = &breakers.thresholds[0];
        assert_eq!(t.priority, RoutingPriority::Default as i32);
        assert!(t.track_remaining);
        assert_eq!(
            (
                t.max_connections,
                t.max_pending_requests,
                t.max_requests,
                t.max_retries,
                t.max_connection_pools
            ),
            (u(2), u(3), u(4), u(5), u(6))
        );
        assert!(c.outlier_detection.is_none());
    }

    #[test]
    fn unnamed_detectors_are_switched_off_and_named_ones_enforced() {
        let conf = conf_from(
            r#"
outlierDetection:
  interval: 1s
  baseEjectionTime: 30s
  maxEjectionPercent: 50
  splitExternalAndLocalErrors: true
  healthyPanicThreshold: "12.5"
  detectors:
    totalFailures: {consecutive: 3}
    successRate: {minimumHosts: 2, requestVolume: 10, standardDeviationFactor: "1.9"}
"#,
        );
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c);
        let od = c.outlier_detection.expect("outlier detection");
        assert_eq!(od.interval.map(|d| d.seconds), Some(1));
        assert_eq!(od.base_ejection_time.map(|d| d.seconds), Some(30));
        assert_eq!(od.max_ejection_percent, u(50));
        assert!(od.split_external_local_origin_errors);
        assert_eq!(
            (od.consecutive_5xx, od.enforcing_consecutive_5xx),
            (u(3), u(100))
        );
        assert_eq!(od.enforcing_consecutive_gateway_failure, u(0));
        assert_eq!(od.consecutive_gateway_failure, None);
        assert_eq!(od.enforcing_consecutive_local_origin_failure, u(0));
        assert_eq!(od.enforcing_success_rate, u(100));
        assert_eq!(od.enforcing_local_origin_success_rate, u(100));
        assert_eq!(od.success_rate_minimum_hosts, u(2));
        assert_eq!(od.success_rate_request_volume, u(10));
        assert_eq!(od.success_rate_stdev_factor, u(1900));
        assert_eq!(od.enforcing_failure_percentage, u(0));
        assert_eq!(od.enforcing_failure_percentage_local_origin, u(0));
        let panic = c
            .common_lb_config
            .and_then(|l| l.healthy_panic_threshold)
            .expect("panic threshold");
        assert_eq!(panic.value, 12.5);
        // Limits absent: thresholds only track what remains.
        let t = &c.circuit_breakers.expect("thresholds").thresholds[0];
        assert!(t.track_remaining);
        assert_eq!(t.max_connections, None);
    }

    #[test]
    fn failure_percentage_and_gateway_detectors() {
        let conf = conf_from(
            r#"
outlierDetection:
  detectors:
    gatewayFailures: {consecutive: 7}
    localOriginFailures: {consecutive: 8}
    failurePercentage: {minimumHosts: 3, requestVolume: 20, threshold: 85}
"#,
        );
        let mut c = eds_cluster("backend", Protocol::Tcp);
        cluster(&conf, &mut c);
        let od = c.outlier_detection.expect("outlier detection");
        assert_eq!(od.enforcing_consecutive_5xx, u(0));
        assert_eq!(
            (
                od.consecutive_gateway_failure,
                od.enforcing_consecutive_gateway_failure
            ),
            (u(7), u(100))
        );
        assert_eq!(
            (
                od.consecutive_local_origin_failure,
                od.enforcing_consecutive_local_origin_failure
            ),
            (u(8), u(100))
        );
        assert_eq!(
            (
                od.enforcing_failure_percentage,
                od.enforcing_failure_percentage_local_origin,
                od.failure_percentage_minimum_hosts,
                od.failure_percentage_request_volume,
                od.failure_percentage_threshold
            ),
            (u(100), u(100), u(3), u(20), u(85))
        );
        assert_eq!(od.interval, None);
        assert!(c.common_lb_config.is_none());
    }

    #[test]
    fn disabled_outlier_detection_leaves_the_cluster_without_one() {
        let conf = Conf {
            connection_limits: None,
            outlier_detection: Some(KumaOutlierDetection {
                disabled: Some(true),
                interval: Some(GoDuration("1s".to_string())),
                healthy_panic_threshold: Some(IntOrString::Int(10)),
                ..KumaOutlierDetection::default()
            }),
        };
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf, &mut c);
        assert!(c.outlier_detection.is_none());
        assert!(c.common_lb_config.is_none());
    }

    #[test]
    fn existing_default_thresholds_are_updated_not_duplicated() {
        let mut c = eds_cluster("backend", Protocol::Http);
        cluster(&conf_from("connectionLimits: {maxConnections: 2}"), &mut c);
        cluster(&conf_from("connectionLimits: {maxRequests: 9}"), &mut c);
        let thresholds = c.circuit_breakers.expect("thresholds").thresholds;
        assert_eq!(thresholds.len(), 1);
        assert_eq!(thresholds[0].max_connections, u(2));
        assert_eq!(thresholds[0].max_requests, u(9));
    }

    #[test]
    fn stdev_factor_in_thousandths() {
        assert_eq!(stdev_factor(&IntOrString::Int(2)), Some(2000));
        assert_eq!(
            stdev_factor(&IntOrString::String("1.9999".to_string())),
            Some(1999)
        );
        assert_eq!(
            stdev_factor(&IntOrString::String("99999999".to_string())),
            None
        );
    }
}
