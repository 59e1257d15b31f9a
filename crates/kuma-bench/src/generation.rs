//! `kuma-bench generation`: CPU time to build one proxy's Envoy configuration
//! with kuma-xds's generators, no control plane or network involved.
//!
//! - cold: a fresh [`MeshSnapshot`] (nothing cached) and the configuration of
//!   the transparent proxy that may reach all S services (S clusters, S load
//!   assignments, its inbound);
//! - encode: prost-encoding exactly those resources, the floor any generator
//!   pays; cold over encode is the overhead of generation itself;
//! - change: one service gains an endpoint; the running snapshot is updated
//!   for the new Dataplane and takes over the previous snapshot's encoded
//!   resources the change did not touch (as kuma-cp does), and every
//!   affected proxy (the service's callers) is regenerated. `warm` is one
//!   affected proxy regenerated once a first one filled the shared cache;
//!   `first`, `rebuild` and `per_affected` show what the change costs in
//!   all;
//! - mesh: a fresh snapshot and every proxy of the mesh generated, the cost
//!   of a whole mesh; and a mesh-wide policy written into the running mesh,
//!   the snapshot updated and every proxy generated again (see
//!   [`whole_mesh`]).
//!
//! Times are the thread's CPU time, not wall time (the machine is shared).

mod mesh;
pub mod phase;
mod whole_mesh;

use std::time::Duration;

use anyhow::{Context, bail};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use kuma_api::{Resource, Spec};
use kuma_xds::generate::{MeshSnapshot, generate_proxy};
use kuma_xds::{ProxyResources, type_url};
use prost::Message;

use crate::cpu::{measure, percentile};
use mesh::{ALL_SERVICES_PROXY, MESH, Shape};

#[derive(clap::Args)]
pub struct Args {
    /// Service counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    services: Vec<u32>,
    /// Dataplanes per service (each declares outbounds to the next 3 services).
    #[arg(long, default_value_t = 2)]
    instances: u32,
    /// targetRef policies of mixed kinds, comma separated; each count after
    /// the first is also printed as a ratio to the first (usually 0).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    policies: Vec<u32>,
    /// Cold generations per point (default: fewer for more services).
    #[arg(long)]
    iterations: Option<usize>,
    /// One-service changes per point.
    #[arg(long, default_value_t = 30)]
    changes: u32,
    /// Whole-mesh generations per point (default: fewer for more
    /// services); 0 leaves the whole-mesh figure out.
    #[arg(long)]
    mesh_iterations: Option<usize>,
}

