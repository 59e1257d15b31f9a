//! What the control plane pays for a whole mesh, on one thread:
//!
//! - a fresh [`MeshSnapshot`] and the configuration of every proxy in it
//!   (every instance of every service and the all-services proxy), what a
//!   control plane that just started pays;
//! - a mesh-wide policy written into a running mesh: the snapshot updated
//!   as kuma-cp updates it (only the changed policy read, only its kind
//!   indexed again, shared resources carried over) and every proxy's
//!   configuration generated again, since the change reaches every proxy.
//!
//! The one-proxy cold figure shows what the first proxy of a snapshot pays;
//! these include what later proxies share with it.

use std::time::Duration;

use anyhow::{Context, bail};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use kuma_api::Resource;
use kuma_xds::generate::{MeshSnapshot, generate_proxy};
use kuma_xds::type_url;
use prost::Message;

use super::mesh::{self, ALL_SERVICES_PROXY, MESH, Shape};
use super::{in_turn, ratio};
use crate::cpu::{measure, percentile};

/// The whole-mesh measurements of one point; durations are CPU time.
#[derive(Debug, Clone)]
pub struct MeshPoint {
    /// What was measured: a fresh build or a policy change.
    pub what: What,
    pub shape: Shape,
    pub proxies: usize,
    /// Encoded bytes of every proxy's configuration together: policies
    /// make configurations larger, and this shows by how much.
    pub bytes: usize,
    /// Building (or updating) the snapshot alone, per iteration.
    pub snapshot: Vec<Duration>,
    /// Every proxy's generation once the snapshot is built, per iteration.
    pub generation: Vec<Duration>,
    /// The snapshot and every proxy's generation, per iteration.
    pub total: Vec<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// A fresh snapshot, nothing cached.
    Fresh,
    /// A mesh-wide MeshTimeout written, the snapshot updated.
    PolicyChange,
}

impl MeshPoint {
    fn new(what: What, shape: Shape) -> MeshPoint {
        MeshPoint {
            what,
            shape,
            proxies: 0,
            bytes: 0,
            snapshot: Vec::new(),
            generation: Vec::new(),
            total: Vec::new(),
        }
    }

    fn record(&mut self, snapshot: Duration, generation: Duration, every: Every) {
        self.proxies = every.proxies;
        self.bytes = every.bytes;
        self.snapshot.push(snapshot);
        self.generation.push(generation);
        self.total.push(snapshot + generation);
    }

    fn sort(mut self) -> MeshPoint {
        self.snapshot.sort_unstable();
        self.generation.sort_unstable();
        self.total.sort_unstable();
        self
    }
}

/// What generating every proxy of a snapshot produced.
#[derive(Debug, Clone, Copy)]
pub(super) struct Every {
    proxies: usize,
    bytes: usize,
}

/// The snapshot of a running control plane for `resources`: built, and
/// every proxy generated from it once (its shared cache filled).
pub(super) fn running_snapshot(resources: Vec<Resource>) -> anyhow::Result<MeshSnapshot> {
    let snapshot = MeshSnapshot::from_resources(MESH, resources);
    generate_every_proxy(&snapshot)?;
    Ok(snapshot)
}

/// Generates every proxy of `snapshot` once, timed.
pub(super) fn generate_every_proxy(snapshot: &MeshSnapshot) -> anyhow::Result<(Every, Duration)> {
    let names: Vec<String> = snapshot.dataplane_names().map(str::to_string).collect();
    let (generated, time) = measure(|| -> anyhow::Result<(usize, usize)> {
        let (mut resources, mut bytes) = (0, 0);
        for name in &names {
            let config =
                generate_proxy(snapshot, name).with_context(|| format!("generating {name}"))?;
            for r in config.by_type.values().flat_map(|m| m.values()) {
                resources += 1;
                bytes += r.body.value.len();
            }
        }
        Ok((resources, bytes))
    });
    let (resources, bytes) = generated?;
    // Every proxy has at least its inbound's listener and cluster.
    if resources < 2 * names.len() {
        bail!(
            "{} proxies got only {resources} resources in all",
            names.len()
        );
    }
    let every = Every {
        proxies: names.len(),
        bytes,
    };
    Ok((every, time))
}

