//! What the control plane pays for a whole mesh: a fresh [`MeshSnapshot`]
//! and the configuration of every proxy in it (every instance of every
//! service and the all-services proxy), one after the other on one thread.
//!
//! The one-proxy cold figure shows what the first proxy of a snapshot pays;
//! this one includes what later proxies share with it, which is what a
//! restarted control plane or a mesh-wide change costs.

use std::time::Duration;

use anyhow::Context;
use kuma_api::Resource;
use kuma_xds::generate::{MeshSnapshot, generate_proxy};

use super::mesh::{MESH, Shape};
use super::ratio;
use crate::cpu::{measure, percentile};

/// The whole-mesh measurements of one point; durations are CPU time.
#[derive(Debug, Clone)]
pub struct MeshPoint {
    pub shape: Shape,
    pub proxies: usize,
    /// Encoded bytes of every proxy's configuration together: policies
    /// make configurations larger, and this shows by how much.
    pub bytes: usize,
    /// Building the snapshot alone, per iteration.
    pub snapshot: Vec<Duration>,
    /// Every proxy's generation once the snapshot is built, per iteration.
    pub generation: Vec<Duration>,
    /// The snapshot and every proxy's generation, per iteration.
    pub total: Vec<Duration>,
}

/// Builds the snapshot and generates every proxy `iterations` times.
pub fn measure_mesh(
    shape: Shape,
    resources: &[Resource],
    iterations: usize,
) -> anyhow::Result<MeshPoint> {
    let mut point = MeshPoint {
        shape,
        proxies: 0,
        bytes: 0,
        snapshot: Vec::new(),
        generation: Vec::new(),
        total: Vec::new(),
    };
    for _ in 0..iterations.max(1) {
        let input = resources.to_vec();
        let (snapshot, snapshot_time) = measure(|| MeshSnapshot::from_resources(MESH, input));
        let names: Vec<String> = snapshot.dataplane_names().map(str::to_string).collect();
        let (generated, generate_time) = measure(|| -> anyhow::Result<(usize, usize)> {
            let (mut resources, mut bytes) = (0, 0);
            for name in &names {
                let config = generate_proxy(&snapshot, name)
                    .with_context(|| format!("generating {name}"))?;
                for r in config.by_type.values().flat_map(|m| m.values()) {
                    resources += 1;
                    bytes += r.body.value.len();
                }
            }
            Ok((resources, bytes))
        });
        // Every proxy has at least its inbound's listener and cluster.
        let (generated, bytes) = generated?;
        if generated < 2 * names.len() {
            anyhow::bail!(
                "{} proxies got only {generated} resources in all",
                names.len()
            );
        }
        point.proxies = names.len();
        point.bytes = bytes;
        point.snapshot.push(snapshot_time);
        point.generation.push(generate_time);
        point.total.push(snapshot_time + generate_time);
    }
    point.snapshot.sort_unstable();
    point.generation.sort_unstable();
    point.total.sort_unstable();
    Ok(point)
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
        format!(
            "generation-mesh services={} policies={} proxies={} total_ms={:.2} snapshot_ms={:.2} generation_ms={:.2} per_proxy_us={:.1} ratio={:.2}x generation_ratio={:.2}x output_ratio={:.2}x samples={} cores={cores}",
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
        let resources = mesh::build(shape).expect("valid mesh");
        let point = measure_mesh(shape, &resources, 2).expect("measured");
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
    fn the_output_ratio_counts_what_policies_add() {
        let measured = |policies| {
            let shape = Shape {
                services: 10,
                instances: 2,
                policies,
            };
            measure_mesh(shape, &mesh::build(shape).expect("valid mesh"), 1).expect("measured")
        };
        let none = measured(0);
        let some = measured(12);
        // Retries, health checks and routes land in the configurations.
        assert!(some.bytes > none.bytes, "{} <= {}", some.bytes, none.bytes);
        let line = some.line(&none, 2);
        assert!(!line.contains(" output_ratio=1.00x "), "{line}");
    }
}
