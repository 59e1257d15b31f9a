//! The single writer of an embedded store.
//!
//! SQLite admits one writer at a time, so instead of many connections queuing
//! on the database lock, every write is sent to one task owning one
//! connection. The task takes everything queued (up to [`MAX_BATCH`]) and
//! applies it in a single transaction: one commit, one fsync, for the batch.
//! Each write is a single statement (atomic on its own) except a mesh delete,
//! which runs inside a SAVEPOINT; a write refused for a domain reason
//! (conflict, not found, ...) changes nothing and leaves the others intact.
//! Callers are answered, and events published, only after the commit.

use kuma_api::{Kind, Resource, ResourceKey};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::row::{self, KeyColumns};
use crate::{ChangeEvent, StoreError};

/// Upper bound on writes per transaction, so one commit never holds the
/// queue for long.
pub(crate) const MAX_BATCH: usize = 512;

#[allow(clippy::large_enum_variant)] // as for `Outcome`
pub(crate) enum WriteOp {
    Create(Resource, oneshot::Sender<Result<Resource, StoreError>>),
    Update(Resource, oneshot::Sender<Result<Resource, StoreError>>),
    Delete(
        ResourceKey,
        Option<u64>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
}

/// What one write produced, held until the batch commits.
// Most outcomes carry a resource; boxing it would only add an allocation
// per write to values that live for one batch.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Resource(
        oneshot::Sender<Result<Resource, StoreError>>,
        Result<Resource, StoreError>,
    ),
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

impl Outcome {
    fn answer(self) {
        // A caller that gave up waiting is not an error of the store.
        match self {
            Outcome::Resource(tx, r) => {
                let _ = tx.send(r);
            }
            Outcome::Unit(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }

    /// Replaces a success with the commit failure: nothing was stored.
    fn abort(self, reason: &str) {
        let failed = || StoreError::NotCommitted(reason.to_string());
        match self {
            Outcome::Resource(tx, Ok(_)) => {
                let _ = tx.send(Err(failed()));
            }
            Outcome::Unit(tx, Ok(())) => {
                let _ = tx.send(Err(failed()));
            }
            other => other.answer(),
        }
    }
}

pub(crate) async fn run(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<WriteOp>,
    events: broadcast::Sender<ChangeEvent>,
) {
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        apply_batch(&mut conn, std::mem::take(&mut batch), &events).await;
    }
    // Every sender is gone: the store was dropped. Close cleanly so the WAL
    // is checkpointed.
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the embedded store failed");
    }
}

async fn apply_batch(
    conn: &mut SqliteConnection,
    batch: Vec<WriteOp>,
    events: &broadcast::Sender<ChangeEvent>,
) {
    let mut outcomes = Vec::new();
    let mut changes = Vec::new();
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let reason = e.to_string();
        for op in batch {
            refuse(op, &reason);
        }
        return;
    }
    for op in batch {
        let outcome = match op {
            WriteOp::Create(r, tx) => Outcome::Resource(tx, create(conn, r, &mut changes).await),
            WriteOp::Update(r, tx) => Outcome::Resource(tx, update(conn, r, &mut changes).await),
            WriteOp::Delete(key, version, tx) => {
                Outcome::Unit(tx, delete(conn, &key, version, &mut changes).await)
            }
        };
        outcomes.push(outcome);
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => {
            for change in changes {
                // No subscribers is fine.
                let _ = events.send(change);
            }
            for outcome in outcomes {
                outcome.answer();
            }
        }
        Err(e) => {
            tracing::error!(error = %e, writes = outcomes.len(), "commit of a write batch failed");
            if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                tracing::debug!(error = %e, "rollback after failed commit");
            }
            let reason = e.to_string();
            for outcome in outcomes {
                outcome.abort(&reason);
            }
        }
    }
}

fn refuse(op: WriteOp, reason: &str) {
    let failed = || StoreError::NotCommitted(reason.to_string());
    match op {
        WriteOp::Create(_, tx) | WriteOp::Update(_, tx) => {
            let _ = tx.send(Err(failed()));
        }
        WriteOp::Delete(_, _, tx) => {
            let _ = tx.send(Err(failed()));
        }
    }
}

