//! The mesh index: an in-memory view of every mesh, kept current from store
//! change events, and the live configuration of every connected proxy.
//!
//! Per mesh it keeps the resources generation needs (the Mesh, Dataplanes,
//! MeshServices) and a [`MeshSnapshot`] built from them. A change rebuilds
//! only its mesh's snapshot and recomputes only that mesh's connected
//! proxies; a proxy's `watch` is written only when its resources changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kuma_api::{Kind, Resource, ResourceKey};
use kuma_store::{ChangeEvent, ListQuery, ResourceStore, StoreError};
use kuma_xds::ProxyResources;
use kuma_xds::generate::{GenerateError, MeshSnapshot, generate_proxy};
use kuma_xds::server::ProxyId;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

/// Events arriving this close together are applied as one change, so a
/// burst (a `kumactl apply` of many resources) recomputes proxies once.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// Whether the index cares about a kind: what snapshots are built from.
fn indexed(kind: Kind) -> bool {
    matches!(kind, Kind::Mesh | Kind::Dataplane | Kind::MeshService)
}

/// The mesh a resource belongs to (a Mesh belongs to itself).
fn mesh_of(key: &ResourceKey) -> Option<&str> {
    match key.kind {
        Kind::Mesh => Some(&key.name),
        _ => key.mesh.as_deref(),
    }
}

#[derive(Default)]
struct MeshEntry {
    resources: BTreeMap<(Kind, String), Resource>,
    snapshot: Option<Arc<MeshSnapshot>>,
}

impl MeshEntry {
    fn snapshot(&mut self, mesh: &str) -> Arc<MeshSnapshot> {
        if let Some(s) = &self.snapshot {
            return s.clone();
        }
        let s = Arc::new(MeshSnapshot::from_resources(
            mesh,
            self.resources.values().cloned(),
        ));
        self.snapshot = Some(s.clone());
        s
    }
}

struct ProxyEntry {
    config: watch::Sender<Arc<ProxyResources>>,
    /// Open streams of this proxy (briefly two while it reconnects).
    streams: usize,
}

#[derive(Default)]
struct State {
    meshes: HashMap<String, MeshEntry>,
    proxies: BTreeMap<ProxyId, ProxyEntry>,
}

/// Shared view of all meshes; cheap to clone.
#[derive(Clone)]
pub struct MeshIndex {
    store: Arc<dyn ResourceStore>,
    state: Arc<Mutex<State>>,
}

