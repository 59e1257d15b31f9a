//! The PostgreSQL store: shared state for several control plane replicas.
//!
//! Writes are ordinary transactions; each change also appends a row to
//! `resource_events` and calls `pg_notify` in the same transaction, so a
//! change and its event commit (or vanish) together. See `listener` for how
//! every process turns those notifications into [`ChangeEvent`]s.

use std::time::Duration;

use async_trait::async_trait;
use kuma_api::{Kind, Resource, ResourceKey};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, PgConnection, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::row::{self, KeyColumns, StoredRow};
use crate::{ChangeEvent, ListQuery, ResourceList, ResourceStore, StoreError};

mod listener;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The NOTIFY channel carrying resource changes.
pub(crate) const CHANNEL: &str = "kuma_resource_changes";
const EVENT_BUFFER: usize = 16 * 1024;

/// Where the PostgreSQL store lives and how to talk to it (Kuma's
/// `store.postgres` settings).
#[derive(Clone)]
pub struct PostgresConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub db_name: String,
    /// Upper bound of the connection pool.
    pub max_open_connections: u32,
    /// How long to wait for a connection before failing a call.
    pub connection_timeout: Duration,
    /// First wait before the event listener reconnects; doubles up to the max.
    pub min_reconnect_interval: Duration,
    pub max_reconnect_interval: Duration,
}

impl Default for PostgresConfig {
    /// Kuma's defaults.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 15432,
            user: "kuma".into(),
            password: "kuma".into(),
            db_name: "kuma".into(),
            max_open_connections: 50,
            connection_timeout: Duration::from_secs(5),
            min_reconnect_interval: Duration::from_secs(10),
            max_reconnect_interval: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    // Hand-written so the password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("db_name", &self.db_name)
            .field("max_open_connections", &self.max_open_connections)
            .field("connection_timeout", &self.connection_timeout)
            .field("min_reconnect_interval", &self.min_reconnect_interval)
            .field("max_reconnect_interval", &self.max_reconnect_interval)
            .finish()
    }
}

impl PostgresConfig {
    pub(crate) fn connect_options(&self, application_name: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.db_name)
            .application_name(application_name)
            .disable_statement_logging()
    }

    async fn pool(&self, application_name: &str, size: u32) -> Result<PgPool, StoreError> {
        Ok(PgPoolOptions::new()
            .max_connections(size.max(1))
            .acquire_timeout(self.connection_timeout)
            .connect_with(self.connect_options(application_name))
            .await?)
    }
}

