//! The behaviour every backend must show. Each case gets a fresh, empty store.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec};
use kuma_store::{ChangeEvent, ListQuery, ResourceStore, StoreError};
use serde_json::json;
use tokio::sync::broadcast;

type Store = Arc<dyn ResourceStore>;

fn mk_resource(kind: Kind, mesh: Option<&str>, name: &str, spec: serde_json::Value) -> Resource {
    let now = chrono::Utc::now();
    Resource {
        meta: ResourceMeta {
            mesh: mesh.map(str::to_string),
            name: name.to_string(),
            labels: BTreeMap::new(),
            creation_time: now,
            modification_time: now,
            version: 0,
        },
        spec: Spec::from_json(kind, spec).expect("test spec parses"),
    }
}

fn mk_mesh(name: &str) -> Resource {
    mk_resource(Kind::Mesh, None, name, json!({}))
}

fn mk_secret(mesh: &str, name: &str, data: &str) -> Resource {
    mk_resource(Kind::Secret, Some(mesh), name, json!({ "data": data }))
}

fn with_labels(mut r: Resource, labels: &[(&str, &str)]) -> Resource {
    r.meta.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r
}

fn secret_key(mesh: &str, name: &str) -> ResourceKey {
    ResourceKey::in_mesh(Kind::Secret, mesh, name)
}

fn names(items: &[Resource]) -> Vec<String> {
    items
        .iter()
        .map(|r| format!("{}/{}", r.meta.mesh.as_deref().unwrap_or("-"), r.meta.name))
        .collect()
}

/// The next event, failing the test if none comes within a few seconds.
async fn next_event(rx: &mut broadcast::Receiver<ChangeEvent>) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10s")
        .expect("event channel open")
}

/// Asserts that no further event arrives shortly.
async fn no_more_events(rx: &mut broadcast::Receiver<ChangeEvent>) {
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected event {e:?}");
    }
}