/// What one point (S services, P policies) measured; durations are CPU time.
#[derive(Debug, Clone)]
pub struct Point {
    pub shape: Shape,
    pub resources: usize,
    /// Encoded bytes of the all-services proxy's resources.
    pub bytes: usize,
    pub snapshot: Vec<Duration>,
    pub cold: Vec<Duration>,
    pub encode: Vec<Duration>,
    pub rebuild: Vec<Duration>,
    pub first: Vec<Duration>,
    pub warm: Vec<Duration>,
    /// The all-services proxy after a change (its cache mostly cold).
    pub all_after_change: Vec<Duration>,
    /// The all-services proxy again on the same snapshot (everything cached).
    pub all_cached: Vec<Duration>,
    /// (rebuild + every affected generation) / affected proxies, per change.
    pub per_affected: Vec<Duration>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.services.contains(&0) || args.instances == 0 || args.policies.is_empty() {
        bail!("--services and --instances must be at least 1, --policies must list a count");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for &services in &args.services {
        // Cold generation and output bytes of the first policy count.
        let mut baseline: Option<(Duration, usize)> = None;
        let shapes: Vec<Shape> = args
            .policies
            .iter()
            .map(|&policies| Shape {
                services,
                instances: args.instances,
                policies,
            })
            .collect();
        let iterations = args
            .iterations
            .unwrap_or_else(|| (20_000 / services as usize).clamp(3, 50));
        for mut point in measure_points(&shapes, iterations, args.changes)? {
            let policies = point.shape.policies;
            point.sort();
            println!("{}", point.cold_line(cores));
            println!("{}", point.change_line(cores));
            let cold = percentile(&point.cold, 0.5);
            match baseline {
                None => baseline = Some((cold, point.bytes)),
                // Policies change the proxy's configuration itself:
                // `output_ratio` is how much larger it is.
                Some((base, base_bytes)) => println!(
                    "generation-policies services={services} policies={policies} baseline_policies={} cold_p50_us={:.1} ratio={:.2}x output_ratio={:.2}x",
                    args.policies[0],
                    us(cold),
                    ratio(cold, base),
                    point.bytes as f64 / base_bytes.max(1) as f64,
                ),
            }
        }
        let mesh_iterations = args
            .mesh_iterations
            .unwrap_or_else(|| (2_000 / services as usize).clamp(3, 10));
        if mesh_iterations > 0 {
            let points = whole_mesh::measure_alternately(&shapes, mesh_iterations)?;
            if let Some((fresh_base, change_base)) = points.first().cloned() {
                for (fresh, change) in &points {
                    println!("{}", fresh.line(&fresh_base, cores));
                    println!("{}", change.line(&change_base, cores));
                }
            }
        }
    }
    Ok(())
}

/// Measures every shape's point: the cold iterations of all shapes in
/// turn (so that the machine's load weighs on each alike, which keeps the
/// ratios between them honest on a busy machine), then each point's
/// changes. Results in the order of `shapes`.
pub fn measure_points(
    shapes: &[Shape],
    iterations: usize,
    changes: u32,
) -> anyhow::Result<Vec<Point>> {
    let mut runs = shapes
        .iter()
        .map(|&shape| ColdRun::new(shape))
        .collect::<anyhow::Result<Vec<_>>>()?;
    in_turn(&mut runs, iterations, ColdRun::step)?;
    runs.into_iter().map(|run| run.finish(changes)).collect()
}

/// `iterations` rounds (at least one) of `step` on every run in turn.
fn in_turn<R>(
    runs: &mut [R],
    iterations: usize,
    mut step: impl FnMut(&mut R) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for _ in 0..iterations.max(1) {
        for run in runs.iter_mut() {
            step(run)?;
        }
    }
    Ok(())
}

/// One point's cold measurements in progress.
struct ColdRun {
    resources: Vec<Resource>,
    /// The all-services proxy's resources decoded: what encode-only encodes.
    typed: Vec<(String, Typed)>,
    point: Point,
}

impl ColdRun {
    fn new(shape: Shape) -> anyhow::Result<ColdRun> {
        Ok(ColdRun {
            resources: mesh::build(shape)?,
            typed: Vec::new(),
            point: Point {
                shape,
                resources: 0,
                bytes: 0,
                snapshot: Vec::new(),
                cold: Vec::new(),
                encode: Vec::new(),
                rebuild: Vec::new(),
                first: Vec::new(),
                warm: Vec::new(),
                all_after_change: Vec::new(),
                all_cached: Vec::new(),
                per_affected: Vec::new(),
            },
        })
    }

    /// A fresh snapshot, the all-services proxy generated from it, and its
    /// resources encoded alone.
    fn step(&mut self) -> anyhow::Result<()> {
        let point = &mut self.point;
        let input = self.resources.clone();
        let (snapshot, t) = measure(|| MeshSnapshot::from_resources(MESH, input));
        point.snapshot.push(t);
        let (config, t) = measure(|| generate_proxy(&snapshot, ALL_SERVICES_PROXY));
        let config = config.context("generating the all-services proxy")?;
        point.cold.push(t);
        if self.typed.is_empty() {
            point.resources = config.by_type.values().map(|m| m.len()).sum();
            point.bytes = config
                .by_type
                .values()
                .flat_map(|m| m.values())
                .map(|r| r.body.value.len())
                .sum();
            check_covers_every_service(&config, point.shape.services)?;
            self.typed = decode_all(&config)?;
        }
        let (bytes, t) = measure(|| encode_all(&self.typed));
        std::hint::black_box(bytes);
        point.encode.push(t);
        Ok(())
    }

