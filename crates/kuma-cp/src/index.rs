//! The mesh index: an in-memory view of every mesh, kept current from store
//! change events, and the live configuration of every connected proxy.
//!
//! Per mesh it keeps the resources generation needs (the Mesh, Dataplanes,
//! MeshServices, policies) and a [`MeshSnapshot`] built from them. A change
//! rebuilds only its mesh's snapshot and regenerates only the connected
//! proxies it can reach ([`affected`]); a proxy's `watch` is written only
//! when its resources changed.
//!
//! An mTLS mesh also has its CA here ([`crate::mtls::resolve_mesh_ca`]),
//! reloaded when the Mesh or one of its Secrets changes, and every connected
//! proxy of it an identity, renewed from one [`RotationQueue`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use kuma_api::{Kind, Resource, ResourceKey, Spec};
use kuma_store::{ChangeEvent, ListQuery, ResourceStore, StoreError};
use kuma_xds::ProxyResources;
use kuma_xds::generate::{GenerateError, MeshSnapshot, ProxyIdentity};
use kuma_xds::server::ProxyId;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::mtls::identity::{self, IssuedIdentity, RotationQueue};
use crate::mtls::{MeshCa, resolve_mesh_ca};

mod affected;
mod entry;
mod generation;

use affected::{Affected, Change};
use entry::MeshEntry;
use generation::same_resources;

/// Events arriving this close together are applied as one change, so a
/// burst (a `kumactl apply` of many resources) recomputes proxies once.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// The longest a change waits for others to join it: a steady stream of
/// changes (endpoint churn) must not postpone every one of them forever.
const MAX_BATCH_WAIT: Duration = Duration::from_millis(50);

/// A recompute taking this long is logged at info level with where its time went.
const SLOW_RECOMPUTE: Duration = Duration::from_millis(50);

/// How soon an identity that could not be issued is tried again.
const IDENTITY_RETRY: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Whether the index cares about a kind: what snapshots are built from.
/// Every policy kind is kept, whether or not generation applies it yet: the
/// snapshot decides which it uses.
fn indexed(kind: Kind) -> bool {
    matches!(kind, Kind::Mesh | Kind::Dataplane | Kind::MeshService) || kind.is_policy()
}

/// The kinds snapshots are built from.
fn indexed_kinds() -> impl Iterator<Item = Kind> {
    Kind::ALL.iter().copied().filter(|k| indexed(*k))
}

/// Per mesh, which of its proxies to regenerate.
type Targets = BTreeMap<String, Affected>;

fn everyone(meshes: impl IntoIterator<Item = String>) -> Targets {
    meshes
        .into_iter()
        .map(|m| (m, Affected::Everyone))
        .collect()
}

/// The mesh a resource belongs to (a Mesh belongs to itself).
fn mesh_of(key: &ResourceKey) -> Option<&str> {
    match key.kind {
        Kind::Mesh => Some(&key.name),
        _ => key.mesh.as_deref(),
    }
}

struct ProxyEntry {
    config: watch::Sender<Arc<ProxyResources>>,
    /// Open streams of this proxy (briefly two while it reconnects).
    streams: usize,
    /// The identity in its current configuration, kept across reconnects.
    identity: Option<Arc<IssuedIdentity>>,
}

/// One proxy to recompute, with what it is computed from.
struct Work {
    id: ProxyId,
    snapshot: Arc<MeshSnapshot>,
    ca: Option<Arc<MeshCa>>,
    identity: Option<Arc<IssuedIdentity>>,
}

fn dataplane_spec(
    resource: Option<&Resource>,
) -> Option<&kuma_api::kinds::dataplane::DataplaneSpec> {
    match resource.map(|r| &r.spec) {
        Some(Spec::Dataplane(d)) => Some(d),
        _ => None,
    }
}

/// Whether a mesh has a route policy (MeshHTTPRoute, MeshTCPRoute).
fn has_routes(resources: &BTreeMap<(Kind, String), Resource>) -> bool {
    [Kind::MeshHTTPRoute, Kind::MeshTCPRoute]
        .into_iter()
        .any(|kind| {
            resources
                .range((kind, String::new())..)
                .next()
                .is_some_and(|((k, _), _)| *k == kind)
        })
}

