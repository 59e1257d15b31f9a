use kuma_api::ResourceKey;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(ResourceKey),
    #[error("{0} already exists")]
    AlreadyExists(ResourceKey),
    /// The stored version is not the one the writer read.
    #[error("{0} was changed concurrently: version mismatch")]
    Conflict(ResourceKey),
    /// A mesh-scoped resource names a mesh that does not exist.
    #[error("mesh {0:?} does not exist")]
    MeshNotFound(String),
    /// A stored row that can no longer be read as a resource.
    #[error("stored resource {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("store backend failed")]
    Backend(#[source] sqlx::Error),
    #[error("schema migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e)
    }
}
