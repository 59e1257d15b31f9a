//! Mesh: the tenant every mesh-scoped resource belongs to; mTLS, legacy
//! observability backends, routing and constraints for its proxies.

mod observability;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use observability::{
    DatadogConfig, FileLoggingConfig, Logging, LoggingBackend, Metrics, MetricsBackend,
    PrometheusAggregate, PrometheusConfig, PrometheusEnvoy, PrometheusTls, PrometheusTlsMode,
    TcpLoggingConfig, Tracing, TracingBackend, ZipkinConfig,
};

pub(crate) use observability::validate_prometheus;

use crate::duration::{parse_mesh_duration, parse_proto_duration};
use crate::kinds::data_source::DataSource;
use crate::kinds::proto_enum::proto_enum;
use crate::kinds::tags::{TagRules, validate_selector};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

/// Kuma allows a single certificate authority backend per mesh.
pub const MAX_MTLS_BACKENDS: usize = 1;

/// Secret names for builtin CAs (`<mesh>.ca-builtin-cert-<backend>`) must fit this.
const MAX_BUILTIN_SECRET_NAME: usize = 255;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<Mtls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_creating_initial_policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_services: Option<MeshServices>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mtls {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub enabled_backend: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<CaBackend>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_validation: bool,
}

proto_enum! {
    /// Whether plaintext is still accepted next to mTLS.
    MtlsMode { Strict("STRICT", 0), Permissive("PERMISSIVE", 1) }
}

/// A certificate authority backend: `builtin` or `provided`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaBackend {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp_cert: Option<DpCert>,
    /// Type-specific settings; read them with [`CaBackend::builtin_conf`] or
    /// [`CaBackend::provided_conf`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MtlsMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_chain: Option<RootChain>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DpCert {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Protobuf duration (`"10s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Mesh duration syntax (`"1d"`, `"24h"`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expiration: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootChain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

/// `conf` of a `builtin` CA backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuiltinCaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<CaCert>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCert {
    #[serde(rename = "RSAbits", default, skip_serializing_if = "Option::is_none")]
    pub rsa_bits: Option<u32>,
    /// Mesh duration syntax (`"10y"`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expiration: String,
}

/// `conf` of a `provided` CA backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvidedCaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<DataSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Networking {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<NetworkingOutbound>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkingOutbound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locality_aware_load_balancing: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zone_egress: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_forbid_mesh_external_service_access: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Constraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_proxy: Option<DataplaneProxyConstraints>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneProxyConstraints {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<TagRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<TagRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRule {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

