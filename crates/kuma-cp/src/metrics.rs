//! Control plane metrics, exposed on the diagnostics port (5680) at
//! `/metrics` in the OpenMetrics text format.
//!
//! Names follow Kuma's so dashboards carry over: `xds_*` for state of the
//! world streams, `delta_xds_*` for incremental ones, `xds_generation` and
//! `store`. Kuma's units too: xDS timings in milliseconds, store timings in
//! seconds. Counters carry OpenMetrics' `_total` suffix on the wire
//! (`xds_requests_received_total`).
//!
//! One [`Metrics`] is created at startup and passed down; cloning it is
//! cheap, and recording never blocks on I/O.

use std::sync::Arc;
use std::time::Duration;

use kuma_xds::server::{Protocol, StreamObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod server;

pub use server::{DiagnosticsServer, Readiness};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the control plane, and the registry that exposes them.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    sotw: XdsMetrics,
    delta: XdsMetrics,
    generation: Family<ProxyTypeLabels, Histogram, fn() -> Histogram>,
    generation_errors: Counter,
    store: Family<StoreLabels, Histogram, fn() -> Histogram>,
    store_conflicts: Family<ResourceTypeLabels, Counter>,
}

/// The families of one xDS protocol variant.
#[derive(Debug)]
struct XdsMetrics {
    streams_active: Gauge,
    requests_received: Family<RequestLabels, Counter>,
    responses_sent: Family<TypeUrlLabels, Counter>,
    delivery: Family<TypeUrlLabels, Histogram, fn() -> Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `ACK` or `NACK`, as Kuma labels them.
    confirmation: &'static str,
    type_url: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeUrlLabels {
    type_url: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyTypeLabels {
    proxy_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    resource_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceTypeLabels {
    resource_type: &'static str,
}

/// A store operation, as the `operation` label of `store` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    Create,
    Update,
    Delete,
    Get,
    List,
}

impl StoreOperation {
    pub fn label(self) -> &'static str {
        match self {
            StoreOperation::Create => "create",
            StoreOperation::Update => "update",
            StoreOperation::Delete => "delete",
            StoreOperation::Get => "get",
            StoreOperation::List => "list",
        }
    }
}

/// 0.1 ms to about 15 s: a push to a proxy on loopback is ACKed in about a
/// millisecond, one behind a saturated link in seconds.
fn millisecond_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.5, 14))
}

/// 50 µs to about 9 s: an embedded store answers reads in microseconds,
/// a remote PostgreSQL under load in seconds.
fn second_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.5, 17))
}

/// The label value of a type URL. Types this server does not serve are
/// one `unknown` series: a client naming made-up types must not grow the
/// registry without bound.
fn type_url_label(type_url: &str) -> &'static str {
    kuma_xds::type_url::ORDER
        .iter()
        .find(|known| **known == type_url)
        .copied()
        .unwrap_or("unknown")
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl XdsMetrics {
    fn new() -> Self {
        Self {
            streams_active: Gauge::default(),
            requests_received: Family::default(),
            responses_sent: Family::default(),
            delivery: Family::new_with_constructor(millisecond_histogram),
        }
    }

    fn register(&self, registry: &mut Registry, prefix: &str, what: &str) {
        registry.register(
            format!("{prefix}_streams_active"),
            format!("Number of active {what} connections between a server and a client"),
            self.streams_active.clone(),
        );
        registry.register(
            format!("{prefix}_requests_received"),
            format!("Number of confirmations (ACK, NACK) received from {what} clients"),
            self.requests_received.clone(),
        );
        registry.register(
            format!("{prefix}_responses_sent"),
            format!("Number of {what} responses sent to clients"),
            self.responses_sent.clone(),
        );
        registry.register(
            format!("{prefix}_delivery"),
            format!("Time in milliseconds from sending a {what} response to its ACK or NACK"),
            self.delivery.clone(),
        );
    }

    fn confirmed(&self, confirmation: &'static str, type_url: &str, delivery: Option<Duration>) {
        let type_url = type_url_label(type_url);
        if let Some(delivery) = delivery {
            self.delivery
                .get_or_create(&TypeUrlLabels { type_url })
                .observe(millis(delivery));
        }
        self.requests_received
            .get_or_create(&RequestLabels {
                confirmation,
                type_url,
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let sotw = XdsMetrics::new();
        sotw.register(&mut registry, "xds", "state of the world xDS");
        let delta = XdsMetrics::new();
        delta.register(&mut registry, "delta_xds", "delta xDS");

        let generation: Family<ProxyTypeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(millisecond_histogram);
        registry.register(
            "xds_generation",
            "Time in milliseconds to generate the xDS configuration of a proxy",
            generation.clone(),
        );
        let generation_errors = Counter::default();
        registry.register(
            "xds_generation_errors",
            "Number of failed xDS configuration generations",
            generation_errors.clone(),
        );
        let store: Family<StoreLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(second_histogram);
        registry.register(
            "store",
            "Time in seconds of store operations",
            store.clone(),
        );
        let store_conflicts = Family::<ResourceTypeLabels, Counter>::default();
        registry.register(
            "store_conflicts",
            "Number of store writes refused because of a concurrent change",
            store_conflicts.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                sotw,
                delta,
                generation,
                generation_errors,
                store,
                store_conflicts,
            }),
        }
    }

    /// The whole exposition, ending with `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }

    /// One data plane proxy's configuration was generated in `duration`.
    pub fn observe_generation(&self, duration: Duration) {
        self.inner
            .generation
            .get_or_create(&ProxyTypeLabels {
                proxy_type: "dataplane",
            })
            .observe(millis(duration));
    }

    /// Generating a proxy's configuration failed.
    pub fn generation_failed(&self) {
        self.inner.generation_errors.inc();
    }

    /// A store operation on `kind` (Kuma's type name, `Dataplane`) took
    /// `duration`.
    pub fn observe_store(&self, operation: StoreOperation, kind: &'static str, d: Duration) {
        self.inner
            .store
            .get_or_create(&StoreLabels {
                operation: operation.label(),
                resource_type: kind,
            })
            .observe(d.as_secs_f64());
    }

    /// A store write on `kind` was refused: taken name or stale version.
    pub fn store_conflict(&self, kind: &'static str) {
        self.inner
            .store_conflicts
            .get_or_create(&ResourceTypeLabels {
                resource_type: kind,
            })
            .inc();
    }

    fn xds(&self, protocol: Protocol) -> &XdsMetrics {
        match protocol {
            Protocol::Delta => &self.inner.delta,
            Protocol::StateOfTheWorld => &self.inner.sotw,
        }
    }
}

impl StreamObserver for Metrics {
    fn on_connect(&self, protocol: Protocol) {
        self.xds(protocol).streams_active.inc();
    }

    fn on_disconnect(&self, protocol: Protocol) {
        self.xds(protocol).streams_active.dec();
    }

    fn on_push(&self, protocol: Protocol, type_url: &str) {
        self.xds(protocol)
            .responses_sent
            .get_or_create(&TypeUrlLabels {
                type_url: type_url_label(type_url),
            })
            .inc();
    }

    fn on_ack(&self, protocol: Protocol, type_url: &str, delivery: Option<Duration>) {
        self.xds(protocol).confirmed("ACK", type_url, delivery);
    }

    fn on_nack(&self, protocol: Protocol, type_url: &str, delivery: Option<Duration>) {
        self.xds(protocol).confirmed("NACK", type_url, delivery);
    }
}

#[cfg(test)]
mod tests;
