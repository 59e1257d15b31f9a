//! Everything generation needs to know about one mesh, indexed once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::mesh::MeshSpec;
use kuma_api::kinds::mesh_service::MeshServiceSpec;
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::TargetRefKind;
use kuma_api::{Kind, Resource, Spec};
use kuma_policy::policy::SharedConfs;
use kuma_policy::{Destination as PolicyDestination, Fingerprint, MeshContext, PolicyIndex};

use super::outbound::route_table::RouteTables;
use super::policies::{LocalityPlan, ProxyRulesMemo};
use crate::XdsResource;

mod index;
mod policy_set;
pub(crate) mod route_confs;
mod update;

use policy_set::PolicySet;
use route_confs::RouteConfs;

/// The application protocol of a service, as far as Envoy config cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Http,
    Http2,
    Grpc,
}

impl Protocol {
    /// Kuma's protocol names; anything unknown (kafka included) is plain TCP.
    pub fn parse(name: &str) -> Protocol {
        match name {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            _ => Protocol::Tcp,
        }
    }

    pub fn is_http(self) -> bool {
        self != Protocol::Tcp
    }

    /// HTTP/2 towards the upstream (http2 and gRPC).
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }

    /// The protocol every instance can speak: the shared one when all agree,
    /// HTTP/1.1 when all are HTTP-family but differ, TCP otherwise.
    fn common(protocols: impl IntoIterator<Item = Protocol>) -> Protocol {
        let mut iter = protocols.into_iter();
        let Some(first) = iter.next() else {
            return Protocol::Tcp;
        };
        iter.fold(first, |acc, p| match (acc, p) {
            (a, b) if a == b => a,
            (a, b) if a.is_http() && b.is_http() => Protocol::Http,
            _ => Protocol::Tcp,
        })
    }
}

/// One ready instance of a destination, as other proxies reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub dataplane: String,
    pub address: String,
    pub port: u32,
    pub tags: BTreeMap<String, String>,
}

/// A destination proxies can have an outbound to: its ready endpoints and
/// the protocol they speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub endpoints: Vec<Endpoint>,
    pub protocol: Protocol,
}

/// Keys of resources that many proxies receive identically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
///
/// `policies` is the text of the policy confs the resource was built with:
/// proxies with other confs for the same destination get their own copy.
pub(crate) enum CacheKey {
    /// A destination's cluster; `mtls` clusters originate TLS.
    Cluster {
        name: String,
        mtls: bool,
        policies: ConfsKey,
        /// The client TLS parameters' key (empty without MeshTLS params).
        tls: String,
    },
    LoadAssignment(String),
    /// A destination's load assignment grouped by locality for the
    /// proxies with this plan (locality-aware load balancing).
    LocalityLoadAssignment {
        cluster: String,
        plan: LocalityPlan,
    },
    /// A destination cluster with an empty name and no TLS, policy confs
    /// applied: what every destination of that protocol and those confs
    /// is written from (`cluster::packed_from_template`).
    ClusterTemplate {
        protocol: Protocol,
        policies: ConfsKey,
    },
    InboundCluster {
        address: String,
        port: u32,
        protocol: Protocol,
        policies: String,
    },
    OutboundListener {
        address: String,
        port: u32,
        cluster: String,
        protocol: Protocol,
        policies: ConfsKey,
        /// Route names and the MeshHTTPRoutes with per-route confs.
        routes: String,
        route_policies: Vec<ConfsKey>,
        /// The tags header the outbound sends.
        tags: Option<String>,
    },
    /// A transparent proxy's passthrough listener or cluster; the key holds
    /// everything it is built from.
    Passthrough(super::passthrough::Key),
}

/// A destination's policy confs as part of cache keys: the fingerprint of
/// the confs by kind ([`Fingerprint`]), none without confs. Every
/// destination is looked up under it several times; a fingerprint is
/// compared and hashed at once, where the confs' text was long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConfsKey(Option<Fingerprint>);

impl ConfsKey {
    pub(crate) fn new(fingerprint: Fingerprint) -> ConfsKey {
        ConfsKey(Some(fingerprint))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl std::hash::Hash for ConfsKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.map_or(0, Fingerprint::low_bits));
    }
}

/// Written into the keys of resources that hold more than the confs: empty
/// without confs.
impl std::fmt::Display for ConfsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(fingerprint) => fingerprint.fmt(f),
            None => Ok(()),
        }
    }
}

