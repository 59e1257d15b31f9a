//! Delta (incremental) ADS over gRPC.

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use kuma_xds::server::{Protocol, StreamEvent};
use kuma_xds::{ProxyResources, type_url};
use tonic::Code;

use super::support::{Harness, WEB, mk_config, mk_node, mk_resource, token_for};

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
        (L, "inbound:10.0.0.1:8080", "l1"),
        (L, "outbound:backend", "l1"),
        (R, "outbound:backend", "r1"),
    ])
}

fn subscribe(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn first(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(mk_node(WEB)),
        ..subscribe(type_url, names)
    }
}

fn ack(response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        ..Default::default()
    }
}

fn nack(response: &DeltaDiscoveryResponse, message: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: Code::InvalidArgument as i32,
            message: message.into(),
            details: vec![],
        }),
        ..ack(response)
    }
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

/// Connects like Envoy and takes the full initial config, ACKing each type.
async fn connect_and_sync(harness: &Harness) -> super::support::DeltaStream {
    let mut stream = harness
        .delta(first(C, &[]), Some(&token_for(WEB)))
        .await
        .unwrap();
    let clusters = stream.next().await;
    assert_eq!(clusters.type_url, C);
    assert_eq!(names(&clusters), vec!["backend", "db"]);
    stream.send(ack(&clusters));

    stream.send(subscribe(E, &["backend", "db"]));
    let endpoints = stream.next().await;
    assert_eq!(endpoints.type_url, E);
    assert_eq!(names(&endpoints), vec!["backend", "db"]);
    stream.send(ack(&endpoints));

    stream.send(subscribe(L, &[]));
    let listeners = stream.next().await;
    assert_eq!(listeners.type_url, L);
    assert_eq!(
        names(&listeners),
        vec!["inbound:10.0.0.1:8080", "outbound:backend"]
    );
    stream.send(ack(&listeners));

    stream.send(subscribe(R, &["outbound:backend"]));
    let routes = stream.next().await;
    assert_eq!(routes.type_url, R);
    assert_eq!(names(&routes), vec!["outbound:backend"]);
    stream.send(ack(&routes));
    harness
        .registry
        .wait_for(
            "route ACK",
            |e| matches!(e, StreamEvent::Acked { type_url, .. } if type_url == R),
        )
        .await;
    stream
}

#[tokio::test]
async fn initial_config_is_served_type_by_type_and_acks_are_recorded() {
    let harness = Harness::start().await;
    let config = base();
    harness.registry.publish(WEB, config.clone());
    let mut stream = connect_and_sync(&harness).await;

    let events = harness.registry.events();
    assert_eq!(
        events.first(),
        Some(&StreamEvent::Connected {
            protocol: Protocol::Delta
        })
    );
    for t in [C, E, L, R] {
        assert!(
            events.contains(&StreamEvent::Acked {
                type_url: t.into(),
                version: config.type_version(t)
            }),
            "no ACK of {t} in {events:#?}"
        );
    }
    // Resource versions are the content hashes, as a reconnect reports them.
    harness.registry.publish(WEB, config.clone());
    stream.expect_quiet().await;
}

#[tokio::test]
async fn a_change_sends_only_what_changed_and_removals_after_additions() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let mut stream = connect_and_sync(&harness).await;

    let next = mk_config(&[
        (C, "backend", "c2"),
        (C, "api", "c1"),
        (E, "backend", "e1"),
        (L, "inbound:10.0.0.1:8080", "l1"),
        (L, "outbound:backend", "l2"),
        (R, "outbound:backend", "r1"),
    ]);
    harness.registry.publish(WEB, next.clone());

    let clusters = stream.next().await;
    assert_eq!(clusters.type_url, C);
    assert_eq!(names(&clusters), vec!["api", "backend"]);
    assert!(clusters.removed_resources.is_empty());
    assert_eq!(
        clusters.resources[1].version,
        next.by_type[C]["backend"].version()
    );

    // backend's cluster changed: its endpoints, unchanged, follow it (Envoy
    // keeps the new cluster warming until they come); api's are not asked
    // for yet.
    let endpoints = stream.next().await;
    assert_eq!(endpoints.type_url, E);
    assert_eq!(names(&endpoints), vec!["backend"]);

    let listeners = stream.next().await;
    assert_eq!(listeners.type_url, L);
    assert_eq!(names(&listeners), vec!["outbound:backend"]);

    let removed_clusters = stream.next().await;
    assert_eq!(removed_clusters.type_url, C);
    assert!(removed_clusters.resources.is_empty());
    assert_eq!(removed_clusters.removed_resources, vec!["db".to_string()]);

    let removed_endpoints = stream.next().await;
    assert_eq!(removed_endpoints.type_url, E);
    assert_eq!(removed_endpoints.removed_resources, vec!["db".to_string()]);

    // Routes did not change: nothing else is sent.
    stream.expect_quiet().await;
}

