//! Kuma's resource model: every resource kind of Universal mode with a typed
//! spec, the registry of kinds, and validation reporting field-path violations.
//!
//! No I/O happens here.

pub mod duration;
pub mod error;
pub mod kind;
pub mod kinds;
pub mod name;
pub mod policies;
pub mod resource;
pub mod template;
pub mod validation;

pub use error::ApiError;
pub use kind::{Kind, KindDescriptor, Layout, Scope, Spec};
pub use resource::{
    Resource, ResourceDocument, ResourceKey, ResourceMeta, format_time, yaml_documents,
};
pub use validation::{FieldPath, Validate, ValidationContext, Violation, Violations};
