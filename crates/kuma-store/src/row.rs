//! The stored form of a resource, shared by both SQL backends: how a key maps
//! to columns and how a row turns back into a typed [`Resource`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Scope, Spec};

use crate::StoreError;

/// The columns of a key. Global kinds are stored with mesh `''`, whatever the
/// caller passed, so a global resource has exactly one identity.
#[derive(Debug, Clone)]
pub(crate) struct KeyColumns {
    pub kind: &'static str,
    pub mesh: String,
    pub name: String,
}

impl KeyColumns {
    pub fn of(key: &ResourceKey) -> Self {
        let mesh = match key.kind.scope() {
            Scope::Global => String::new(),
            Scope::Mesh => key.mesh.clone().unwrap_or_default(),
        };
        Self {
            kind: key.kind.name(),
            mesh,
            name: key.name.clone(),
        }
    }

    /// The mesh a mesh-scoped kind must find before it is stored.
    pub fn required_mesh(&self, kind: Kind) -> Option<&str> {
        (kind.scope() == Scope::Mesh).then_some(self.mesh.as_str())
    }
}

/// Turns stored columns back into a key.
pub(crate) fn key_from_columns(
    kind: &str,
    mesh: &str,
    name: &str,
) -> Result<ResourceKey, StoreError> {
    let kind = Kind::from_name(kind).ok_or_else(|| StoreError::Corrupt {
        key: format!("{kind} {mesh}/{name}"),
        reason: format!("unknown resource type {kind:?}"),
    })?;
    let mesh = match kind.scope() {
        Scope::Global => None,
        Scope::Mesh => Some(mesh.to_string()),
    };
    Ok(ResourceKey {
        kind,
        mesh,
        name: name.to_string(),
    })
}

/// The current time as stored: microsecond precision, so what a write
/// returns equals what a later read returns.
pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn time_from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn spec_json(spec: &Spec) -> String {
    spec.to_json().to_string()
}

pub(crate) fn labels_json(labels: &BTreeMap<String, String>) -> String {
    // A map of strings always encodes.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_string())
}

/// One row as read from either backend.
pub(crate) struct StoredRow {
    pub kind: String,
    pub mesh: String,
    pub name: String,
    pub spec: String,
    pub labels: String,
    pub version: i64,
    pub creation_time: i64,
    pub modification_time: i64,
}

impl StoredRow {
    /// Decodes the row; anything that no longer parses is reported as
    /// [`StoreError::Corrupt`] rather than a panic, so one bad row cannot
    /// take the control plane down.
    pub fn into_resource(self) -> Result<Resource, StoreError> {
        let key = key_from_columns(&self.kind, &self.mesh, &self.name)?;
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.to_string(),
            reason,
        };
        let spec_value: serde_json::Value =
            serde_json::from_str(&self.spec).map_err(|e| corrupt(format!("spec: {e}")))?;
        let spec =
            Spec::from_json(key.kind, spec_value).map_err(|e| corrupt(format!("spec: {e}")))?;
        let labels: BTreeMap<String, String> =
            serde_json::from_str(&self.labels).map_err(|e| corrupt(format!("labels: {e}")))?;
        let version = u64::try_from(self.version)
            .map_err(|_| corrupt(format!("negative version {}", self.version)))?;
        Ok(Resource {
            meta: ResourceMeta {
                mesh: key.mesh,
                name: key.name,
                labels,
                creation_time: time_from_micros(self.creation_time),
                modification_time: time_from_micros(self.modification_time),
                version,
            },
            spec,
        })
    }
}

/// The resource as the store returns it after a successful write.
pub(crate) fn written(
    mut resource: Resource,
    key: &ResourceKey,
    version: i64,
    creation_time: i64,
    modification_time: i64,
) -> Resource {
    resource.meta.mesh = key.mesh.clone();
    resource.meta.version = u64::try_from(version).unwrap_or(0);
    resource.meta.creation_time = time_from_micros(creation_time);
    resource.meta.modification_time = time_from_micros(modification_time);
    resource
}

/// Keys the version argument of delete as SQL sees it.
pub(crate) fn version_param(version: Option<u64>) -> Option<i64> {
    version.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The key as the store reports it: global kinds never carry a mesh.
pub(crate) fn normalize(key: &ResourceKey) -> ResourceKey {
    match key.kind.scope() {
        Scope::Global => ResourceKey {
            kind: key.kind,
            mesh: None,
            name: key.name.clone(),
        },
        Scope::Mesh => key.clone(),
    }
}
