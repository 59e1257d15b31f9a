//! `POST /bootstrap`: kuma-dp asks for its Envoy bootstrap. Request and
//! response are Kuma's JSON; errors follow Kuma's bootstrap server (422
//! with a plain-text reason for invalid input, 404 for an unknown
//! Dataplane) plus 401/403 for a token that does not admit the proxy.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::{ApiError, Kind, Resource, ResourceKey, Spec};
use kuma_store::StoreError;
use kuma_xds::bootstrap::{BootstrapParams, bootstrap};
use kuma_xds::server::ProxyId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    AuthError, DIRECT_RESOURCE_METADATA, DpServerState, parse_direct_dataplane, register_direct,
};

/// Kuma's message when a token is required but missing.
pub const DP_TOKEN_REQUIRED: &str = "Dataplane Token is required. Generate token using 'kumactl generate dataplane-token > /path/file' and provide it via --dataplane-token-file=/path/file argument to Kuma DP";

/// Kuma's `BootstrapRequest` (fields this server reads; others are ignored).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BootstrapRequest {
    pub mesh: String,
    pub name: String,
    pub proxy_type: String,
    pub dataplane_token: String,
    pub dataplane_token_path: String,
    /// The Dataplane as JSON or YAML (direct mode).
    pub dataplane_resource: String,
    pub version: Option<Value>,
    pub ca_cert: String,
    pub dynamic_metadata: BTreeMap<String, String>,
    pub workdir: String,
    pub features: Vec<String>,
    /// Sent by our kuma-dp for `--admin-port`; not in Kuma's request.
    pub admin_port: Option<u16>,
}

/// Kuma's `BootstrapResponse`: `bootstrap` is base64 of the YAML, as Go
/// encodes `[]byte`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapResponse {
    pub bootstrap: String,
    pub kuma_sidecar_configuration: Value,
}

pub(super) fn router(state: Arc<DpServerState>) -> Router {
    Router::new()
        .route("/bootstrap", post(handle))
        .with_state(state)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// Kuma's ValidationError text: `field: message; field: message`.
fn violations_text(e: &ApiError) -> String {
    match e {
        ApiError::Invalid(v) => v
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

async fn handle(
    State(state): State<Arc<DpServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: BootstrapRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("could not parse the request: {e}"),
            );
        }
    };
    match generate(&state, &request, host_of(&headers).as_deref()).await {
        Ok(response) => {
            let wants_yaml = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("yaml"));
            if wants_yaml {
                // Kuma's legacy form: the YAML itself.
                let yaml = base64::engine::general_purpose::STANDARD
                    .decode(&response.bootstrap)
                    .unwrap_or_default();
                return ([(header::CONTENT_TYPE, "text/x-yaml")], yaml).into_response();
            }
            axum::Json(response).into_response()
        }
        Err(e) => e,
    }
}

/// The host kuma-dp used to reach us, without the port.
fn host_of(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let uri: axum::http::uri::Authority = host.parse().ok()?;
    Some(uri.host().trim_matches(['[', ']']).to_string())
}

async fn generate(
    state: &DpServerState,
    request: &BootstrapRequest,
    host: Option<&str>,
) -> Result<BootstrapResponse, Response> {
    match request.proxy_type.as_str() {
        "" | "dataplane" => {}
        other => {
            return Err(text(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "proxyType: unsupported proxy type {other:?}; only \"dataplane\" is supported"
                ),
            ));
        }
    }
    if state.authn_enabled() && request.dataplane_token.is_empty() {
        return Err(text(StatusCode::UNPROCESSABLE_ENTITY, DP_TOKEN_REQUIRED));
    }
    let direct = !request.dataplane_resource.is_empty();
    let mesh_default = if request.mesh.is_empty() {
        "default"
    } else {
        &request.mesh
    };
    let (dataplane, doc) = if direct {
        let doc = parse_direct_dataplane(&request.dataplane_resource, mesh_default)
            .map_err(|e| text(StatusCode::UNPROCESSABLE_ENTITY, violations_text(&e)))?;
        let mesh = doc.mesh.clone().unwrap_or_default();
        match state
            .store
            .get(&ResourceKey::global(Kind::Mesh, &mesh))
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(text(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("mesh: mesh {mesh:?} does not exist"),
                ));
            }
            Err(e) => return Err(internal(&e)),
        }
        (doc.clone().into_resource(chrono::Utc::now()), Some(doc))
    } else {
        if request.name.is_empty() {
            return Err(text(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name: cannot be empty",
            ));
        }
        let key = ResourceKey::in_mesh(Kind::Dataplane, mesh_default, &request.name);
        match state.store.get(&key).await {
            Ok(r) => (r, None),
            Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => {
                return Err(text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "Dataplane {:?} not found in mesh {mesh_default:?}",
                        request.name
                    ),
                ));
            }
            Err(e) => return Err(internal(&e)),
        }
    };
    if state.authn_enabled() {
        state
            .authenticate(&request.dataplane_token, &dataplane)
            .await
            .map_err(|e| match e {
                AuthError::Unauthenticated(_) => text(StatusCode::UNAUTHORIZED, e.to_string()),
                AuthError::Denied(_) => text(StatusCode::FORBIDDEN, e.to_string()),
                AuthError::Internal(_) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            })?;
    }
    let dataplane = match doc {
        Some(doc) => {
            let stored = register_direct(state, doc)
                .await
                .map_err(|e| internal(&e))?;
            state.index.upsert(stored.clone());
            stored
        }
        None => dataplane,
    };
    Ok(render(state, request, &dataplane, host, direct))
}

