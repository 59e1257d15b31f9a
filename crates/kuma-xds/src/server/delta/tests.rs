use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::*;

fn mk_resource(type_url: &str, name: &str, content: &str) -> Arc<XdsResource> {
    Arc::new(XdsResource::new(
        name,
        Any {
            type_url: type_url.into(),
            value: content.as_bytes().to_vec(),
        },
    ))
}

fn mk_config(items: &[(&str, &str, &str)]) -> ProxyResources {
    let mut config = ProxyResources::default();
    for (type_url, name, content) in items {
        config.insert(mk_resource(type_url, name, content));
    }
    config
}

fn mk_request(type_url: &str, subscribe: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn mk_ack(type_url: &str, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn mk_nack(type_url: &str, nonce: &str, message: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: message.into(),
            details: vec![],
        }),
        ..mk_ack(type_url, nonce)
    }
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

/// Runs one request and returns what it produced.
fn step(
    session: &mut DeltaSession,
    request: DeltaDiscoveryRequest,
    config: &ProxyResources,
) -> Outbox<DeltaDiscoveryResponse> {
    let mut out = Outbox::default();
    session.on_request(request, config, &mut out).unwrap();
    out
}

fn change(session: &mut DeltaSession, config: &ProxyResources) -> Outbox<DeltaDiscoveryResponse> {
    let mut out = Outbox::default();
    session.on_config(config, &mut out);
    out
}

const C: &str = type_url::CLUSTER;
const E: &str = type_url::ENDPOINT;
const L: &str = type_url::LISTENER;
const R: &str = type_url::ROUTE;

fn base() -> ProxyResources {
    mk_config(&[
        (C, "web", "c1"),
        (C, "db", "c1"),
        (E, "web", "e1"),
        (E, "db", "e1"),
        (L, "inbound", "l1"),
        (R, "outbound", "r1"),
    ])
}

/// A session subscribed to everything in `base()`, all ACKed.
fn mk_subscribed(config: &ProxyResources) -> DeltaSession {
    let mut session = DeltaSession::new(NonceSource::default());
    for (type_url, subscribe) in [
        (C, vec![]),
        (E, vec!["web", "db"]),
        (L, vec![]),
        (R, vec!["outbound"]),
    ] {
        let out = step(&mut session, mk_request(type_url, &subscribe), config);
        let nonce = out.responses[0].nonce.clone();
        step(&mut session, mk_ack(type_url, &nonce), config);
    }
    session
}

#[test]
fn wildcard_types_get_everything_and_named_types_only_what_is_subscribed() {
    let config = base();
    let mut session = DeltaSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(C, &[]), &config);
    assert_eq!(out.responses.len(), 1);
    assert_eq!(names(&out.responses[0]), vec!["db", "web"]);
    assert_eq!(out.responses[0].system_version_info, config.type_version(C));
    assert_eq!(
        out.responses[0].resources[0].version,
        config.by_type[C]["db"].version()
    );

    let out = step(&mut session, mk_request(E, &["web", "missing"]), &config);
    assert_eq!(names(&out.responses[0]), vec!["web"]);
    assert!(out.responses[0].removed_resources.is_empty());
}

#[test]
fn the_first_request_of_a_type_is_answered_even_when_empty() {
    let config = ProxyResources::default();
    let mut session = DeltaSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(C, &[]), &config);
    assert_eq!(out.responses.len(), 1);
    assert!(out.responses[0].resources.is_empty());
    // A later request changing nothing is not answered.
    let nonce = out.responses[0].nonce.clone();
    let out = step(&mut session, mk_ack(C, &nonce), &config);
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        vec![StreamEvent::Acked {
            type_url: C.into(),
            version: config.type_version(C)
        }]
    );
}

#[test]
fn a_change_sends_additions_in_dependency_order_then_removals_users_first() {
    let config = base();
    let mut session = mk_subscribed(&config);
    let next = mk_config(&[
        (C, "web", "c2"),
        (E, "web", "e2"),
        (L, "inbound", "l2"),
        (R, "outbound", "r2"),
    ]);
    // "db" is gone from clusters and endpoints; everything else changed.
    let out = change(&mut session, &next);
    let summary: Vec<(&str, Vec<&str>, Vec<&str>)> = out
        .responses
        .iter()
        .map(|r| {
            (
                r.type_url.as_str(),
                names(r),
                r.removed_resources.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (C, vec!["web"], vec![]),
            (E, vec!["web"], vec![]),
            (L, vec!["inbound"], vec![]),
            (R, vec!["outbound"], vec![]),
            (C, vec![], vec!["db"]),
            (E, vec![], vec!["db"]),
        ]
    );
    // Nothing more to do for the same config.
    assert!(change(&mut session, &next).responses.is_empty());
}

#[test]
fn an_unchanged_resource_is_not_resent() {
    let config = base();
    let mut session = mk_subscribed(&config);
    let mut next = base();
    next.insert(mk_resource(R, "outbound", "r2"));
    let out = change(&mut session, &next);
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].type_url, R);
    assert_eq!(names(&out.responses[0]), vec!["outbound"]);
}