/// The Dataplanes among a mesh's resources.
fn dataplanes(
    resources: &BTreeMap<(Kind, String), Resource>,
) -> impl Iterator<Item = &Resource> + Clone {
    resources
        .range((Kind::Dataplane, String::new())..)
        .take_while(|((kind, _), _)| *kind == Kind::Dataplane)
        .map(|(_, r)| r)
}

/// The MeshServices among a mesh's resources.
fn mesh_services(
    resources: &BTreeMap<(Kind, String), Resource>,
) -> impl Iterator<Item = (&str, &kuma_api::kinds::mesh_service::MeshServiceSpec)> {
    resources
        .range((Kind::MeshService, String::new())..)
        .take_while(|((kind, _), _)| *kind == Kind::MeshService)
        .filter_map(|((_, name), r)| match &r.spec {
            Spec::MeshService(s) => Some((name.as_str(), s)),
            _ => None,
        })
}

/// Why a proxy could not be given its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// Its mesh has mTLS but no identity could be issued for it.
    #[error("no mTLS identity could be issued for {0}")]
    Identity(ProxyId),
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
    /// Held while proxies' configurations are generated and published, so
    /// the event task, the rotation task and connecting proxies never
    /// publish an older result over a newer one.
    generation: Arc<Mutex<()>>,
    rotation: Arc<RotationQueue>,
    /// Where generation times and failures are recorded.
    metrics: Metrics,
}

