//! Policy inspection: `GET /meshes/{mesh}/dataplanes/{name}/_rules` (what
//! every targetRef policy means for one proxy; `meshgateways/{name}/_rules`
//! for a builtin gateway) and
//! `GET /meshes/{mesh}/{policies}/{name}/_resources/dataplanes` (the proxies
//! one policy selects). The computation is kuma-policy's; this reads the
//! mesh's resources from the store and speaks HTTP.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kuma_api::kinds::mesh::MeshServicesMode;
use kuma_api::{Kind, Resource, ResourceKey, Scope, Spec};
use kuma_policy::inspect::{MeshInspector, Meta};
use kuma_store::ListQuery;
use serde::Serialize;

use super::list::ListRequest;
use super::resources::require_mesh;
use super::{ApiState, Problem};

type ApiResult = Result<Response, Problem>;

const TITLE_MESH: &str = "Failed to retrieve Mesh";
const TITLE_POLICY: &str = "Could not retrieve policy";
const TITLE_INSPECT: &str = "failed inspect";

/// `InspectDataplanesForPolicyResponse`.
#[derive(Serialize)]
struct DataplanesForPolicy {
    total: usize,
    items: Vec<Meta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Whether the inspector needs resources of `kind`: the policies, the
/// destinations `to` entries resolve to, and the MeshGateways builtin
/// gateways serve.
fn inspected(kind: Kind) -> bool {
    kind.scope() == Scope::Mesh
        && (kind.is_policy()
            || matches!(
                kind,
                Kind::MeshService
                    | Kind::MeshExternalService
                    | Kind::MeshMultiZoneService
                    | Kind::MeshGateway
            ))
}

async fn list_all(state: &ApiState, kind: Kind, mesh: &str) -> Result<Vec<Resource>, Problem> {
    let query = ListQuery {
        kind,
        mesh: Some(mesh.to_string()),
        labels: Default::default(),
        offset: 0,
        limit: None,
    };
    state
        .store
        .list(&query)
        .await
        .map(|list| list.items)
        .map_err(|e| Problem::from_store(TITLE_INSPECT, e))
}

/// Everything of `mesh` the inspector reads, ready to answer.
async fn inspector(state: &ApiState, mesh: &str) -> Result<MeshInspector, Problem> {
    let mesh_resource = state
        .store
        .get(&ResourceKey::global(Kind::Mesh, mesh))
        .await
        .map_err(|e| Problem::from_store(TITLE_MESH, e))?;
    let exclusive = matches!(
        &mesh_resource.spec,
        Spec::Mesh(spec) if spec.mesh_services_mode() == MeshServicesMode::Exclusive
    );
    let mut resources = Vec::new();
    for kind in Kind::ALL.iter().copied().filter(|k| inspected(*k)) {
        resources.extend(list_all(state, kind, mesh).await?);
    }
    Ok(MeshInspector::new(mesh, exclusive, &resources))
}

/// `GET /meshes/{mesh}/dataplanes/{name}/_rules`.
pub async fn rules(
    State(state): State<ApiState>,
    Path((mesh, name)): Path<(String, String)>,
) -> ApiResult {
    require_mesh(&state, &mesh).await?;
    let dataplane = state
        .store
        .get(&ResourceKey::new(Kind::Dataplane, Some(&mesh), &name))
        .await
        .map_err(|e| Problem::from_store("Could not retrieve Dataplane", e))?;
    let inspector = inspector(&state, &mesh).await?;
    let rules = inspector.rules(&dataplane).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unsupported resource type",
            e.to_string(),
        )
    })?;
    Ok(Json(rules).into_response())
}

/// `GET /meshes/{mesh}/meshgateways/{name}/_rules`: the rules of a builtin
/// gateway proxy the MeshGateway's first selector describes.
pub async fn gateway_rules(
    State(state): State<ApiState>,
    Path((mesh, name)): Path<(String, String)>,
) -> ApiResult {
    require_mesh(&state, &mesh).await?;
    let gateway = state
        .store
        .get(&ResourceKey::new(Kind::MeshGateway, Some(&mesh), &name))
        .await
        .map_err(|e| Problem::from_store("Could not retrieve MeshGateway", e))?;
    let inspector = inspector(&state, &mesh).await?;
    let rules = inspector.gateway_rules(&gateway).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid MeshGateway",
            "no selectors on MeshGateway this is not supported",
        )
    })?;
    Ok(Json(rules).into_response())
}

/// `GET /meshes/{mesh}/{plural}/{name}/_resources/dataplanes`: paged with
/// `size`/`offset`, `name` keeps Dataplanes whose name contains it.
pub async fn dataplanes_for_policy(
    State(state): State<ApiState>,
    Path((mesh, plural, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let Some(kind) = Kind::from_plural(&plural) else {
        return Err(Problem::not_found("Page not found")
            .with_detail(format!("unknown resource type {plural:?}")));
    };
    if !kind.is_policy() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            TITLE_POLICY,
            format!("{} is not a policy", kind.name()),
        ));
    }
    let route = format!(
        "/meshes/{{mesh}}/{}/{{name}}/_resources/dataplanes",
        kind.plural()
    );
    let req = ListRequest::parse(query.as_deref(), &route)?;
    let name_contains = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    require_mesh(&state, &mesh).await?;
    let policy = state
        .store
        .get(&ResourceKey::new(kind, Some(&mesh), &name))
        .await
        .map_err(|e| Problem::from_store(TITLE_POLICY, e))?;
    let inspector = inspector(&state, &mesh).await?;
    let mut dataplanes = list_all(&state, Kind::Dataplane, &mesh).await?;
    dataplanes.retain(|d| d.meta.name.contains(&name_contains));
    let selected = inspector.selected_by(&policy, &dataplanes).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            TITLE_INSPECT,
            e.to_string(),
        )
    })?;
    let total = selected.len();
    let items = selected
        .into_iter()
        .skip(req.offset)
        .take(req.size)
        .map(Meta::of)
        .collect();
    let next = req.next_link(&headers, uri.path(), total);
    Ok(Json(DataplanesForPolicy { total, items, next }).into_response())
}