/// The store on a shared PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    events: broadcast::Sender<ChangeEvent>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PostgresStore {
    /// Brings the schema up to the version this binary needs
    /// (`kuma-cp migrate up`). Safe to run from several processes at once.
    pub async fn migrate_up(cfg: &PostgresConfig) -> Result<(), StoreError> {
        let pool = cfg.pool("kuma-cp-migrate", 1).await?;
        MIGRATOR.run(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// Connects to a migrated database and starts following its changes.
    /// Refuses an un-migrated or older schema instead of guessing.
    pub async fn connect(cfg: &PostgresConfig) -> Result<Self, StoreError> {
        let pool = cfg.pool("kuma-cp", cfg.max_open_connections).await?;
        check_schema(&pool).await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let listener = listener::EventListener::start(cfg, events.clone()).await?;
        let span = tracing::info_span!("postgres_events", db = %cfg.db_name);
        let follow = tokio::spawn(tracing::Instrument::instrument(listener.run(), span));
        let prune = tokio::spawn(listener::prune_events(pool.clone()));
        Ok(Self {
            pool,
            events,
            tasks: vec![follow, prune],
        })
    }
}

/// The newest migration this binary knows.
fn required_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn check_schema(pool: &PgPool) -> Result<(), StoreError> {
    let required = required_schema_version();
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let found: i64 = if has_table {
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?
    } else {
        0
    };
    if found < required {
        return Err(StoreError::SchemaNotMigrated { found, required });
    }
    if found > required {
        tracing::warn!(
            found,
            required,
            "database schema is newer than this control plane"
        );
    }
    Ok(())
}

/// Records a change and notifies every listener, inside the caller's transaction.
async fn record(conn: &mut PgConnection, op: &str, cols: &KeyColumns) -> Result<(), StoreError> {
    sqlx::query(
        "WITH ev AS (INSERT INTO resource_events (op, type, mesh, name) VALUES ($1, $2, $3, $4) RETURNING seq) \
         SELECT pg_notify($5, json_build_object('seq', seq, 'op', $1::text, 'type', $2::text, 'mesh', $3::text, 'name', $4::text)::text) FROM ev",
    )
    .bind(op)
    .bind(cols.kind)
    .bind(&cols.mesh)
    .bind(&cols.name)
    .bind(CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn exists(conn: &mut PgConnection, cols: &KeyColumns) -> Result<bool, StoreError> {
    let found = sqlx::query("SELECT 1 FROM resources WHERE type = $1 AND mesh = $2 AND name = $3")
        .bind(cols.kind)
        .bind(&cols.mesh)
        .bind(&cols.name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

const COLUMNS: &str =
    "type, mesh, name, spec::text, labels::text, version, creation_time, modification_time";

fn stored_row(r: &PgRow) -> Result<StoredRow, sqlx::Error> {
    Ok(StoredRow {
        kind: r.try_get(0)?,
        mesh: r.try_get(1)?,
        name: r.try_get(2)?,
        spec: r.try_get(3)?,
        labels: r.try_get(4)?,
        version: r.try_get(5)?,
        creation_time: r.try_get(6)?,
        modification_time: r.try_get(7)?,
    })
}

#[async_trait]
impl ResourceStore for PostgresStore {
    async fn create(&self, resource: Resource) -> Result<Resource, StoreError> {
        let key = row::normalize(&resource.key());
        let cols = KeyColumns::of(&key);
        let now = row::now_micros();
        let mut tx = self.pool.begin().await?;
        if let Some(mesh) = cols.required_mesh(key.kind) {
            // FOR SHARE holds the mesh row until commit: a concurrent mesh
            // delete waits for us and then cascades over this resource too.
            let mesh_row = sqlx::query(
                "SELECT 1 FROM resources WHERE type = 'Mesh' AND mesh = '' AND name = $1 FOR SHARE",
            )
            .bind(mesh)
            .fetch_optional(&mut *tx)
            .await?;
            if mesh_row.is_none() {
                return Err(StoreError::MeshNotFound(cols.mesh));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO resources (type, mesh, name, spec, labels, version, creation_time, modification_time) \
             VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, 1, $6, $6) ON CONFLICT DO NOTHING",
        )
        .bind(cols.kind)
        .bind(&cols.mesh)
        .bind(&cols.name)
        .bind(row::spec_json(&resource.spec))
        .bind(row::labels_json(&resource.meta.labels))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(key));
        }
        record(&mut tx, "c", &cols).await?;
        tx.commit().await?;
        Ok(row::written(resource, &key, 1, now, now))
    }

    async fn update(&self, resource: Resource) -> Result<Resource, StoreError> {
        let key = row::normalize(&resource.key());
        let cols = KeyColumns::of(&key);
        let now = row::now_micros();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE resources SET spec = $4::jsonb, labels = $5::jsonb, version = version + 1, modification_time = $6 \
             WHERE type = $1 AND mesh = $2 AND name = $3 AND version = $7 \
             RETURNING version, creation_time",
        )
        .bind(cols.kind)
        .bind(&cols.mesh)
        .bind(&cols.name)
        .bind(row::spec_json(&resource.spec))
        .bind(row::labels_json(&resource.meta.labels))
        .bind(now)
        .bind(row::version_param(Some(resource.meta.version)))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            return Err(if exists(&mut tx, &cols).await? {
                StoreError::Conflict(key)
            } else {
                StoreError::NotFound(key)
            });
        };
        let version: i64 = updated.try_get(0)?;
        let creation_time: i64 = updated.try_get(1)?;
        record(&mut tx, "u", &cols).await?;
        tx.commit().await?;
        Ok(row::written(resource, &key, version, creation_time, now))
    }

    async fn delete(&self, key: &ResourceKey, version: Option<u64>) -> Result<(), StoreError> {
        let key = row::normalize(key);
        let cols = KeyColumns::of(&key);
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM resources WHERE type = $1 AND mesh = $2 AND name = $3 AND ($4::bigint IS NULL OR version = $4)",
        )
        .bind(cols.kind)
        .bind(&cols.mesh)
        .bind(&cols.name)
        .bind(row::version_param(version))
        .execute(&mut *tx)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(if exists(&mut tx, &cols).await? {
                StoreError::Conflict(key)
            } else {
                StoreError::NotFound(key)
            });
        }
        if key.kind == Kind::Mesh && !key.name.is_empty() {
            // Everything in the mesh goes with it, each with its own event,
            // contents before the mesh itself.
            sqlx::query(
                "WITH gone AS (DELETE FROM resources WHERE mesh = $1 RETURNING type, name), \
                 ev AS (INSERT INTO resource_events (op, type, mesh, name) \
                        SELECT 'd', type, $1, name FROM gone ORDER BY type, name RETURNING seq, type, name) \
                 SELECT pg_notify($2, json_build_object('seq', seq, 'op', 'd', 'type', type, 'mesh', $1::text, 'name', name)::text) \
                 FROM (SELECT * FROM ev ORDER BY seq) ordered",
            )
            .bind(&key.name)
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await?;
        }
        record(&mut tx, "d", &cols).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, key: &ResourceKey) -> Result<Resource, StoreError> {
        let cols = KeyColumns::of(key);
        let found = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM resources WHERE type = $1 AND mesh = $2 AND name = $3"
        ))
        .bind(cols.kind)
        .bind(&cols.mesh)
        .bind(&cols.name)
        .fetch_optional(&self.pool)
        .await?;
        match found {
            Some(r) => stored_row(&r)?.into_resource(),
            None => Err(StoreError::NotFound(row::normalize(key))),
        }
    }

    async fn list(&self, query: &ListQuery) -> Result<ResourceList, StoreError> {
        let mesh = match query.kind.scope() {
            kuma_api::Scope::Mesh => query.mesh.clone(),
            kuma_api::Scope::Global => None,
        };
        // All filters are always bound; NULL switches one off. `@>` is
        // containment: every requested label with exactly that value.
        let labels = (!query.labels.is_empty()).then(|| row::labels_json(&query.labels));
        let filter = "type = $1 AND ($2::text IS NULL OR mesh = $2) AND ($3::jsonb IS NULL OR labels @> $3::jsonb)";
        let limit = query.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        // One snapshot for the page and the count.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM resources WHERE {filter} ORDER BY mesh, name LIMIT $4 OFFSET $5"
        ))
        .bind(query.kind.name())
        .bind(&mesh)
        .bind(&labels)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM resources WHERE {filter}"))
                .bind(query.kind.name())
                .bind(&mesh)
                .bind(&labels)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let items = rows
            .iter()
            .map(|r| stored_row(r).map_err(StoreError::from)?.into_resource())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResourceList {
            items,
            total: usize::try_from(total).unwrap_or(0),
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }
}
