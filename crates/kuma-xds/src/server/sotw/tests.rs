use std::sync::Arc;

use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::*;
use crate::XdsResource;

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

fn mk_request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn mk_nack(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: "rejected".into(),
            details: vec![],
        }),
        ..mk_request(type_url, names, "", nonce)
    }
}

fn step(
    session: &mut SotwSession,
    request: DiscoveryRequest,
    config: &ProxyResources,
) -> Outbox<DiscoveryResponse> {
    let mut out = Outbox::default();
    session.on_request(request, config, &mut out).unwrap();
    out
}

fn change(session: &mut SotwSession, config: &ProxyResources) -> Outbox<DiscoveryResponse> {
    let mut out = Outbox::default();
    session.on_config(config, &mut out);
    out
}

const C: &str = type_url::CLUSTER;
const E: &str = type_url::ENDPOINT;

fn base() -> ProxyResources {
    mk_config(&[
        (C, "web", "c1"),
        (C, "db", "c1"),
        (E, "web", "e1"),
        (E, "db", "e1"),
    ])
}

#[test]
fn wildcard_request_gets_the_whole_type_under_its_version() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(C, &[], "", ""), &config);
    assert_eq!(out.responses.len(), 1);
    let response = &out.responses[0];
    assert_eq!(response.version_info, config.type_version(C));
    assert_eq!(response.resources.len(), 2);
    assert!(!response.nonce.is_empty());
}

#[test]
fn an_ack_is_recorded_and_not_answered() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(C, &[], "", ""), &config);
    let sent = &out.responses[0];
    let out = step(
        &mut session,
        mk_request(C, &[], &sent.version_info, &sent.nonce),
        &config,
    );
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        vec![StreamEvent::Acked {
            type_url: C.into(),
            version: sent.version_info.clone()
        }]
    );
}

#[test]
fn a_nack_is_recorded_not_resent_and_a_later_change_is_sent() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    let first = step(&mut session, mk_request(C, &[], "", ""), &config).responses[0].clone();
    step(
        &mut session,
        mk_request(C, &[], &first.version_info, &first.nonce),
        &config,
    );

    let mut bad = base();
    bad.insert(mk_resource(C, "web", "broken"));
    let pushed = change(&mut session, &bad).responses[0].clone();
    let out = step(&mut session, mk_nack(C, &[], &pushed.nonce), &bad);
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events,
        vec![StreamEvent::Nacked {
            type_url: C.into(),
            version: bad.type_version(C),
            error_detail: "rejected".into()
        }]
    );
    assert!(change(&mut session, &bad).responses.is_empty());

    let mut fixed = base();
    fixed.insert(mk_resource(C, "web", "fixed"));
    let out = change(&mut session, &fixed);
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].version_info, fixed.type_version(C));
}

#[test]
fn a_stale_nonce_is_ignored_entirely() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    let first = step(&mut session, mk_request(E, &["web"], "", ""), &config).responses[0].clone();
    let mut next = base();
    next.insert(mk_resource(E, "web", "e2"));
    let second = change(&mut session, &next).responses[0].clone();
    assert_ne!(first.nonce, second.nonce);
    // Answers the first response and asks for other names: stale, ignored.
    let out = step(
        &mut session,
        mk_request(E, &["web", "db"], "", &first.nonce),
        &next,
    );
    assert!(out.responses.is_empty());
    assert!(out.events.is_empty());
    // The answer to the latest response carries the same names: served.
    let out = step(
        &mut session,
        mk_request(E, &["web", "db"], "", &second.nonce),
        &next,
    );
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].resources.len(), 2);
}

#[test]
fn a_reconnect_with_the_current_version_gets_nothing() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    let current = config.type_version(C);
    let out = step(&mut session, mk_request(C, &[], &current, ""), &config);
    assert!(out.responses.is_empty());
    // Later changes are still sent.
    let mut next = base();
    next.insert(mk_resource(C, "api", "c1"));
    assert_eq!(change(&mut session, &next).responses.len(), 1);

    let mut other = SotwSession::new(NonceSource::default());
    let out = step(
        &mut other,
        mk_request(C, &[], "0000000000000001", ""),
        &config,
    );
    assert_eq!(out.responses.len(), 1);
}

#[test]
fn named_types_send_the_requested_subset_and_follow_name_changes() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    let out = step(&mut session, mk_request(E, &["web"], "", ""), &config);
    let first = out.responses[0].clone();
    assert_eq!(first.resources.len(), 1);

    // A change to an endpoint not asked for sends nothing.
    let mut next = base();
    next.insert(mk_resource(E, "db", "e2"));
    assert!(change(&mut session, &next).responses.is_empty());

    // Asking for more names is answered, even without a content change.
    let out = step(
        &mut session,
        mk_request(E, &["web", "db"], &first.version_info, &first.nonce),
        &next,
    );
    assert_eq!(out.responses.len(), 1);
    assert_eq!(out.responses[0].resources.len(), 2);
}

#[test]
fn a_change_is_sent_type_by_type_in_dependency_order() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    step(&mut session, mk_request(E, &["web"], "", ""), &config);
    step(&mut session, mk_request(C, &[], "", ""), &config);
    let next = mk_config(&[(C, "web", "c2"), (E, "web", "e2")]);
    let out = change(&mut session, &next);
    let types: Vec<&str> = out.responses.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, vec![C, E]);
}

#[test]
fn endpoints_follow_every_cluster_change_even_when_unchanged() {
    let config = base();
    let mut session = SotwSession::new(NonceSource::default());
    step(&mut session, mk_request(C, &[], "", ""), &config);
    step(&mut session, mk_request(E, &["web"], "", ""), &config);
    let mut next = base();
    next.insert(mk_resource(C, "web", "c2"));
    let out = change(&mut session, &next);
    let sent: Vec<(&str, &str)> = out
        .responses
        .iter()
        .map(|r| (r.type_url.as_str(), r.version_info.as_str()))
        .collect();
    let endpoints_version = config.type_version(E);
    // The endpoint version is a subset version: only "web" was asked for.
    let mut web_only = ProxyResources::default();
    web_only.insert(config.by_type[E]["web"].clone());
    assert_ne!(endpoints_version, web_only.type_version(E));
    assert_eq!(
        sent,
        vec![
            (C, next.type_version(C).as_str()),
            (E, web_only.type_version(E).as_str())
        ]
    );
    // A change elsewhere sends neither.
    let mut other = next.clone();
    other.insert(mk_resource(type_url::LISTENER, "l", "l1"));
    assert!(change(&mut session, &other).responses.is_empty());
}