pub async fn create_get_update_delete(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    let created = store
        .create(mk_secret("default", "s1", "YQ=="))
        .await
        .expect("create secret");
    assert_eq!(created.meta.version, 1);

    let got = store.get(&secret_key("default", "s1")).await.expect("get");
    assert_eq!(got, created, "get returns what create returned");

    let mut changed = got.clone();
    changed.spec = mk_secret("default", "s1", "Yg==").spec;
    changed.meta.labels.insert("team".into(), "a".into());
    let updated = store.update(changed.clone()).await.expect("update");
    assert_eq!(updated.meta.version, 2);
    let got = store.get(&secret_key("default", "s1")).await.expect("get");
    assert_eq!(got.spec, changed.spec);
    assert_eq!(got.meta.labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(got, updated);

    store
        .delete(&secret_key("default", "s1"), Some(2))
        .await
        .expect("delete");
    assert!(matches!(
        store.get(&secret_key("default", "s1")).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn create_twice_is_already_exists(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    assert!(matches!(
        store.create(mk_mesh("default")).await,
        Err(StoreError::AlreadyExists(k)) if k == ResourceKey::global(Kind::Mesh, "default")
    ));
    store
        .create(mk_secret("default", "s", "YQ=="))
        .await
        .expect("create");
    let again = store.create(mk_secret("default", "s", "Yg==")).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists(k)) if k == secret_key("default", "s")));
    // The first write stands.
    let got = store.get(&secret_key("default", "s")).await.expect("get");
    assert_eq!(got.spec, mk_secret("default", "s", "YQ==").spec);
    // Same name, other kind: a different resource.
    store
        .create(mk_resource(
            Kind::GlobalSecret,
            None,
            "s",
            json!({"data": "YQ=="}),
        ))
        .await
        .expect("same name, other kind");
}

pub async fn missing_resources_are_not_found(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    let key = secret_key("default", "nope");
    assert!(matches!(store.get(&key).await, Err(StoreError::NotFound(k)) if k == key));
    let mut r = mk_secret("default", "nope", "YQ==");
    r.meta.version = 1;
    assert!(matches!(
        store.update(r).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(&key, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(&key, Some(1)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn stale_writes_conflict(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    let v1 = store
        .create(mk_secret("default", "s", "YQ=="))
        .await
        .expect("create");
    let v2 = store.update(v1.clone()).await.expect("update from v1");
    assert_eq!(v2.meta.version, 2);
    // A writer still holding v1 is refused, and nothing changes.
    let mut stale = v1.clone();
    stale.spec = mk_secret("default", "s", "Yw==").spec;
    assert!(matches!(
        store.update(stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.delete(&secret_key("default", "s"), Some(1)).await,
        Err(StoreError::Conflict(_))
    ));
    let got = store.get(&secret_key("default", "s")).await.expect("get");
    assert_eq!(got, v2);
    // Without a version, delete does not check.
    store
        .delete(&secret_key("default", "s"), None)
        .await
        .expect("unconditional delete");
}

pub async fn times_and_versions(store: Store) {
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut input = mk_mesh("default");
    // Whatever the caller sends, the store sets times and version.
    input.meta.version = 42;
    input.meta.creation_time = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    let created = store.create(input).await.expect("create");
    assert_eq!(created.meta.version, 1);
    assert!(created.meta.creation_time >= before);
    assert_eq!(created.meta.creation_time, created.meta.modification_time);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let updated = store.update(created.clone()).await.expect("update");
    assert_eq!(updated.meta.version, 2);
    assert_eq!(updated.meta.creation_time, created.meta.creation_time);
    assert!(updated.meta.modification_time > created.meta.modification_time);

    let got = store
        .get(&ResourceKey::global(Kind::Mesh, "default"))
        .await
        .expect("get");
    assert_eq!(got.meta.creation_time, created.meta.creation_time);
    assert_eq!(got.meta.modification_time, updated.meta.modification_time);
    assert_eq!(got.meta.version, 2);
}

pub async fn global_kinds_have_no_mesh(store: Store) {
    let mut zone = mk_resource(Kind::Zone, None, "east", json!({}));
    // A mesh on a global kind is not part of its identity.
    zone.meta.mesh = Some("ignored".into());
    let created = store.create(zone).await.expect("create zone");
    assert_eq!(created.meta.mesh, None);
    let got = store
        .get(&ResourceKey::global(Kind::Zone, "east"))
        .await
        .expect("get zone");
    assert_eq!(got.meta.mesh, None);
    let list = store.list(&ListQuery::all(Kind::Zone)).await.expect("list");
    assert_eq!(list.total, 1);
    assert_eq!(list.items[0].meta.mesh, None);
}

pub async fn mesh_scoped_create_needs_the_mesh(store: Store) {
    let result = store.create(mk_secret("nowhere", "s", "YQ==")).await;
    assert!(matches!(result, Err(StoreError::MeshNotFound(m)) if m == "nowhere"));
    assert_eq!(
        store
            .list(&ListQuery::all(Kind::Secret))
            .await
            .expect("list")
            .total,
        0
    );
    store.create(mk_mesh("nowhere")).await.expect("create mesh");
    store
        .create(mk_secret("nowhere", "s", "YQ=="))
        .await
        .expect("now the mesh exists");
}

pub async fn label_filters(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    for (name, team, env) in [("a", "x", "prod"), ("b", "x", "dev"), ("c", "y", "prod")] {
        let r = with_labels(
            mk_secret("default", name, "YQ=="),
            &[("team", team), ("kuma.io/env", env)],
        );
        store.create(r).await.expect("create");
    }
    store
        .create(mk_secret("default", "unlabelled", "YQ=="))
        .await
        .expect("create");
    let query = |labels: &[(&str, &str)]| {
        let mut q = ListQuery::in_mesh(Kind::Secret, "default");
        q.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        q
    };
    let list = store.list(&query(&[("team", "x")])).await.expect("list");
    assert_eq!(names(&list.items), ["default/a", "default/b"]);
    assert_eq!(list.total, 2);
    let list = store
        .list(&query(&[("team", "x"), ("kuma.io/env", "prod")]))
        .await
        .expect("list");
    assert_eq!(names(&list.items), ["default/a"]);
    let list = store.list(&query(&[("team", "z")])).await.expect("list");
    assert!(list.items.is_empty());
    assert_eq!(list.total, 0);
    let list = store.list(&query(&[])).await.expect("list");
    assert_eq!(list.total, 4);
}

pub async fn paging_and_total(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    // Created out of order: the store orders by name.
    for i in [3, 0, 4, 1, 2] {
        store
            .create(mk_secret("default", &format!("s{i}"), "YQ=="))
            .await
            .expect("create");
    }
    let mut q = ListQuery::in_mesh(Kind::Secret, "default");
    q.limit = Some(2);
    let page = store.list(&q).await.expect("page 1");
    assert_eq!(names(&page.items), ["default/s0", "default/s1"]);
    assert_eq!(page.total, 5);
    q.offset = 2;
    let page = store.list(&q).await.expect("page 2");
    assert_eq!(names(&page.items), ["default/s2", "default/s3"]);
    assert_eq!(page.total, 5);
    q.offset = 4;
    let page = store.list(&q).await.expect("page 3");
    assert_eq!(names(&page.items), ["default/s4"]);
    q.offset = 10;
    let page = store.list(&q).await.expect("past the end");
    assert!(page.items.is_empty());
    assert_eq!(page.total, 5, "total counts all matches, even past the end");
}

pub async fn list_across_meshes(store: Store) {
    for mesh in ["beta", "alpha"] {
        store.create(mk_mesh(mesh)).await.expect("create mesh");
    }
    for (mesh, name) in [("beta", "b"), ("alpha", "z"), ("beta", "a"), ("alpha", "a")] {
        store
            .create(mk_secret(mesh, name, "YQ=="))
            .await
            .expect("create");
    }
    let all = store
        .list(&ListQuery::all(Kind::Secret))
        .await
        .expect("list");
    assert_eq!(
        names(&all.items),
        ["alpha/a", "alpha/z", "beta/a", "beta/b"],
        "ordered by mesh, then name"
    );
    assert_eq!(all.total, 4);
    let beta = store
        .list(&ListQuery::in_mesh(Kind::Secret, "beta"))
        .await
        .expect("list");
    assert_eq!(names(&beta.items), ["beta/a", "beta/b"]);
    let meshes = store.list(&ListQuery::all(Kind::Mesh)).await.expect("list");
    assert_eq!(names(&meshes.items), ["-/alpha", "-/beta"]);
}

pub async fn mesh_delete_cascades(store: Store) {
    // Subscribed before the setup and drained after it: a shared store
    // delivers events asynchronously, so setup events may still be on the way.
    let mut events = store.subscribe();
    for mesh in ["doomed", "kept"] {
        store.create(mk_mesh(mesh)).await.expect("create mesh");
        store
            .create(mk_secret(mesh, "s", "YQ=="))
            .await
            .expect("create");
    }
    store
        .create(mk_resource(
            Kind::MeshTimeout,
            Some("doomed"),
            "mt",
            json!({}),
        ))
        .await
        .expect("create policy");
    for _ in 0..5 {
        assert!(matches!(
            next_event(&mut events).await,
            ChangeEvent::Created(_)
        ));
    }
    let mesh = store
        .get(&ResourceKey::global(Kind::Mesh, "doomed"))
        .await
        .expect("get mesh");
    assert!(matches!(
        store
            .delete(
                &ResourceKey::global(Kind::Mesh, "doomed"),
                Some(mesh.meta.version + 1)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .get(&secret_key("doomed", "s"))
        .await
        .expect("a refused mesh delete removes nothing");

    store
        .delete(
            &ResourceKey::global(Kind::Mesh, "doomed"),
            Some(mesh.meta.version),
        )
        .await
        .expect("delete mesh");
    assert!(matches!(
        store.get(&secret_key("doomed", "s")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .get(&ResourceKey::in_mesh(Kind::MeshTimeout, "doomed", "mt"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .get(&secret_key("kept", "s"))
        .await
        .expect("other meshes untouched");

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_event(&mut events).await);
    }
    assert_eq!(
        seen.last(),
        Some(&ChangeEvent::Deleted(ResourceKey::global(
            Kind::Mesh,
            "doomed"
        ))),
        "the mesh goes last"
    );
    let contents: HashSet<_> = seen[..2].iter().cloned().collect();
    assert_eq!(
        contents,
        HashSet::from([
            ChangeEvent::Deleted(secret_key("doomed", "s")),
            ChangeEvent::Deleted(ResourceKey::in_mesh(Kind::MeshTimeout, "doomed", "mt")),
        ])
    );
    no_more_events(&mut events).await;
    // A new mesh of the same name starts empty.
    store.create(mk_mesh("doomed")).await.expect("recreate");
    let list = store
        .list(&ListQuery::in_mesh(Kind::Secret, "doomed"))
        .await
        .expect("list");
    assert_eq!(list.total, 0);
}

pub async fn events_for_every_change(store: Store) {
    let mut events = store.subscribe();
    let mesh = store.create(mk_mesh("default")).await.expect("create");
    store.update(mesh).await.expect("update");
    // Refused writes emit nothing.
    assert!(store.create(mk_mesh("default")).await.is_err());
    store
        .delete(&ResourceKey::global(Kind::Mesh, "default"), None)
        .await
        .expect("delete");
    let key = ResourceKey::global(Kind::Mesh, "default");
    assert_eq!(
        next_event(&mut events).await,
        ChangeEvent::Created(key.clone())
    );
    assert_eq!(
        next_event(&mut events).await,
        ChangeEvent::Updated(key.clone())
    );
    assert_eq!(next_event(&mut events).await, ChangeEvent::Deleted(key));
    no_more_events(&mut events).await;
}

pub async fn concurrent_updates_one_winner_per_version(store: Store) {
    store.create(mk_mesh("default")).await.expect("create mesh");
    let start = store
        .create(mk_secret("default", "hot", "YQ=="))
        .await
        .expect("create");
    const WRITERS: usize = 16;
    const ROUNDS: usize = 5;
    let mut version = start.meta.version;
    for round in 0..ROUNDS {
        let current = store.get(&secret_key("default", "hot")).await.expect("get");
        assert_eq!(current.meta.version, version);
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            let mut attempt = current.clone();
            attempt
                .meta
                .labels
                .insert("writer".into(), format!("{round}-{w}"));
            tasks.push(tokio::spawn(async move { store.update(attempt).await }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(r) => winners.push(r),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one writer wins version {version}"
        );
        version += 1;
        assert_eq!(winners[0].meta.version, version);
        let stored = store.get(&secret_key("default", "hot")).await.expect("get");
        assert_eq!(stored.meta.labels, winners[0].meta.labels);
    }
}

pub async fn mesh_delete_racing_creates_leaves_no_orphans(store: Store) {
    for round in 0..3 {
        let mesh = format!("racy{round}");
        store.create(mk_mesh(&mesh)).await.expect("create mesh");
        let mut tasks = Vec::new();
        for i in 0..24 {
            let store = store.clone();
            let mesh = mesh.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create(mk_secret(&mesh, &format!("s{i}"), "YQ=="))
                    .await
            }));
        }
        tokio::task::yield_now().await;
        store
            .delete(&ResourceKey::global(Kind::Mesh, &mesh), None)
            .await
            .expect("delete mesh");
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) | Err(StoreError::MeshNotFound(_)) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        let left = store
            .list(&ListQuery::in_mesh(Kind::Secret, &mesh))
            .await
            .expect("list");
        assert_eq!(
            left.total,
            0,
            "orphans in deleted mesh {mesh}: {:?}",
            names(&left.items)
        );
    }
}
