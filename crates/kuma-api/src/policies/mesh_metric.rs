//! MeshMetric: which metrics proxies expose and where they are sent.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::policies::values::{
    BackendResourceRef, GoDuration, check_positive_duration, check_regex,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshMetricSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default)]
    pub default: Conf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<Sidecar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<Vec<Application>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<Backend>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Profiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_unused: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_profiles: Option<Vec<Profile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<Selector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Selector>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `All`, `Basic` or `None`.
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selector {
    /// `Prefix`, `Regex`, `Exact` or `Contains`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(rename = "match", default)]
    pub pattern: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Application {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub port: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// `Prometheus` or `OpenTelemetry`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<OpenTelemetry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prometheus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PrometheusTls>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrometheusTls {
    /// `Disabled`, `ProvidedTLS` or `ActiveMTLSBackend`.
    #[serde(default)]
    pub mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenTelemetry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendResourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<GoDuration>,
}

impl Validate for MeshMetricSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshService,
                K::Dataplane,
                K::MeshServiceSubset,
            ])
            .check(top, &spec.field("targetRef"), v);
        }
        let d = spec.field("default");
        if let Some(profiles) = self
            .default
            .sidecar
            .as_ref()
            .and_then(|s| s.profiles.as_ref())
        {
            let pp = d.field("sidecar").field("profiles");
            for (i, p) in profiles.append_profiles.iter().flatten().enumerate() {
                if !matches!(p.name.as_str(), "All" | "None" | "Basic") {
                    v.add(
                        &pp.field("appendProfiles").index(i).field("name"),
                        format!(
                            "unrecognized profile name '{}' - 'All', 'None', 'Basic' are supported",
                            p.name
                        ),
                    );
                }
            }
            for (field, selectors) in [
                ("exclude", &profiles.exclude),
                ("include", &profiles.include),
            ] {
                for (i, s) in selectors.iter().flatten().enumerate() {
                    let sp = pp.field(field).index(i);
                    match s.kind.as_str() {
                        "Regex" => {
                            let mut found = Violations::new();
                            check_regex(&s.pattern, &sp.field("match"), &mut found);
                            if !found.is_empty() {
                                v.add(&sp.field("match"), "invalid regex");
                            }
                        }
                        "Prefix" | "Exact" | "Contains" => {}
                        other => v.add(
                            &sp.field("type"),
                            format!("unrecognized type '{other}' - 'Regex', 'Prefix', 'Exact' are supported"),
                        ),
                    }
                }
            }
        }
        for (i, a) in self.default.applications.iter().flatten().enumerate() {
            if a.port == 0 || a.port > 65535 {
                v.add(
                    &d.field("applications").index(i).field("port"),
                    "port must be a valid (1-65535)",
                );
            }
        }
        for (i, b) in self.default.backends.iter().flatten().enumerate() {
            let bp = d.field("backends").index(i);
            match b.kind.as_str() {
                "Prometheus" if b.prometheus.is_none() => {
                    v.add(&bp.field("prometheus"), "must be defined")
                }
                "OpenTelemetry" => match &b.open_telemetry {
                    None => v.add(&bp.field("openTelemetry"), "must be defined"),
                    Some(o) => check_otel(o, &bp.field("openTelemetry"), v),
                },
                "Prometheus" => {}
                _ => v.add(&bp, "unrecognized type"),
            }
        }
    }
}

fn check_otel(o: &OpenTelemetry, path: &FieldPath, v: &mut Violations) {
    match (o.endpoint.is_empty(), &o.backend_ref) {
        (false, Some(_)) => v.add(
            path,
            "openTelemetry must have only one type defined: endpoint, backendRef",
        ),
        (true, None) => v.add(
            path,
            "openTelemetry must have exactly one defined: endpoint, backendRef",
        ),
        (_, Some(r)) if r.labels.is_empty() => v.add(
            &path.field("backendRef"),
            "backendRef must have exactly one defined: labels",
        ),
        (false, None) if o.endpoint.contains(['/', '?', '#']) => v.add(
            &path.field("endpoint"),
            "must be in host:port format, not a URL",
        ),
        // MeshMetric's collector endpoint must name a port.
        (false, None)
            if !o
                .endpoint
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            v.add(&path.field("endpoint"), "must be in host:port format")
        }
        _ => {}
    }
    check_positive_duration(
        o.refresh_interval.as_ref(),
        &path.field("refreshInterval"),
        v,
    );
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshMetric
name: metrics-default
mesh: default
spec:
  targetRef:
    kind: Mesh
  default:
    sidecar:
      includeUnused: false
      profiles:
        appendProfiles:
          - name: Basic
        exclude:
          - type: Regex
            match: "envoy_cluster_.*"
    applications:
      - name: app
        path: /metrics/prometheus
        port: 8888
    backends:
      - type: Prometheus
        prometheus:
          port: 5670
          path: /metrics
          tls:
            mode: ActiveMTLSBackend
      - type: OpenTelemetry
        openTelemetry:
          endpoint: otel-collector.observability.svc:4317
          refreshInterval: 10s
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshMetric
name: bad
mesh: default
spec:
  default:
    sidecar:
      profiles:
        appendProfiles:
          - name: Everything
        include:
          - type: Regex
            match: "(("
    applications:
      - port: 0
    backends:
      - type: OpenTelemetry
        openTelemetry:
          endpoint: otel-collector
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.default.sidecar.profiles.appendProfiles[0].name",
                    "unrecognized profile name 'Everything' - 'All', 'None', 'Basic' are supported"
                ),
                (
                    "spec.default.sidecar.profiles.include[0].match",
                    "invalid regex"
                ),
                (
                    "spec.default.applications[0].port",
                    "port must be a valid (1-65535)"
                ),
                (
                    "spec.default.backends[0].openTelemetry.endpoint",
                    "must be in host:port format"
                ),
            ]
        );
    }
}
