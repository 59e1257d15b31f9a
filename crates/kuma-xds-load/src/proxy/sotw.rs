//! A state-of-the-world xDS stream driven the way Envoy drives it: clusters
//! and listeners as a whole, endpoints and routes by the names those use;
//! every response replaces the whole type. A reconnecting proxy asks again
//! for every type with the version it last accepted and no nonce.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{Attempts, Decoded, Failure, Probe, decode, type_url};
use crate::stream_request;

/// Per type: the names asked for and the last accepted version and nonce,
/// which every later request of the type carries.
#[derive(Default)]
struct TypeState {
    names: BTreeSet<String>,
    version: String,
    nonce: String,
}

/// Runs one proxy's SotW streams, reconnecting as Envoy does, until one
/// fails for good; failures go to the probe.
pub(crate) async fn run_sotw(channel: Channel, token: Option<String>, mut probe: Probe) {
    let mut attempts = Attempts::new(probe.proxy);
    // What was accepted outlives a stream: a reconnect reports it.
    let mut types: BTreeMap<String, TypeState> = BTreeMap::new();
    loop {
        let result = drive(channel.clone(), token.clone(), &mut probe, &mut types).await;
        if !attempts.retry_after(&probe, result).await {
            return;
        }
    }
}

async fn drive(
    channel: Channel,
    token: Option<String>,
    probe: &mut Probe,
    types: &mut BTreeMap<String, TypeState>,
) -> Result<(), Failure> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(16);
    let send = |r: DiscoveryRequest| {
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
    let mut first = true;
    for t in [
        type_url::CLUSTER,
        type_url::LISTENER,
        type_url::ENDPOINT,
        type_url::ROUTE,
    ] {
        let state = types.entry(t.to_string()).or_default();
        let named = t == type_url::ENDPOINT || t == type_url::ROUTE;
        if named && state.names.is_empty() {
            continue;
        }
        // A new stream has no nonce to answer.
        state.nonce.clear();
        send(DiscoveryRequest {
            node: first.then(|| node.clone()),
            type_url: t.to_string(),
            version_info: state.version.clone(),
            resource_names: state.names.iter().cloned().collect(),
            ..Default::default()
        })
        .await?;
        first = false;
    }
    let request = stream_request(ReceiverStream::new(rx), token.as_deref())?;
    let mut responses = client
        .stream_aggregated_resources(request)
        .await
        .map_err(Failure::opening)?
        .into_inner();
    // A control plane that already has what the proxy reports sends
    // nothing back, so being accepted is all a SotW proxy can wait for.
    probe.held().stream_opened([]);
    probe.after_ack(Instant::now(), None);
    loop {
        let response: DiscoveryResponse = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(Failure::Dropped("the stream ended".into())),
            Err(s) => return Err(Failure::Dropped(format!("stream failed: {s}"))),
        };
        let applied = apply(probe, &response);
        let state = types.entry(response.type_url.clone()).or_default();
        let error_detail = match &applied {
            Ok(()) => {
                state.version = response.version_info.clone();
                None
            }
            Err(e) => Some(RpcStatus {
                code: 3,
                message: e.clone(),
                details: vec![],
            }),
        };
        state.nonce = response.nonce.clone();
        // ACK (or NACK: the previous version) with the same names.
        send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: state.version.clone(),
            response_nonce: state.nonce.clone(),
            resource_names: state.names.iter().cloned().collect(),
            error_detail,
            ..Default::default()
        })
        .await?;
        // New clusters or listeners: ask for the endpoints and routes they use.
        let (eds, rds) = {
            let held = probe.held();
            (held.eds_names(), held.rds_names())
        };
        for (t, wanted) in [(type_url::ENDPOINT, eds), (type_url::ROUTE, rds)] {
            let state = types.entry(t.to_string()).or_default();
            let first = state.nonce.is_empty() && state.names.is_empty();
            if wanted == state.names || (first && wanted.is_empty()) {
                continue;
            }
            state.names = wanted;
            send(DiscoveryRequest {
                type_url: t.to_string(),
                version_info: state.version.clone(),
                response_nonce: state.nonce.clone(),
                resource_names: state.names.iter().cloned().collect(),
                ..Default::default()
            })
            .await?;
        }
        match applied {
            Ok(()) => {
                let names: Vec<String> = probe.held().names(&response.type_url).cloned().collect();
                probe.after_ack(Instant::now(), Some((&response.type_url, &names)));
            }
            Err(e) => probe.nack(e),
        }
    }
}

/// Replaces the response's type with its content; all or nothing, like Envoy.
fn apply(probe: &Probe, response: &DiscoveryResponse) -> Result<(), String> {
    let mut all: BTreeMap<String, Decoded> = BTreeMap::new();
    for body in &response.resources {
        let name = resource_name(&response.type_url, body)?;
        let d = decode(&response.type_url, &name, body).map_err(|e| e.to_string())?;
        all.insert(name, d);
    }
    probe.held().replace(&response.type_url, all);
    Ok(())
}

/// SotW resources carry no name beside them: it is inside the message.
fn resource_name(
    type_url: &str,
    body: &envoy_types::pb::google::protobuf::Any,
) -> Result<String, String> {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Message;
    let bytes = body.value.as_slice();
    let name = match type_url {
        type_url::CLUSTER => Cluster::decode(bytes).map(|c| c.name),
        type_url::ENDPOINT => ClusterLoadAssignment::decode(bytes).map(|c| c.cluster_name),
        type_url::LISTENER => Listener::decode(bytes).map(|l| l.name),
        type_url::ROUTE => RouteConfiguration::decode(bytes).map(|r| r.name),
        type_url::SECRET => Secret::decode(bytes).map(|s| s.name),
        other => return Err(format!("resource type {other} is not one Envoy asked for")),
    };
    name.map_err(|e| format!("a {type_url} resource does not decode: {e}"))
}