#[tokio::test]
async fn a_nack_is_recorded_not_answered_with_a_resend_and_later_changes_flow() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let mut stream = connect_and_sync(&harness).await;

    let mut broken = base();
    broken.insert(mk_resource(L, "outbound:backend", "broken"));
    harness.registry.publish(WEB, broken.clone());
    let pushed = stream.next().await;
    assert_eq!(names(&pushed), vec!["outbound:backend"]);
    stream.send(nack(&pushed, "Proto constraint validation failed"));

    let event = harness
        .registry
        .wait_for("NACK", |e| matches!(e, StreamEvent::Nacked { .. }))
        .await;
    assert_eq!(
        event,
        StreamEvent::Nacked {
            type_url: L.into(),
            version: broken.type_version(L),
            error_detail: "Proto constraint validation failed".into(),
        }
    );
    stream.expect_quiet().await;

    let mut fixed = base();
    fixed.insert(mk_resource(L, "outbound:backend", "fixed"));
    harness.registry.publish(WEB, fixed.clone());
    let pushed = stream.next().await;
    assert_eq!(pushed.type_url, L);
    assert_eq!(names(&pushed), vec!["outbound:backend"]);
    assert_eq!(
        pushed.resources[0].version,
        fixed.by_type[L]["outbound:backend"].version()
    );
}

#[tokio::test]
async fn answers_with_a_stale_nonce_are_ignored() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let mut stream = harness
        .delta(first(C, &[]), Some(&token_for(WEB)))
        .await
        .unwrap();
    let clusters = stream.next().await;

    let mut stale = ack(&clusters);
    stale.response_nonce = "not-a-nonce-we-sent".into();
    stream.send(stale);
    let mut stale_nack = nack(&clusters, "late");
    stale_nack.response_nonce = "0".into();
    stream.send(stale_nack);
    stream.send(ack(&clusters));
    harness
        .registry
        .wait_for("ACK", |e| matches!(e, StreamEvent::Acked { .. }))
        .await;
    stream.expect_quiet().await;
    assert_eq!(
        harness
            .registry
            .count(|e| matches!(e, StreamEvent::Acked { .. } | StreamEvent::Nacked { .. })),
        1
    );
}

#[tokio::test]
async fn a_reconnect_with_initial_resource_versions_is_resent_nothing() {
    let harness = Harness::start().await;
    let config = base();
    harness.registry.publish(WEB, config.clone());

    let versions = |t: &str| {
        config.by_type[t]
            .values()
            .map(|r| (r.name.clone(), r.version()))
            .collect()
    };
    let mut request = first(C, &[]);
    request.initial_resource_versions = versions(C);
    let mut stream = harness.delta(request, Some(&token_for(WEB))).await.unwrap();
    let clusters = stream.next().await;
    assert!(
        clusters.resources.is_empty(),
        "resent: {:?}",
        names(&clusters)
    );
    assert!(clusters.removed_resources.is_empty());
    stream.send(ack(&clusters));

    let mut endpoints = subscribe(E, &["backend", "db"]);
    endpoints.initial_resource_versions = versions(E);
    stream.send(endpoints);
    let endpoints = stream.next().await;
    assert!(endpoints.resources.is_empty());

    // Still live: a real change arrives.
    let mut next = config.clone();
    next.insert(mk_resource(E, "db", "e2"));
    harness.registry.publish(WEB, next);
    let pushed = stream.next().await;
    assert_eq!(pushed.type_url, E);
    assert_eq!(names(&pushed), vec!["db"]);
}

#[tokio::test]
async fn a_stream_without_a_valid_token_is_refused_with_the_registrys_status() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());

    let missing = harness.delta(first(C, &[]), None).await.err().unwrap();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(missing.message(), "dataplane token is missing");

    let foreign = harness
        .delta(first(C, &[]), Some(&token_for("default.other")))
        .await
        .err()
        .unwrap();
    assert_eq!(foreign.code(), Code::PermissionDenied);

    let no_node = harness
        .delta(subscribe(C, &[]), Some(&token_for(WEB)))
        .await
        .err()
        .unwrap();
    assert_eq!(no_node.code(), Code::InvalidArgument);
    assert!(harness.registry.events().is_empty());
}

#[tokio::test]
async fn ending_the_stream_is_reported_and_releases_the_registrys_guard() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let mut stream = harness
        .delta(first(C, &[]), Some(&token_for(WEB)))
        .await
        .unwrap();
    stream.next().await;
    assert_eq!(harness.registry.guards_dropped(), 0);
    drop(stream);
    harness
        .registry
        .wait_for("disconnect", |e| *e == StreamEvent::Disconnected)
        .await;
    assert_eq!(harness.registry.guards_dropped(), 1);
}

#[tokio::test]
async fn a_proxy_whose_config_goes_away_is_disconnected() {
    let harness = Harness::start().await;
    harness.registry.publish(WEB, base());
    let mut stream = harness
        .delta(first(C, &[]), Some(&token_for(WEB)))
        .await
        .unwrap();
    stream.next().await;
    harness.registry.forget(WEB);
    let status = tokio::time::timeout(super::support::WAIT, stream.responses.message())
        .await
        .unwrap()
        .err()
        .unwrap();
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test]
async fn bootstrap_is_served_on_the_same_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let harness = Harness::start().await;
    let mut conn = tokio::net::TcpStream::connect(harness.addr).await.unwrap();
    let body = "web-1";
    let request = format!(
        "POST /bootstrap HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("bootstrap for web-1"), "{response}");
}
