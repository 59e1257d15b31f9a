//! `POST /tokens/dataplane` and `POST /tokens/user`: issue a token (Kuma's
//! request bodies, the token as plain text). Both are admin-only, which
//! [`super::auth`] enforces before these handlers run.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::User;
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

/// Kuma's UserTokenRequest.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserTokenRequest {
    name: String,
    groups: Vec<String>,
    #[serde(rename = "validFor")]
    valid_for: String,
}

pub async fn generate_user_token(State(state): State<ApiState>, body: Bytes) -> Response {
    if !state.config.api_server.authn.tokens.enable_issuer {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            TITLE,
            "issuing tokens using the control plane is disabled.",
        )
        .into_response();
    }
    let Ok(req) = serde_json::from_slice::<UserTokenRequest>(&body) else {
        return Problem::bad_request("could not parse the token request").into_response();
    };
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        "Resource is not valid",
    );
    if req.name.is_empty() {
        problem = problem.with_parameter("name", "cannot be empty");
    }
    let mut valid_for = None;
    if req.valid_for.is_empty() {
        problem = problem.with_parameter("validFor", "cannot be empty");
    } else {
        match kuma_api::duration::parse_duration(&req.valid_for) {
            Ok(d) if d.is_zero() => {
                problem = problem.with_parameter("validFor", "cannot be empty or nil");
            }
            Ok(d) => valid_for = Some(d),
            Err(e) => problem = problem.with_parameter("validFor", &format!("is invalid: {e}")),
        }
    }
    let Some(valid_for) = valid_for.filter(|_| problem.invalid_parameters.is_empty()) else {
        return problem.into_response();
    };
    let user = User {
        name: req.name,
        groups: req.groups,
    };
    match state.user_tokens.issue(&user, valid_for).await {
        Ok(token) => ([(header::CONTENT_TYPE, "text/plain")], token).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not issue a user token");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                TITLE,
                "Internal Server Error",
            )
            .into_response()
        }
    }
}