fn internal(e: &StoreError) -> Response {
    tracing::error!(error = %e, "bootstrap failed on the store");
    text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The service a proxy represents: its first inbound's, else its gateway's.
fn service_of(spec: &DataplaneSpec) -> String {
    let Some(net) = &spec.networking else {
        return String::new();
    };
    net.inbound
        .iter()
        .find_map(|i| i.tags.get(SERVICE_TAG))
        .or_else(|| net.gateway.as_ref().and_then(|g| g.tags.get(SERVICE_TAG)))
        .cloned()
        .unwrap_or_default()
}

fn render(
    state: &DpServerState,
    request: &BootstrapRequest,
    dataplane: &Resource,
    host: Option<&str>,
    direct: bool,
) -> BootstrapResponse {
    let mesh = dataplane.meta.mesh.clone().unwrap_or_default();
    let name = dataplane.meta.name.clone();
    let spec = match &dataplane.spec {
        Spec::Dataplane(d) => d.clone(),
        _ => DataplaneSpec::default(),
    };
    let params_config = &state.config.bootstrap_server.params;
    let admin_port = spec
        .networking
        .as_ref()
        .and_then(|n| n.admin.as_ref())
        .and_then(|a| u16::try_from(a.port).ok())
        .filter(|p| *p != 0)
        .or(request.admin_port.filter(|p| *p != 0))
        .unwrap_or(params_config.admin_port);
    let xds_host = if params_config.xds_host.is_empty() {
        host.unwrap_or("localhost").to_string()
    } else {
        params_config.xds_host.clone()
    };
    let mut params = BootstrapParams::new(&mesh, &name, &service_of(&spec), &xds_host);
    params.admin_address = params_config.admin_address.clone();
    params.admin_port = admin_port;
    params.xds_port = if params_config.xds_port == 0 {
        state.port
    } else {
        params_config.xds_port
    };
    params.ca_cert_pem = Some(if request.ca_cert.is_empty() {
        state.tls.ca_cert_pem.clone()
    } else {
        request.ca_cert.clone()
    });
    params.dataplane_token =
        (!request.dataplane_token.is_empty()).then(|| request.dataplane_token.clone());
    let mut metadata = Map::new();
    for (k, v) in &request.dynamic_metadata {
        metadata.insert(k.clone(), Value::String(v.clone()));
    }
    if direct {
        // The ADS stream re-registers the Dataplane from here if it was
        // removed meanwhile (a restart, a reconnect after a disconnect).
        metadata.insert(
            DIRECT_RESOURCE_METADATA.into(),
            Value::String(dataplane.to_json().to_string()),
        );
    }
    params.metadata = metadata;
    let config = bootstrap(&params);
    let yaml = serde_yaml::to_string(&config).unwrap_or_default();
    state.insights.record_bootstrap(
        &ProxyId::new(&mesh, &name),
        admin_port,
        request.version.clone(),
    );
    let address = spec
        .networking
        .as_ref()
        .map(|n| n.address.clone())
        .unwrap_or_default();
    BootstrapResponse {
        bootstrap: base64::engine::general_purpose::STANDARD.encode(yaml.as_bytes()),
        kuma_sidecar_configuration: json!({
            "networking": { "address": address },
            "metrics": { "aggregate": [] },
        }),
    }
}
