//! A delta xDS stream driven the way Envoy drives it: wildcard clusters and
//! listeners, then endpoints and routes by name for what those reference.
//! A reconnecting proxy resubscribes to what it had and reports the version
//! of every resource it holds, with no nonce.

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

use super::{Attempts, Failure, Probe, decode, type_url};
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

/// Runs one proxy's delta streams, reconnecting as Envoy does, until one
/// fails for good; failures go to the probe.
pub(crate) async fn run_delta(channel: Channel, token: Option<String>, mut probe: Probe) {
    let mut attempts = Attempts::new(probe.proxy);
    // Subscriptions outlive a stream: a reconnect asks for them again.
    let mut endpoints = Named::default();
    let mut routes = Named::default();
    loop {
        let result = drive(
            channel.clone(),
            token.clone(),
            &mut probe,
            &mut endpoints,
            &mut routes,
        )
        .await;
        if !attempts.retry_after(&probe, result).await {
            return;
        }
    }
}

async fn drive(
    channel: Channel,
    token: Option<String>,
    probe: &mut Probe,
    endpoints: &mut Named,
    routes: &mut Named,
) -> Result<(), Failure> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(16);
    let send = |r: DeltaDiscoveryRequest| {
        let tx = tx.clone();
        async move {
            tx.send(r)
                .await
                .map_err(|_| Failure::Dropped("request stream closed".to_string()))
        }
    };
    let node = Node {
        id: probe.topology.node_id(probe.proxy),
        ..Node::default()
    };
    // Envoy opens with the wildcard types, then (reconnecting) the named
    // ones it had; each tells the versions it holds.
    let mut first = Vec::new();
    for (type_url, names) in [
        (type_url::CLUSTER, None),
        (type_url::LISTENER, None),
        (type_url::ENDPOINT, Some(&endpoints.subscribed)),
        (type_url::ROUTE, Some(&routes.subscribed)),
    ] {
        if names.is_some_and(BTreeSet::is_empty) {
            continue;
        }
        first.push(DeltaDiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names_subscribe: names.into_iter().flatten().cloned().collect(),
            initial_resource_versions: probe.held().versions(type_url),
            ..Default::default()
        });
    }
    first[0].node = Some(node);
    let awaiting: Vec<String> = first.iter().map(|r| r.type_url.clone()).collect();
    for r in first {
        send(r).await?;
    }
    let request = stream_request(ReceiverStream::new(rx), token.as_deref())?;
    let mut responses = client
        .delta_aggregated_resources(request)
        .await
        .map_err(Failure::opening)?
        .into_inner();
    probe.held().stream_opened(awaiting);
    loop {
        let response: DeltaDiscoveryResponse = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Failure::Dropped("the stream ended".into())),
            Err(s) => return Err(Failure::Dropped(format!("stream failed: {s}"))),
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
            Ok(()) => {
                let names: Vec<String> = response
                    .resources
                    .iter()
                    .map(|r| r.name.clone())
                    .chain(response.removed_resources.iter().cloned())
                    .collect();
                probe.after_ack(Instant::now(), Some((&response.type_url, &names)));
            }
            Err(e) => probe.nack(e),
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
    held.answered(&response.type_url);
    for (name, d) in decoded {
        held.upsert(&response.type_url, name, d);
    }
    for r in &response.resources {
        held.set_version(&response.type_url, &r.name, &r.version);
    }
    for name in &response.removed_resources {
        held.remove(&response.type_url, name);
    }
    Ok(())
}
