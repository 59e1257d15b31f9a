//! Two control planes on one PostgreSQL database, through the API.

use std::time::Duration;

use kuma_cp::config::PostgresStoreConfig;
use kuma_cp::{Config, ControlPlane, StoreType};
use kuma_store::testing::TestPostgres;
use serde_json::{Value, json};

fn pg_config(db: &TestPostgres) -> Config {
    let pg = db.config();
    let mut config = Config::for_tests();
    config.store.store_type = StoreType::Postgres;
    config.store.postgres = PostgresStoreConfig {
        host: pg.host.clone(),
        port: pg.port,
        user: pg.user.clone(),
        password: pg.password.clone(),
        db_name: pg.db_name.clone(),
        max_open_connections: 5,
    };
    config
}

async fn get(url: String) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn unmigrated_database_is_refused_then_migrate_up_fixes_it() {
    let db = TestPostgres::new().await.unwrap();
    let config = pg_config(&db);
    let err = match ControlPlane::start(config.clone()).await {
        Ok(_) => panic!("an un-migrated database must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("kuma-cp migrate up"), "{err}");
    kuma_cp::store::migrate_up(&config).await.unwrap();
    let cp = ControlPlane::start(config).await.unwrap();
    let (status, _) = get(format!("{}/meshes/default", cp.api_url())).await;
    assert_eq!(status, 200);
    cp.shutdown().await;
}

#[tokio::test]
async fn two_control_planes_share_one_database() {
    let db = TestPostgres::new().await.unwrap();
    let config = pg_config(&db);
    kuma_cp::store::migrate_up(&config).await.unwrap();
    let a = ControlPlane::start(config.clone()).await.unwrap();
    let b = ControlPlane::start(config).await.unwrap();

    let client = reqwest::Client::new();
    let resp = client
        .put(format!("{}/meshes/shared", a.api_url()))
        .json(&json!({"type": "Mesh", "name": "shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let (status, mesh) = get(format!("{}/meshes/shared", b.api_url())).await;
    assert_eq!(status, 200, "{mesh}");
    assert_eq!(mesh["name"], "shared");
    // Default policies were written once, by the replica that created the mesh.
    let (_, retries) = get(format!("{}/meshes/shared/meshretries", b.api_url())).await;
    assert_eq!(retries["total"], 1);

    // A delete on b is visible on a.
    let resp = client
        .delete(format!("{}/meshes/shared", b.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (status, _) = get(format!("{}/meshes/shared", a.api_url())).await;
    assert_eq!(status, 404);

    // Both replicas raced to create the default Mesh; exactly one exists.
    let (_, meshes) = get(format!("{}/meshes", a.api_url())).await;
    assert_eq!(meshes["total"], 1);
    let (_, timeouts) = get(format!("{}/meshes/default/meshtimeouts", a.api_url())).await;
    assert_eq!(timeouts["total"], 2);

    tokio::time::timeout(Duration::from_secs(10), async {
        a.shutdown().await;
        b.shutdown().await;
    })
    .await
    .unwrap();
}