    /// The point, once `changes` one-service changes are measured too.
    fn finish(self, changes: u32) -> anyhow::Result<Point> {
        let ColdRun {
            resources,
            mut point,
            ..
        } = self;
        let shape = point.shape;
        // The running snapshot before the first change.
        let mut current = whole_mesh::running_snapshot(resources)?;
        for c in 0..changes {
            current = measure_change(current, shape, c, &mut point)?;
        }
        Ok(point)
    }
}

fn check_covers_every_service(config: &ProxyResources, services: u32) -> anyhow::Result<()> {
    let clusters = config.of_type(type_url::CLUSTER).count();
    // Every service's cluster plus the inbound's own.
    if clusters < services as usize {
        bail!("the all-services proxy has {clusters} clusters for {services} services");
    }
    Ok(())
}

/// One more instance of a service in the running mesh of `current`, as
/// kuma-cp handles it: the snapshot updated for the new Dataplane, the
/// previous snapshot's shared resources carried over, and the affected
/// proxies (the service's callers, and the all-services proxy) generated.
/// Returns the updated snapshot, the running one for the next change.
fn measure_change(
    current: MeshSnapshot,
    shape: Shape,
    change: u32,
    point: &mut Point,
) -> anyhow::Result<MeshSnapshot> {
    // Spread the changed services over the mesh.
    let s = change.wrapping_mul(7919) % shape.services;
    let added = mesh::extra_instance(change, s)?;
    let Spec::Dataplane(spec) = added.spec else {
        bail!("an extra instance must be a Dataplane");
    };
    let dataplane = (added.meta.name, Some((added.meta.labels, spec)));
    let (snapshot, rebuild) = measure(|| {
        let snapshot = current.with_dataplane_changes([dataplane]);
        snapshot.carry_shared_from(&current);
        snapshot
    });
    point.rebuild.push(rebuild);
    let callers = mesh::callers(shape, s);
    let mut total = rebuild;
    for (i, name) in callers.iter().enumerate() {
        let (config, t) = measure(|| generate_proxy(&snapshot, name));
        let config = config.with_context(|| format!("generating {name}"))?;
        // The change must be in what the caller gets, not a stale copy.
        let address = mesh::extra_address(change);
        let holds = config
            .of_type(type_url::ENDPOINT)
            .filter(|r| r.name == mesh::service(s))
            .any(|r| {
                ClusterLoadAssignment::decode(r.body.value.as_slice())
                    .is_ok_and(|cla| format!("{cla:?}").contains(&format!("\"{address}\"")))
            });
        if !holds {
            bail!(
                "{name} calls {} but its load assignment lacks the new endpoint {address}",
                mesh::service(s)
            );
        }
        total += t;
        if i == 0 {
            point.first.push(t);
        } else {
            point.warm.push(t);
        }
    }
    let (config, t) = measure(|| generate_proxy(&snapshot, ALL_SERVICES_PROXY));
    config.context("generating the all-services proxy")?;
    point.all_after_change.push(t);
    total += t;
    let (config, t) = measure(|| generate_proxy(&snapshot, ALL_SERVICES_PROXY));
    config.context("generating the all-services proxy")?;
    point.all_cached.push(t);
    let affected = callers.len() as u32 + 1;
    point.per_affected.push(total / affected);
    Ok(snapshot)
}

/// A resource decoded to its Envoy message, ready to be encoded again.
enum Typed {
    Cluster(Box<Cluster>),
    Endpoints(ClusterLoadAssignment),
    Listener(Box<Listener>),
    Route(RouteConfiguration),
    Secret(Secret),
}

fn decode_all(config: &ProxyResources) -> anyhow::Result<Vec<(String, Typed)>> {
    let mut out = Vec::new();
    for (url, resources) in &config.by_type {
        for r in resources.values() {
            let bytes = r.body.value.as_slice();
            let typed = match url.as_str() {
                type_url::CLUSTER => Typed::Cluster(Box::new(Cluster::decode(bytes)?)),
                type_url::ENDPOINT => Typed::Endpoints(ClusterLoadAssignment::decode(bytes)?),
                type_url::LISTENER => Typed::Listener(Box::new(Listener::decode(bytes)?)),
                type_url::ROUTE => Typed::Route(RouteConfiguration::decode(bytes)?),
                type_url::SECRET => Typed::Secret(Secret::decode(bytes)?),
                other => bail!("unexpected resource type {other}"),
            };
            out.push((url.clone(), typed));
        }
    }
    Ok(out)
}

/// Encodes every message into an `Any`, as a generator must at least do.
fn encode_all(typed: &[(String, Typed)]) -> Vec<Any> {
    typed
        .iter()
        .map(|(url, t)| Any {
            type_url: url.clone(),
            value: match t {
                Typed::Cluster(m) => m.encode_to_vec(),
                Typed::Endpoints(m) => m.encode_to_vec(),
                Typed::Listener(m) => m.encode_to_vec(),
                Typed::Route(m) => m.encode_to_vec(),
                Typed::Secret(m) => m.encode_to_vec(),
            },
        })
        .collect()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Point {
    fn sort(&mut self) {
        for v in [
            &mut self.snapshot,
            &mut self.cold,
            &mut self.encode,
            &mut self.rebuild,
            &mut self.first,
            &mut self.warm,
            &mut self.all_after_change,
            &mut self.all_cached,
            &mut self.per_affected,
        ] {
            v.sort_unstable();
        }
    }

    /// Cold generation against encoding alone.
    pub fn cold_line(&self, cores: usize) -> String {
        let cold = percentile(&self.cold, 0.5);
        let encode = percentile(&self.encode, 0.5);
        format!(
            "generation-cold services={} policies={} resources={} bytes={} cold_p50_us={:.1} encode_p50_us={:.1} cold_vs_encode={:.2}x snapshot_p50_ms={:.2} samples={} cores={cores}",
            self.shape.services,
            self.shape.policies,
            self.resources,
            self.bytes,
            us(cold),
            us(encode),
            ratio(cold, encode),
            ms(percentile(&self.snapshot, 0.5)),
            self.cold.len(),
        )
    }

    /// One service's endpoint change, per affected proxy.
    pub fn change_line(&self, cores: usize) -> String {
        format!(
            "generation-change services={} policies={} warm_p50_us={:.1} warm_p99_us={:.1} first_p50_us={:.1} rebuild_p50_ms={:.2} all_services_after_change_p50_us={:.1} all_services_cached_p50_us={:.1} per_affected_p50_us={:.1} affected={} changes={} cores={cores}",
            self.shape.services,
            self.shape.policies,
            us(percentile(&self.warm, 0.5)),
            us(percentile(&self.warm, 0.99)),
            us(percentile(&self.first, 0.5)),
            ms(percentile(&self.rebuild, 0.5)),
            us(percentile(&self.all_after_change, 0.5)),
            us(percentile(&self.all_cached, 0.5)),
            us(percentile(&self.per_affected, 0.5)),
            mesh::callers(self.shape, 0).len() + 1,
            self.rebuild.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_point_measures_every_phase() {
        let shape = Shape {
            services: 20,
            instances: 2,
            policies: 12,
        };
        let mut point = measure_points(&[shape], 3, 4).expect("measured").remove(0);
        point.sort();
        // 20 services: a cluster and a load assignment each, plus the
        // inbound's listener and cluster.
        assert!(point.resources >= 2 * 20 + 2, "{}", point.resources);
        assert!(point.bytes > point.resources, "{}", point.bytes);
        assert_eq!(point.cold.len(), 3);
        assert_eq!(point.rebuild.len(), 4);
        // 3 callers of 2 instances each: one fills the cache, 5 are warm.
        assert_eq!(point.first.len(), 4);
        assert_eq!(point.warm.len(), 4 * 5);
        assert!(point.cold.iter().all(|d| !d.is_zero()));
        assert!(point.cold_line(2).contains("services=20 policies=12"));
    }

    #[test]
    fn carried_resources_do_not_hide_a_change_from_its_callers() {
        // Each updated snapshot carries the previous one's resources (all
        // it can without route policies, less with them), and every caller
        // must still get the new endpoint (measure_change fails otherwise).
        let shape = |policies| Shape {
            services: 8,
            instances: 2,
            policies,
        };
        let points =
            measure_points(&[shape(0), shape(12)], 1, 8).expect("every caller holds its change");
        assert!(points.iter().all(|p| p.rebuild.len() == 8));
    }

    #[test]
    fn encoding_the_decoded_resources_gives_the_same_bytes() {
        let shape = Shape {
            services: 5,
            instances: 1,
            policies: 0,
        };
        let snapshot = MeshSnapshot::from_resources(MESH, mesh::build(shape).unwrap());
        let config = generate_proxy(&snapshot, ALL_SERVICES_PROXY).unwrap();
        let typed = decode_all(&config).unwrap();
        let again = encode_all(&typed);
        let original: Vec<&Any> = config
            .by_type
            .values()
            .flat_map(|m| m.values().map(|r| &r.body))
            .collect();
        assert_eq!(again.len(), original.len());
        for (a, b) in again.iter().zip(original) {
            assert_eq!(a, b);
        }
    }
}
