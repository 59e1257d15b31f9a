//! The ADS server: delta and state-of-the-world xDS over one gRPC stream per
//! proxy.
//!
//! The server knows nothing about meshes or stores. The control plane plugs
//! in through [`ProxyRegistry`]: it authenticates each stream, hands back a
//! `watch` of the proxy's desired [`ProxyResources`], and receives
//! [`StreamEvent`]s (ACKs, NACKs, connects) for the proxy's insight.
//!
//! Per stream the server remembers what the proxy has (delta: name → content
//! hash; SotW: version per type), so a new desired config sends only what
//! changed, a reconnecting proxy that already has the current config is sent
//! nothing new, and a NACKed config is not pushed again.
//!
//! # Mounting on the data plane port
//!
//! Port 5678 serves both ADS (gRPC, HTTP/2) and `POST /bootstrap` (HTTP/1.1
//! from `kuma-dp`). tonic's [`Routes`](tonic::service::Routes) is an axum
//! router underneath, so both fit on one listener:
//!
//! ```ignore
//! let routes = tonic::service::Routes::new(kuma_xds::server::ads_service(registry))
//!     .into_axum_router()
//!     .route("/bootstrap", axum::routing::post(bootstrap_handler));
//! tonic::transport::Server::builder()
//!     .accept_http1(true) // kuma-dp's bootstrap request is plain HTTP/1.1
//!     .add_routes(routes.into())
//!     .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
//!     .await?;
//! ```
//!
//! (`tests/server.rs` runs exactly this.) Serving the router with
//! `axum::serve` instead needs axum's `http2` feature for gRPC.

mod delivery;
mod delta;
mod session;
mod sotw;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::ProxyResources;

use self::delta::DeltaSession;
use self::session::Session;
use self::sotw::SotwSession;

/// How long a new stream may stay silent before its first request (which
/// carries the node) arrives. The only timer a stream ever has.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Responses queued for a slow client before the stream stops producing;
/// bounds memory per stream.
const OUTBOUND_QUEUE: usize = 16;

/// The identity of a data plane proxy, from Envoy's `node.id`
/// (`<mesh>.<name>`; zone proxies have an empty mesh: `.<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyId {
    pub mesh: String,
    pub name: String,
}

impl ProxyId {
    pub fn new(mesh: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            mesh: mesh.into(),
            name: name.into(),
        }
    }

    /// Parses a node id. Names may contain dots (Kubernetes `name.namespace`),
    /// meshes may not, so the id splits at its first dot.
    pub fn parse(node_id: &str) -> Result<Self, ProxyIdError> {
        if node_id.is_empty() {
            return Err(ProxyIdError::Empty);
        }
        let (mesh, name) = node_id.split_once('.').ok_or(ProxyIdError::MissingDot)?;
        if name.is_empty() {
            return Err(ProxyIdError::EmptyName);
        }
        Ok(Self::new(mesh, name))
    }
}

impl fmt::Display for ProxyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.mesh, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyIdError {
    #[error("Envoy node id must not be empty")]
    Empty,
    #[error("the name should be provided after the dot")]
    MissingDot,
    #[error("name must not be empty")]
    EmptyName,
}

impl From<ProxyIdError> for Status {
    fn from(e: ProxyIdError) -> Self {
        Status::invalid_argument(format!("invalid node id: {e}"))
    }
}

/// Identifies one ADS stream; a proxy may briefly have two while it
/// reconnects, so insights key on (proxy, stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Which variant of the xDS protocol a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Incremental xDS (`DeltaAggregatedResources`).
    Delta,
    /// State of the world (`StreamAggregatedResources`).
    StateOfTheWorld,
}

/// What happened on a proxy's stream, for its insight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream was authenticated and starts serving. Always the first event.
    Connected { protocol: Protocol },
    /// A response was sent. `version` is the type's version at that moment
    /// (SotW `version_info`, delta `system_version_info`).
    Sent { type_url: String, version: String },
    /// The proxy accepted the response carrying `version`.
    Acked { type_url: String, version: String },
    /// The proxy rejected the response carrying `version`; it keeps its
    /// previous config. The same content is not sent again.
    Nacked {
        type_url: String,
        version: String,
        error_detail: String,
    },
    /// The stream ended. Always the last event.
    Disconnected,
}

/// A proxy's view of the control plane, returned by [`ProxyRegistry::connect`].
pub struct ProxyWatch {
    proxy: ProxyId,
    config: watch::Receiver<Arc<ProxyResources>>,
    guard: Box<dyn Send>,
}