/// One mesh: its Mesh resource, Dataplanes, MeshServices, the policies
/// generation applies, and the destination index derived from them. Cheap
/// to share between threads; resources identical for many proxies are
/// encoded once and cached here.
///
/// Parts are kept behind `Arc` so that [`MeshSnapshot::with_dataplane_changes`]
/// can share everything a change does not touch with the snapshot it
/// starts from.
#[derive(Debug)]
pub struct MeshSnapshot {
    mesh: String,
    mesh_spec: Option<MeshSpec>,
    /// The maps are behind `Arc` as a whole too: an update that does not
    /// touch Dataplanes (a policy change) shares them without copying
    /// thousands of entries.
    dataplanes: Arc<BTreeMap<String, Arc<IndexedDataplane>>>,
    policies: Arc<PolicySet>,
    mesh_services: Arc<BTreeMap<String, MeshServiceSpec>>,
    services: Arc<BTreeMap<String, Arc<Destination>>>,
    /// Per `kuma.io/service`, the Dataplanes with an inbound of it that is
    /// not ignored: what an update re-indexes the service from.
    service_members: Arc<BTreeMap<String, Arc<BTreeSet<String>>>>,
    mesh_service_ports: Arc<BTreeMap<(String, u32), Arc<Destination>>>,
    pub(super) shared: Mutex<SharedCache>,
    /// MeshHTTPRoute route tables proxies share (not carried to the next
    /// snapshot: they read the snapshot's services).
    pub(crate) route_tables: RouteTables,
    /// The policy rules of proxies matching tells apart from no other
    /// (the instances of a service), computed once for them all.
    pub(crate) proxy_rules: ProxyRulesMemo,
}

/// The encoded resources proxies share, by what they were built from. Keys
/// are hashed with foldhash (seeded per map): SipHash over every key of a
/// proxy's hundreds of clusters and load assignments showed in cold
/// generation, and the keys (service names) are not secret enough to need it.
pub(super) type SharedCache = HashMap<CacheKey, CacheEntry, foldhash::fast::RandomState>;

/// An empty cache with room for what the proxies of a mesh with
/// `destinations` destinations share (a cluster and a load assignment each,
/// and some listeners): growing it entry by entry rehashed it again and
/// again while the first proxies were generated.
pub(super) fn shared_cache(destinations: usize) -> Mutex<SharedCache> {
    let capacity = destinations.saturating_mul(2).saturating_add(16);
    Mutex::new(HashMap::with_capacity_and_hasher(
        capacity,
        foldhash::fast::RandomState::default(),
    ))
}

/// A shared resource, and whether generation asked for it since it was
/// cached or carried: carrying across policy changes keeps only those, so
/// resources built with confs nobody has any more do not pile up.
#[derive(Debug)]
pub(super) struct CacheEntry {
    pub(super) resource: Arc<XdsResource>,
    pub(super) used: bool,
}

/// A Dataplane with the labels policies and MeshServices select it by.
#[derive(Debug)]
pub(super) struct IndexedDataplane {
    pub(super) labels: BTreeMap<String, String>,
    pub(super) spec: DataplaneSpec,
}

/// Collects one mesh's resources; everything of another mesh is dropped,
/// which is what keeps meshes isolated.
#[derive(Debug, Default)]
pub struct MeshSnapshotBuilder {
    mesh: String,
    mesh_spec: Option<MeshSpec>,
    dataplanes: BTreeMap<String, (BTreeMap<String, String>, DataplaneSpec)>,
    mesh_services: BTreeMap<String, MeshServiceSpec>,
    /// Labels of MeshServices: `to` entries may select them by labels.
    mesh_service_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Policies are read as they are added, so that their specs are taken
    /// apart in place rather than moved around first; policies read
    /// together share equal confs (one value each, which makes folds that
    /// meet it again cheap) and read a repeated conf once. Kept in the
    /// order added, and put in name order once, when built.
    policies: BTreeMap<Kind, Vec<(String, policy_set::ReadPolicy)>>,
    confs: SharedConfs,
}

