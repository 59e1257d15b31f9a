//! What delta and SotW streams share: the protocol state machine interface
//! and the task that drives one stream.
//!
//! The state machines are synchronous and own no I/O, so their rules (what
//! to send, what counts as an ACK) are tested without gRPC; the task only
//! moves requests, config changes and responses between them and the wire.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::delivery::Deliveries;
use super::{Protocol, ProxyId, ProxyRegistry, StreamError, StreamEvent, StreamId, StreamObserver};
use crate::ProxyResources;
use crate::type_url;

/// Resource types one stream may ask for. Envoy uses five; the bound keeps
/// a misbehaving client from growing per-stream state without limit.
pub(crate) const MAX_TYPES: usize = 16;

/// Resource names one stream may subscribe to, or be known to hold, per type.
pub(crate) const MAX_NAMES: usize = 100_000;

/// Responses sent but not yet ACKed that a delta stream remembers per type;
/// older ones count as stale if they are answered at all.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// The explicit wildcard subscription.
pub(crate) const WILDCARD: &str = "*";

/// Types a proxy subscribes to as a whole when it names nothing (xDS
/// "legacy wildcard"); the others are always asked for by name.
pub(crate) fn wildcard_capable(type_url: &str) -> bool {
    type_url == type_url::CLUSTER || type_url == type_url::LISTENER
}

/// `types` sorted by their place in `order`; types `order` does not know
/// come last, by name, so every step is deterministic.
pub(crate) fn in_order<'a>(
    types: impl Iterator<Item = &'a String>,
    order: &[&str],
) -> Vec<&'a String> {
    let mut types: Vec<&String> = types.collect();
    types.sort_by_key(|t| {
        let rank = order.iter().position(|o| o == t).unwrap_or(order.len());
        (rank, t.as_str())
    });
    types
}

/// Responses and insight events produced by one step of a state machine.
#[derive(Debug)]
pub(crate) struct Outbox<R> {
    pub(crate) responses: Vec<R>,
    pub(crate) events: Vec<StreamEvent>,
}

