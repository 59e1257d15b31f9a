//! The REST API (HTTP 5681, HTTPS 5682): Kuma's paths, bodies, error shapes
//! and access rules (see [`auth`]).

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kuma_store::ResourceStore;

use crate::config::Config;
use crate::insights::Insights;
use crate::tokens::DataplaneTokens;

pub mod auth;
mod error;
mod index;
mod insights;
mod inspect;
mod list;
pub mod listeners;
mod resources;
mod tokens;

pub use error::Problem;
pub use index::ServerInfo;

/// The largest request body accepted; Kuma resources are small, this stops
/// a client from making the server buffer arbitrary amounts.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn ResourceStore>,
    pub config: Arc<Config>,
    pub info: Arc<index::ServerInfo>,
    pub tokens: Arc<DataplaneTokens>,
    pub user_tokens: Arc<auth::UserTokens>,
    pub insights: Arc<Insights>,
}

impl ApiState {
    /// A state of its own (no data plane server shares its insights).
    pub fn new(store: Arc<dyn ResourceStore>, config: Config) -> Self {
        let info = Arc::new(index::ServerInfo::detect());
        Self {
            tokens: Arc::new(DataplaneTokens::new(store.clone())),
            user_tokens: Arc::new(auth::UserTokens::new(store.clone())),
            insights: Arc::new(Insights::new(info.instance_id.clone())),
            store,
            config: Arc::new(config),
            info,
        }
    }
}

/// Every route, behind authentication and Kuma's access rules. Serve it
/// with `ConnectInfo<SocketAddr>` so loopback callers are recognized;
/// without it every caller is treated as remote.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(index::index))
        .route("/config", get(index::config))
        .route("/_resources", get(index::resource_types))
        .route("/policies", get(index::policies))
        .route("/tokens/dataplane", post(tokens::generate_dataplane_token))
        .route("/tokens/user", post(tokens::generate_user_token))
        .route("/meshes/{mesh}/dataplanes+insights", get(insights::list))
        .route("/meshes/{mesh}/dataplanes/_overview", get(insights::list))
        .route(
            "/meshes/{mesh}/dataplanes+insights/{name}",
            get(insights::get),
        )
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_overview",
            get(insights::get),
        )
        .route("/meshes/{mesh}/dataplanes/{name}/xds", get(insights::xds))
        .route(
            "/meshes/{mesh}/dataplanes/{name}/_rules",
            get(inspect::rules),
        )
        .route(
            "/meshes/{mesh}/meshgateways/{name}/_rules",
            get(inspect::gateway_rules),
        )
        .route(
            "/meshes/{mesh}/{plural}/{name}/_resources/dataplanes",
            get(inspect::dataplanes_for_policy),
        )
        .route("/{plural}", get(resources::list_top))
        .route(
            "/{plural}/{name}",
            get(resources::get_global)
                .put(resources::put_global)
                .delete(resources::delete_global),
        )
        .route("/meshes/{mesh}/{plural}", get(resources::list_in_mesh))
        .route(
            "/meshes/{mesh}/{plural}/{name}",
            get(resources::get_in_mesh)
                .put(resources::put_in_mesh)
                .delete(resources::delete_in_mesh),
        )
        // Applies to the routes above only: add new routes above this line.
        .route_layer(axum::middleware::from_fn(auth::authorize))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

async fn method_not_allowed(method: Method) -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not Allowed",
        format!("method {method} is not allowed on this path"),
    )
    .into_response()
}

async fn not_found() -> Response {
    Problem::not_found("Page not found").into_response()
}
