//! The control plane's side of the ADS server: authenticates each stream,
//! registers direct-mode Dataplanes, hands out the proxy's config watch, and
//! records stream events as insights.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind as PbKind;
use kuma_api::{Kind, Resource, ResourceKey};
use kuma_store::StoreError;
use kuma_xds::server::{ProxyId, ProxyRegistry, ProxyWatch, StreamEvent, StreamId};
use tonic::Status;
use tonic::metadata::MetadataMap;
use tracing::Instrument;

use super::{DIRECT_RESOURCE_METADATA, DpServerState, parse_direct_dataplane, register_direct};

/// Wraps the shared state as the ADS server's [`ProxyRegistry`].
pub struct Registry(pub Arc<DpServerState>);

/// Ends one stream's registration when the ADS server drops it.
struct StreamGuard {
    state: Arc<DpServerState>,
    proxy: ProxyId,
    /// The Dataplane was sent by the proxy (direct mode): it lives only while
    /// the proxy is connected, as in Kuma.
    direct: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let left = self.state.index.disconnect(&self.proxy);
        if !self.direct || left > 0 || self.state.shutting_down.load(Ordering::SeqCst) {
            // A control plane going down must not unregister its proxies:
            // they reconnect to the next one.
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let state = self.state.clone();
        let proxy = self.proxy.clone();
        runtime.spawn(
            async move {
                // A reconnect may have raced this task.
                if state.index.is_connected(&proxy) {
                    return;
                }
                let key = ResourceKey::in_mesh(Kind::Dataplane, &proxy.mesh, &proxy.name);
                match state.store.delete(&key, None).await {
                    Ok(()) => tracing::info!("proxy disconnected; its Dataplane was deleted"),
                    Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "could not delete the Dataplane of a disconnected proxy"),
                }
            }
            .instrument(tracing::info_span!("dataplane_deregister", proxy = %self.proxy)),
        );
    }
}

fn metadata_string(node: &Node, field: &str) -> Option<String> {
    let value = node.metadata.as_ref()?.fields.get(field)?;
    match &value.kind {
        Some(PbKind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn bearer(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    (!token.is_empty()).then(|| token.to_string())
}

#[async_trait::async_trait]
impl ProxyRegistry for Registry {
    async fn connect(&self, node: &Node, metadata: &MetadataMap) -> Result<ProxyWatch, Status> {
        let state = &self.0;
        let proxy = ProxyId::parse(&node.id)?;
        let key = ResourceKey::in_mesh(Kind::Dataplane, &proxy.mesh, &proxy.name);
        let direct = match metadata_string(node, DIRECT_RESOURCE_METADATA) {
            Some(text) => Some(
                parse_direct_dataplane(&text, &proxy.mesh)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
            None => None,
        };
        if let Some(doc) = &direct
            && (doc.mesh.as_deref() != Some(proxy.mesh.as_str()) || doc.name != proxy.name)
        {
            return Err(Status::invalid_argument(format!(
                "the Dataplane in the node metadata is not {proxy}"
            )));
        }
        // What the proxy claims to be: the stored Dataplane, else the one it sent.
        let existing = match state.index.resource(&key) {
            Some(r) => Some(r),
            None => match state.store.get(&key).await {
                Ok(r) => Some(r),
                Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => None,
                Err(e) => return Err(Status::unavailable(format!("store failure: {e}"))),
            },
        };
        let claimed: Resource = match (&existing, &direct) {
            (_, Some(doc)) => doc.clone().into_resource(chrono::Utc::now()),
            (Some(r), None) => r.clone(),
            (None, None) => {
                return Err(Status::not_found(format!(
                    "dataplane {} not found in mesh {}",
                    proxy.name, proxy.mesh
                )));
            }
        };
        if state.authn_enabled() {
            let token = bearer(metadata).ok_or_else(|| {
                Status::unauthenticated("authentication failed: the dataplane token is missing")
            })?;
            state
                .authenticate(&token, &claimed)
                .await
                .map_err(|e| e.into_status())?;
        }
        match (existing, direct) {
            (_, Some(doc)) => {
                let stored = register_direct(state, doc)
                    .await
                    .map_err(|e| Status::failed_precondition(e.to_string()))?;
                state.index.upsert(stored);
            }
            (Some(r), None) => {
                if state.index.resource(&key).is_none() {
                    state.index.upsert(r);
                }
            }
            (None, None) => {}
        }
        let config = state
            .index
            .connect(&proxy)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let direct = metadata_string(node, DIRECT_RESOURCE_METADATA).is_some();
        tracing::info!(%proxy, direct, "proxy connected");
        let guard = StreamGuard {
            state: state.clone(),
            proxy: proxy.clone(),
            direct,
        };
        Ok(ProxyWatch::new(proxy, config, guard))
    }

    fn on_event(&self, proxy: &ProxyId, stream: StreamId, event: StreamEvent) {
        if let StreamEvent::Nacked {
            type_url,
            error_detail,
            ..
        } = &event
        {
            tracing::warn!(%proxy, %type_url, %error_detail, "proxy rejected its configuration");
        }
        self.0.insights.record(proxy, stream, &event);
    }
}
