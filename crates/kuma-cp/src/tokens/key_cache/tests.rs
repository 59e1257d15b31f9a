use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use base64::Engine as _;
use kuma_api::kinds::mesh::MeshSpec;
use kuma_api::{Resource, ResourceMeta, Spec};
use kuma_store::{ListQuery, ResourceList, ResourceStore, SqliteStore, StoreError};

use crate::tokens::{DataplaneIdentity, DataplaneTokens, TokenError, signing_key_name};

/// A store that counts reads of single resources.
struct CountingStore {
    inner: SqliteStore,
    gets: AtomicUsize,
}

#[async_trait]
impl ResourceStore for CountingStore {
    async fn create(&self, resource: Resource) -> Result<Resource, StoreError> {
        self.inner.create(resource).await
    }
    async fn update(&self, resource: Resource) -> Result<Resource, StoreError> {
        self.inner.update(resource).await
    }
    async fn delete(&self, key: &ResourceKey, version: Option<u64>) -> Result<(), StoreError> {
        self.inner.delete(key, version).await
    }
    async fn get(&self, key: &ResourceKey) -> Result<Resource, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn list(&self, query: &ListQuery) -> Result<ResourceList, StoreError> {
        self.inner.list(query).await
    }
    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.inner.subscribe()
    }
}

fn mk_mesh(name: &str) -> Resource {
    Resource {
        meta: ResourceMeta {
            mesh: None,
            name: name.into(),
            labels: BTreeMap::new(),
            creation_time: Default::default(),
            modification_time: Default::default(),
            version: 0,
        },
        spec: Spec::Mesh(MeshSpec::default()),
    }
}

fn mk_identity(mesh: &str) -> DataplaneIdentity {
    DataplaneIdentity {
        name: "web-1".into(),
        mesh: mesh.into(),
        ..DataplaneIdentity::default()
    }
}

async fn mk_tokens() -> (Arc<CountingStore>, DataplaneTokens) {
    let store = Arc::new(CountingStore {
        inner: SqliteStore::in_memory().await.expect("store"),
        gets: AtomicUsize::new(0),
    });
    store.create(mk_mesh("default")).await.expect("mesh");
    let tokens = DataplaneTokens::new(store.clone());
    (store, tokens)
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

#[tokio::test]
async fn repeated_checks_read_the_signing_key_once() {
    let (store, tokens) = mk_tokens().await;
    let token = tokens
        .issue(&mk_identity("default"), HOUR)
        .await
        .expect("issue");
    let before = store.gets.load(Ordering::SeqCst);
    for _ in 0..20 {
        let identity = tokens.verify(&token, "default").await.expect("verify");
        assert_eq!(identity.name, "web-1");
    }
    assert_eq!(store.gets.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn a_deleted_signing_key_stops_verifying_at_once() {
    let (store, tokens) = mk_tokens().await;
    let token = tokens
        .issue(&mk_identity("default"), HOUR)
        .await
        .expect("issue");
    tokens.verify(&token, "default").await.expect("verify");
    let secret = ResourceKey::in_mesh(Kind::Secret, "default", &signing_key_name("default", "1"));
    store.delete(&secret, None).await.expect("delete");
    match tokens.verify(&token, "default").await {
        Err(TokenError::Invalid(reason)) => {
            assert!(
                reason.contains("there is no signing key with KID 1"),
                "{reason}"
            )
        }
        other => panic!("a revoked key still verifies: {:?}", other.map(|i| i.name)),
    }
}

#[tokio::test]
async fn a_replaced_signing_key_refuses_tokens_of_the_old_one() {
    let (store, tokens) = mk_tokens().await;
    let old_token = tokens
        .issue(&mk_identity("default"), HOUR)
        .await
        .expect("issue");
    tokens.verify(&old_token, "default").await.expect("verify");

    // The same key id now holds a different key.
    let secret = ResourceKey::in_mesh(Kind::Secret, "default", &signing_key_name("default", "1"));
    let mut stored = store.get(&secret).await.expect("get");
    let pem = crate::tokens::signing::generate_pem().expect("new key");
    stored.spec = Spec::Secret(kuma_api::kinds::secret::SecretSpec {
        data: Some(base64::engine::general_purpose::STANDARD.encode(pem)),
    });
    store.update(stored).await.expect("update");
    let new_token = tokens
        .issue(&mk_identity("default"), HOUR)
        .await
        .expect("issue with the new key");
    assert!(matches!(
        tokens.verify(&old_token, "default").await,
        Err(TokenError::Invalid(_))
    ));
    tokens
        .verify(&new_token, "default")
        .await
        .expect("the new key verifies");
}

#[tokio::test]
async fn a_key_read_before_a_change_is_not_remembered_after_it() {
    let (store, tokens) = mk_tokens().await;
    let token = tokens
        .issue(&mk_identity("default"), HOUR)
        .await
        .expect("issue");
    tokens.verify(&token, "default").await.expect("verify");
    let secret = ResourceKey::in_mesh(Kind::Secret, "default", &signing_key_name("default", "1"));
    let cache = KeyCache::new(store.subscribe());
    let Lookup::Miss(ticket) = cache.lookup(&secret) else {
        panic!("an empty cache has nothing");
    };
    let Lookup::Hit(key) = tokens.verifying.lookup(&secret) else {
        panic!("the verified key is cached");
    };
    // A change lands between the read and `remember`.
    let stored = store.get(&secret).await.expect("get");
    store.update(stored).await.expect("update");
    cache.remember(secret.clone(), key.clone(), ticket);
    assert!(matches!(cache.lookup(&secret), Lookup::Miss(_)));

    // Without a change in between, it is remembered.
    let Lookup::Miss(ticket) = cache.lookup(&secret) else {
        panic!("still empty");
    };
    cache.remember(secret.clone(), key, ticket);
    assert!(matches!(cache.lookup(&secret), Lookup::Hit(_)));
}