proto_enum! {
    /// Whether MeshServices are generated and used for this mesh.
    MeshServicesMode {
        Disabled("Disabled", 0),
        Everywhere("Everywhere", 1),
        ReachableBackends("ReachableBackends", 2),
        Exclusive("Exclusive", 3),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshServices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MeshServicesMode>,
}

impl MeshSpec {
    /// The backend named by `mtls.enabledBackend`, when mTLS is on.
    pub fn enabled_ca_backend(&self) -> Option<&CaBackend> {
        let mtls = self.mtls.as_ref()?;
        if mtls.enabled_backend.is_empty() {
            return None;
        }
        mtls.backends
            .iter()
            .find(|b| b.name == mtls.enabled_backend)
    }

    pub fn mtls_enabled(&self) -> bool {
        self.enabled_ca_backend().is_some()
    }

    /// `networking.outbound.passthrough`, which defaults to true.
    pub fn passthrough(&self) -> bool {
        self.networking
            .as_ref()
            .and_then(|n| n.outbound.as_ref())
            .and_then(|o| o.passthrough)
            .unwrap_or(true)
    }

    pub fn zone_egress(&self) -> bool {
        self.routing.as_ref().is_some_and(|r| r.zone_egress)
    }

    /// `routing.localityAwareLoadBalancing`: other zones' endpoints only as
    /// a fallback, where no MeshLoadBalancingStrategy says otherwise.
    pub fn locality_aware_load_balancing(&self) -> bool {
        self.routing
            .as_ref()
            .is_some_and(|r| r.locality_aware_load_balancing)
    }

    pub fn mesh_services_mode(&self) -> MeshServicesMode {
        self.mesh_services
            .as_ref()
            .and_then(|m| m.mode)
            .unwrap_or(MeshServicesMode::Disabled)
    }
}

impl CaBackend {
    pub fn mode(&self) -> MtlsMode {
        self.mode.unwrap_or(MtlsMode::Strict)
    }

    pub fn builtin_conf(&self) -> Result<BuiltinCaConfig, String> {
        conf_as(self.conf.as_ref())
    }

    pub fn provided_conf(&self) -> Result<ProvidedCaConfig, String> {
        conf_as(self.conf.as_ref())
    }
}

/// Reads a `conf` struct as its typed form; absent means all defaults.
pub(crate) fn conf_as<T: serde::de::DeserializeOwned + Default>(
    conf: Option<&Map<String, Value>>,
) -> Result<T, String> {
    match conf {
        None => Ok(T::default()),
        Some(c) => serde_json::from_value(Value::Object(c.clone())).map_err(|e| e.to_string()),
    }
}

impl Validate for MeshSpec {
    fn validate(&self, ctx: &ValidationContext<'_>, v: &mut Violations) {
        if let Some(mtls) = &self.mtls {
            validate_mtls(ctx.name, mtls, &FieldPath::of("mtls"), v);
        }
        if let Some(logging) = &self.logging {
            logging.validate(&FieldPath::of("logging"), v);
        }
        if let Some(tracing) = &self.tracing {
            tracing.validate(&FieldPath::of("tracing"), v);
        }
        if let Some(metrics) = &self.metrics {
            metrics.validate(&FieldPath::of("metrics"), v);
        }
        if let Some(dpp) = self
            .constraints
            .as_ref()
            .and_then(|c| c.dataplane_proxy.as_ref())
        {
            let path = FieldPath::of("constraints").field("dataplaneProxy");
            let rules = TagRules {
                require_at_least_one: true,
                ..Default::default()
            };
            for (field, list) in [
                ("requirements", &dpp.requirements),
                ("restrictions", &dpp.restrictions),
            ] {
                for (i, rule) in list.iter().enumerate() {
                    let p = path.field(field).index(i).field("tags");
                    validate_selector(&p, &rule.tags, rules, v);
                }
            }
        }
        let mtls_on = self
            .mtls
            .as_ref()
            .is_some_and(|m| !m.enabled_backend.is_empty());
        if self.zone_egress() && !mtls_on {
            v.add(
                &FieldPath::of("mtls"),
                "has to be set when zoneEgress enabled",
            );
        }
    }
}

fn validate_mtls(mesh: &str, mtls: &Mtls, path: &FieldPath, v: &mut Violations) {
    let backends = path.field("backends");
    if mtls.backends.len() > MAX_MTLS_BACKENDS {
        v.add(
            &backends,
            format!("cannot have more than {MAX_MTLS_BACKENDS} backends"),
        );
    }
    let mut used = Vec::new();
    for (i, backend) in mtls.backends.iter().enumerate() {
        let bp = backends.index(i);
        if used.contains(&backend.name.as_str()) {
            v.add(
                &bp.field("name"),
                format!(
                    "{:?} name is already used for another backend",
                    backend.name
                ),
            );
        }
        used.push(backend.name.as_str());
        if let Some(dp_cert) = &backend.dp_cert {
            let expiration = dp_cert
                .rotation
                .as_ref()
                .map_or("", |r| r.expiration.as_str());
            if parse_mesh_duration(expiration).is_err() {
                v.add(
                    &bp.field("dpCert").field("rotation").field("expiration"),
                    "has to be a valid format",
                );
            }
            if let Some(t) = &dp_cert.request_timeout
                && parse_proto_duration(t).is_err()
            {
                v.add(
                    &bp.field("dpCert").field("requestTimeout"),
                    "has to be a valid format",
                );
            }
        }
        match backend.type_.as_str() {
            "builtin" => {
                if !mtls.skip_validation {
                    validate_builtin(mesh, backend, &bp, v);
                }
            }
            "provided" => {
                if !mtls.skip_validation {
                    validate_provided(backend, &bp, v);
                }
            }
            _ => v.add(
                &bp.field("type"),
                "could not find installed plugin for this type",
            ),
        }
    }
    if !mtls.enabled_backend.is_empty() && !used.contains(&mtls.enabled_backend.as_str()) {
        v.add(
            &path.field("enabledBackend"),
            "has to be set to one of the backends in the mesh",
        );
    }
}

fn validate_builtin(mesh: &str, backend: &CaBackend, path: &FieldPath, v: &mut Violations) {
    match backend.builtin_conf() {
        Err(e) => v.add(
            &path.field("conf"),
            format!("could not convert backend config: {e}"),
        ),
        Ok(conf) => {
            if let Some(ca) = &conf.ca_cert
                && !ca.expiration.is_empty()
                && parse_mesh_duration(&ca.expiration).is_err()
            {
                v.add(
                    &path.field("conf").field("caCert").field("expiration"),
                    "has to be a valid format",
                );
            }
        }
    }
    // The CA is stored in a Secret named after mesh and backend, so the
    // backend name must keep that a DNS name.
    let secret_name = format!("{mesh}.ca-builtin-cert-{}", backend.name);
    if secret_name.len() > MAX_BUILTIN_SECRET_NAME {
        v.add(
            &path.field("name"),
            format!("Backend name is too long. Max length: {MAX_BUILTIN_SECRET_NAME}"),
        );
    }
    if !crate::kinds::address::is_dns_name(&secret_name)
        || secret_name.chars().any(|c| c.is_ascii_uppercase())
    {
        v.add(
            &path.field("name"),
            format!("{:?} name must be valid dns name", backend.name),
        );
    }
}

fn validate_provided(backend: &CaBackend, path: &FieldPath, v: &mut Violations) {
    let conf_path = path.field("conf");
    match backend.provided_conf() {
        Err(e) => v.add(&conf_path, format!("could not convert backend config: {e}")),
        Ok(conf) => {
            for (field, source) in [("cert", &conf.cert), ("key", &conf.key)] {
                match source {
                    None => v.add(&conf_path.field(field), "has to be defined"),
                    Some(s) => s.validate(&conf_path.field(field), v),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