impl MeshSnapshotBuilder {
    /// Adds a resource if it is this mesh's Mesh, or a Dataplane,
    /// MeshService or targetRef policy inside this mesh; ignores anything
    /// else.
    pub fn add(
        &mut self,
        mesh: Option<&str>,
        name: &str,
        labels: &BTreeMap<String, String>,
        spec: Spec,
    ) -> &mut Self {
        match spec {
            Spec::Mesh(m) if mesh.is_none() && name == self.mesh => self.mesh_spec = Some(m),
            Spec::Dataplane(d) if mesh == Some(self.mesh.as_str()) => {
                self.dataplanes
                    .insert(name.to_string(), (labels.clone(), d));
            }
            Spec::MeshService(s) if mesh == Some(self.mesh.as_str()) => {
                self.mesh_service_labels
                    .insert(name.to_string(), labels.clone());
                self.mesh_services.insert(name.to_string(), s);
            }
            spec if spec.kind().is_policy() && mesh == Some(self.mesh.as_str()) => {
                self.policy(name, labels, spec);
            }
            _ => {}
        }
        self
    }

    /// Adds a targetRef policy of this mesh (other kinds are ignored); a
    /// policy whose targetRefs do not read is left out (and reported by
    /// [`MeshSnapshot::policy_warnings`]).
    pub fn policy(
        &mut self,
        name: &str,
        labels: &BTreeMap<String, String>,
        spec: Spec,
    ) -> &mut Self {
        let kind = spec.kind();
        if !kind.is_policy() {
            return self;
        }
        let policy = policy_set::read_one(&self.mesh, name, labels.clone(), spec, &mut self.confs);
        self.policies
            .entry(kind)
            .or_default()
            .push((name.to_string(), policy));
        self
    }

    pub fn mesh_spec(&mut self, spec: MeshSpec) -> &mut Self {
        self.mesh_spec = Some(spec);
        self
    }

    pub fn dataplane(&mut self, name: &str, spec: DataplaneSpec) -> &mut Self {
        self.dataplanes
            .insert(name.to_string(), (BTreeMap::new(), spec));
        self
    }

    pub fn mesh_service(&mut self, name: &str, spec: MeshServiceSpec) -> &mut Self {
        self.mesh_services.insert(name.to_string(), spec);
        self
    }

    pub fn build(self) -> MeshSnapshot {
        let destinations = self
            .mesh_services
            .keys()
            .map(|name| PolicyDestination {
                kind: TargetRefKind::MeshService,
                name: name.clone(),
                labels: self
                    .mesh_service_labels
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let sources = self
            .policies
            .into_iter()
            .map(|(kind, added)| (kind, Arc::new(policy_set::by_name(added))))
            .collect();
        let policies = PolicySet::from_read(self.mesh.clone(), destinations, sources, None);
        let dataplanes: BTreeMap<String, Arc<IndexedDataplane>> = self
            .dataplanes
            .into_iter()
            .map(|(name, (labels, spec))| (name, Arc::new(IndexedDataplane { labels, spec })))
            .collect();
        let service_members = index::service_members(&dataplanes);
        let services: BTreeMap<String, Arc<Destination>> = service_members
            .iter()
            .map(|(service, members)| {
                let dest = index::service_destination(service, members, &dataplanes);
                (service.clone(), Arc::new(dest))
            })
            .collect();
        let mut mesh_service_ports = BTreeMap::new();
        for (name, svc) in &self.mesh_services {
            index::insert_mesh_service_ports(&mut mesh_service_ports, name, svc, &dataplanes);
        }
        let destinations = services.len() + mesh_service_ports.len();
        MeshSnapshot {
            mesh: self.mesh,
            mesh_spec: self.mesh_spec,
            dataplanes: Arc::new(dataplanes),
            policies: Arc::new(policies),
            mesh_services: Arc::new(self.mesh_services),
            services: Arc::new(services),
            service_members: Arc::new(service_members),
            mesh_service_ports: Arc::new(mesh_service_ports),
            shared: shared_cache(destinations),
            route_tables: RouteTables::default(),
            proxy_rules: ProxyRulesMemo::default(),
        }
    }
}

impl MeshSnapshot {
    pub fn builder(mesh: impl Into<String>) -> MeshSnapshotBuilder {
        MeshSnapshotBuilder {
            mesh: mesh.into(),
            ..MeshSnapshotBuilder::default()
        }
    }

    /// A snapshot of `mesh` from a store listing of any kinds and meshes.
    pub fn from_resources(mesh: &str, resources: impl IntoIterator<Item = Resource>) -> Self {
        let mut builder = Self::builder(mesh);
        for r in resources {
            builder.add(r.meta.mesh.as_deref(), &r.meta.name, &r.meta.labels, r.spec);
        }
        builder.build()
    }

    pub fn mesh(&self) -> &str {
        &self.mesh
    }

    pub fn mesh_spec(&self) -> Option<&MeshSpec> {
        self.mesh_spec.as_ref()
    }

    pub fn dataplane(&self, name: &str) -> Option<&DataplaneSpec> {
        self.dataplanes.get(name).map(|d| &d.spec)
    }

    /// The labels of a Dataplane (empty when unknown): policies may select by them.
    pub fn dataplane_labels(&self, name: &str) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.dataplanes.get(name).map_or(&NONE, |d| &d.labels)
    }

    /// What policy matching needs to know about the mesh.
    pub fn policy_context(&self) -> &MeshContext {
        &self.policies.context
    }

    /// The mesh's MeshHTTPRoute `to` confs, read.
    pub(crate) fn route_confs(&self) -> &RouteConfs {
        &self.policies.routes
    }

    /// The mesh's MeshTrafficPermissions, indexed for matching.
    pub fn traffic_permissions(&self) -> &PolicyIndex {
        self.policy_index(Kind::MeshTrafficPermission)
    }

    /// The mesh's policies of `kind`, indexed for matching (none when the
    /// mesh has none of that kind).
    pub fn policy_index(&self, kind: Kind) -> &PolicyIndex {
        self.policies
            .by_kind
            .get(&kind)
            .map_or(&self.policies.none, |i| &**i)
    }

    /// The policy kinds the mesh has at least one policy of.
    pub fn policy_kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.policies.by_kind.keys().copied()
    }