async fn exists(conn: &mut SqliteConnection, cols: &KeyColumns) -> Result<bool, StoreError> {
    let found = sqlx::query("SELECT 1 FROM resources WHERE type = ?1 AND mesh = ?2 AND name = ?3")
        .bind(cols.kind)
        .bind(&cols.mesh)
        .bind(&cols.name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

async fn create(
    conn: &mut SqliteConnection,
    resource: Resource,
    changes: &mut Vec<ChangeEvent>,
) -> Result<Resource, StoreError> {
    let key = row::normalize(&resource.key());
    let cols = KeyColumns::of(&key);
    let now = row::now_micros();
    // The mesh check and the insert are one statement, inside the batch
    // transaction of the only writer: no mesh delete can slip between them.
    let inserted = sqlx::query(
        "INSERT INTO resources (type, mesh, name, spec, labels, version, creation_time, modification_time) \
         SELECT ?1, ?2, ?3, ?4, ?5, 1, ?6, ?6 \
         WHERE ?7 = 0 OR EXISTS (SELECT 1 FROM resources WHERE type = 'Mesh' AND mesh = '' AND name = ?2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(cols.kind)
    .bind(&cols.mesh)
    .bind(&cols.name)
    .bind(row::spec_json(&resource.spec))
    .bind(row::labels_json(&resource.meta.labels))
    .bind(now)
    .bind(i64::from(cols.required_mesh(key.kind).is_some()))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(if exists(conn, &cols).await? {
            StoreError::AlreadyExists(key)
        } else {
            StoreError::MeshNotFound(cols.mesh)
        });
    }
    changes.push(ChangeEvent::Created(key.clone()));
    Ok(row::written(resource, &key, 1, now, now))
}

async fn update(
    conn: &mut SqliteConnection,
    resource: Resource,
    changes: &mut Vec<ChangeEvent>,
) -> Result<Resource, StoreError> {
    let key = row::normalize(&resource.key());
    let cols = KeyColumns::of(&key);
    let now = row::now_micros();
    let updated = sqlx::query(
        "UPDATE resources SET spec = ?4, labels = ?5, version = version + 1, modification_time = ?6 \
         WHERE type = ?1 AND mesh = ?2 AND name = ?3 AND version = ?7 \
         RETURNING version, creation_time",
    )
    .bind(cols.kind)
    .bind(&cols.mesh)
    .bind(&cols.name)
    .bind(row::spec_json(&resource.spec))
    .bind(row::labels_json(&resource.meta.labels))
    .bind(now)
    .bind(row::version_param(Some(resource.meta.version)))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(updated) = updated else {
        return Err(if exists(conn, &cols).await? {
            StoreError::Conflict(key)
        } else {
            StoreError::NotFound(key)
        });
    };
    let version: i64 = updated.try_get(0)?;
    let creation_time: i64 = updated.try_get(1)?;
    changes.push(ChangeEvent::Updated(key.clone()));
    Ok(row::written(resource, &key, version, creation_time, now))
}

async fn delete(
    conn: &mut SqliteConnection,
    key: &ResourceKey,
    version: Option<u64>,
    changes: &mut Vec<ChangeEvent>,
) -> Result<(), StoreError> {
    let key = row::normalize(key);
    if key.kind != Kind::Mesh {
        return delete_one(conn, &key, version, changes).await;
    }
    // A mesh and everything in it go together or not at all.
    sqlx::query("SAVEPOINT mesh_delete")
        .execute(&mut *conn)
        .await?;
    let mut cascade = Vec::new();
    let result = delete_mesh(conn, &key, version, &mut cascade).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO mesh_delete")
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("RELEASE mesh_delete")
        .execute(&mut *conn)
        .await?;
    if result.is_ok() {
        changes.append(&mut cascade);
    }
    result
}

async fn delete_one(
    conn: &mut SqliteConnection,
    key: &ResourceKey,
    version: Option<u64>,
    changes: &mut Vec<ChangeEvent>,
) -> Result<(), StoreError> {
    let cols = KeyColumns::of(key);
    let deleted = sqlx::query(
        "DELETE FROM resources WHERE type = ?1 AND mesh = ?2 AND name = ?3 AND (?4 IS NULL OR version = ?4)",
    )
    .bind(cols.kind)
    .bind(&cols.mesh)
    .bind(&cols.name)
    .bind(row::version_param(version))
    .execute(&mut *conn)
    .await?;
    if deleted.rows_affected() == 0 {
        return Err(if exists(conn, &cols).await? {
            StoreError::Conflict(key.clone())
        } else {
            StoreError::NotFound(key.clone())
        });
    }
    changes.push(ChangeEvent::Deleted(key.clone()));
    Ok(())
}

async fn delete_mesh(
    conn: &mut SqliteConnection,
    key: &ResourceKey,
    version: Option<u64>,
    changes: &mut Vec<ChangeEvent>,
) -> Result<(), StoreError> {
    let mut mesh_deleted = Vec::new();
    delete_one(conn, key, version, &mut mesh_deleted).await?;
    if !key.name.is_empty() {
        let rows = sqlx::query("DELETE FROM resources WHERE mesh = ?1 RETURNING type, name")
            .bind(&key.name)
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            let kind: String = r.try_get(0)?;
            let name: String = r.try_get(1)?;
            changes.push(ChangeEvent::Deleted(row::key_from_columns(
                &kind, &key.name, &name,
            )?));
        }
    }
    // Contents first, then the mesh: a subscriber never sees a resource
    // outliving its mesh.
    changes.append(&mut mesh_deleted);
    Ok(())
}
