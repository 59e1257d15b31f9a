//! The gRPC side of MeshRetry and MeshHealthCheck on real Envoys: web
//! calls a gRPC service, backend (`kuma.io/protocol: grpc`), through its
//! outbound; backend's instances are small gRPC services (see
//! [`kuma_e2e::grpc`]).
//!
//! Each test runs in a mesh of its own without Kuma's initial policies and
//! first shows what happens without the policy.

use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml, dataplane_yaml_tagged};
use kuma_e2e::grpc::{self, GrpcService, UNAVAILABLE};
use kuma_e2e::sidecar_pair::{mesh_wide_policy, quick_health_check};
use kuma_e2e::{eventually, free_port};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const METHOD: &str = "/test.Echo/Call";

struct GrpcInstance {
    app: GrpcService,
    inbound: u16,
    _dp: Dataplane,
}

struct GrpcMesh {
    backends: Vec<GrpcInstance>,
    web: Dataplane,
    web_outbound: u16,
}

/// backend's `instances` (gRPC services behind their proxies) and web with
/// an outbound to backend, in `mesh`; returned once web's calls get through.
async fn start_mesh(b: &Binaries, cp: &ControlPlane, mesh: &str, instances: usize) -> GrpcMesh {
    cp.create_mesh_without_initial_policies(mesh).await;
    let mut backends = Vec::new();
    for i in 1..=instances {
        let app = GrpcService::start().await.expect("gRPC app");
        let inbound = free_port();
        let name = format!("backend-{i}");
        let yaml = dataplane_yaml_tagged(
            mesh,
            &name,
            &[Inbound {
                port: inbound,
                service_port: app.port(),
                service: "backend".into(),
            }],
            &[("kuma.io/protocol", "grpc")],
            &[],
        );
        let dp = Dataplane::start_in_mesh(b, cp, mesh, &name, &yaml).await;
        backends.push(GrpcInstance {
            app,
            inbound,
            _dp: dp,
        });
    }
    let web_outbound = free_port();
    let yaml = dataplane_yaml(
        mesh,
        "web",
        &[Inbound {
            port: free_port(),
            service_port: free_port(),
            service: "web".into(),
        }],
        &[Outbound {
            port: web_outbound,
            service: "backend".into(),
        }],
    );
    let web = Dataplane::start_in_mesh(b, cp, mesh, "web", &yaml).await;
    eventually("web's gRPC calls to get through", WAIT, || async {
        match grpc::call(web_outbound, METHOD).await? {
            0 => Ok(()),
            status => Err(format!("grpc-status {status}")),
        }
    })
    .await;
    GrpcMesh {
        backends,
        web,
        web_outbound,
    }
}

/// One call while backend-1 fails its next two with UNAVAILABLE: the
/// status web's client sees and how many calls backend-1 received for it.
async fn flaky_call(m: &GrpcMesh) -> Result<(u32, u64), String> {
    let app = &m.backends[0].app;
    app.fail_next(2);
    let before = app.calls();
    let status = grpc::call(m.web_outbound, METHOD).await;
    let seen = app.calls() - before;
    app.fail_next(0);
    Ok((status?, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_retries_turn_unavailable_into_success() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "grpc-retries";
    let m = start_mesh(b, &cp, mesh, 1).await;

    // No MeshRetry: the first UNAVAILABLE reaches the client.
    assert_eq!(flaky_call(&m).await, Ok((UNAVAILABLE, 1)));

    let body = mesh_wide_policy(
        "MeshRetry",
        mesh,
        "grpc-retries",
        json!({"grpc": {
            "numRetries": 3,
            "retryOn": ["Unavailable"],
            "backOff": {"baseInterval": "10ms", "maxInterval": "20ms"},
        }}),
    );
    cp.put(&format!("/meshes/{mesh}/meshretries/grpc-retries"), &body)
        .await;
    let seen = eventually("retries to hide two UNAVAILABLEs", WAIT, || async {
        match flaky_call(&m).await? {
            (0, seen) => Ok(seen),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(seen, 3, "two failures, then success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_health_check_takes_a_not_serving_endpoint_out() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "grpc-health";
    let m = start_mesh(b, &cp, mesh, 2).await;
    let bad = &m.backends[1];
    bad.app.set_serving(false);

    // No MeshHealthCheck: nobody asks backend-2, so it keeps its share.
    let before = bad.app.calls();
    for _ in 0..20 {
        assert_eq!(grpc::call(m.web_outbound, METHOD).await, Ok(0));
    }
    assert!(bad.app.calls() - before >= 5, "backend-2 served its share");

    let body = quick_health_check(mesh, "grpc-health", json!({"grpc": {}}));
    cp.put(
        &format!("/meshes/{mesh}/meshhealthchecks/grpc-health"),
        &body,
    )
    .await;
    eventually("backend-2 to fail its gRPC check", WAIT, || async {
        let flags = m.web.endpoint_health_flags("backend", bad.inbound).await?;
        if flags.contains("failed_active_hc") {
            Ok(())
        } else {
            Err(flags)
        }
    })
    .await;
    let before = bad.app.calls();
    for _ in 0..20 {
        assert_eq!(grpc::call(m.web_outbound, METHOD).await, Ok(0));
    }
    assert_eq!(bad.app.calls(), before, "no call reached backend-2");

    // Serving again, it is back in the rotation.
    bad.app.set_serving(true);
    eventually("backend-2 to take calls again", WAIT, || async {
        let before = bad.app.calls();
        for _ in 0..10 {
            grpc::call(m.web_outbound, METHOD).await?;
        }
        if bad.app.calls() > before {
            Ok(())
        } else {
            Err("backend-2 still out".to_string())
        }
    })
    .await;
}
