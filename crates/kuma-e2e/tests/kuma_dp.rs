//! kuma-dp's own behaviour around its Envoy and an absent control plane.

use std::process::Command;
use std::time::Duration;

use kuma_e2e::binaries;
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, dataplane_yaml};
use kuma_e2e::free_port;
use kuma_e2e::process::Proc;
use kuma_e2e::service::TestService;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_dp_fails_when_its_envoy_dies() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let app = TestService::start("backend-1").await.expect("app");
    let yaml = dataplane_yaml(
        "default",
        "backend-1",
        &[Inbound {
            port: free_port(),
            service_port: app.port(),
            service: "backend".into(),
        }],
        &[],
    );
    let mut dp = Dataplane::start(b, &cp, "backend-1", &yaml).await;
    // Envoy leaves by itself (it exits 0 here): kuma-dp did not ask for it.
    let quit = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/quitquitquit", dp.admin_port))
        .send()
        .await
        .expect("admin answers");
    assert!(quit.status().is_success());
    let status = dp.proc.wait_timeout(Duration::from_secs(15));
    let log = dp.proc.log();
    assert!(
        status.is_some_and(|s| s.code() == Some(1)),
        "kuma-dp should exit 1 when Envoy dies, got {status:?}:\n{log}"
    );
    assert!(log.contains("Envoy exited unexpectedly"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_dp_retries_an_unreachable_control_plane_and_stops_on_sigterm() {
    let b = binaries::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(&b.kuma_dp);
    command
        .arg("run")
        .arg(format!("--cp-address=https://127.0.0.1:{}", free_port()))
        .args(["--name=web", "--mesh=default"])
        .arg(format!("--binary-path={}", b.envoy.display()))
        .arg(format!("--config-dir={}", dir.path().display()))
        .env("KUMA_CONTROL_PLANE_RETRY_BACKOFF", "100ms");
    let mut dp = Proc::spawn("kuma-dp", command, &dir.path().join("log")).expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while dp.log().matches("retrying in").count() < 3 {
        assert!(dp.try_status().is_none(), "kuma-dp exited:\n{}", dp.log());
        assert!(
            std::time::Instant::now() < deadline,
            "no retries logged:\n{}",
            dp.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = dp.log();
    assert!(
        log.contains("could not get the bootstrap from the control plane"),
        "{log}"
    );
    let status = dp.stop(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM while waiting should exit 0, got {status:?}:\n{}",
        dp.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_dp_refuses_an_unsupported_envoy() {
    let b = binaries::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("envoy");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'envoy  version: abc/1.29.1/Clean/RELEASE/BoringSSL'\n",
    )
    .expect("write");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = Command::new(&b.kuma_dp)
        .args(["run", "--name=web", "--mesh=default"])
        .arg(format!("--binary-path={}", fake.display()))
        .output()
        .expect("kuma-dp runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Envoy 1.29.1"), "{stderr}");
    assert!(stderr.contains("1.40.x"), "{stderr}");
}
