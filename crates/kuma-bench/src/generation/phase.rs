//! `kuma-bench generation-phase`: one phase of the whole-mesh measurement
//! ([`super::whole_mesh`]), run once after its setup, for an instruction
//! counter to count. `scripts/bench instructions` runs it under valgrind's
//! callgrind, counting only inside [`counted`]: instructions, unlike time,
//! come out nearly the same run after run (within 1% here, as hash seeds
//! differ) whatever else the machine does, so the ratio of P policies to
//! none is close to exact for the code measured (cache misses, which time
//! also pays, are not in it).

use anyhow::bail;
use kuma_xds::generate::{MeshSnapshot, generate_proxy};

use super::mesh::{self, MESH, Shape};
use super::whole_mesh::{
    check_connect_timeout, generate_every_proxy, running_snapshot, updated_for,
};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100)]
    services: u32,
    /// Dataplanes per service (each declares outbounds to the next 3 services).
    #[arg(long, default_value_t = 2)]
    instances: u32,
    /// targetRef policies of mixed kinds in the mesh.
    #[arg(long, default_value_t = 0)]
    policies: u32,
    #[arg(long, value_enum)]
    phase: Phase,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Phase {
    /// A fresh snapshot of every resource of the mesh (what kuma-cp builds
    /// at start: every policy read and indexed).
    Snapshot,
    /// The transparent proxy that may reach every service, generated first
    /// from a fresh snapshot (nothing cached): `generation`'s cold figure.
    FirstProxy,
    /// Every proxy's generation right after a fresh snapshot.
    Generation,
    /// A mesh-wide MeshTimeout written into the running mesh: the snapshot
    /// updated, its shared resources carried, every proxy generated again.
    Change,
}

/// The counted part of a phase; callgrind toggles counting on entering and
/// leaving it, by name (`--toggle-collect=kuma_bench::generation::phase::counted*`).
#[inline(never)]
fn counted<T>(work: impl FnOnce() -> T) -> T {
    std::hint::black_box(work())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.services == 0 || args.instances == 0 {
        bail!("--services and --instances must be at least 1");
    }
    let shape = Shape {
        services: args.services,
        instances: args.instances,
        policies: args.policies,
    };
    let resources = mesh::build(shape)?;
    match args.phase {
        Phase::Snapshot => {
            counted(|| MeshSnapshot::from_resources(MESH, resources));
        }
        Phase::FirstProxy => {
            let snapshot = MeshSnapshot::from_resources(MESH, resources);
            counted(|| generate_proxy(&snapshot, mesh::ALL_SERVICES_PROXY))?;
        }
        Phase::Generation => {
            let snapshot = MeshSnapshot::from_resources(MESH, resources);
            counted(|| generate_every_proxy(&snapshot))?;
        }
        Phase::Change => {
            let current = running_snapshot(resources)?;
            let millis = 20_001;
            let written = mesh::mesh_wide_timeout(millis)?;
            let next = counted(|| -> anyhow::Result<MeshSnapshot> {
                let next = updated_for(&current, written);
                generate_every_proxy(&next)?;
                Ok(next)
            })?;
            check_connect_timeout(&next, millis)?;
        }
    }
    println!(
        "generation-phase phase={:?} services={} instances={} policies={}",
        args.phase, args.services, args.instances, args.policies
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_runs_on_a_small_mesh_with_policies() {
        for phase in [
            Phase::Snapshot,
            Phase::FirstProxy,
            Phase::Generation,
            Phase::Change,
        ] {
            let args = Args {
                services: 4,
                instances: 2,
                policies: 12,
                phase,
            };
            run(args).unwrap_or_else(|e| panic!("{phase:?}: {e:#}"));
        }
    }
}
