//! `POST /tokens/dataplane`: issues a dataplane token (Kuma's request body,
//! the token as plain text).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiState, Problem};
use crate::tokens::{DEFAULT_VALID_FOR, DataplaneIdentity, TokenError};

const TITLE: &str = "Could not issue a token";

/// Kuma's DataplaneTokenRequest.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DataplaneTokenRequest {
    name: String,
    mesh: String,
    tags: BTreeMap<String, Vec<String>>,
    #[serde(rename = "type")]
    proxy_type: String,
    #[serde(rename = "validFor")]
    valid_for: String,
}

pub async fn generate_dataplane_token(State(state): State<ApiState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<DataplaneTokenRequest>(&body) else {
        return Problem::bad_request("could not parse the token request").into_response();
    };
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        "Resource is not valid",
    );
    if req.mesh.is_empty() {
        problem = problem.with_parameter("mesh", "cannot be empty");
    }
    let valid_for = if req.valid_for.is_empty() {
        Some(DEFAULT_VALID_FOR)
    } else {
        match kuma_api::duration::parse_duration(&req.valid_for) {
            Ok(d) => Some(d),
            Err(e) => {
                problem = problem.with_parameter("validFor", &format!("is invalid: {e}"));
                None
            }
        }
    };
    if !req.proxy_type.is_empty() && req.proxy_type != "dataplane" {
        problem = problem.with_parameter(
            "type",
            &format!("{} is not a valid proxy type", req.proxy_type),
        );
    }
    let Some(valid_for) = valid_for.filter(|_| problem.invalid_parameters.is_empty()) else {
        return problem.into_response();
    };
    let identity = DataplaneIdentity {
        name: req.name,
        mesh: req.mesh,
        tags: req
            .tags
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect::<BTreeSet<_>>()))
            .collect(),
        proxy_type: req.proxy_type,
    };
    match state.tokens.issue(&identity, valid_for).await {
        Ok(token) => ([(header::CONTENT_TYPE, "text/plain")], token).into_response(),
        Err(TokenError::MeshNotFound(mesh)) => Problem::new(
            StatusCode::NOT_FOUND,
            TITLE,
            format!("mesh of name {mesh} is not found"),
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not issue a dataplane token");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                TITLE,
                "Internal Server Error",
            )
            .into_response()
        }
    }
}
