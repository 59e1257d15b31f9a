//! A delta ADS client for tests: talks to a running control plane's data
//! plane server over TLS (trusting the CA it generated), subscribes the way
//! Envoy does, keeps what it was sent and ACKs (or NACKs) every response.

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use kuma_cp::ControlPlane;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

pub struct Ads {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: tonic::Streaming<DeltaDiscoveryResponse>,
    /// type URL -> resource name -> body bytes.
    pub have: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// Opens a stream for `node`, subscribing to each `(type URL, names)` in
/// order (the node rides on the first request only, as Envoy sends it).
pub async fn connect(
    cp: &ControlPlane,
    node: Node,
    token: Option<&str>,
    subscriptions: Vec<(&str, Vec<String>)>,
) -> Result<Ads, tonic::Status> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cp.dp_ca_cert_pem()))
        .domain_name("localhost");
    let url = format!("https://localhost:{}", cp.dp_server_address().port());
    let channel = Endpoint::from_shared(url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(16);
    let mut node = Some(node);
    for (type_url, names) in subscriptions {
        tx.send(DeltaDiscoveryRequest {
            node: node.take(),
            type_url: type_url.to_string(),
            resource_names_subscribe: names,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let response = client.delta_aggregated_resources(request).await?;
    Ok(Ads {
        tx,
        rx: response.into_inner(),
        have: BTreeMap::new(),
    })
}

impl Ads {
    /// Next response within `wait`, applied and ACKed (or NACKed with `nack`).
    pub async fn next(
        &mut self,
        wait: Duration,
        nack: Option<&str>,
    ) -> Option<DeltaDiscoveryResponse> {
        let r = tokio::time::timeout(wait, self.rx.message())
            .await
            .ok()?
            .ok()??;
        let entry = self.have.entry(r.type_url.clone()).or_default();
        for res in &r.resources {
            if let Some(body) = &res.resource {
                entry.insert(res.name.clone(), body.value.clone());
            }
        }
        for name in &r.removed_resources {
            entry.remove(name);
        }
        self.tx
            .send(DeltaDiscoveryRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                error_detail: nack.map(|m| RpcStatus {
                    code: 3,
                    message: m.into(),
                    details: vec![],
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        Some(r)
    }

    /// Reads and ACKs responses until `done` holds; fails after `within`.
    pub async fn until(&mut self, what: &str, within: Duration, done: impl Fn(&Ads) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}: {:?}",
                self.have.keys()
            );
            self.next(left, None).await;
        }
    }
}
