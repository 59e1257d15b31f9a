//! MeshAccessLog: where and in which format proxies log requests.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{BackendResourceRef, MatchedRule, TargetedConf, check_match};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshAccessLogSpec {
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
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<Backend>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// `Tcp`, `File` or `OpenTelemetry`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<OtelBackend>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtelBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<KeyValue>>,
    /// Any JSON value, with `%KUMA_*%` placeholders inside strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendResourceRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Format {
    /// `Plain` or `Json`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Vec<KeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_empty_values: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl Validate for MeshAccessLogSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let to = self.to.as_deref().unwrap_or_default();
        let from = self.from.as_deref().unwrap_or_default();
        let rules = self.rules.as_deref().unwrap_or_default();
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshGateway,
                K::MeshService,
                K::MeshServiceSubset,
                K::Dataplane,
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
        let to_kinds: &[K] = match top_level(&self.target_ref).kind {
            K::MeshGateway => &[K::Mesh],
            _ => &[
                K::Mesh,
                K::MeshService,
                K::MeshExternalService,
                K::MeshMultiZoneService,
                K::MeshHTTPRoute,
            ],
        };
        for (i, item) in to.iter().enumerate() {
            let path = spec.field("to").index(i);
            TargetRefRules::kinds(to_kinds).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), v);
        }
        for (i, item) in from.iter().enumerate() {
            let path = spec.field("from").index(i);
            TargetRefRules::kinds(&[K::Mesh]).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(item.default.as_ref(), &path.field("default"), v);
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = spec.field("rules").index(i);
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                check_match(m, &path.field("matches").index(j), v);
            }
            check_conf(rule.default.as_ref(), &path.field("default"), v);
        }
    }
}

fn check_conf(conf: Option<&Conf>, path: &FieldPath, v: &mut Violations) {
    let Some(backends) = conf.and_then(|c| c.backends.as_ref()) else {
        v.add(&path.field("backends"), "must be defined");
        return;
    };
    for (i, b) in backends.iter().enumerate() {
        let bp = path.field("backends").index(i);
        match b.kind.as_str() {
            "File" => match &b.file {
                None => v.add(&bp.field("file"), "must be defined"),
                Some(f) => {
                    if let Some(format) = &f.format {
                        check_format(format, &bp.field("file").field("format"), v);
                    }
                    if !f.path.starts_with('/') {
                        v.add(
                            &bp.field("file").field("path"),
                            "file backend requires a valid path",
                        );
                    }
                }
            },
            "Tcp" => match &b.tcp {
                None => v.add(&bp.field("tcp"), "must be defined"),
                Some(t) => {
                    if let Some(format) = &t.format {
                        check_format(format, &bp.field("tcp").field("format"), v);
                    }
                    if t.address.is_empty() || t.address.contains(char::is_whitespace) {
                        v.add(
                            &bp.field("tcp").field("address"),
                            "tcp backend requires valid address",
                        );
                    }
                }
            },
            "OpenTelemetry" => match &b.open_telemetry {
                None => v.add(&bp.field("openTelemetry"), "must be defined"),
                Some(o) => check_otel(o, &bp.field("openTelemetry"), v),
            },
            _ => {}
        }
    }
}

fn check_otel(o: &OtelBackend, path: &FieldPath, v: &mut Violations) {
    match (o.endpoint.is_empty(), &o.backend_ref) {
        (false, Some(_)) => v.add(
            path,
            "openTelemetry must have only one type defined: endpoint, backendRef",
        ),
        (true, None) => v.add(
            path,
            "openTelemetry must have exactly one defined: endpoint, backendRef",
        ),
        (_, Some(r)) => {
            if r.kind != "MeshOpenTelemetryBackend" {
                v.add(
                    &path.field("backendRef").field("kind"),
                    "kind must be one of: MeshOpenTelemetryBackend",
                );
            }
            if r.labels.is_empty() {
                v.add(
                    &path.field("backendRef"),
                    "backendRef must have exactly one defined: labels",
                );
            }
        }
        (false, None) if o.endpoint.contains(['/', '?', '#']) => v.add(
            &path.field("endpoint"),
            "must be in host:port format, not a URL",
        ),
        (false, None) => {}
    }
}

fn check_format(f: &Format, path: &FieldPath, v: &mut Violations) {
    match f.kind.as_str() {
        "Plain" => match f.plain.as_deref() {
            None => v.add(&path.field("plain"), "must be defined"),
            Some("") => v.add(&path.field("plain"), "must not be empty"),
            Some(_) => {}
        },
        "Json" => match f.json.as_deref() {
            None => v.add(&path.field("json"), "must be defined"),
            Some([]) => v.add(&path.field("json"), "must not be empty"),
            Some(fields) => {
                for (i, kv) in fields.iter().enumerate() {
                    if kv.key.is_empty() {
                        v.add(
                            &path.field("json").index(i).field("key"),
                            "key cannot be empty",
                        );
                    }
                }
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshAccessLog
name: default
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        backends:
          - type: File
            file:
              path: /tmp/access.log
              format:
                type: Json
                json:
                  - key: start_time
                    value: "%START_TIME%"
          - type: Tcp
            tcp:
              address: 127.0.0.1:5000
              format:
                type: Plain
                plain: "[%START_TIME%] %KUMA_MESH%"
          - type: OpenTelemetry
            openTelemetry:
              endpoint: otel-collector:4317
              body:
                kvlistValue:
                  values:
                    - key: mesh
                      value:
                        stringValue: "%KUMA_MESH%"
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshAccessLog
name: bad
mesh: default
spec:
  from:
    - targetRef:
        kind: Mesh
      default:
        backends:
          - type: File
            file:
              path: relative.log
              format:
                type: Plain
                plain: ""
          - type: OpenTelemetry
            openTelemetry: {}
    - targetRef:
        kind: Mesh
      default: {}
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.from[0].default.backends[0].file.format.plain",
                    "must not be empty"
                ),
                (
                    "spec.from[0].default.backends[0].file.path",
                    "file backend requires a valid path"
                ),
                (
                    "spec.from[0].default.backends[1].openTelemetry",
                    "openTelemetry must have exactly one defined: endpoint, backendRef"
                ),
                ("spec.from[1].default.backends", "must be defined"),
            ]
        );
    }
}
