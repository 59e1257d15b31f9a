//! The Mesh's legacy logging, tracing and metrics backends.
//!
//! Each backend keeps its `conf` as written and offers a typed reading of it.
//! Violations inside `conf` are reported under `config`, as Kuma does for
//! logging and tracing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::conf_as;
use crate::kinds::address::validate_port;
use crate::kinds::proto_enum::proto_enum;
use crate::validation::{FieldPath, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_backend: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<LoggingBackend>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggingBackend {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub format: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLoggingConfig {
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpLoggingConfig {
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_backend: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<TracingBackend>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TracingBackend {
    #[serde(default)]
    pub name: String,
    /// Percentage of requests traced, 0.0 to 100.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatadogConfig {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub split_service: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinConfig {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub trace_id128bit: bool,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub shared_span_context: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub enabled_backend: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<MetricsBackend>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsBackend {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusConfig {
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "skipMTLS", default)]
    pub skip_mtls: Option<bool>,
    #[serde(default)]
    pub aggregate: Vec<PrometheusAggregate>,
    #[serde(default)]
    pub envoy: Option<PrometheusEnvoy>,
    #[serde(default)]
    pub tls: Option<PrometheusTls>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrometheusAggregate {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusEnvoy {
    #[serde(default)]
    pub filter_regex: String,
    #[serde(default)]
    pub used_only: Option<bool>,
}

proto_enum! {
    /// How Prometheus scrapes the proxy.
    PrometheusTlsMode {
        ActiveMtlsBackend("activeMTLSBackend", 0),
        ProvidedTls("providedTLS", 1),
        Disabled("disabled", 2),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrometheusTls {
    #[serde(default)]
    pub mode: Option<PrometheusTlsMode>,
}

fn check_unique_names<'a>(
    path: &FieldPath,
    names: impl Iterator<Item = &'a str>,
    v: &mut Violations,
) -> Vec<&'a str> {
    let mut used = Vec::new();
    for (i, name) in names.enumerate() {
        if used.contains(&name) {
            v.add(
                &path.index(i).field("name"),
                format!("{name:?} name is already used for another backend"),
            );
        }
        used.push(name);
    }
    used
}

impl Logging {
    pub fn validate(&self, path: &FieldPath, v: &mut Violations) {
        let backends = path.field("backends");
        for (i, b) in self.backends.iter().enumerate() {
            let bp = backends.index(i);
            if b.name.is_empty() {
                v.add(&bp.field("name"), "cannot be empty");
            }
            let cp = bp.field("config");
            match b.type_.as_str() {
                "file" => match conf_as::<FileLoggingConfig>(b.conf.as_ref()) {
                    Err(e) => v.add(&cp, format!("could not parse config: {e}")),
                    Ok(c) if c.path.is_empty() => v.add(&cp.field("path"), "cannot be empty"),
                    Ok(_) => {}
                },
                "tcp" => match conf_as::<TcpLoggingConfig>(b.conf.as_ref()) {
                    Err(e) => v.add(&cp, format!("could not parse config: {e}")),
                    Ok(c) if c.address.is_empty() => v.add(&cp.field("address"), "cannot be empty"),
                    Ok(c) => {
                        if !is_host_port(&c.address) {
                            v.add(&cp.field("address"), "has to be in format of HOST:PORT");
                        }
                    }
                },
                _ => v.add(
                    &bp.field("type"),
                    r#"unknown backend type. Available backends: "tcp", "file""#,
                ),
            }
        }
        let used = check_unique_names(&backends, self.backends.iter().map(|b| b.name.as_str()), v);
        if !self.default_backend.is_empty() && !used.contains(&self.default_backend.as_str()) {
            v.add(
                &path.field("defaultBackend"),
                "has to be set to one of the logging backend in mesh",
            );
        }
    }
}

/// `host:port` with both parts present (IPv6 hosts in brackets).
fn is_host_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split_once("]:")
            .is_some_and(|(h, port)| !h.is_empty() && !port.is_empty());
    }
    s.rsplit_once(':')
        .is_some_and(|(h, port)| !h.is_empty() && !port.is_empty() && !h.contains(':'))
}

impl Tracing {
    pub fn validate(&self, path: &FieldPath, v: &mut Violations) {
        let backends = path.field("backends");
        for (i, b) in self.backends.iter().enumerate() {
            let bp = backends.index(i);
            if b.name.is_empty() {
                v.add(&bp.field("name"), "cannot be empty");
            }
            let sampling = b.sampling.unwrap_or(0.0);
            if !(0.0..=100.0).contains(&sampling) {
                v.add(&bp.field("sampling"), "has to be in [0.0 - 100.0] range");
            }
            let cp = bp.field("config");
            match b.type_.as_str() {
                "zipkin" => match conf_as::<ZipkinConfig>(b.conf.as_ref()) {
                    Err(e) => v.add(&cp, format!("could not parse config: {e}")),
                    Ok(c) => validate_zipkin(&c, &cp, v),
                },
                "datadog" => match conf_as::<DatadogConfig>(b.conf.as_ref()) {
                    Err(e) => v.add(&cp, format!("could not parse config: {e}")),
                    Ok(c) => {
                        if c.address.is_empty() {
                            v.add(&cp.field("address"), "cannot be empty");
                        }
                        validate_port(&cp.field("port"), c.port, v);
                    }
                },
                _ => v.add(
                    &bp.field("type"),
                    r#"unknown backend type. Available backends: "zipkin", "datadog""#,
                ),
            }
        }
        let used = check_unique_names(&backends, self.backends.iter().map(|b| b.name.as_str()), v);
        if !self.default_backend.is_empty() && !used.contains(&self.default_backend.as_str()) {
            v.add(
                &path.field("defaultBackend"),
                "has to be set to one of the tracing backend in mesh",
            );
        }
    }
}

fn validate_zipkin(c: &ZipkinConfig, path: &FieldPath, v: &mut Violations) {
    if !matches!(
        c.api_version.as_str(),
        "" | "httpJsonV1" | "httpJson" | "httpProto"
    ) {
        v.add(
            &path.field("apiVersion"),
            "has invalid value. Allowed values: httpJsonV1, httpJson, httpProto",
        );
    }
    if c.url.is_empty() {
        v.add(&path.field("url"), "cannot be empty");
        return;
    }
    match url_port(&c.url) {
        None => v.add(&path.field("url"), "invalid URL"),
        Some(false) => v.add(&path.field("url"), "port has to be explicitly specified"),
        Some(true) => {}
    }
}

/// `None` if `s` is not an absolute URL; otherwise whether it names a port.
fn url_port(s: &str) -> Option<bool> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.is_empty() {
        return None;
    }
    let port = match host_port.rsplit_once(':') {
        Some((_, port)) if !host_port.ends_with(']') => port,
        _ => "",
    };
    Some(!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

impl Metrics {
    pub fn validate(&self, path: &FieldPath, v: &mut Violations) {
        let backends = path.field("backends");
        let mut used: Vec<&str> = Vec::new();
        for (i, b) in self.backends.iter().enumerate() {
            let bp = backends.index(i);
            if used.contains(&b.name.as_str()) {
                v.add(
                    &bp.field("name"),
                    format!("{:?} name is already used for another backend", b.name),
                );
            }
            if b.type_ != "prometheus" {
                v.add(
                    &bp.field("type"),
                    r#"unknown backend type. Available backends: "prometheus""#,
                );
            } else {
                validate_prometheus(b.conf.as_ref(), &bp.field("conf"), v);
            }
            used.push(b.name.as_str());
        }
        if !self.enabled_backend.is_empty() && !used.contains(&self.enabled_backend.as_str()) {
            v.add(
                &path.field("enabledBackend"),
                "has to be set to one of the backends in the mesh",
            );
        }
    }
}

impl MetricsBackend {
    pub fn prometheus_conf(&self) -> Result<PrometheusConfig, String> {
        conf_as(self.conf.as_ref())
    }
}

/// Checks a Prometheus `conf`; also used for a Dataplane's own `metrics`.
pub(crate) fn validate_prometheus(
    conf: Option<&Map<String, Value>>,
    path: &FieldPath,
    v: &mut Violations,
) {
    let c: PrometheusConfig = match conf_as(conf) {
        Ok(c) => c,
        Err(e) => {
            v.add(path, format!("could not parse config: {e}"));
            return;
        }
    };
    if let (Some(skip), Some(tls)) = (c.skip_mtls, &c.tls) {
        let mode = tls.mode.unwrap_or(PrometheusTlsMode::ActiveMtlsBackend);
        let agree = (!skip && mode == PrometheusTlsMode::ActiveMtlsBackend)
            || (skip && mode == PrometheusTlsMode::Disabled);
        if !agree {
            v.add(
                path,
                "skipMTLS and tls configuration cannot be defined together",
            );
            return;
        }
    }
    if let Some(envoy) = &c.envoy
        && let Err(e) = regex::Regex::new(&envoy.filter_regex)
    {
        v.add(
            &path.field("envoy").field("filterRegex"),
            format!("provided regexp isn't correct: {e}"),
        );
        return;
    }
    let mut used: Vec<&str> = Vec::new();
    for (i, a) in c.aggregate.iter().enumerate() {
        if used.contains(&a.name.as_str()) {
            v.add(
                &path.field("aggregate").index(i).field("name"),
                format!("duplicate entry: {}, values have to be unique", a.name),
            );
            continue;
        }
        used.push(a.name.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_urls() {
        assert!(is_host_port("127.0.0.1:5000"));
        assert!(is_host_port("[::1]:5000"));
        assert!(!is_host_port("127.0.0.1"));
        assert!(!is_host_port(":80"));
        assert_eq!(url_port("http://zipkin:9411/api/v2/spans"), Some(true));
        assert_eq!(url_port("http://zipkin/api/v2/spans"), Some(false));
        assert_eq!(url_port("zipkin"), None);
    }
}