impl<R> Default for Outbox<R> {
    fn default() -> Self {
        Self {
            responses: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// One protocol's per-stream state machine.
pub(crate) trait Session: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const PROTOCOL: Protocol;

    /// The node; Envoy sends it on a stream's first request only.
    fn node(request: &Self::Request) -> Option<&Node>;

    /// The nonce of the response a request answers (empty if none).
    fn answered_nonce(request: &Self::Request) -> &str;

    /// A response's type and nonce, for timing its delivery.
    fn pushed(response: &Self::Response) -> (&str, &str);

    /// A request from the proxy: subscription change, ACK or NACK.
    fn on_request(
        &mut self,
        request: Self::Request,
        config: &ProxyResources,
        out: &mut Outbox<Self::Response>,
    ) -> Result<(), StreamError>;

    /// A new desired config for the proxy.
    fn on_config(&mut self, config: &ProxyResources, out: &mut Outbox<Self::Response>);
}

/// Everything a served stream owns besides its state machine.
pub(crate) struct Served<R> {
    pub(crate) registry: Arc<dyn ProxyRegistry>,
    pub(crate) observer: Arc<dyn StreamObserver>,
    pub(crate) deliveries: Deliveries,
    pub(crate) stream: StreamId,
    pub(crate) node_id: String,
    pub(crate) proxy: ProxyId,
    pub(crate) config: watch::Receiver<Arc<ProxyResources>>,
    pub(crate) tx: mpsc::Sender<Result<R, Status>>,
}

impl<R> Served<R> {
    fn report(&self, event: StreamEvent) {
        self.registry.on_event(&self.proxy, self.stream, event);
    }

    /// Reports events, then sends responses in order. `answered` is the
    /// nonce the request that produced `out` answered, if any: an ACK or
    /// NACK among the events refers to it. `false` once the client is gone.
    async fn flush<S: Session<Response = R>>(
        &mut self,
        out: &mut Outbox<R>,
        answered: Option<&str>,
    ) -> bool {
        let now = Instant::now();
        for event in out.events.drain(..) {
            match &event {
                StreamEvent::Acked { type_url, .. } => {
                    let delivery =
                        answered.and_then(|n| self.deliveries.answered(type_url, n, now));
                    self.observer.on_ack(S::PROTOCOL, type_url, delivery);
                }
                StreamEvent::Nacked { type_url, .. } => {
                    let delivery =
                        answered.and_then(|n| self.deliveries.answered(type_url, n, now));
                    self.observer.on_nack(S::PROTOCOL, type_url, delivery);
                }
                _ => {}
            }
            self.registry.on_event(&self.proxy, self.stream, event);
        }
        for response in out.responses.drain(..) {
            let (type_url, nonce) = S::pushed(&response);
            // Timed from the hand-over: a slow client's full queue is part
            // of what delivery measures.
            self.deliveries.pushed(type_url, nonce, Instant::now());
            self.observer.on_push(S::PROTOCOL, type_url);
            if self.tx.send(Ok(response)).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Serves one stream until the client leaves, breaks the protocol, or the
/// proxy's config goes away. Idle streams cost no wake-ups: the task sleeps
/// on the next request and the next config change only.
pub(crate) async fn serve<S: Session>(
    mut session: S,
    mut served: Served<S::Response>,
    first: S::Request,
    mut inbound: Streaming<S::Request>,
    guard: Box<dyn Send>,
) {
    served.report(StreamEvent::Connected {
        protocol: S::PROTOCOL,
    });
    served.observer.on_connect(S::PROTOCOL);
    let result = drive(&mut session, &mut served, first, &mut inbound).await;
    match result {
        Ok(()) => tracing::debug!("stream ended"),
        Err(e) => {
            tracing::info!(error = %e, "stream closed by the control plane");
            // The client may already be gone; nothing left to do then.
            let _ = served.tx.send(Err(e.into())).await;
        }
    }
    served.report(StreamEvent::Disconnected);
    served.observer.on_disconnect(S::PROTOCOL);
    // Tells the registry the stream has ended.
    drop(guard);
}

async fn drive<S: Session>(
    session: &mut S,
    served: &mut Served<S::Response>,
    first: S::Request,
    inbound: &mut Streaming<S::Request>,
) -> Result<(), StreamError> {
    let mut config: Arc<ProxyResources> = served.config.borrow_and_update().clone();
    let mut out = Outbox::default();
    let answered = S::answered_nonce(&first).to_string();
    session.on_request(first, &config, &mut out)?;
    if !served.flush::<S>(&mut out, Some(&answered)).await {
        return Ok(());
    }
    loop {
        // The nonce the request handled in this turn answers; none for a
        // config change.
        let mut answered = None;
        tokio::select! {
            message = inbound.message() => {
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) => return Ok(()),
                    Err(status) => {
                        tracing::debug!(%status, "client stream failed");
                        return Ok(());
                    }
                };
                if let Some(node) = S::node(&request) {
                    // Later requests need not carry the node; if one does,
                    // it must be the proxy this stream was authenticated as.
                    if !node.id.is_empty() && node.id != served.node_id {
                        return Err(StreamError::NodeChanged {
                            first: served.node_id.clone(),
                            now: node.id.clone(),
                        });
                    }
                }
                answered = Some(S::answered_nonce(&request).to_string());
                session.on_request(request, &config, &mut out)?;
            }
            changed = served.config.changed() => {
                if changed.is_err() {
                    return Err(StreamError::ConfigGone);
                }
                config = served.config.borrow_and_update().clone();
                session.on_config(&config, &mut out);
            }
        }
        if !served.flush::<S>(&mut out, answered.as_deref()).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_visited_make_before_break_then_by_name() {
        let types = [
            "z.unknown".to_string(),
            type_url::ROUTE.to_string(),
            type_url::SECRET.to_string(),
            type_url::CLUSTER.to_string(),
            "a.unknown".to_string(),
            type_url::LISTENER.to_string(),
            type_url::ENDPOINT.to_string(),
        ];
        let order: Vec<&str> = in_order(types.iter(), type_url::ORDER)
            .into_iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            order,
            vec![
                type_url::CLUSTER,
                type_url::ENDPOINT,
                type_url::LISTENER,
                type_url::ROUTE,
                type_url::SECRET,
                "a.unknown",
                "z.unknown",
            ]
        );
    }

    #[test]
    fn only_clusters_and_listeners_are_wildcard_capable() {
        assert!(wildcard_capable(type_url::CLUSTER));
        assert!(wildcard_capable(type_url::LISTENER));
        assert!(!wildcard_capable(type_url::ENDPOINT));
        assert!(!wildcard_capable(type_url::ROUTE));
        assert!(!wildcard_capable(type_url::SECRET));
    }
}