/// The whole-mesh measurements of one point in progress. Each
/// [`MeshRun::step`] measures one iteration of both:
/// - a fresh snapshot of the mesh's resources, and every proxy generated;
/// - a mesh-wide MeshTimeout written (a new connect timeout each time) and
///   what kuma-cp does for it: the running snapshot (whose every proxy has
///   been generated) updated, its shared resources carried over, and every
///   proxy generated again.
///
/// Stepping several points in turn ([`measure_alternately`]) has the
/// machine's load weigh on each alike: measured one after the other, a
/// busy spell during one point's iterations skewed their ratios by more
/// than the difference measured.
pub struct MeshRun {
    resources: Vec<Resource>,
    fresh: MeshPoint,
    change: MeshPoint,
    /// The running mesh's snapshot, every proxy generated from it.
    current: MeshSnapshot,
    writes: u64,
}

impl MeshRun {
    pub fn new(shape: Shape) -> anyhow::Result<MeshRun> {
        let resources = mesh::build(shape)?;
        let current = running_snapshot(resources.clone())?;
        Ok(MeshRun {
            resources,
            fresh: MeshPoint::new(What::Fresh, shape),
            change: MeshPoint::new(What::PolicyChange, shape),
            current,
            writes: 0,
        })
    }

    /// One iteration of each measurement.
    pub fn step(&mut self) -> anyhow::Result<()> {
        let input = self.resources.clone();
        let (snapshot, snapshot_time) = measure(|| MeshSnapshot::from_resources(MESH, input));
        let (every, generate_time) = generate_every_proxy(&snapshot)?;
        self.fresh.record(snapshot_time, generate_time, every);
        drop(snapshot);

        self.writes += 1;
        let millis = 20_000 + self.writes;
        let written = mesh::mesh_wide_timeout(millis)?;
        let current = &self.current;
        let (next, update_time) = measure(|| updated_for(current, written));
        let (every, generate_time) = generate_every_proxy(&next)?;
        check_connect_timeout(&next, millis)?;
        self.change.record(update_time, generate_time, every);
        self.current = next;
        Ok(())
    }

    /// The fresh-build and the policy-change measurements.
    pub fn finish(self) -> (MeshPoint, MeshPoint) {
        (self.fresh.sort(), self.change.sort())
    }
}

/// Measures the whole mesh of every shape, `iterations` rounds of one
/// step each, in turn; the results in the order of `shapes`.
pub fn measure_alternately(
    shapes: &[Shape],
    iterations: usize,
) -> anyhow::Result<Vec<(MeshPoint, MeshPoint)>> {
    let mut runs = shapes
        .iter()
        .map(|&shape| MeshRun::new(shape))
        .collect::<anyhow::Result<Vec<_>>>()?;
    in_turn(&mut runs, iterations, MeshRun::step)?;
    Ok(runs.into_iter().map(MeshRun::finish).collect())
}

/// `current` updated for the policy `written`, as kuma-cp updates a running
/// mesh's snapshot: only that policy read, its kind indexed again, the
/// shared resources carried over.
pub(super) fn updated_for(current: &MeshSnapshot, written: Resource) -> MeshSnapshot {
    let change = (
        written.kind(),
        written.meta.name.clone(),
        Some((written.meta.labels.clone(), written.spec)),
    );
    let next = current.with_policy_changes([change]);
    next.carry_shared_from(current);
    next
}

/// The change must be in what proxies get: the all-services proxy's
/// cluster of `svc-0` (no other MeshTimeout selects that proxy) connects
/// with the timeout just written.
pub(super) fn check_connect_timeout(snapshot: &MeshSnapshot, millis: u64) -> anyhow::Result<()> {
    let config = generate_proxy(snapshot, ALL_SERVICES_PROXY)
        .context("generating the all-services proxy")?;
    let name = mesh::service(0);
    let cluster = config
        .of_type(type_url::CLUSTER)
        .find(|r| r.name == name)
        .with_context(|| format!("the all-services proxy has no cluster {name}"))?;
    let cluster = Cluster::decode(cluster.body.value.as_slice())?;
    let got = cluster
        .connect_timeout
        .map(|d| d.seconds as u64 * 1000 + d.nanos as u64 / 1_000_000);
    if got != Some(millis) {
        bail!("cluster {name} connects with a timeout of {got:?} ms, not the {millis} ms written");
    }
    Ok(())
}