#[test]
fn a_changed_cluster_gets_its_unchanged_endpoints_again_right_after() {
    let config = base();
    let mut session = mk_subscribed(&config);
    let mut next = base();
    next.insert(mk_resource(C, "web", "c2"));
    let out = change(&mut session, &next);
    let sent: Vec<(&str, Vec<&str>)> = out
        .responses
        .iter()
        .map(|r| (r.type_url.as_str(), names(r)))
        .collect();
    // Only web's: db's cluster did not change.
    assert_eq!(sent, vec![(C, vec!["web"]), (E, vec!["web"])]);
    assert_eq!(
        out.responses[1].resources[0].version,
        next.by_type[E]["web"].version()
    );
    // Once sent, the same config sends nothing again.
    assert!(change(&mut session, &next).responses.is_empty());

    // Endpoints the proxy does not subscribe to are not pushed at it.
    let mut unsubscribe = mk_request(E, &[]);
    unsubscribe.resource_names_unsubscribe = vec!["web".into()];
    step(&mut session, unsubscribe, &next);
    let mut again = next.clone();
    again.insert(mk_resource(C, "web", "c3"));
    let out = change(&mut session, &again);
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].type_url, C);
}

#[test]
fn a_nack_is_recorded_and_the_same_content_is_not_resent() {
    let config = base();
    let mut session = mk_subscribed(&config);
    let mut bad = base();
    bad.insert(mk_resource(L, "inbound", "broken"));
    let out = change(&mut session, &bad);
    let nonce = out.responses[0].nonce.clone();

    let out = step(&mut session, mk_nack(L, &nonce, "bad listener"), &bad);
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        vec![StreamEvent::Nacked {
            type_url: L.into(),
            version: bad.type_version(L),
            error_detail: "bad listener".into(),
        }]
    );
    assert!(change(&mut session, &bad).responses.is_empty());

    let mut fixed = base();
    fixed.insert(mk_resource(L, "inbound", "fixed"));
    let out = change(&mut session, &fixed);
    assert_eq!(out.responses.len(), 1);
    assert_eq!(names(&out.responses[0]), vec!["inbound"]);
}

#[test]
fn answers_to_unknown_or_settled_nonces_are_ignored() {
    let config = base();
    let mut session = DeltaSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(C, &[]), &config);
    let nonce = out.responses[0].nonce.clone();
    assert!(
        step(&mut session, mk_ack(C, "no-such-nonce"), &config)
            .events
            .is_empty()
    );
    assert_eq!(
        step(&mut session, mk_ack(C, &nonce), &config).events.len(),
        1
    );
    // Already settled: a second answer is stale.
    assert!(
        step(&mut session, mk_nack(C, &nonce, "late"), &config)
            .events
            .is_empty()
    );
}

#[test]
fn an_ack_settles_older_responses_too() {
    let config = base();
    let mut session = mk_subscribed(&config);
    let mut v2 = base();
    v2.insert(mk_resource(C, "web", "c2"));
    let first = change(&mut session, &v2).responses[0].nonce.clone();
    let mut v3 = base();
    v3.insert(mk_resource(C, "web", "c3"));
    let second = change(&mut session, &v3).responses[0].nonce.clone();
    assert_eq!(step(&mut session, mk_ack(C, &second), &v3).events.len(), 1);
    assert!(step(&mut session, mk_ack(C, &first), &v3).events.is_empty());
}

#[test]
fn a_reconnect_with_initial_versions_is_sent_only_the_difference() {
    let config = base();
    let mut request = mk_request(C, &[]);
    request.initial_resource_versions = [
        ("web".to_string(), config.by_type[C]["web"].version()),
        ("db".to_string(), "not-a-hash-of-ours".to_string()),
        ("gone".to_string(), "00000000000000ff".to_string()),
    ]
    .into_iter()
    .collect();
    let mut session = DeltaSession::new(NonceSource::default());
    let out = step(&mut session, request, &config);
    assert_eq!(out.responses.len(), 1);
    assert_eq!(names(&out.responses[0]), vec!["db"]);
    assert_eq!(out.responses[0].removed_resources, vec!["gone".to_string()]);
}

#[test]
fn resubscribing_after_an_unsubscribe_resends() {
    let config = base();
    let mut session = mk_subscribed(&config);
    let mut request = mk_request(E, &[]);
    request.resource_names_unsubscribe = vec!["db".into()];
    let out = step(&mut session, request, &config);
    // The proxy dropped it itself: no removal notice.
    assert!(out.responses.is_empty());
    let out = step(&mut session, mk_request(E, &["db"]), &config);
    assert_eq!(names(&out.responses[0]), vec!["db"]);
    // Subscribing again to what it has changes nothing.
    assert!(
        step(&mut session, mk_request(E, &["db"]), &config)
            .responses
            .is_empty()
    );
}

#[test]
fn explicit_wildcard_on_a_named_type() {
    let config = base();
    let mut session = DeltaSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(E, &["*"]), &config);
    assert_eq!(names(&out.responses[0]), vec!["db", "web"]);
}

#[test]
fn a_request_without_type_and_too_many_types_end_the_stream() {
    let config = base();
    let mut session = DeltaSession::new(NonceSource::default());
    let mut out = Outbox::default();
    assert_eq!(
        session.on_request(mk_request("", &[]), &config, &mut out),
        Err(StreamError::MissingTypeUrl)
    );
    for i in 0..MAX_TYPES {
        let t = format!("type.example/{i}");
        session
            .on_request(mk_request(&t, &["x"]), &config, &mut out)
            .unwrap();
    }
    assert_eq!(
        session.on_request(mk_request("type.example/last", &["x"]), &config, &mut out),
        Err(StreamError::TooManyTypes { limit: MAX_TYPES })
    );
}