impl MeshIndex {
    /// Subscribes to the store, loads every mesh, and keeps itself current
    /// on a background task until `stop` turns true.
    pub async fn start(
        store: Arc<dyn ResourceStore>,
        metrics: Metrics,
        mut stop: watch::Receiver<bool>,
    ) -> Result<MeshIndex, StoreError> {
        // Subscribe before loading: a change made during the load is then
        // seen again as an event, never lost.
        let events = store.subscribe();
        let index = MeshIndex {
            store,
            state: Arc::default(),
            generation: Arc::default(),
            rotation: RotationQueue::new(),
            metrics,
        };
        index.resync().await?;
        let runner = index.clone();
        let mut stop_rotation = stop.clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    () = runner.follow(events) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            .instrument(tracing::info_span!("mesh_index")),
        );
        let rotator = index.clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    () = rotator.rotate_forever() => {}
                    _ = stop_rotation.wait_for(|s| *s) => {}
                }
            }
            .instrument(tracing::info_span!("identity_rotation")),
        );
        Ok(index)
    }

    /// Renews identities as their deadlines pass: one task for all proxies.
    async fn rotate_forever(&self) {
        loop {
            let due = self.rotation.next_due().await;
            tracing::debug!(proxies = due.len(), "identity rotation due");
            let mut targets = Targets::new();
            for proxy in due {
                targets
                    .entry(proxy.mesh)
                    .or_default()
                    .merge(Affected::Only([proxy.name].into()));
            }
            self.recompute(&targets);
        }
    }

    fn guard_generation(&self) -> MutexGuard<'_, ()> {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads the CA of `mesh` (creating builtin roots when missing). On
    /// failure the mesh keeps the CA it had: proxies keep working with
    /// their current identities while the error is logged.
    async fn load_ca(&self, mesh: &str, resource: &Resource) -> Option<Option<Arc<MeshCa>>> {
        let Spec::Mesh(spec) = &resource.spec else {
            return Some(None);
        };
        match resolve_mesh_ca(self.store.as_ref(), mesh, spec, Utc::now()).await {
            Ok(ca) => Some(ca),
            Err(e) => {
                tracing::error!(%mesh, error = %e, "could not load the mesh CA; keeping the previous one");
                None
            }
        }
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
        for kind in indexed_kinds() {
            all.extend(self.store.list(&ListQuery::all(kind)).await?.items);
        }
        let mut meshes: HashMap<String, MeshEntry> = HashMap::new();
        for r in &all {
            if r.kind() == Kind::Mesh {
                let loaded = self.load_ca(&r.meta.name, r).await;
                let previous = || {
                    let state = self.lock();
                    state.meshes.get(&r.meta.name).and_then(|e| e.ca.clone())
                };
                meshes.entry(r.meta.name.clone()).or_default().ca = loaded.unwrap_or_else(previous);
            }
        }
        for r in all {
            if let Some(mesh) = mesh_of(&r.key()).map(str::to_string) {
                let entry = meshes.entry(mesh).or_default();
                if let Spec::Dataplane(d) = &r.spec {
                    entry.reach.update(&r.meta.name, None, Some(d));
                }
                entry.resources.insert((r.kind(), r.meta.name.clone()), r);
            }
        }
        let changed: BTreeSet<String> = {
            let mut state = self.lock();
            let mut changed: BTreeSet<String> = state.meshes.keys().cloned().collect();
            changed.extend(meshes.keys().cloned());
            state.meshes = meshes;
            changed
        };
        self.recompute(&everyone(changed));
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
            let deadline = tokio::time::Instant::now() + MAX_BATCH_WAIT;
            loop {
                let wait =
                    DEBOUNCE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                if wait.is_zero() {
                    break;
                }
                let Ok(next) = tokio::time::timeout(wait, events.recv()).await else {
                    break;
                };
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
        // A changed Mesh, or a Secret of an mTLS mesh (a provided CA's data
        // or a builtin root), means loading that mesh's CA again.
        let ca_meshes: BTreeSet<String> = keys
            .iter()
            .filter_map(|k| match k.kind {
                Kind::Mesh => Some(k.name.clone()),
                Kind::Secret => k.mesh.clone().filter(|m| self.has_mtls(m)),
                _ => None,
            })
            .collect();
        let mut cas = Vec::new();
        for mesh in ca_meshes {
            let key = ResourceKey::global(Kind::Mesh, &mesh);
            let resource = match self.store.get(&key).await {
                Ok(r) => r,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => {
                    tracing::error!(error = %e, %key, "could not read a changed resource; reloading");
                    self.resync_logged().await;
                    return;
                }
            };
            if let Some(ca) = self.load_ca(&mesh, &resource).await {
                cas.push((mesh, ca));
            }
        }
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
        let mut targets = self.apply(current);
        for mesh in self.set_cas(cas) {
            targets.insert(mesh, Affected::Everyone);
        }
        self.recompute(&targets);
    }

    /// Whether `mesh` has mTLS on (whether or not its CA loaded yet).
    fn has_mtls(&self, mesh: &str) -> bool {
        let state = self.lock();
        let Some(entry) = state.meshes.get(mesh) else {
            return false;
        };
        entry.ca.is_some()
            || matches!(
                entry.resources.get(&(Kind::Mesh, mesh.to_string())),
                Some(Resource { spec: Spec::Mesh(m), .. }) if m.mtls_enabled()
            )
    }

    /// Installs loaded CAs; returns the meshes whose CA changed.
    fn set_cas(&self, cas: Vec<(String, Option<Arc<MeshCa>>)>) -> BTreeSet<String> {
        let mut state = self.lock();
        let mut changed = BTreeSet::new();
        for (mesh, ca) in cas {
            // The Mesh may have been deleted since its CA was loaded.
            let Some(entry) = state.meshes.get_mut(&mesh) else {
                continue;
            };
            let same = match (&entry.ca, &ca) {
                (None, None) => true,
                (Some(a), Some(b)) => a.generation() == b.generation() && a.trusted == b.trusted,
                _ => false,
            };
            if !same {
                tracing::info!(%mesh, backend = ?ca.as_ref().map(|c| c.backend.clone()), "mesh CA changed");
                entry.ca = ca;
                changed.insert(mesh);
            }
        }
        changed
    }

    /// Applies current states under the lock; returns, per mesh touched,
    /// the proxies the changes can reach.
    fn apply(&self, changes: Vec<(ResourceKey, Option<Resource>)>) -> Targets {
        let mut state = self.lock();
        let mut targets = Targets::new();
        for (key, resource) in changes {
            let Some(mesh) = mesh_of(&key).map(str::to_string) else {
                continue;
            };
            // A deleted Mesh takes everything inside it along.
            if key.kind == Kind::Mesh && resource.is_none() {
                if state.meshes.remove(&mesh).is_some() {
                    targets.insert(mesh, Affected::Everyone);
                }
                continue;
            }
            let entry = match &resource {
                Some(_) => state.meshes.entry(mesh.clone()).or_default(),
                None => match state.meshes.get_mut(&mesh) {
                    Some(entry) => entry,
                    None => continue,
                },
            };
            let slot = (key.kind, key.name.clone());
            let old = match resource {
                Some(r) => {
                    // Its own event after an `upsert`, or a write that
                    // changed nothing: no proxy needs it.
                    if entry.resources.get(&slot) == Some(&r) {
                        continue;
                    }
                    entry.resources.insert(slot.clone(), r)
                }
                None => match entry.resources.remove(&slot) {
                    Some(old) => Some(old),
                    None => continue,
                },
            };
            entry.invalidate(key.kind, &key.name);
            let new = entry.resources.get(&slot);
            if key.kind == Kind::Dataplane {
                entry
                    .reach
                    .update(&key.name, dataplane_spec(old.as_ref()), dataplane_spec(new));
            }
            let change = Change {
                kind: key.kind,
                name: &key.name,
                old: old.as_ref(),
                new,
            };
            let reached = if key.kind.is_policy() {
                affected::policy::affected(
                    &change,
                    &entry.reach,
                    dataplanes(&entry.resources),
                    has_routes(&entry.resources),
                )
            } else {
                affected::affected(&change, &entry.reach, mesh_services(&entry.resources))
            };
            targets.entry(mesh).or_default().merge(reached);
        }
        targets
    }

    /// Regenerates, per mesh, the connected proxies in `targets` and
    /// publishes what changed. Generation runs outside the state lock but
    /// under the generation lock, so results are published in the order they
    /// were computed; a connecting proxy registers under both, so it either
    /// sees the new snapshot or is part of this round.
    fn recompute(&self, targets: &Targets) {
        let _generation = self.guard_generation();
        let started = Instant::now();
        let work: Vec<Work> = {
            let mut state = self.lock();
            let state = &mut *state;
            let mut work = Vec::new();
            for (mesh, affected) in targets {
                // A mesh whose snapshot is still current and none of whose
                // proxies are affected needs nothing (not even a rebuild).
                if affected.is_empty() {
                    continue;
                }
                let (snapshot, ca) = match state.meshes.get_mut(mesh) {
                    Some(e) => (e.snapshot(mesh), e.ca.clone()),
                    None => (Arc::new(MeshSnapshot::builder(mesh.clone()).build()), None),
                };
                let start = ProxyId::new(mesh.clone(), String::new());
                for (id, p) in state.proxies.range(start..) {
                    if &id.mesh != mesh {
                        break;
                    }
                    if !affected.contains(&id.name) {
                        continue;
                    }
                    work.push(Work {
                        id: id.clone(),
                        snapshot: snapshot.clone(),
                        ca: ca.clone(),
                        identity: p.identity.clone(),
                    });
                }
            }
            work
        };
        if work.is_empty() {
            return;
        }
        let proxies = work.len();
        let prepared = Instant::now();
        let results = self.generate_all(work);
        let generated = Instant::now();
        let mut state = self.lock();
        for (id, resources, identity) in results {
            // It may have disconnected meanwhile.
            if let Some(entry) = state.proxies.get_mut(&id) {
                self.publish(&id, entry, resources, identity);
            }
        }
        drop(state);
        let took = started.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (snapshot_ms, generate_ms) = (ms(prepared - started), ms(generated - prepared));
        let publish_ms = ms(took) - snapshot_ms - generate_ms;
        if took >= SLOW_RECOMPUTE {
            tracing::info!(
                proxies,
                snapshot_ms,
                generate_ms,
                publish_ms,
                "slow recompute"
            );
        } else {
            tracing::debug!(proxies, snapshot_ms, generate_ms, publish_ms, "recomputed");
        }
    }

    /// The identity a proxy should have now: none without mTLS, its current
    /// one while still good, else a fresh one. `None` when one is needed but
    /// cannot be issued: the proxy then keeps its configuration rather than
    /// silently losing mTLS.
    fn identity_for(&self, item: &Work) -> Option<Option<Arc<IssuedIdentity>>> {
        let Some(ca) = &item.ca else {
            // mTLS is on but its CA did not load: serving plaintext would
            // quietly drop mTLS, so the proxy keeps what it has.
            if item.snapshot.mesh_spec().is_some_and(|m| m.mtls_enabled()) {
                tracing::warn!(proxy = %item.id, "the mesh has mTLS but no CA is loaded");
                return None;
            }
            return Some(None);
        };
        let dataplane = item.snapshot.dataplane(&item.id.name)?;
        let tags = identity::proxy_tags(dataplane);
        let now = Utc::now();
        if let Some(current) = &item.identity
            && current.still_good(ca, &tags, now)
        {
            return Some(Some(current.clone()));
        }
        match identity::issue(ca, &item.id.mesh, tags, now) {
            Ok(issued) => {
                tracing::debug!(proxy = %item.id, not_after = %issued.not_after(), "identity issued");
                Some(Some(Arc::new(issued)))
            }
            Err(e) => {
                tracing::warn!(proxy = %item.id, error = %e, "could not issue an identity");
                None
            }
        }
    }

    /// Writes a proxy's new configuration (when it differs) and identity,
    /// and schedules the identity's renewal when it is a new one.
    fn publish(
        &self,
        id: &ProxyId,
        entry: &mut ProxyEntry,
        resources: ProxyResources,
        identity: Option<Arc<IssuedIdentity>>,
    ) {
        let updated = entry.config.send_if_modified(|current| {
            if same_resources(current, &resources) {
                return false;
            }
            *current = Arc::new(resources);
            true
        });
        if updated {
            tracing::debug!(proxy = %id, "proxy configuration changed");
        }
        let renewed = match (&entry.identity, &identity) {
            (Some(old), Some(new)) => !Arc::ptr_eq(old, new),
            (None, Some(_)) => true,
            _ => false,
        };
        if renewed && let Some(new) = &identity {
            self.rotation.schedule(new.rotation_time(), id.clone());
        }
        entry.identity = identity;
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
        let targets = self.apply(vec![(resource.key(), Some(resource))]);
        self.recompute(&targets);
    }

    /// Registers one stream of `proxy` and returns its configuration watch,
    /// already holding the current configuration (and, in an mTLS mesh, an
    /// identity: the one it already has when it is reconnecting).
    pub fn connect(
        &self,
        proxy: &ProxyId,
    ) -> Result<watch::Receiver<Arc<ProxyResources>>, ConnectError> {
        let _generation = self.guard_generation();
        let item = {
            let mut state = self.lock();
            let state = &mut *state;
            let (snapshot, ca) = match state.meshes.get_mut(&proxy.mesh) {
                Some(e) => (e.snapshot(&proxy.mesh), e.ca.clone()),
                None => (
                    Arc::new(MeshSnapshot::builder(proxy.mesh.clone()).build()),
                    None,
                ),
            };
            Work {
                id: proxy.clone(),
                snapshot,
                ca,
                identity: state.proxies.get(proxy).and_then(|p| p.identity.clone()),
            }
        };
        let identity = match self.identity_for(&item) {
            Some(identity) => identity,
            None if item.snapshot.dataplane(&proxy.name).is_none() => None,
            None => return Err(ConnectError::Identity(proxy.clone())),
        };
        let resources = self.generate(&item, identity.as_deref())?;
        let mut state = self.lock();
        let entry = state
            .proxies
            .entry(proxy.clone())
            .or_insert_with(|| ProxyEntry {
                config: watch::channel(Arc::new(ProxyResources::default())).0,
                streams: 0,
                identity: None,
            });
        entry.streams += 1;
        self.publish(proxy, entry, resources, identity);
        Ok(entry.config.subscribe())
    }

    /// The identity a connected proxy holds now (for tests and diagnostics).
    pub fn identity(&self, proxy: &ProxyId) -> Option<ProxyIdentity> {
        let state = self.lock();
        let entry = state.proxies.get(proxy)?;
        entry.identity.as_ref().map(|i| i.proxy.clone())
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

#[cfg(test)]
mod tests;
