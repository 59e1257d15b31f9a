//! Dataplanes with their ADS insights (`/meshes/{mesh}/dataplanes+insights`,
//! `/meshes/{mesh}/dataplanes/_overview`) and a proxy's live Envoy config
//! (`/meshes/{mesh}/dataplanes/{name}/xds`). Insights are this instance's
//! own (see [`crate::insights`]).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use kuma_api::resource::format_time;
use kuma_api::{Kind, Resource, ResourceKey, Spec};
use kuma_xds::server::ProxyId;
use serde_json::{Map, Value, json};

use super::list::ListRequest;
use super::{ApiState, Problem};

type ApiResult = Result<Response, Problem>;

const TITLE: &str = "Could not retrieve a resource";
const CONFIG_DUMP_TIMEOUT: Duration = Duration::from_secs(5);

/// Kuma's DataplaneOverview of one Dataplane.
fn overview(state: &ApiState, dp: &Resource) -> Value {
    let mesh = dp.meta.mesh.clone().unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), "DataplaneOverview".into());
    out.insert("mesh".into(), mesh.clone().into());
    out.insert("name".into(), dp.meta.name.clone().into());
    out.insert(
        "creationTime".into(),
        format_time(&dp.meta.creation_time).into(),
    );
    out.insert(
        "modificationTime".into(),
        format_time(&dp.meta.modification_time).into(),
    );
    if !dp.meta.labels.is_empty() {
        out.insert("labels".into(), json!(dp.meta.labels));
    }
    out.insert("dataplane".into(), dp.spec.to_json());
    let insight = state
        .insights
        .get(&ProxyId::new(mesh, dp.meta.name.clone()))
        .map(|i| i.to_json())
        .unwrap_or_else(|| json!({}));
    out.insert("dataplaneInsight".into(), insight);
    Value::Object(out)
}

/// Kuma's `tag=key:value` filter: some inbound (or the gateway) has the tag.
fn has_tag(dp: &Resource, key: &str, value: &str) -> bool {
    let Spec::Dataplane(spec) = &dp.spec else {
        return false;
    };
    let Some(net) = &spec.networking else {
        return false;
    };
    net.inbound
        .iter()
        .map(|i| &i.tags)
        .chain(net.gateway.as_ref().map(|g| &g.tags))
        .any(|tags| tags.get(key).is_some_and(|v| v == value))
}

pub async fn list(
    State(state): State<ApiState>,
    Path(mesh): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let req = ListRequest::parse(query.as_deref(), "/meshes/{mesh}/dataplanes+insights")?;
    super::resources::require_mesh(&state, &mesh).await?;
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let mut q = req.query(Kind::Dataplane, Some(&mesh));
    q.offset = 0;
    q.limit = None;
    let all = state
        .store
        .list(&q)
        .await
        .map_err(|e| Problem::from_store("Could not retrieve resources", e))?;
    let matching: Vec<&Resource> = all
        .items
        .iter()
        .filter(|dp| {
            pairs.iter().all(|(k, v)| match k.as_str() {
                "name" => dp.meta.name.contains(v.as_str()),
                "tag" => match v.split_once(':') {
                    Some((tk, tv)) => has_tag(dp, tk, tv),
                    None => true,
                },
                _ => true,
            })
        })
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .into_iter()
        .skip(req.offset)
        .take(req.size)
        .map(|dp| overview(&state, dp))
        .collect();
    let next = req.next_link(&headers, uri.path(), total);
    Ok(Json(json!({"total": total, "items": items, "next": next})).into_response())
}

async fn dataplane(state: &ApiState, mesh: &str, name: &str) -> Result<Resource, Problem> {
    super::resources::require_mesh(state, mesh).await?;
    state
        .store
        .get(&ResourceKey::in_mesh(Kind::Dataplane, mesh, name))
        .await
        .map_err(|e| Problem::from_store(TITLE, e))
}

pub async fn get(
    State(state): State<ApiState>,
    Path((mesh, name)): Path<(String, String)>,
) -> ApiResult {
    let dp = dataplane(&state, &mesh, &name).await?;
    Ok(Json(overview(&state, &dp)).into_response())
}

/// The proxy's Envoy config dump, read from its admin interface. Only
/// loopback is tried: the admin API is not meant to leave the proxy's host.
pub async fn xds(
    State(state): State<ApiState>,
    Path((mesh, name)): Path<(String, String)>,
) -> ApiResult {
    let dp = dataplane(&state, &mesh, &name).await?;
    let from_spec = match &dp.spec {
        Spec::Dataplane(d) => d
            .networking
            .as_ref()
            .and_then(|n| n.admin.as_ref())
            .and_then(|a| u16::try_from(a.port).ok())
            .filter(|p| *p != 0),
        _ => None,
    };
    let port = from_spec
        .or_else(|| {
            state
                .insights
                .get(&ProxyId::new(mesh.clone(), name.clone()))
                .and_then(|i| i.admin_port)
        })
        .unwrap_or(state.config.bootstrap_server.params.admin_port);
    let url = format!("http://127.0.0.1:{port}/config_dump");
    let unreachable = |detail: String| {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "Could not get the proxy's Envoy configuration",
            detail,
        )
    };
    let client = reqwest::Client::builder()
        .timeout(CONFIG_DUMP_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let response = client.get(&url).send().await.map_err(|e| {
        unreachable(format!(
            "Envoy admin of {mesh}/{name} is not reachable at {url}: {e}"
        ))
    })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(format!("reading {url}: {e}")))?;
    if !status.is_success() {
        return Err(unreachable(format!("{url} answered {status}")));
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
