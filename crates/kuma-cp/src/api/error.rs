//! Kuma's error body (AIP-193 plus the legacy `details`/`causes` fields that
//! older clients still read), and the mapping from our errors to it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kuma_api::{ApiError, Violation};
use kuma_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidParameter {
    pub field: String,
    pub reason: String,
}

/// One error response. The legacy fields are derived when it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub invalid_parameters: Vec<InvalidParameter>,
}

/// The body as sent: Kuma's field order, and the deprecated copies
/// (`details`, `causes`) that older clients still read.
#[derive(Serialize)]
struct WireProblem<'a> {
    #[serde(rename = "type")]
    problem_type: &'static str,
    status: u16,
    title: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    invalid_parameters: &'a [InvalidParameter],
    details: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Cause<'a> {
    field: &'a str,
    message: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status: status.as_u16(),
            title: title.into(),
            detail: detail.into(),
            invalid_parameters: Vec::new(),
        }
    }

    pub fn not_found(title: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, title, "Not found")
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// 400 "Resource is not valid", listing every violation.
    pub fn invalid(title: impl Into<String>, violations: &[Violation]) -> Self {
        let mut p = Self::new(StatusCode::BAD_REQUEST, title, "Resource is not valid");
        for v in violations {
            p = p.with_parameter(&v.field, &v.message);
        }
        p
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn with_parameter(mut self, field: &str, reason: &str) -> Self {
        self.invalid_parameters.push(InvalidParameter {
            field: field.into(),
            reason: reason.into(),
        });
        self
    }

    /// A store failure, titled by what the handler was doing.
    pub fn from_store(title: &str, err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => Self::not_found(title),
            StoreError::AlreadyExists(_) | StoreError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "Conflict", err.to_string())
            }
            StoreError::MeshNotFound(mesh) => {
                Self::new(StatusCode::BAD_REQUEST, title, "Mesh is not found")
                    .with_parameter("mesh", &format!("mesh of name {mesh} is not found"))
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "{title}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    title,
                    "Internal Server Error",
                )
            }
        }
    }

    /// A document that could not be read or is not valid.
    pub fn from_api(title: &str, err: ApiError) -> Self {
        match err {
            ApiError::Invalid(violations) => Self::invalid(title, &violations),
            ApiError::UnknownKind(kind) => {
                Self::new(StatusCode::BAD_REQUEST, title, "Resource is not valid")
                    .with_parameter("type", &format!("unknown type {kind:?}"))
            }
            ApiError::Malformed(msg) => Self::bad_request(msg),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let wire = WireProblem {
            problem_type: "/std-errors",
            status: self.status,
            title: &self.title,
            detail: &self.detail,
            invalid_parameters: &self.invalid_parameters,
            details: &self.detail,
            causes: self
                .invalid_parameters
                .iter()
                .map(|p| Cause {
                    field: &p.field,
                    message: &p.reason,
                })
                .collect(),
        };
        (status, Json(wire)).into_response()
    }
}
