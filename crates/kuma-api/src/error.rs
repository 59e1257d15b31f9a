//! The one error type at this crate's boundary.

use crate::validation::Violation;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The text is not a YAML/JSON object we can read at all.
    #[error("could not parse resource: {0}")]
    Malformed(String),
    /// `type:` names no kind we know.
    #[error("unknown type {0:?}")]
    UnknownKind(String),
    /// The document was read but breaks the rules; every violation is listed.
    #[error("Resource is not valid")]
    Invalid(Vec<Violation>),
}

impl ApiError {
    /// The violations, for errors that have them.
    pub fn violations(&self) -> &[Violation] {
        match self {
            ApiError::Invalid(v) => v,
            _ => &[],
        }
    }
}
