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
    /// A write was part of a batch whose commit failed; nothing of it is stored.
    #[error("store write was not committed: {0}")]
    NotCommitted(String),
    /// The store has shut down (its writer task is gone).
    #[error("store is closed")]
    Closed,
    #[error("schema migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// The database schema is older than this binary needs.
    #[error(
        "database schema is at version {found} but version {required} is required: run `kuma-cp migrate up`"
    )]
    SchemaNotMigrated { found: i64, required: i64 },
    /// Invalid store configuration (for example a bad file path).
    #[error("invalid store configuration: {0}")]
    Config(String),
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