impl ProxyWatch {
    /// `config` holds the proxy's desired configuration; its current value is
    /// served as soon as the proxy asks, so publish a computed config before
    /// returning from `connect`. `guard` is dropped when the stream ends.
    pub fn new(
        proxy: ProxyId,
        config: watch::Receiver<Arc<ProxyResources>>,
        guard: impl Send + 'static,
    ) -> Self {
        Self {
            proxy,
            config,
            guard: Box::new(guard),
        }
    }

    pub fn proxy(&self) -> &ProxyId {
        &self.proxy
    }
}

impl fmt::Debug for ProxyWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyWatch")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// What the control plane provides to the ADS server.
#[async_trait::async_trait]
pub trait ProxyRegistry: Send + Sync + 'static {
    /// Authenticates a new stream and returns the proxy's config watch.
    ///
    /// `node` comes from the stream's first request; `metadata` holds the
    /// gRPC headers (the dataplane token is in `authorization`). The
    /// implementation must make sure the token's proxy is the one named by
    /// `node.id`: a proxy may only ever receive its own configuration. An
    /// `Err` is returned to the client as is.
    async fn connect(&self, node: &Node, metadata: &MetadataMap) -> Result<ProxyWatch, Status>;

    /// Reports what happens on a stream. Called inline on the stream's
    /// task: keep it short and never block.
    fn on_event(&self, proxy: &ProxyId, stream: StreamId, event: StreamEvent);
}

/// Watches every stream of the server, for metrics. Unlike
/// [`ProxyRegistry::on_event`] it is told the protocol and how long a
/// proxy took to answer, and nothing about which proxy it was, so an
/// implementation can count without keeping per-proxy state.
///
/// Called inline on the stream's task: keep it short and never block.
/// Every method does nothing by default.
pub trait StreamObserver: Send + Sync + 'static {
    /// An authenticated stream starts serving.
    fn on_connect(&self, _protocol: Protocol) {}

    /// A stream [`on_connect`](Self::on_connect) announced has ended.
    fn on_disconnect(&self, _protocol: Protocol) {}

    /// A response of `type_url` was handed to the stream.
    fn on_push(&self, _protocol: Protocol, _type_url: &str) {}

    /// The proxy accepted a response. `delivery` is the time from handing
    /// the response to the stream to receiving the ACK; `None` when the
    /// response is no longer remembered (the stream had many unanswered).
    fn on_ack(&self, _protocol: Protocol, _type_url: &str, _delivery: Option<Duration>) {}

    /// The proxy rejected a response; `delivery` as for
    /// [`on_ack`](Self::on_ack).
    fn on_nack(&self, _protocol: Protocol, _type_url: &str, _delivery: Option<Duration>) {}
}

/// The observer of a server nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl StreamObserver for NoObserver {}

/// Errors a stream ends with; mapped to a gRPC status at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the first request of a stream must carry the node")]
    MissingNode,
    #[error("no request arrived within {0:?} of opening the stream")]
    NoFirstRequest(Duration),
    #[error("the stream ended before its first request")]
    EndedBeforeFirstRequest,
    #[error("the node id changed within the stream from {first:?} to {now:?}")]
    NodeChanged { first: String, now: String },
    #[error("a request must name its type_url")]
    MissingTypeUrl,
    #[error("too many resource types on one stream (limit {limit})")]
    TooManyTypes { limit: usize },
    #[error("too many resource names for {type_url} (limit {limit})")]
    TooManyNames { type_url: String, limit: usize },
    #[error("the configuration of this proxy is no longer available")]
    ConfigGone,
}

impl From<StreamError> for Status {
    fn from(e: StreamError) -> Self {
        let msg = e.to_string();
        match e {
            StreamError::MissingNode
            | StreamError::NodeChanged { .. }
            | StreamError::MissingTypeUrl => Status::invalid_argument(msg),
            StreamError::NoFirstRequest(_) => Status::deadline_exceeded(msg),
            StreamError::EndedBeforeFirstRequest => Status::cancelled(msg),
            StreamError::TooManyTypes { .. } | StreamError::TooManyNames { .. } => {
                Status::resource_exhausted(msg)
            }
            StreamError::ConfigGone => Status::unavailable(msg),
        }
    }
}

/// Hands out nonces unique across every stream of one server, so a nonce
/// from another (older) stream can never be mistaken for a current one.
#[derive(Debug, Clone, Default)]
pub(crate) struct NonceSource(Arc<AtomicU64>);

