//! State-of-the-world ADS over gRPC.

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use kuma_xds::server::{Protocol, StreamEvent};
use kuma_xds::{ProxyResources, type_url};
use tonic::Code;

use super::support::{Harness, SotwStream, WEB, mk_config, mk_node, mk_resource, token_for};

const C: &str = type_url::CLUSTER;
const E: &str = type_url::ENDPOINT;
const L: &str = type_url::LISTENER;
const R: &str = type_url::ROUTE;

fn base() -> ProxyResources {
    mk_config(&[
        (C, "backend", "c1"),
        (C, "db", "c1"),
        (E, "backend", "e1"),
        (E, "db", "e1"),
        (L, "outbound:backend", "l1"),
        (R, "outbound:backend", "r1"),
    ])
}

fn request(type_url: &str, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn first(type_url: &str, names: &[&str], version: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(mk_node(WEB)),
        version_info: version.into(),
        ..request(type_url, names)
    }
}

fn ack(response: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: response.version_info.clone(),
        response_nonce: response.nonce.clone(),
        ..request(&response.type_url, names)
    }
}

fn nack(response: &DiscoveryResponse, names: &[&str], message: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: String::new(),
        error_detail: Some(RpcStatus {
            code: Code::InvalidArgument as i32,
            message: message.into(),
            details: vec![],
        }),
        ..ack(response, names)
    }
}

/// Takes the full initial config as Envoy does; returns the last response
/// of each type (clusters, endpoints, listeners, routes).
async fn connect_and_sync(harness: &Harness) -> (SotwStream, Vec<DiscoveryResponse>) {
    let mut stream = harness
        .sotw(first(C, &[], ""), Some(&token_for(WEB)))
        .await
        .unwrap();
    let mut last = Vec::new();
    let clusters = stream.next().await;
    assert_eq!(clusters.type_url, C);
    assert_eq!(clusters.resources.len(), 2);
    stream.send(ack(&clusters, &[]));
    last.push(clusters);
    for (t, names, count) in [
        (E, vec!["backend", "db"], 2),
        (L, vec![], 1),
        (R, vec!["outbound:backend"], 1),
    ] {
        stream.send(request(t, &names));
        let response = stream.next().await;
        assert_eq!(response.type_url, t);
        assert_eq!(response.resources.len(), count);
        stream.send(ack(&response, &names));
        last.push(response);
    }
    harness
        .registry
        .wait_for(
            "route ACK",
            |e| matches!(e, StreamEvent::Acked { type_url, .. } if type_url == R),
        )
        .await;
    (stream, last)
}

#[tokio::test]
async fn initial_config_carries_type_versions_and_acks_are_recorded() {
    let harness = Harness::start().await;
    let config = base();
    harness.registry.publish(WEB, config.clone());
    let (mut stream, last) = connect_and_sync(&harness).await;
    assert_eq!(last[0].version_info, config.type_version(C));
    assert_eq!(last[2].version_info, config.type_version(L));

    let events = harness.registry.events();
    assert_eq!(
        events.first(),
        Some(&StreamEvent::Connected {
            protocol: Protocol::StateOfTheWorld
        })
    );
    assert!(events.contains(&StreamEvent::Acked {
        type_url: C.into(),
        version: config.type_version(C)
    }));
    // Publishing the same content again sends nothing.
    harness.registry.publish(WEB, config);
    stream.expect_quiet().await;
}

#[tokio::test]
async fn a_change_resends_only_the_types_that_changed() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let (mut stream, _) = connect_and_sync(&harness).await;

    let mut next = base();
    next.insert(mk_resource(C, "api", "c1"));
    next.insert(mk_resource(L, "outbound:backend", "l2"));
    harness.registry.publish(WEB, next.clone());

    let clusters = stream.next().await;
    assert_eq!(clusters.type_url, C);
    assert_eq!(clusters.resources.len(), 3);
    assert_eq!(clusters.version_info, next.type_version(C));
    // Endpoints follow a cluster change unchanged, for Envoys without an
    // EDS cache; routes did not change and are not sent.
    let endpoints = stream.next().await;
    assert_eq!(endpoints.type_url, E);
    assert_eq!(endpoints.version_info, next.type_version(E));
    let listeners = stream.next().await;
    assert_eq!(listeners.type_url, L);
    assert_eq!(listeners.version_info, next.type_version(L));
    stream.expect_quiet().await;
}

