//! The resource store: one trait, change events, and two durable backends
//! (embedded SQLite, the default, and PostgreSQL for shared production state).

use std::collections::BTreeMap;

use async_trait::async_trait;
use kuma_api::{Kind, Resource, ResourceKey};

pub use error::StoreError;
pub use postgres::{PostgresConfig, PostgresStore};
pub use sqlite::SqliteStore;

mod error;
pub mod postgres;
mod row;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

/// What changed in the store. Subscribers use these to keep in-memory views current.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeEvent {
    Created(ResourceKey),
    Updated(ResourceKey),
    Deleted(ResourceKey),
}

impl ChangeEvent {
    pub fn key(&self) -> &ResourceKey {
        match self {
            ChangeEvent::Created(k) | ChangeEvent::Updated(k) | ChangeEvent::Deleted(k) => k,
        }
    }
}

/// Which resources a list call wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub kind: Kind,
    /// `None` lists across all meshes (or the global kind's only scope).
    pub mesh: Option<String>,
    /// Every label here must be present with this exact value.
    pub labels: BTreeMap<String, String>,
    /// Items to skip, counted in the store's order (mesh, then name).
    pub offset: usize,
    /// At most this many items; `None` for all.
    pub limit: Option<usize>,
}

impl ListQuery {
    pub fn all(kind: Kind) -> Self {
        Self {
            kind,
            mesh: None,
            labels: BTreeMap::new(),
            offset: 0,
            limit: None,
        }
    }

    pub fn in_mesh(kind: Kind, mesh: &str) -> Self {
        Self {
            mesh: Some(mesh.to_string()),
            ..Self::all(kind)
        }
    }
}

/// One page of a list, and how many items match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceList {
    pub items: Vec<Resource>,
    pub total: usize,
}

/// The durable truth about resources.
///
/// Writes are acknowledged only once durable. Versions make concurrent writers
/// safe: an update or delete naming a version other than the stored one fails
/// with [`StoreError::Conflict`] and changes nothing.
#[async_trait]
pub trait ResourceStore: Send + Sync + 'static {
    /// Stores a new resource; times are set to now and the version to 1.
    /// Fails with `AlreadyExists` if the key is taken.
    async fn create(&self, resource: Resource) -> Result<Resource, StoreError>;

    /// Replaces the spec and labels of an existing resource whose stored
    /// version is `resource.meta.version`; bumps the version and the
    /// modification time, keeps the creation time.
    async fn update(&self, resource: Resource) -> Result<Resource, StoreError>;

    /// Deletes a resource. With `version`, only if it is still that version.
    /// Deleting a Mesh deletes every resource inside it, in one transaction.
    async fn delete(&self, key: &ResourceKey, version: Option<u64>) -> Result<(), StoreError>;

    async fn get(&self, key: &ResourceKey) -> Result<Resource, StoreError>;

    async fn list(&self, query: &ListQuery) -> Result<ResourceList, StoreError>;

    /// Events for every change made from now on, by this process or (for
    /// shared backends) by any other process on the same store.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeEvent>;
}