impl MeshIndex {
    /// Subscribes to the store, loads every mesh, and keeps itself current
    /// on a background task until `stop` turns true.
    pub async fn start(
        store: Arc<dyn ResourceStore>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<MeshIndex, StoreError> {
        // Subscribe before loading: a change made during the load is then
        // seen again as an event, never lost.
        let events = store.subscribe();
        let index = MeshIndex {
            store,
            state: Arc::default(),
        };
        index.resync().await?;
        let runner = index.clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    () = runner.follow(events) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            .instrument(tracing::info_span!("mesh_index")),
        );
        Ok(index)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Updates are single map operations; a panic cannot leave half of one.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reloads everything from the store (at start, and after missing events).
    async fn resync(&self) -> Result<(), StoreError> {
        let mut all = Vec::new();
        for kind in [Kind::Mesh, Kind::Dataplane, Kind::MeshService] {
            all.extend(self.store.list(&ListQuery::all(kind)).await?.items);
        }
        let mut meshes: HashMap<String, MeshEntry> = HashMap::new();
        for r in all {
            if let Some(mesh) = mesh_of(&r.key()).map(str::to_string) {
                meshes
                    .entry(mesh)
                    .or_default()
                    .resources
                    .insert((r.kind(), r.meta.name.clone()), r);
            }
        }
        let changed: BTreeSet<String> = {
            let mut state = self.lock();
            let mut changed: BTreeSet<String> = state.meshes.keys().cloned().collect();
            changed.extend(meshes.keys().cloned());
            state.meshes = meshes;
            changed
        };
        self.recompute(&changed);
        Ok(())
    }

    async fn follow(&self, mut events: broadcast::Receiver<ChangeEvent>) {
        loop {
            let first = match events.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Closed) => return,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "mesh index fell behind the store; reloading");
                    self.resync_logged().await;
                    continue;
                }
            };
            let mut keys = BTreeSet::new();
            keys.insert(first.key().clone());
            let mut lagged = false;
            // Coalesce the rest of a burst; no timer runs while idle.
            while let Ok(next) = tokio::time::timeout(DEBOUNCE, events.recv()).await {
                match next {
                    Ok(e) => {
                        keys.insert(e.key().clone());
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            if lagged {
                self.resync_logged().await;
                continue;
            }
            self.apply_keys(keys).await;
        }
    }

    async fn resync_logged(&self) {
        if let Err(e) = self.resync().await {
            tracing::error!(error = %e, "mesh index could not reload from the store");
        }
    }

    /// Reads the current state of each changed key and applies it.
    async fn apply_keys(&self, keys: BTreeSet<ResourceKey>) {
        let mut current = Vec::new();
        for key in keys.into_iter().filter(|k| indexed(k.kind)) {
            match self.store.get(&key).await {
                Ok(r) => current.push((key, Some(r))),
                Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => {
                    current.push((key, None));
                }
                Err(e) => {
                    tracing::error!(error = %e, %key, "could not read a changed resource; reloading");
                    self.resync_logged().await;
                    return;
                }
            }
        }
        let changed = self.apply(current);
        self.recompute(&changed);
    }

    /// Applies current states under the lock; returns the meshes touched.
    fn apply(&self, changes: Vec<(ResourceKey, Option<Resource>)>) -> BTreeSet<String> {
        let mut state = self.lock();
        let mut changed = BTreeSet::new();
        for (key, resource) in changes {
            let Some(mesh) = mesh_of(&key).map(str::to_string) else {
                continue;
            };
            match resource {
                Some(r) => {
                    let entry = state.meshes.entry(mesh.clone()).or_default();
                    entry.resources.insert((key.kind, key.name.clone()), r);
                    entry.snapshot = None;
                }
                // A deleted Mesh takes everything inside it along.
                None if key.kind == Kind::Mesh => {
                    state.meshes.remove(&mesh);
                }
                None => {
                    if let Some(entry) = state.meshes.get_mut(&mesh) {
                        entry.resources.remove(&(key.kind, key.name.clone()));
                        entry.snapshot = None;
                    }
                }
            }
            changed.insert(mesh);
        }
        changed
    }

    /// Recomputes the connected proxies of `meshes` and publishes changes.
    /// Generation runs outside the lock; one task calls this at a time for
    /// events, and a connecting proxy registers under the lock, so it either
    /// sees the new snapshot or is part of this round.
    fn recompute(&self, meshes: &BTreeSet<String>) {
        let work: Vec<(
            ProxyId,
            Arc<MeshSnapshot>,
            watch::Sender<Arc<ProxyResources>>,
        )> = {
            let mut state = self.lock();
            let state = &mut *state;
            let mut work = Vec::new();
            for mesh in meshes {
                let snapshot = state
                    .meshes
                    .get_mut(mesh)
                    .map(|e| e.snapshot(mesh))
                    .unwrap_or_else(|| Arc::new(MeshSnapshot::builder(mesh.clone()).build()));
                let start = ProxyId::new(mesh.clone(), String::new());
                for (id, p) in state.proxies.range(start..) {
                    if &id.mesh != mesh {
                        break;
                    }
                    work.push((id.clone(), snapshot.clone(), p.config.clone()));
                }
            }
            work
        };
        for (id, snapshot, tx) in work {
            match generate_proxy(&snapshot, &id.name) {
                Ok(resources) => {
                    let updated = tx.send_if_modified(|current| {
                        if **current == resources {
                            return false;
                        }
                        *current = Arc::new(resources);
                        true
                    });
                    if updated {
                        tracing::debug!(proxy = %id, "proxy configuration changed");
                    }
                }
                // The proxy keeps what it has (its Dataplane may be gone).
                Err(e) => {
                    tracing::warn!(proxy = %id, error = %e, "could not generate proxy configuration")
                }
            }
        }
    }

    /// The indexed resource, if any.
    pub fn resource(&self, key: &ResourceKey) -> Option<Resource> {
        let mesh = mesh_of(key)?;
        self.lock()
            .meshes
            .get(mesh)?
            .resources
            .get(&(key.kind, key.name.clone()))
            .cloned()
    }

    /// Puts a resource just written to the store into the index now, instead
    /// of waiting for its event (which then changes nothing).
    pub fn upsert(&self, resource: Resource) {
        let changed = self.apply(vec![(resource.key(), Some(resource))]);
        self.recompute(&changed);
    }

    /// Registers one stream of `proxy` and returns its configuration watch,
    /// already holding the current configuration.
    pub fn connect(
        &self,
        proxy: &ProxyId,
    ) -> Result<watch::Receiver<Arc<ProxyResources>>, GenerateError> {
        let mut state = self.lock();
        let snapshot = match state.meshes.get_mut(&proxy.mesh) {
            Some(e) => e.snapshot(&proxy.mesh),
            None => Arc::new(MeshSnapshot::builder(proxy.mesh.clone()).build()),
        };
        let resources = generate_proxy(&snapshot, &proxy.name)?;
        let entry = state
            .proxies
            .entry(proxy.clone())
            .or_insert_with(|| ProxyEntry {
                config: watch::channel(Arc::new(ProxyResources::default())).0,
                streams: 0,
            });
        entry.streams += 1;
        entry.config.send_if_modified(|current| {
            if **current == resources {
                return false;
            }
            *current = Arc::new(resources);
            true
        });
        Ok(entry.config.subscribe())
    }

    /// One stream of `proxy` ended; returns how many remain.
    pub fn disconnect(&self, proxy: &ProxyId) -> usize {
        let mut state = self.lock();
        let Some(entry) = state.proxies.get_mut(proxy) else {
            return 0;
        };
        entry.streams = entry.streams.saturating_sub(1);
        let left = entry.streams;
        if left == 0 {
            state.proxies.remove(proxy);
        }
        left
    }

    pub fn is_connected(&self, proxy: &ProxyId) -> bool {
        self.lock().proxies.contains_key(proxy)
    }

    /// Connected proxies (for tests and diagnostics).
    pub fn connected(&self) -> Vec<ProxyId> {
        self.lock().proxies.keys().cloned().collect()
    }
}