#[tokio::test]
async fn a_nack_is_recorded_not_resent_and_a_later_change_is_sent() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let (mut stream, _) = connect_and_sync(&harness).await;

    let mut broken = base();
    broken.insert(mk_resource(R, "outbound:backend", "broken"));
    harness.registry.publish(WEB, broken.clone());
    let pushed = stream.next().await;
    assert_eq!(pushed.type_url, R);
    stream.send(nack(&pushed, &["outbound:backend"], "route rejected"));
    let event = harness
        .registry
        .wait_for("NACK", |e| matches!(e, StreamEvent::Nacked { .. }))
        .await;
    assert_eq!(
        event,
        StreamEvent::Nacked {
            type_url: R.into(),
            version: broken.type_version(R),
            error_detail: "route rejected".into()
        }
    );
    stream.expect_quiet().await;

    let mut fixed = base();
    fixed.insert(mk_resource(R, "outbound:backend", "fixed"));
    harness.registry.publish(WEB, fixed.clone());
    let pushed = stream.next().await;
    assert_eq!(pushed.type_url, R);
    assert_eq!(pushed.version_info, fixed.type_version(R));
}

#[tokio::test]
async fn a_request_with_a_stale_nonce_is_ignored() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let (mut stream, last) = connect_and_sync(&harness).await;
    let old_endpoints = &last[1];

    let mut next = base();
    next.insert(mk_resource(E, "backend", "e2"));
    harness.registry.publish(WEB, next);
    let newer = stream.next().await;
    assert_eq!(newer.type_url, E);

    // Answers the older response (and asks for fewer names): ignored.
    stream.send(ack(old_endpoints, &["backend"]));
    stream.expect_quiet().await;
    let acks_of_endpoints =
        |e: &StreamEvent| matches!(e, StreamEvent::Acked { type_url, .. } if type_url == E);
    assert_eq!(harness.registry.count(acks_of_endpoints), 1);

    stream.send(ack(&newer, &["backend", "db"]));
    harness
        .registry
        .wait_for("second endpoint ACK", |e| {
            matches!(e, StreamEvent::Acked { type_url, version } if type_url == E && *version == newer.version_info)
        })
        .await;
}

#[tokio::test]
async fn a_reconnect_with_the_current_version_causes_no_churn() {
    let harness = Harness::start().await;
    let config = base();
    harness.registry.publish(WEB, config.clone());

    // Envoy after a control plane restart: last accepted versions, empty nonces.
    let mut stream = harness
        .sotw(
            first(C, &[], &config.type_version(C)),
            Some(&token_for(WEB)),
        )
        .await
        .unwrap();
    let mut endpoints = request(E, &["backend", "db"]);
    endpoints.version_info = config.type_version(E);
    stream.send(endpoints);
    let mut listeners = request(L, &[]);
    listeners.version_info = config.type_version(L);
    stream.send(listeners);
    stream.expect_quiet().await;
    assert_eq!(
        harness
            .registry
            .count(|e| matches!(e, StreamEvent::Sent { .. })),
        0
    );

    // An outdated type is sent; later changes flow as usual.
    let mut routes = request(R, &["outbound:backend"]);
    routes.version_info = "0000000000000000".into();
    stream.send(routes);
    assert_eq!(stream.next().await.type_url, R);

    let mut next = config.clone();
    next.insert(mk_resource(C, "api", "c1"));
    harness.registry.publish(WEB, next.clone());
    let clusters = stream.next().await;
    assert_eq!(clusters.type_url, C);
    assert_eq!(clusters.version_info, next.type_version(C));
}

#[tokio::test]
async fn an_unauthenticated_stream_is_refused() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let status = harness.sotw(first(C, &[], ""), None).await.err().unwrap();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = harness
        .sotw(first(C, &[], ""), Some("Bearer forged"))
        .await
        .err()
        .unwrap();
    assert_eq!(status.code(), Code::PermissionDenied);
}