impl MeshPoint {
    pub fn total_p50(&self) -> Duration {
        percentile(&self.total, 0.5)
    }

    /// One line; `baseline` is the point (usually P=0) the ratios are
    /// taken against: `ratio` of the whole time, `generation_ratio` of
    /// the proxies' generation alone, `output_ratio` of the bytes
    /// generated.
    pub fn line(&self, baseline: &MeshPoint, cores: usize) -> String {
        let total = self.total_p50();
        let generation = percentile(&self.generation, 0.5);
        let label = match self.what {
            What::Fresh => "generation-mesh",
            What::PolicyChange => "generation-mesh-change",
        };
        format!(
            "{label} services={} policies={} proxies={} total_ms={:.2} snapshot_ms={:.2} generation_ms={:.2} per_proxy_us={:.1} ratio={:.2}x generation_ratio={:.2}x output_ratio={:.2}x samples={} cores={cores}",
            self.shape.services,
            self.shape.policies,
            self.proxies,
            total.as_secs_f64() * 1e3,
            percentile(&self.snapshot, 0.5).as_secs_f64() * 1e3,
            generation.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e6 / self.proxies.max(1) as f64,
            ratio(total, baseline.total_p50()),
            ratio(generation, percentile(&baseline.generation, 0.5)),
            self.bytes as f64 / baseline.bytes.max(1) as f64,
            self.total.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::mesh;
    use super::*;

    #[test]
    fn every_proxy_of_the_mesh_is_generated() {
        let shape = Shape {
            services: 10,
            instances: 2,
            policies: 12,
        };
        let (point, _) = measure_alternately(&[shape], 2)
            .expect("measured")
            .remove(0);
        // 10 services of 2 instances, and the all-services proxy.
        assert_eq!(point.proxies, 21);
        assert_eq!(point.total.len(), 2);
        assert!(point.total.iter().zip(&point.snapshot).all(|(t, s)| t > s));
        assert_eq!(point.generation.len(), 2);
        let line = point.line(&point, 2);
        assert!(
            line.starts_with("generation-mesh services=10 policies=12 proxies=21 "),
            "{line}"
        );
        assert!(
            line.contains(" ratio=1.00x generation_ratio=1.00x output_ratio=1.00x "),
            "{line}"
        );
    }

    #[test]
    fn a_policy_change_updates_the_snapshot_and_reaches_every_proxy() {
        let shape = Shape {
            services: 10,
            instances: 2,
            policies: 12,
        };
        // Each of the 3 writes is checked to land in the proxies' clusters
        // (a step fails otherwise).
        let (_, point) = measure_alternately(&[shape], 3)
            .expect("measured")
            .remove(0);
        assert_eq!(point.proxies, 21);
        assert_eq!(point.total.len(), 3);
        let line = point.line(&point, 2);
        assert!(
            line.starts_with("generation-mesh-change services=10 policies=12 proxies=21 "),
            "{line}"
        );
    }

    #[test]
    fn a_connect_timeout_other_than_the_one_written_is_caught() {
        let shape = Shape {
            services: 4,
            instances: 1,
            policies: 0,
        };
        let mut resources = mesh::build(shape).expect("valid mesh");
        resources.push(mesh::mesh_wide_timeout(7_000).expect("valid policy"));
        let snapshot = MeshSnapshot::from_resources(MESH, resources);
        check_connect_timeout(&snapshot, 7_000).expect("the timeout written");
        let err = check_connect_timeout(&snapshot, 8_000).expect_err("another timeout");
        assert!(err.to_string().contains("7000"), "{err}");
    }

    #[test]
    fn the_output_ratio_counts_what_policies_add() {
        let shape = |policies| Shape {
            services: 10,
            instances: 2,
            policies,
        };
        // Measured in turn, results in the order of the shapes.
        let mut points = measure_alternately(&[shape(0), shape(12)], 1).expect("measured");
        let (some, _) = points.pop().expect("two points");
        let (none, _) = points.pop().expect("two points");
        assert_eq!((none.shape.policies, some.shape.policies), (0, 12));
        // Retries, health checks and routes land in the configurations.
        assert!(some.bytes > none.bytes, "{} <= {}", some.bytes, none.bytes);
        let line = some.line(&none, 2);
        assert!(!line.contains(" output_ratio=1.00x "), "{line}");
    }
}
