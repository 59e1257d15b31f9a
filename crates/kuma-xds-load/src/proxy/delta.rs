//! A delta xDS stream driven the way Envoy drives it: wildcard clusters and
//! listeners, then endpoints and routes by name for what those reference.

use std::collections::BTreeSet;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{Failure, Probe, decode, retry_after, type_url};
use crate::stream_request;

/// Named subscriptions of one type, kept in step with what the held
/// resources reference.
#[derive(Default)]
struct Named {
    subscribed: BTreeSet<String>,
}

impl Named {
    /// The request moving the subscription to `wanted`, if anything changes.
    fn update(
        &mut self,
        type_url: &str,
        wanted: BTreeSet<String>,
    ) -> Option<DeltaDiscoveryRequest> {
        if wanted == self.subscribed {
            return None;
        }
        let request = DeltaDiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names_subscribe: wanted.difference(&self.subscribed).cloned().collect(),
            resource_names_unsubscribe: self.subscribed.difference(&wanted).cloned().collect(),
            ..Default::default()
        };
        self.subscribed = wanted;
        Some(request)
    }
}

/// Runs one proxy's delta stream until it ends; failures go to the probe.
pub(crate) async fn run_delta(channel: Channel, token: Option<String>, mut probe: Probe) {
    for attempt in 1.. {
        let result = drive(channel.clone(), token.clone(), &mut probe).await;
        if !retry_after(&probe, attempt, result).await {
            return;
        }
    }
}

async fn drive(channel: Channel, token: Option<String>, probe: &mut Probe) -> Result<(), Failure> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(16);
    let send = |r: DeltaDiscoveryRequest| {
        let tx = tx.clone();
        async move {
            tx.send(r)
                .await
                .map_err(|_| "request stream closed".to_string())
        }
    };
    let node = Node {
        id: probe.topology.node_id(probe.proxy),
        ..Node::default()
    };
    // Envoy opens with the wildcard types; nothing named yet.
    send(DeltaDiscoveryRequest {
        node: Some(node),
        type_url: type_url::CLUSTER.to_string(),
        ..Default::default()
    })
    .await?;
    send(DeltaDiscoveryRequest {
        type_url: type_url::LISTENER.to_string(),
        ..Default::default()
    })
    .await?;
    let request = stream_request(ReceiverStream::new(rx), token.as_deref())?;
    let mut responses = client
        .delta_aggregated_resources(request)
        .await
        .map_err(Failure::opening)?
        .into_inner();
    let mut endpoints = Named::default();
    let mut routes = Named::default();
    loop {
        let response: DeltaDiscoveryResponse = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(s) => return Err(Failure::Broken(format!("stream failed: {s}"))),
        };
        let applied = apply(probe, &response);
        // Envoy asks for what new clusters and listeners reference before
        // it ACKs them (their warming waits on it).
        let (eds, rds) = {
            let held = probe.held();
            (held.eds_names(), held.rds_names())
        };
        for r in [
            endpoints.update(type_url::ENDPOINT, eds),
            routes.update(type_url::ROUTE, rds),
        ]
        .into_iter()
        .flatten()
        {
            {
                // What Envoy no longer references it forgets.
                let mut held = probe.held();
                for name in &r.resource_names_unsubscribe {
                    held.remove(&r.type_url, name);
                }
            }
            send(r).await?;
        }
        let error_detail = applied.as_ref().err().map(|e| RpcStatus {
            code: 3,
            message: e.clone(),
            details: vec![],
        });
        send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail,
            ..Default::default()
        })
        .await?;
        match applied {
            Ok(()) => probe.after_ack(Instant::now()),
            Err(e) => probe.fail(format!("NACK: {e}")),
        }
    }
}

/// Applies a response to what the proxy holds; all or nothing, like Envoy.
fn apply(probe: &Probe, response: &DeltaDiscoveryResponse) -> Result<(), String> {
    let mut decoded = Vec::with_capacity(response.resources.len());
    for r in &response.resources {
        let Some(body) = &r.resource else {
            continue;
        };
        let d = decode(&response.type_url, &r.name, body).map_err(|e| e.to_string())?;
        decoded.push((r.name.clone(), d));
    }
    let mut held = probe.held();
    for (name, d) in decoded {
        held.upsert(&response.type_url, name, d);
    }
    for name in &response.removed_resources {
        held.remove(&response.type_url, name);
    }
    Ok(())
}