    /// Policies left out because they could not be read.
    pub fn policy_warnings(&self) -> &[String] {
        &self.policies.warnings
    }

    pub fn dataplane_names(&self) -> impl Iterator<Item = &str> {
        self.dataplanes.keys().map(String::as_str)
    }

    pub fn mesh_service(&self, name: &str) -> Option<&MeshServiceSpec> {
        self.mesh_services.get(name)
    }

    /// Every `kuma.io/service` served in the mesh (ready or not).
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// How many `kuma.io/service`s are served in the mesh.
    pub(crate) fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Every `kuma.io/service` served in the mesh with its destination, by name.
    pub(crate) fn services(&self) -> impl Iterator<Item = (&str, &Destination)> {
        self.services.iter().map(|(name, d)| (name.as_str(), &**d))
    }

    /// The destination of a `kuma.io/service`; `None` when no inbound serves it.
    pub fn service(&self, service: &str) -> Option<&Destination> {
        self.services.get(service).map(|d| &**d)
    }

    /// A served `kuma.io/service`: the snapshot's copy of its name, and its
    /// destination.
    pub(crate) fn service_entry(&self, service: &str) -> Option<(&str, &Destination)> {
        self.services
            .get_key_value(service)
            .map(|(name, d)| (name.as_str(), &**d))
    }

    /// The destination of one port of a MeshService.
    pub fn mesh_service_port(&self, name: &str, port: u32) -> Option<&Destination> {
        self.mesh_service_ports
            .get(&(name.to_string(), port))
            .map(|d| &**d)
    }

    /// Whether both snapshots have the very same policies (an update that
    /// changed no policy shares them).
    pub(super) fn same_policies(&self, other: &MeshSnapshot) -> bool {
        Arc::ptr_eq(&self.policies, &other.policies)
    }

