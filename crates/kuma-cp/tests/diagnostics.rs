//! The diagnostics server of a running control plane: `/healthy`, `/ready`
//! and `/metrics` move with real store operations and a real delta ADS
//! stream that ACKs and NACKs.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use kuma_api::ResourceDocument;
use kuma_cp::config::DpProxyAuthnType;
use kuma_cp::{Config, ControlPlane};
use kuma_xds::type_url;

// Shared with tests that use every helper; this one needs only a few.
#[allow(dead_code)]
#[path = "support/ads.rs"]
mod ads_client;

/// Waits for responses and for metrics to settle; never a measured time.
const WAIT: Duration = Duration::from_secs(10);

struct Cp {
    cp: ControlPlane,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Cp {
    async fn start() -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests();
        config.general.work_dir = Some(dir.path().to_path_buf());
        config.dp_server.authn.dp_proxy.authn_type = DpProxyAuthnType::None;
        let cp = ControlPlane::start(config).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Cp {
            cp,
            http,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let r = self
            .http
            .get(format!("http://{}{path}", self.cp.diagnostics_address()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, content_type, r.text().await.unwrap())
    }

    async fn scrape(&self) -> String {
        let (status, _, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        text
    }

    /// Scrapes until `metric` (summed over series whose labels contain
    /// every one of `labels`) satisfies `ok`; fails with the last scrape.
    async fn wait_for(&self, metric: &str, labels: &[&str], ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.scrape().await;
            let value = sum(&text, metric, labels);
            if ok(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{metric} {labels:?} stayed at {value}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Creates Dataplane `name` in mesh `default` straight in the store.
async fn mk_dataplane(cp: &ControlPlane, name: &str) {
    let dp = ResourceDocument::from_yaml(&format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 8080\n    servicePort: 18080\n    tags:\n      kuma.io/service: web\n"
    ))
    .unwrap()
    .into_resource(chrono::Utc::now());
    cp.store().create(dp).await.unwrap();
}

/// The sum of the samples of `metric` whose label set contains every one
/// of `labels` (`key="value"`).
fn sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, label_set) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (name == metric && labels.iter().all(|want| label_set.contains(want)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[tokio::test]
async fn health_and_readiness_answer_once_started() {
    let cp = Cp::start().await;
    assert_ne!(cp.cp.diagnostics_address().port(), 0, "the bound port");
    let (status, _, _) = cp.get("/healthy").await;
    assert_eq!(status, 200);
    let (status, _, _) = cp.get("/ready").await;
    assert_eq!(status, 200);
    let (status, content_type, text) = cp.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        text.contains("# TYPE delta_xds_streams_active gauge"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    let (status, _, _) = cp.get("/nothing-here").await;
    assert_eq!(status, 404);
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn metrics_follow_store_operations_and_an_ads_stream() {
    let cp = Cp::start().await;
    // The default Mesh was created through the metered store.
    let text = cp.scrape().await;
    assert!(
        sum(
            &text,
            "store_count",
            &["operation=\"create\"", "resource_type=\"Mesh\""]
        ) >= 1.0,
        "{text}"
    );

    mk_dataplane(&cp.cp, "web-1").await;
    cp.wait_for(
        "store_count",
        &["operation=\"create\"", "resource_type=\"Dataplane\""],
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(sum(&text, "delta_xds_streams_active", &[]), 0.0);

    let node = Node {
        id: "default.web-1".into(),
        ..Node::default()
    };
    let wildcard = || vec!["*".to_string()];
    let mut ads = ads_client::connect(
        &cp.cp,
        node,
        None,
        vec![
            (type_url::CLUSTER, wildcard()),
            (type_url::ENDPOINT, wildcard()),
            (type_url::LISTENER, wildcard()),
        ],
    )
    .await
    .unwrap();
    // One response NACKed, every other one ACKed.
    let nacked = ads
        .next(WAIT, Some("rejected by the test"))
        .await
        .expect("a first response");
    ads.next(WAIT, None).await.expect("a second response");
    ads.next(WAIT, None).await.expect("a third response");

    cp.wait_for("delta_xds_streams_active", &[], |v| v == 1.0)
        .await;
    let nack_type = format!("type_url=\"{}\"", nacked.type_url);
    cp.wait_for(
        "delta_xds_requests_received_total",
        &["confirmation=\"NACK\"", &nack_type],
        |v| v == 1.0,
    )
    .await;
    cp.wait_for(
        "delta_xds_requests_received_total",
        &["confirmation=\"ACK\""],
        |v| v >= 2.0,
    )
    .await;
    // Every answer was to a response this stream had just been sent.
    cp.wait_for("delta_xds_delivery_count", &[], |v| v >= 3.0)
        .await;
    let text = cp.scrape().await;
    assert!(
        sum(&text, "delta_xds_responses_sent_total", &[]) >= 3.0,
        "{text}"
    );
    assert_eq!(
        sum(&text, "xds_streams_active", &[]),
        0.0,
        "no state of the world stream"
    );
    assert!(
        sum(&text, "store_count", &["operation=\"get\""]) >= 1.0,
        "the stream's connect read the Dataplane: {text}"
    );
    assert!(
        sum(&text, "xds_generation_count", &[]) >= 1.0,
        "the proxy's configuration was generated and timed: {text}"
    );

    drop(ads);
    cp.wait_for("delta_xds_streams_active", &[], |v| v == 0.0)
        .await;
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn state_of_the_world_streams_have_their_own_series() {
    let cp = Cp::start().await;
    mk_dataplane(&cp.cp, "web-2").await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            cp.cp.dp_ca_cert_pem(),
        ))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "https://localhost:{}",
        cp.cp.dp_server_address().port()
    ))
    .unwrap()
    .tls_config(tls)
    .unwrap()
    .connect()
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: "default.web-2".into(),
            ..Node::default()
        }),
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(WAIT, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // A NACK: the proxy keeps its previous (empty) version.
    tx.send(DiscoveryRequest {
        type_url: first.type_url.clone(),
        response_nonce: first.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "rejected by the test".into(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await
    .unwrap();

    let cds = format!("type_url=\"{}\"", type_url::CLUSTER);
    cp.wait_for("xds_streams_active", &[], |v| v == 1.0).await;
    cp.wait_for(
        "xds_requests_received_total",
        &["confirmation=\"NACK\"", &cds],
        |v| v == 1.0,
    )
    .await;
    cp.wait_for("xds_delivery_count", &[&cds], |v| v == 1.0)
        .await;
    let text = cp.scrape().await;
    assert_eq!(
        sum(&text, "xds_responses_sent_total", &[&cds]),
        1.0,
        "{text}"
    );
    assert_eq!(sum(&text, "delta_xds_streams_active", &[]), 0.0, "{text}");

    drop(tx);
    drop(responses);
    cp.wait_for("xds_streams_active", &[], |v| v == 0.0).await;
    cp.cp.shutdown().await;
}
