//! CRUD on resources: `/{plural}[/{name}]` for global kinds (and cross-mesh
//! lists), `/meshes/{mesh}/{plural}[/{name}]` for mesh-scoped kinds.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kuma_api::{Kind, Resource, ResourceDocument, ResourceKey, Scope, Spec, Violation};
use kuma_store::StoreError;
use serde_json::{Value, json};

use super::list::ListRequest;
use super::{ApiState, Problem};

type ApiResult = Result<Response, Problem>;

const TITLE_GET: &str = "Could not retrieve a resource";
const TITLE_MESH: &str = "Failed to retrieve Mesh";
const TITLE_PROCESS: &str = "Could not process a resource";
const TITLE_DELETE: &str = "Could not delete a resource";

fn kind_of(plural: &str, scope: Scope) -> Result<Kind, Problem> {
    match Kind::from_plural(plural) {
        Some(kind) if kind.scope() == scope => Ok(kind),
        Some(kind) => Err(Problem::not_found("Page not found").with_detail(format!(
            "{} is {} and is not served under this path",
            kind.name(),
            match kind.scope() {
                Scope::Global => "global",
                Scope::Mesh => "mesh-scoped",
            }
        ))),
        None => Err(unknown_kind(plural)),
    }
}

fn unknown_kind(plural: &str) -> Problem {
    Problem::not_found("Page not found").with_detail(format!("unknown resource type {plural:?}"))
}

/// The mesh named in the URL must exist, as in Kuma.
pub(super) async fn require_mesh(state: &ApiState, mesh: &str) -> Result<(), Problem> {
    state
        .store
        .get(&ResourceKey::global(Kind::Mesh, mesh))
        .await
        .map(|_| ())
        .map_err(|e| Problem::from_store(TITLE_MESH, e))
}

// ---- lists ----

/// `GET /{plural}`: a global kind, or a mesh-scoped kind across all meshes.
pub async fn list_top(
    State(state): State<ApiState>,
    Path(plural): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let Some(kind) = Kind::from_plural(&plural) else {
        return Err(unknown_kind(&plural));
    };
    let route = format!("/{}", kind.plural());
    list(&state, kind, None, query.as_deref(), &route, &headers, &uri).await
}

/// `GET /meshes/{mesh}/{plural}`.
pub async fn list_in_mesh(
    State(state): State<ApiState>,
    Path((mesh, plural)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Mesh)?;
    let route = format!("/meshes/{{mesh}}/{}", kind.plural());
    let req = ListRequest::parse(query.as_deref(), &route)?;
    require_mesh(&state, &mesh).await?;
    respond_list(&state, kind, Some(&mesh), req, &headers, &uri).await
}

async fn list(
    state: &ApiState,
    kind: Kind,
    mesh: Option<&str>,
    query: Option<&str>,
    route: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> ApiResult {
    let req = ListRequest::parse(query, route)?;
    respond_list(state, kind, mesh, req, headers, uri).await
}

async fn respond_list(
    state: &ApiState,
    kind: Kind,
    mesh: Option<&str>,
    req: ListRequest,
    headers: &HeaderMap,
    uri: &Uri,
) -> ApiResult {
    let page = state
        .store
        .list(&req.query(kind, mesh))
        .await
        .map_err(|e| Problem::from_store("Could not retrieve resources", e))?;
    let items: Vec<Value> = page.items.iter().map(Resource::to_json).collect();
    let next = req.next_link(headers, uri.path(), page.total);
    Ok(Json(json!({"total": page.total, "items": items, "next": next})).into_response())
}

// ---- get ----

pub async fn get_global(
    State(state): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Global)?;
    get_one(&state, ResourceKey::global(kind, &name)).await
}

pub async fn get_in_mesh(
    State(state): State<ApiState>,
    Path((mesh, plural, name)): Path<(String, String, String)>,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Mesh)?;
    require_mesh(&state, &mesh).await?;
    get_one(&state, ResourceKey::in_mesh(kind, &mesh, &name)).await
}

async fn get_one(state: &ApiState, key: ResourceKey) -> ApiResult {
    let resource = state
        .store
        .get(&key)
        .await
        .map_err(|e| Problem::from_store(TITLE_GET, e))?;
    Ok(Json(resource.to_json()).into_response())
}

// ---- delete ----

pub async fn delete_global(
    State(state): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Global)?;
    delete_one(&state, ResourceKey::global(kind, &name)).await
}

pub async fn delete_in_mesh(
    State(state): State<ApiState>,
    Path((mesh, plural, name)): Path<(String, String, String)>,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Mesh)?;
    require_mesh(&state, &mesh).await?;
    delete_one(&state, ResourceKey::in_mesh(kind, &mesh, &name)).await
}

async fn delete_one(state: &ApiState, key: ResourceKey) -> ApiResult {
    let current = state
        .store
        .get(&key)
        .await
        .map_err(|e| Problem::from_store(TITLE_DELETE, e))?;
    // Naming the version read makes a concurrent update win over this delete.
    state
        .store
        .delete(&key, Some(current.meta.version))
        .await
        .map_err(|e| Problem::from_store(TITLE_DELETE, e))?;
    tracing::info!(%key, "resource deleted");
    Ok(Json(json!({})).into_response())
}

// ---- create or update ----

