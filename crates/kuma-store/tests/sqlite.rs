//! Embedded-store behaviour: durability across re-open and `kill -9`,
//! corrupt rows, and write throughput.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec};
use kuma_store::{ListQuery, ResourceStore, SqliteStore, StoreError};
use serde_json::json;
use sqlx::Connection;

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

fn mk_mesh(name: &str) -> Resource {
    mk_resource(Kind::Mesh, None, name, json!({}))
}

fn mk_secret(name: &str) -> Resource {
    mk_resource(Kind::Secret, Some("default"), name, json!({"data": "YQ=="}))
}

#[tokio::test]
async fn writes_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kuma.db");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.create(mk_mesh("default")).await.expect("mesh");
        let s1 = store.create(mk_secret("s1")).await.expect("s1");
        store.create(mk_secret("s2")).await.expect("s2");
        store.update(s1).await.expect("update s1");
        store
            .delete(&ResourceKey::in_mesh(Kind::Secret, "default", "s2"), None)
            .await
            .expect("delete s2");
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    let secrets = store
        .list(&ListQuery::all(Kind::Secret))
        .await
        .expect("list");
    assert_eq!(secrets.total, 1);
    assert_eq!(secrets.items[0].meta.name, "s1");
    assert_eq!(secrets.items[0].meta.version, 2);
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kuma.db");
    let store = SqliteStore::open(&path).await.expect("open");
    store.create(mk_mesh("default")).await.expect("mesh");
    store.create(mk_secret("s")).await.expect("secret");
    let mut raw = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw connection");
    sqlx::query("UPDATE resources SET spec = '{not json' WHERE name = 's'")
        .execute(&mut raw)
        .await
        .expect("corrupt the spec");
    sqlx::query("UPDATE resources SET type = 'NoSuchKind' WHERE name = 'default'")
        .execute(&mut raw)
        .await
        .expect("corrupt the type");
    let key = ResourceKey::in_mesh(Kind::Secret, "default", "s");
    assert!(matches!(
        store.get(&key).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.list(&ListQuery::all(Kind::Secret)).await,
        Err(StoreError::Corrupt { .. })
    ));
}

const CHILD_ENV: &str = "KUMA_STORE_KILL9_DB";

/// Not a test on its own: the writer process of `acknowledged_writes_survive_kill_9`,
/// run when that test re-invokes this binary. Prints each key once acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Arc::new(SqliteStore::open(Path::new(&path)).await.expect("open"));
    store.create(mk_mesh("default")).await.expect("mesh");
    println!("ack mesh");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                store.create(mk_secret(&name)).await.expect("create");
                let mut out = std::io::stdout().lock();
                writeln!(out, "ack {name}").expect("stdout");
                out.flush().expect("flush");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kuma.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "kill_9_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(name) = line.strip_prefix("ack ") {
            acked.push(name.to_string());
        }
        if acked.len() == 2000 {
            // SIGKILL, mid-stream: no chance to flush or close anything.
            child.kill().expect("kill -9");
        }
    }
    // Lines already in the pipe were acknowledged too; they were read above.
    child.wait().expect("reap");
    assert!(acked.len() >= 2000, "writer got going: {}", acked.len());

    let store = SqliteStore::open(&path).await.expect("reopen");
    let stored: std::collections::HashSet<String> = store
        .list(&ListQuery::all(Kind::Secret))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|r| r.meta.name)
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|n| *n != "mesh" && !stored.contains(*n))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// Creates from 16 concurrent writers; prints the rate and p99 latency and
/// guards against gross regressions (the real target is checked end to end
/// by the API benchmark; this machine is shared, so the floor is low).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_throughput() {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("kuma.db"))
            .await
            .expect("open"),
    );
    store.create(mk_mesh("default")).await.expect("mesh");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PER_WRITER);
            for i in 0..PER_WRITER {
                let t = Instant::now();
                store
                    .create(mk_secret(&format!("w{w}-{i}")))
                    .await
                    .expect("create");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let rate = (WRITERS * PER_WRITER) as f64 / elapsed.as_secs_f64();
    println!("sqlite: {rate:.0} creates/s, p99 {p99:?} ({WRITERS} writers)");
    assert!(rate > 1000.0, "{rate:.0} creates/s");
    assert!(p99 < Duration::from_millis(200), "p99 {p99:?}");
}
