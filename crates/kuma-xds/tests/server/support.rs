//! A test registry, a server on 127.0.0.1:0 and thin ADS clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use kuma_xds::server::{ProxyId, ProxyRegistry, ProxyWatch, StreamEvent, StreamId, ads_service};
use kuma_xds::{ProxyResources, XdsResource};
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// How long something expected may take to happen. Generous: a real Envoy
/// starting on a busy 2-core CI machine can take seconds to connect.
pub const WAIT: Duration = Duration::from_secs(20);
pub const QUIET: Duration = Duration::from_millis(300);
pub const WEB: &str = "default.web-1";

pub fn mk_resource(type_url: &str, name: &str, content: &str) -> Arc<XdsResource> {
    Arc::new(XdsResource::new(
        name,
        Any {
            type_url: type_url.into(),
            value: content.as_bytes().to_vec(),
        },
    ))
}

pub fn mk_config(items: &[(&str, &str, &str)]) -> ProxyResources {
    let mut config = ProxyResources::default();
    for (type_url, name, content) in items {
        config.insert(mk_resource(type_url, name, content));
    }
    config
}

pub fn mk_node(id: &str) -> Node {
    Node {
        id: id.into(),
        cluster: "web".into(),
        ..Default::default()
    }
}

pub fn token_for(node_id: &str) -> String {
    format!("Bearer token-of-{node_id}")
}

/// Stands in for the control plane: one config watch per proxy, a token per
/// proxy, and a log of every stream event.
#[derive(Default)]
pub struct TestRegistry {
    proxies: Mutex<HashMap<String, watch::Sender<Arc<ProxyResources>>>>,
    events: Mutex<Vec<(ProxyId, StreamId, StreamEvent)>>,
    changed: Notify,
    guards_dropped: Arc<AtomicUsize>,
}

struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl ProxyRegistry for TestRegistry {
    async fn connect(&self, node: &Node, metadata: &MetadataMap) -> Result<ProxyWatch, Status> {
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("dataplane token is missing"))?;
        if token != token_for(&node.id) {
            return Err(Status::permission_denied(
                "the token does not belong to this proxy",
            ));
        }
        let proxy = ProxyId::parse(&node.id)?;
        let config = self
            .proxies
            .lock()
            .unwrap()
            .get(&node.id)
            .map(watch::Sender::subscribe)
            .ok_or_else(|| Status::not_found("no such proxy"))?;
        Ok(ProxyWatch::new(
            proxy,
            config,
            StreamGuard(Arc::clone(&self.guards_dropped)),
        ))
    }

    fn on_event(&self, proxy: &ProxyId, stream: StreamId, event: StreamEvent) {
        self.events
            .lock()
            .unwrap()
            .push((proxy.clone(), stream, event));
        self.changed.notify_waiters();
    }
}

impl TestRegistry {
    pub fn publish(&self, node_id: &str, config: ProxyResources) {
        let mut proxies = self.proxies.lock().unwrap();
        match proxies.get(node_id) {
            Some(tx) => {
                tx.send_replace(Arc::new(config));
            }
            None => {
                proxies.insert(node_id.into(), watch::Sender::new(Arc::new(config)));
            }
        }
    }

    pub fn forget(&self, node_id: &str) {
        self.proxies.lock().unwrap().remove(node_id);
    }

    pub fn events(&self) -> Vec<StreamEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, e)| e.clone())
            .collect()
    }

    pub fn guards_dropped(&self) -> usize {
        self.guards_dropped.load(Ordering::SeqCst)
    }

    /// Waits until some recorded event matches.
    pub async fn wait_for(
        &self,
        what: &str,
        matches: impl Fn(&StreamEvent) -> bool,
    ) -> StreamEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.changed.notified();
            if let Some(found) = self.events().into_iter().find(|e| matches(e)) {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no {what} event; events: {:#?}", self.events());
            }
        }
    }

    pub fn count(&self, matches: impl Fn(&StreamEvent) -> bool) -> usize {
        self.events().iter().filter(|e| matches(e)).count()
    }
}

/// The ADS server mounted beside `/bootstrap`, as the control plane mounts
/// it on its data plane port.
pub struct Harness {
    pub registry: Arc<TestRegistry>,
    pub addr: SocketAddr,
}

impl Harness {
    pub async fn start() -> Self {
        let registry = Arc::new(TestRegistry::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dyn_registry: Arc<dyn ProxyRegistry> = registry.clone();
        let routes = tonic::service::Routes::new(ads_service(dyn_registry))
            .into_axum_router()
            .route(
                "/bootstrap",
                axum::routing::post(|body: String| async move { format!("bootstrap for {body}") }),
            );
        tokio::spawn(
            tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes.into())
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Self { registry, addr }
    }

    async fn client(&self) -> AggregatedDiscoveryServiceClient<Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// Opens a delta stream whose first request is `first`, with `token`.
    pub async fn delta(
        &self,
        first: DeltaDiscoveryRequest,
        token: Option<&str>,
    ) -> Result<DeltaStream, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(first).unwrap();
        let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", token.parse().unwrap());
        }
        let responses = self
            .client()
            .await
            .delta_aggregated_resources(request)
            .await?
            .into_inner();
        Ok(DeltaStream { tx, responses })
    }

    /// Opens a state-of-the-world stream whose first request is `first`.
    pub async fn sotw(
        &self,
        first: DiscoveryRequest,
        token: Option<&str>,
    ) -> Result<SotwStream, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(first).unwrap();
        let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", token.parse().unwrap());
        }
        let responses = self
            .client()
            .await
            .stream_aggregated_resources(request)
            .await?
            .into_inner();
        Ok(SotwStream { tx, responses })
    }
}

pub struct DeltaStream {
    tx: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    pub responses: Streaming<DeltaDiscoveryResponse>,
}

impl DeltaStream {
    pub fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx.send(request).unwrap();
    }

    pub async fn next(&mut self) -> DeltaDiscoveryResponse {
        next(&mut self.responses).await
    }

    pub async fn expect_quiet(&mut self) {
        expect_quiet(&mut self.responses).await;
    }
}

pub struct SotwStream {
    tx: mpsc::UnboundedSender<DiscoveryRequest>,
    pub responses: Streaming<DiscoveryResponse>,
}

impl SotwStream {
    pub fn send(&self, request: DiscoveryRequest) {
        self.tx.send(request).unwrap();
    }

    pub async fn next(&mut self) -> DiscoveryResponse {
        next(&mut self.responses).await
    }

    pub async fn expect_quiet(&mut self) {
        expect_quiet(&mut self.responses).await;
    }
}

async fn next<T>(responses: &mut Streaming<T>) -> T {
    match tokio::time::timeout(WAIT, responses.message()).await {
        Ok(Ok(Some(response))) => response,
        Ok(Ok(None)) => panic!("the server ended the stream"),
        Ok(Err(status)) => panic!("the server failed the stream: {status:?}"),
        Err(_) => panic!("no response within {WAIT:?}"),
    }
}

async fn expect_quiet<T: std::fmt::Debug>(responses: &mut Streaming<T>) {
    if let Ok(got) = tokio::time::timeout(QUIET, responses.message()).await {
        panic!("expected no response, got {got:?}");
    }
}