pub async fn put_global(
    State(state): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Global)?;
    put_one(&state, ResourceKey::global(kind, &name), &headers, body).await
}

pub async fn put_in_mesh(
    State(state): State<ApiState>,
    Path((mesh, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let kind = kind_of(&plural, Scope::Mesh)?;
    // No separate mesh lookup: the store refuses a resource whose mesh does
    // not exist in the same transaction as the write (400, as Kuma's manager).
    put_one(
        &state,
        ResourceKey::in_mesh(kind, &mesh, &name),
        &headers,
        body,
    )
    .await
}

async fn put_one(
    state: &ApiState,
    key: ResourceKey,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let title = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "Request body too large"
        } else {
            TITLE_PROCESS
        };
        Problem::new(status, title, rejection.body_text())
    })?;
    let value = read_body(headers, &body)?;
    check_matches_url(&key, &value)?;
    let doc =
        ResourceDocument::from_json(value).map_err(|e| Problem::from_api(TITLE_PROCESS, e))?;

    let current = match state.store.get(&key).await {
        Ok(current) => Some(current),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(Problem::from_store("Failed to find a resource", e)),
    };
    let title = if current.is_some() {
        "Could not update a resource"
    } else {
        "Failed to create a resource"
    };
    doc.validate().map_err(|e| Problem::from_api(title, e))?;

    let mut resource = crate::labels::with_computed_labels(doc.into_resource(Utc::now()));
    if let Spec::Mesh(spec) = &resource.spec {
        // A provided CA that cannot sign is refused before anything is
        // written, so the running mesh keeps its current CA.
        let violations =
            crate::mtls::check_ca_backends(state.store.as_ref(), &key.name, spec, Utc::now()).await;
        if !violations.is_empty() {
            return Err(Problem::invalid(title, &violations));
        }
    }
    if let Spec::MeshProxyPatch(spec) = &resource.spec {
        // kuma-api knows nothing of Envoy's types: values Envoy's API cannot
        // read are refused here rather than skipped on every proxy.
        let violations: Vec<Violation> = kuma_xds::generate::check_proxy_patch(&spec.default)
            .into_iter()
            .map(|(field, message)| Violation {
                field: format!("spec.default.{field}"),
                message,
            })
            .collect();
        if !violations.is_empty() {
            return Err(Problem::invalid(title, &violations));
        }
    }
    match current {
        Some(current) => {
            resource.meta.version = current.meta.version;
            resource.meta.creation_time = current.meta.creation_time;
            let updated = state
                .store
                .update(resource)
                .await
                .map_err(|e| Problem::from_store("Failed to update a resource", e))?;
            tracing::info!(%key, "resource updated");
            ensure_mesh_ca(state, &key, &updated).await?;
            Ok((StatusCode::OK, Json(json!({}))).into_response())
        }
        None => {
            let created = state
                .store
                .create(resource)
                .await
                .map_err(|e| Problem::from_store("Failed to create a resource", e))?;
            tracing::info!(%key, "resource created");
            if key.kind == Kind::Mesh {
                crate::defaults::ensure_mesh_policies(state.store.as_ref(), &created)
                    .await
                    .map_err(|e| Problem::from_store("Could not create default policies", e))?;
                ensure_mesh_ca(state, &key, &created).await?;
            }
            Ok((StatusCode::CREATED, Json(json!({}))).into_response())
        }
    }
}

/// Makes sure the builtin CA roots of a Mesh just written exist, so they
/// do once the request returns (the index would otherwise create them on the
/// Mesh's change event). Provided CAs were checked before the write.
async fn ensure_mesh_ca(
    state: &ApiState,
    key: &ResourceKey,
    mesh: &Resource,
) -> Result<(), Problem> {
    let Spec::Mesh(spec) = &mesh.spec else {
        return Ok(());
    };
    let backends = spec.mtls.iter().flat_map(|m| m.backends.iter());
    for backend in backends.filter(|b| b.type_ == "builtin") {
        crate::mtls::ensure_builtin(state.store.as_ref(), &key.name, backend, Utc::now())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, %key, "could not set up the mesh CA");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Could not set up the mesh CA",
                    e.to_string(),
                )
            })?;
    }
    Ok(())
}

/// JSON by default; YAML when the client says so.
fn read_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "request body is empty: expected a resource",
        ));
    }
    let is_yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("yaml"));
    let parsed = if is_yaml {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    let value =
        parsed.map_err(|e| Problem::bad_request(format!("could not parse resource: {e}")))?;
    if !value.is_object() {
        return Err(Problem::bad_request("a resource must be a JSON object"));
    }
    Ok(value)
}

/// The body must describe the resource the URL names.
fn check_matches_url(key: &ResourceKey, value: &Value) -> Result<(), Problem> {
    let text = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or("");
    let mut violations = Vec::new();
    let mut add = |field: &str, message: &str| {
        violations.push(Violation {
            field: field.into(),
            message: message.into(),
        })
    };
    if text("name") != key.name {
        add("name", "name from the URL has to be the same as in body");
    }
    if text("type") != key.kind.name() {
        add("type", "type from the URL has to be the same as in body");
    }
    if text("mesh") != key.mesh.as_deref().unwrap_or("") {
        add("mesh", "mesh from the URL has to be the same as in body");
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(TITLE_PROCESS, &violations))
    }
}
