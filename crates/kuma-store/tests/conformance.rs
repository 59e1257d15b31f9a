//! One conformance suite, run against every backend: SQLite on a file,
//! SQLite in memory, and a real PostgreSQL.

mod conformance {
    pub mod cases;
}

use std::sync::Arc;

use conformance::cases;
use kuma_store::testing::TestPostgres;
use kuma_store::{PostgresStore, ResourceStore, SqliteStore};

/// A store under test and whatever must outlive it.
pub struct Backend {
    pub store: Arc<dyn ResourceStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_file() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("nested/kuma.db"))
        .await
        .expect("open sqlite");
    Backend {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

async fn sqlite_memory() -> Backend {
    Backend {
        store: Arc::new(SqliteStore::in_memory().await.expect("in-memory sqlite")),
        _dir: None,
    }
}

async fn postgres() -> Backend {
    let db = TestPostgres::new().await.expect("test postgres");
    PostgresStore::migrate_up(db.config())
        .await
        .expect("migrate");
    let store = PostgresStore::connect(db.config()).await.expect("connect");
    Backend {
        store: Arc::new(store),
        _dir: None,
    }
}

macro_rules! conformance_suite {
    ($backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::$backend().await;
                    super::cases::$case(backend.store.clone()).await;
                }
            )+
        }
    };
}

macro_rules! every_backend {
    ($($case:ident),+ $(,)?) => {
        conformance_suite!(sqlite_file: $($case),+);
        conformance_suite!(sqlite_memory: $($case),+);
        conformance_suite!(postgres: $($case),+);
    };
}

every_backend!(
    create_get_update_delete,
    create_twice_is_already_exists,
    missing_resources_are_not_found,
    stale_writes_conflict,
    times_and_versions,
    global_kinds_have_no_mesh,
    mesh_scoped_create_needs_the_mesh,
    label_filters,
    paging_and_total,
    list_across_meshes,
    mesh_delete_cascades,
    events_for_every_change,
    concurrent_updates_one_winner_per_version,
    mesh_delete_racing_creates_leaves_no_orphans,
);
