//! MeshTrace: tracing backends, sampling and span tags.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules};
use crate::policies::values::{BackendResourceRef, IntOrString};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTraceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default)]
    pub default: Conf,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<Backend>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// `Zipkin`, `Datadog` or `OpenTelemetry`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<Zipkin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<Datadog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<OpenTelemetry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Zipkin {
    #[serde(default)]
    pub url: String,
    #[serde(
        rename = "traceId128bit",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub trace_id_128bit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_span_context: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Datadog {
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_service: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenTelemetry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendResourceRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderTag>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaderTag {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl Validate for MeshTraceSpec {
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
        let d = spec.field("default");
        let bp = d.field("backends");
        match self.default.backends.as_deref() {
            None => v.add(&bp, "must be defined"),
            Some([]) => {}
            Some([b]) => check_backend(b, &bp.index(0), v),
            Some(_) => v.add(&bp, "must have zero or one backend defined"),
        }
        for (i, t) in self.default.tags.iter().flatten().enumerate() {
            let tp = d.field("tags").index(i);
            if t.name.is_empty() {
                v.add(&tp.field("name"), "must not be empty");
            }
            if t.literal.is_some() == t.header.is_some() {
                v.add(&tp, "tag must have only one type defined: header, literal");
            }
        }
        if let Some(s) = &self.default.sampling {
            let sp = d.field("sampling");
            for (field, value) in [
                ("overall", &s.overall),
                ("client", &s.client),
                ("random", &s.random),
            ] {
                match value.as_ref().map(IntOrString::as_f64) {
                    Some(None) => v.add(&sp.field(field), "string is not a number"),
                    Some(Some(f)) if !(0.0..=100.0).contains(&f) => {
                        v.add(&sp.field(field), "must be between 0 and 100")
                    }
                    _ => {}
                }
            }
        }
    }
}

fn check_backend(b: &Backend, path: &FieldPath, v: &mut Violations) {
    match b.kind.as_str() {
        "Zipkin" => match &b.zipkin {
            None => v.add(&path.field("zipkin"), "must be defined"),
            Some(z) if z.url.is_empty() => {
                v.add(&path.field("zipkin").field("url"), "must not be empty")
            }
            Some(z) if parse_url(&z.url).is_none() => {
                v.add(&path.field("zipkin").field("url"), "must be a valid url")
            }
            Some(_) => {}
        },
        "Datadog" => match &b.datadog {
            None => v.add(&path.field("datadog"), "must be defined"),
            Some(d) => match parse_url(&d.url) {
                None => v.add(&path.field("datadog").field("url"), "must be a valid url"),
                Some((scheme, _)) if scheme != "http" => {
                    v.add(&path.field("datadog").field("url"), "scheme must be http")
                }
                Some((_, None)) => {
                    v.add(&path.field("datadog").field("url"), "port must be defined")
                }
                Some((_, Some(0))) => v.add(
                    &path.field("datadog").field("url"),
                    "port must be a valid (1-65535)",
                ),
                Some(_) => {}
            },
        },
        "OpenTelemetry" if b.open_telemetry.is_none() => {
            v.add(&path.field("openTelemetry"), "must be defined")
        }
        _ => {}
    }
}

/// `scheme://host[:port][/path]` split into scheme and port; `None` when it
/// is not an absolute URL with a host.
fn parse_url(s: &str) -> Option<(&str, Option<u16>)> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, Some(p.parse::<u16>().ok()?))
        }
        _ => (host_port, None),
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme, port))
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshTrace
name: default
mesh: default
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: Zipkin
        zipkin:
          url: http://jaeger-collector:9411/api/v2/spans
          apiVersion: httpJson
    tags:
      - name: team
        literal: core
      - name: env
        header:
          name: x-env
          default: prod
    sampling:
      overall: 80
      random: 60
      client: "40.5"
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshTrace
name: bad
mesh: default
spec:
  default:
    backends:
      - type: Datadog
        datadog:
          url: https://datadog:8126
    tags:
      - name: ""
    sampling:
      overall: 101
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.default.backends[0].datadog.url",
                    "scheme must be http"
                ),
                ("spec.default.tags[0].name", "must not be empty"),
                (
                    "spec.default.tags[0]",
                    "tag must have only one type defined: header, literal"
                ),
                ("spec.default.sampling.overall", "must be between 0 and 100"),
            ]
        );
    }
}