impl NonceSource {
    pub(crate) fn next(&self) -> String {
        (self.0.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// The ADS gRPC service. Build it with [`ads_service`].
pub struct AdsServer {
    registry: Arc<dyn ProxyRegistry>,
    observer: Arc<dyn StreamObserver>,
    nonces: NonceSource,
    streams: AtomicU64,
}

impl fmt::Debug for AdsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdsServer").finish_non_exhaustive()
    }
}

/// The ADS service, ready to be added to a tonic server or [`Routes`]
/// (see the module docs for sharing port 5678 with `/bootstrap`).
///
/// [`Routes`]: tonic::service::Routes
pub fn ads_service(
    registry: Arc<dyn ProxyRegistry>,
) -> AggregatedDiscoveryServiceServer<AdsServer> {
    ads_service_observed(registry, Arc::new(NoObserver))
}

/// Like [`ads_service`], reporting every stream's traffic to `observer`.
pub fn ads_service_observed(
    registry: Arc<dyn ProxyRegistry>,
    observer: Arc<dyn StreamObserver>,
) -> AggregatedDiscoveryServiceServer<AdsServer> {
    AggregatedDiscoveryServiceServer::new(AdsServer {
        registry,
        observer,
        nonces: NonceSource::default(),
        streams: AtomicU64::new(0),
    })
}

type Outbound<T> = ReceiverStream<Result<T, Status>>;

#[async_trait::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = Outbound<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Outbound<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let session = SotwSession::new(self.nonces.clone());
        self.open(request, session).await
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let session = DeltaSession::new(self.nonces.clone());
        self.open(request, session).await
    }
}

impl AdsServer {
    /// Reads the first request (for the node), authenticates through the
    /// registry, then serves the stream on its own task.
    async fn open<S: Session>(
        &self,
        request: Request<Streaming<S::Request>>,
        session: S,
    ) -> Result<Response<Outbound<S::Response>>, Status> {
        let (metadata, _, mut inbound) = request.into_parts();
        let first = match tokio::time::timeout(FIRST_REQUEST_TIMEOUT, inbound.message()).await {
            Err(_) => return Err(StreamError::NoFirstRequest(FIRST_REQUEST_TIMEOUT).into()),
            Ok(Err(status)) => return Err(status),
            Ok(Ok(None)) => return Err(StreamError::EndedBeforeFirstRequest.into()),
            Ok(Ok(Some(first))) => first,
        };
        let node = S::node(&first).ok_or(StreamError::MissingNode)?.clone();
        let watch = self.registry.connect(&node, &metadata).await?;

        let stream = StreamId(self.streams.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let span = tracing::info_span!(
            "ads_stream",
            proxy = %watch.proxy,
            stream = stream.0,
            protocol = ?S::PROTOCOL,
        );
        let ProxyWatch {
            proxy,
            config,
            guard,
        } = watch;
        let served = session::Served {
            registry: Arc::clone(&self.registry),
            observer: Arc::clone(&self.observer),
            deliveries: Default::default(),
            stream,
            node_id: node.id,
            proxy,
            config,
            tx,
        };
        tokio::spawn(session::serve(session, served, first, inbound, guard).instrument(span));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_splits_at_the_first_dot() {
        assert_eq!(
            ProxyId::parse("default.web-1.kuma-demo").unwrap(),
            ProxyId::new("default", "web-1.kuma-demo")
        );
        assert_eq!(
            ProxyId::parse(".zone-ingress").unwrap(),
            ProxyId::new("", "zone-ingress")
        );
        assert_eq!(ProxyId::parse("default"), Err(ProxyIdError::MissingDot));
        assert_eq!(ProxyId::parse("default."), Err(ProxyIdError::EmptyName));
        assert_eq!(ProxyId::parse(""), Err(ProxyIdError::Empty));
        assert_eq!(ProxyId::new("m", "a.b").to_string(), "m.a.b");
    }

    #[test]
    fn stream_errors_map_to_grpc_codes() {
        let s: Status = StreamError::MissingNode.into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: Status = StreamError::TooManyTypes { limit: 1 }.into();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        let s: Status = StreamError::ConfigGone.into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
    }

    #[test]
    fn nonces_are_unique_across_clones() {
        let a = NonceSource::default();
        let b = a.clone();
        assert_eq!(a.next(), "1");
        assert_eq!(b.next(), "2");
    }
}
