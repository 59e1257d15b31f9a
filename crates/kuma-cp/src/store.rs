//! Opens the store the configuration names.

use std::sync::Arc;

use anyhow::Context;
use kuma_store::{PostgresConfig, PostgresStore, ResourceStore, SqliteStore, StoreError};

use crate::config::{Config, PostgresStoreConfig, StoreType};

mod metered;

pub use metered::MeteredStore;

/// The embedded store's file inside the work dir.
pub const EMBEDDED_DB_FILE: &str = "kuma.db";

/// The configured store, ready for use. PostgreSQL must already be migrated
/// (`kuma-cp migrate up`); the embedded store migrates itself.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn ResourceStore>> {
    match config.store.store_type {
        StoreType::Memory => Ok(Arc::new(
            SqliteStore::in_memory()
                .await
                .context("could not open the memory store")?,
        )),
        StoreType::Embedded => {
            let dir = config.general.effective_work_dir();
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("could not create work dir {}", dir.display()))?;
            let path = dir.join(EMBEDDED_DB_FILE);
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("could not open the embedded store {}", path.display()))?;
            tracing::info!(path = %path.display(), "embedded store opened");
            Ok(Arc::new(store))
        }
        StoreType::Postgres => {
            let pg = &config.store.postgres;
            match PostgresStore::connect(&postgres_config(pg)).await {
                Ok(store) => {
                    tracing::info!(host = %pg.host, port = pg.port, db = %pg.db_name, "postgres store connected");
                    Ok(Arc::new(store))
                }
                Err(e @ StoreError::SchemaNotMigrated { .. }) => Err(anyhow::anyhow!(
                    "{e}. The PostgreSQL database {:?} is not migrated to the version this kuma-cp needs; run `kuma-cp migrate up` with the same configuration first",
                    pg.db_name
                )),
                Err(e) => Err(anyhow::Error::new(e).context(format!(
                    "could not connect to PostgreSQL at {}:{} (database {:?})",
                    pg.host, pg.port, pg.db_name
                ))),
            }
        }
    }
}

/// Applies pending schema migrations (`kuma-cp migrate up`).
pub async fn migrate_up(config: &Config) -> anyhow::Result<()> {
    match config.store.store_type {
        StoreType::Postgres => {
            let pg = &config.store.postgres;
            PostgresStore::migrate_up(&postgres_config(pg))
                .await
                .with_context(|| {
                    format!(
                        "could not migrate PostgreSQL at {}:{} (database {:?})",
                        pg.host, pg.port, pg.db_name
                    )
                })
        }
        other => anyhow::bail!(
            "`migrate up` applies to store type \"postgres\" only (store.type / KUMA_STORE_TYPE is {:?}); the embedded store migrates itself on start",
            format!("{other:?}").to_ascii_lowercase()
        ),
    }
}

pub fn postgres_config(pg: &PostgresStoreConfig) -> PostgresConfig {
    PostgresConfig {
        host: pg.host.clone(),
        port: pg.port,
        user: pg.user.clone(),
        password: pg.password.clone(),
        db_name: pg.db_name.clone(),
        // Kuma's 0 means unlimited; a pool needs a bound.
        max_open_connections: if pg.max_open_connections == 0 {
            100
        } else {
            pg.max_open_connections
        },
        ..PostgresConfig::default()
    }
}
