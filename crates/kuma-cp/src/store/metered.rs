//! A store that times every operation into the `store` metric, by
//! operation and resource type, as Kuma's does.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use kuma_api::{Resource, ResourceKey};
use kuma_store::{ChangeEvent, ListQuery, ResourceList, ResourceStore, StoreError};

use crate::metrics::{Metrics, StoreOperation};

/// Wraps any store; behaviour is the inner store's, unchanged.
pub struct MeteredStore {
    inner: Arc<dyn ResourceStore>,
    metrics: Metrics,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ResourceStore>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    fn observe<T>(
        &self,
        operation: StoreOperation,
        kind: &'static str,
        started: Instant,
        result: &Result<T, StoreError>,
    ) {
        self.metrics
            .observe_store(operation, kind, started.elapsed());
        if let Err(StoreError::AlreadyExists(_) | StoreError::Conflict(_)) = result {
            self.metrics.store_conflict(kind);
        }
    }
}

#[async_trait]
impl ResourceStore for MeteredStore {
    async fn create(&self, resource: Resource) -> Result<Resource, StoreError> {
        let kind = resource.kind().name();
        let started = Instant::now();
        let result = self.inner.create(resource).await;
        self.observe(StoreOperation::Create, kind, started, &result);
        result
    }

    async fn update(&self, resource: Resource) -> Result<Resource, StoreError> {
        let kind = resource.kind().name();
        let started = Instant::now();
        let result = self.inner.update(resource).await;
        self.observe(StoreOperation::Update, kind, started, &result);
        result
    }

    async fn delete(&self, key: &ResourceKey, version: Option<u64>) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.delete(key, version).await;
        self.observe(StoreOperation::Delete, key.kind.name(), started, &result);
        result
    }

    async fn get(&self, key: &ResourceKey) -> Result<Resource, StoreError> {
        let started = Instant::now();
        let result = self.inner.get(key).await;
        self.observe(StoreOperation::Get, key.kind.name(), started, &result);
        result
    }

    async fn list(&self, query: &ListQuery) -> Result<ResourceList, StoreError> {
        let started = Instant::now();
        let result = self.inner.list(query).await;
        self.observe(StoreOperation::List, query.kind.name(), started, &result);
        result
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeEvent> {
        self.inner.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuma_api::{Kind, ResourceDocument};
    use kuma_store::SqliteStore;

    fn mk_mesh(name: &str) -> Resource {
        ResourceDocument::from_yaml(&format!("type: Mesh\nname: {name}\n"))
            .unwrap()
            .into_resource(chrono::Utc::now())
    }

    fn series_count(text: &str, prefix: &str) -> u64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn operations_are_timed_by_operation_and_type() {
        let metrics = Metrics::new();
        let inner: Arc<dyn ResourceStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let store = MeteredStore::new(inner, metrics.clone());
        let created = store.create(mk_mesh("demo")).await.unwrap();
        assert_eq!(created.meta.name, "demo", "the inner store's answer");
        store.get(&created.key()).await.unwrap();
        store.list(&ListQuery::all(Kind::Mesh)).await.unwrap();
        store.list(&ListQuery::all(Kind::Mesh)).await.unwrap();
        assert!(matches!(
            store.create(mk_mesh("demo")).await,
            Err(StoreError::AlreadyExists(_))
        ));
        store.delete(&created.key(), None).await.unwrap();

        let text = metrics.encode().unwrap();
        for (op, n) in [("create", 2), ("get", 1), ("list", 2), ("delete", 1)] {
            let prefix = format!("store_count{{operation=\"{op}\",resource_type=\"Mesh\"}}");
            assert_eq!(series_count(&text, &prefix), n, "{op}:\n{text}");
        }
        assert_eq!(
            series_count(&text, "store_conflicts_total{resource_type=\"Mesh\"}"),
            1,
            "{text}"
        );
    }
}