    /// The shared resource under `key`, built by `build` on first use.
    pub(crate) fn shared(
        &self,
        key: CacheKey,
        build: impl FnOnce() -> XdsResource,
    ) -> Arc<XdsResource> {
        // A panic elsewhere cannot leave the map half-written (inserts are
        // single operations), so a poisoned lock is still safe to use.
        let lock = || {
            self.shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(found) = lock().get_mut(&key) {
            found.used = true;
            return found.resource.clone();
        }
        // Built outside the lock so generation of other proxies proceeds.
        let built = Arc::new(build());
        lock()
            .entry(key)
            .or_insert(CacheEntry {
                resource: built,
                used: true,
            })
            .resource
            .clone()
    }
}

/// Services keyed by `kuma.io/service` never include the tag in endpoint
/// metadata: it is the same for every endpoint of a cluster.
pub(crate) fn lb_tags(tags: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .filter(|(k, _)| k.as_str() != SERVICE_TAG)
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuma_api::kinds::dataplane::{Health, Inbound, InboundState, Networking};
    use std::hash::BuildHasher;

    fn mk_inbound(service: &str, port: u32, protocol: &str) -> Inbound {
        Inbound {
            port,
            tags: [
                (SERVICE_TAG.to_string(), service.to_string()),
                ("kuma.io/protocol".to_string(), protocol.to_string()),
            ]
            .into(),
            ..Inbound::default()
        }
    }

    fn mk_dataplane(address: &str, inbounds: Vec<Inbound>) -> DataplaneSpec {
        DataplaneSpec {
            networking: Some(Networking {
                address: address.into(),
                inbound: inbounds,
                ..Networking::default()
            }),
            ..DataplaneSpec::default()
        }
    }

    #[test]
    fn confs_keys_are_equal_by_fingerprint_and_empty_without_confs() {
        let conf = |retries| Fingerprint::of(&serde_json::json!({"numRetries": retries}));
        let (a, b, c) = (
            ConfsKey::new(conf(2)),
            ConfsKey::new(conf(2)),
            ConfsKey::new(conf(3)),
        );
        assert_eq!(a, b);
        let state = foldhash::quality::RandomState::default();
        assert_eq!(state.hash_one(a), state.hash_one(b));
        assert_ne!(a, c);
        assert!(ConfsKey::default().is_empty() && !a.is_empty());
        assert_eq!(ConfsKey::default().to_string(), "");
        assert_eq!(a.to_string(), conf(2).to_string());
    }

    #[test]
    fn index_keeps_only_ready_endpoints_but_every_protocol() {
        let mut not_ready = mk_inbound("web", 80, "http");
        not_ready.health = Some(Health { ready: false });
        let mut ignored = mk_inbound("web", 81, "tcp");
        ignored.state = Some(InboundState::Ignored);
        let snap = {
            let mut b = MeshSnapshot::builder("default");
            b.dataplane(
                "a",
                mk_dataplane("10.0.0.1", vec![mk_inbound("web", 80, "http")]),
            );
            b.dataplane("b", mk_dataplane("10.0.0.2", vec![not_ready, ignored]));
            b.build()
        };
        let web = snap.service("web").expect("web indexed");
        assert_eq!(web.protocol, Protocol::Http);
        assert_eq!(web.endpoints.len(), 1);
        assert_eq!(web.endpoints[0].address, "10.0.0.1");
    }

    #[test]
    fn mixed_protocols_fall_back() {
        assert_eq!(
            Protocol::common([Protocol::Http2, Protocol::Grpc]),
            Protocol::Http
        );
        assert_eq!(
            Protocol::common([Protocol::Http, Protocol::Tcp]),
            Protocol::Tcp
        );
        assert_eq!(
            Protocol::common([Protocol::Grpc, Protocol::Grpc]),
            Protocol::Grpc
        );
        assert_eq!(Protocol::common([]), Protocol::Tcp);
    }

    #[test]
    fn advertised_address_wins_over_address() {
        let mut dp = mk_dataplane("10.0.0.1", vec![mk_inbound("web", 80, "tcp")]);
        if let Some(n) = dp.networking.as_mut() {
            n.advertised_address = "192.168.0.1".into();
        }
        let mut b = MeshSnapshot::builder("default");
        b.dataplane("a", dp);
        let snap = b.build();
        assert_eq!(
            snap.service("web").map(|d| d.endpoints[0].address.as_str()),
            Some("192.168.0.1")
        );
    }

    #[test]
    fn builder_drops_other_meshes() {
        let mut b = MeshSnapshot::builder("one");
        let labels = BTreeMap::new();
        let dp = mk_dataplane("10.0.0.1", vec![mk_inbound("web", 80, "tcp")]);
        b.add(Some("two"), "x", &labels, Spec::Dataplane(dp.clone()));
        b.add(Some("one"), "y", &labels, Spec::Dataplane(dp));
        b.add(None, "two", &labels, Spec::Mesh(MeshSpec::default()));
        let snap = b.build();
        assert_eq!(snap.dataplane_names().collect::<Vec<_>>(), ["y"]);
        assert!(snap.mesh_spec().is_none());
    }
}
