use std::time::Duration;

use kuma_xds::server::{Protocol, StreamObserver};
use kuma_xds::type_url;

use super::*;

/// The value of the one sample line starting with `series` (name and
/// labels); `None` if there is none.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn plain_series_are_exposed_before_anything_happens() {
    let text = Metrics::new().encode().unwrap();
    assert_eq!(sample(&text, "xds_streams_active"), Some(0.0));
    assert_eq!(sample(&text, "delta_xds_streams_active"), Some(0.0));
    assert_eq!(sample(&text, "xds_generation_errors_total"), Some(0.0));
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn every_family_is_typed_once_recorded() {
    let metrics = Metrics::new();
    for protocol in [Protocol::StateOfTheWorld, Protocol::Delta] {
        metrics.on_push(protocol, type_url::CLUSTER);
        metrics.on_ack(protocol, type_url::CLUSTER, Some(Duration::ZERO));
    }
    metrics.observe_generation(Duration::ZERO);
    metrics.observe_store(StoreOperation::List, "Mesh", Duration::ZERO);
    metrics.store_conflict("Mesh");
    let text = metrics.encode().unwrap();
    for family in [
        "# TYPE xds_streams_active gauge",
        "# TYPE xds_requests_received counter",
        "# TYPE xds_responses_sent counter",
        "# TYPE xds_delivery histogram",
        "# TYPE delta_xds_streams_active gauge",
        "# TYPE delta_xds_requests_received counter",
        "# TYPE delta_xds_responses_sent counter",
        "# TYPE delta_xds_delivery histogram",
        "# TYPE xds_generation histogram",
        "# TYPE xds_generation_errors counter",
        "# TYPE store histogram",
        "# TYPE store_conflicts counter",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
}

#[test]
fn stream_traffic_moves_the_protocols_own_series() {
    let metrics = Metrics::new();
    metrics.on_connect(Protocol::Delta);
    metrics.on_connect(Protocol::Delta);
    metrics.on_connect(Protocol::StateOfTheWorld);
    metrics.on_disconnect(Protocol::Delta);
    metrics.on_push(Protocol::Delta, type_url::CLUSTER);
    metrics.on_push(Protocol::Delta, type_url::CLUSTER);
    metrics.on_ack(
        Protocol::Delta,
        type_url::CLUSTER,
        Some(Duration::from_millis(3)),
    );
    metrics.on_nack(
        Protocol::Delta,
        type_url::CLUSTER,
        Some(Duration::from_millis(5)),
    );
    metrics.on_ack(Protocol::StateOfTheWorld, type_url::LISTENER, None);

    let text = metrics.encode().unwrap();
    let cds = format!("type_url=\"{}\"", type_url::CLUSTER);
    assert_eq!(sample(&text, "delta_xds_streams_active"), Some(1.0));
    assert_eq!(sample(&text, "xds_streams_active"), Some(1.0));
    assert_eq!(
        sample(&text, &format!("delta_xds_responses_sent_total{{{cds}}}")),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("delta_xds_requests_received_total{{confirmation=\"ACK\",{cds}}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("delta_xds_requests_received_total{{confirmation=\"NACK\",{cds}}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("delta_xds_delivery_count{{{cds}}}")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, &format!("delta_xds_delivery_sum{{{cds}}}")),
        Some(8.0),
        "milliseconds, as Kuma"
    );
    let lds = format!("type_url=\"{}\"", type_url::LISTENER);
    assert_eq!(
        sample(
            &text,
            &format!("xds_requests_received_total{{confirmation=\"ACK\",{lds}}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("xds_delivery_count{{{lds}}}")),
        None,
        "an ACK of a forgotten push is counted but not timed"
    );
}

#[test]
fn made_up_type_urls_share_one_series() {
    let metrics = Metrics::new();
    metrics.on_push(Protocol::Delta, "type.googleapis.com/a");
    metrics.on_push(Protocol::Delta, "type.googleapis.com/b");
    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "delta_xds_responses_sent_total{type_url=\"unknown\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("type.googleapis.com/a"), "{text}");
}

#[test]
fn generation_and_store_timings_are_recorded() {
    let metrics = Metrics::new();
    metrics.observe_generation(Duration::from_micros(1500));
    metrics.generation_failed();
    metrics.observe_store(StoreOperation::Get, "Dataplane", Duration::from_millis(2));
    metrics.store_conflict("Dataplane");

    let text = metrics.encode().unwrap();
    assert_eq!(
        sample(&text, "xds_generation_count{proxy_type=\"dataplane\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "xds_generation_sum{proxy_type=\"dataplane\"}"),
        Some(1.5)
    );
    assert_eq!(sample(&text, "xds_generation_errors_total"), Some(1.0));
    let store = "operation=\"get\",resource_type=\"Dataplane\"";
    assert_eq!(sample(&text, &format!("store_count{{{store}}}")), Some(1.0));
    assert_eq!(
        sample(&text, &format!("store_sum{{{store}}}")),
        Some(0.002),
        "seconds, as Kuma"
    );
    assert_eq!(
        sample(&text, "store_conflicts_total{resource_type=\"Dataplane\"}"),
        Some(1.0)
    );
}

#[test]
fn clones_record_into_one_registry() {
    let metrics = Metrics::new();
    let observer: Arc<dyn StreamObserver> = Arc::new(metrics.clone());
    observer.on_connect(Protocol::StateOfTheWorld);
    let text = metrics.encode().unwrap();
    assert_eq!(sample(&text, "xds_streams_active"), Some(1.0));
}
