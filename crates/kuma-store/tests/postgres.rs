//! PostgreSQL-only behaviour: schema checks and events across processes.

use std::time::Duration;

use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec};
use kuma_store::testing::TestPostgres;
use kuma_store::{ChangeEvent, PostgresStore, ResourceStore, StoreError};
use serde_json::json;
use sqlx::Connection;
use tokio::sync::broadcast;

fn mk_resource(kind: Kind, mesh: Option<&str>, name: &str, spec: serde_json::Value) -> Resource {
    let now = chrono::Utc::now();
    Resource {
        meta: ResourceMeta {
            mesh: mesh.map(str::to_string),
            name: name.to_string(),
            labels: Default::default(),
            creation_time: now,
            modification_time: now,
            version: 0,
        },
        spec: Spec::from_json(kind, spec).expect("spec"),
    }
}

async fn next_event(rx: &mut broadcast::Receiver<ChangeEvent>) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10s")
        .expect("event channel open")
}

async fn no_more_events(rx: &mut broadcast::Receiver<ChangeEvent>) {
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        panic!("unexpected event {e:?}");
    }
}

async fn migrated() -> TestPostgres {
    let db = TestPostgres::new().await.expect("test postgres");
    PostgresStore::migrate_up(db.config())
        .await
        .expect("migrate");
    db
}

#[tokio::test]
async fn connect_refuses_an_unmigrated_schema() {
    let db = TestPostgres::new().await.expect("test postgres");
    let err = PostgresStore::connect(db.config())
        .await
        .err()
        .expect("un-migrated database refused");
    assert!(
        matches!(err, StoreError::SchemaNotMigrated { found: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("kuma-cp migrate up"), "{err}");

    PostgresStore::migrate_up(db.config())
        .await
        .expect("migrate");
    PostgresStore::migrate_up(db.config())
        .await
        .expect("migrating again changes nothing");
    PostgresStore::connect(db.config())
        .await
        .expect("migrated database accepted");
}

#[tokio::test]
async fn connect_refuses_an_older_schema() {
    let db = migrated().await;
    // Pretend the newest migration never ran.
    let mut conn = sqlx::PgConnection::connect(&db.url())
        .await
        .expect("connect");
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&mut conn)
    .await
    .expect("forget a migration");
    let err = PostgresStore::connect(db.config())
        .await
        .err()
        .expect("older schema refused");
    assert!(
        matches!(err, StoreError::SchemaNotMigrated { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_see_each_others_writes_exactly_once() {
    let db = migrated().await;
    let a = PostgresStore::connect(db.config()).await.expect("a");
    let b = PostgresStore::connect(db.config()).await.expect("b");
    let mut seen_by_a = a.subscribe();
    let mut seen_by_b = b.subscribe();

    a.create(mk_resource(Kind::Mesh, None, "default", json!({})))
        .await
        .expect("a creates the mesh");
    b.create(mk_resource(
        Kind::Secret,
        Some("default"),
        "s",
        json!({"data": "YQ=="}),
    ))
    .await
    .expect("b creates a secret in it");
    b.delete(&ResourceKey::global(Kind::Mesh, "default"), None)
        .await
        .expect("b deletes the mesh");

    let expected = [
        ChangeEvent::Created(ResourceKey::global(Kind::Mesh, "default")),
        ChangeEvent::Created(ResourceKey::in_mesh(Kind::Secret, "default", "s")),
        ChangeEvent::Deleted(ResourceKey::in_mesh(Kind::Secret, "default", "s")),
        ChangeEvent::Deleted(ResourceKey::global(Kind::Mesh, "default")),
    ];
    for rx in [&mut seen_by_a, &mut seen_by_b] {
        for want in &expected {
            assert_eq!(&next_event(rx).await, want);
        }
        no_more_events(rx).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_lost_listener_connection() {
    let db = migrated().await;
    let store = PostgresStore::connect(db.config()).await.expect("store");
    let writer = PostgresStore::connect(db.config()).await.expect("writer");
    let mut events = store.subscribe();
    let mut admin = sqlx::PgConnection::connect(&db.url()).await.expect("admin");

    // Cut every listening connection; write while they are down.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'kuma-cp-events' AND datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate listeners");
    assert!(
        killed.len() >= 2,
        "both stores' listeners found: {killed:?}"
    );
    for name in ["m1", "m2", "m3"] {
        writer
            .create(mk_resource(Kind::Mesh, None, name, json!({})))
            .await
            .expect("create");
    }
    for name in ["m1", "m2", "m3"] {
        assert_eq!(
            next_event(&mut events).await,
            ChangeEvent::Created(ResourceKey::global(Kind::Mesh, name))
        );
    }
    no_more_events(&mut events).await;

    // And the reconnected listener keeps working.
    writer
        .create(mk_resource(Kind::Mesh, None, "m4", json!({})))
        .await
        .expect("create");
    assert_eq!(
        next_event(&mut events).await,
        ChangeEvent::Created(ResourceKey::global(Kind::Mesh, "m4"))
    );
}
