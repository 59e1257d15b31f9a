//! Traffic through real Envoys configured by the real control plane.

use std::collections::BTreeMap;
use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::{ControlPlane, responses_rejected};
use kuma_e2e::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml};
use kuma_e2e::service::TestService;
use kuma_e2e::{eventually, free_port};

const WAIT: Duration = Duration::from_secs(20);

/// One GET through a proxy's outbound listener; the body names the instance reached.
async fn get_via(port: u16) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Sends `n` requests; counts the instances reached, or the first failure.
async fn spread(port: u16, n: usize) -> Result<BTreeMap<String, usize>, String> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(get_via(port).await?).or_insert(0) += 1;
    }
    Ok(seen)
}

/// A backend instance: its application and its proxy.
struct Backend {
    dp: Dataplane,
    _app: TestService,
}

async fn start_backend(b: &Binaries, cp: &ControlPlane, name: &str) -> Backend {
    let app = TestService::start(name).await.expect("backend app");
    let yaml = dataplane_yaml(
        "default",
        name,
        &[Inbound {
            port: free_port(),
            service_port: app.port(),
            service: "backend".into(),
        }],
        &[],
    );
    let dp = Dataplane::start(b, cp, name, &yaml).await;
    Backend { dp, _app: app }
}

/// The web proxy: one inbound for its own app, one outbound to backend.
struct Web {
    dp: Dataplane,
    _app: TestService,
    inbound_port: u16,
    outbound_port: u16,
    app_port: u16,
}

fn web_yaml(inbound_port: u16, app_port: u16, outbounds: &[u16]) -> String {
    let outbounds: Vec<Outbound> = outbounds
        .iter()
        .map(|&port| Outbound {
            port,
            service: "backend".into(),
        })
        .collect();
    dataplane_yaml(
        "default",
        "web",
        &[Inbound {
            port: inbound_port,
            service_port: app_port,
            service: "web".into(),
        }],
        &outbounds,
    )
}

async fn start_web(b: &Binaries, cp: &ControlPlane) -> Web {
    let app = TestService::start("web").await.expect("web app");
    let (inbound_port, outbound_port) = (free_port(), free_port());
    let yaml = web_yaml(inbound_port, app.port(), &[outbound_port]);
    let dp = Dataplane::start(b, cp, "web", &yaml).await;
    Web {
        dp,
        app_port: app.port(),
        _app: app,
        inbound_port,
        outbound_port,
    }
}

async fn wait_for_instances(port: u16, expected: &[&str]) {
    let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    eventually(
        &format!("requests to reach exactly {expected:?}"),
        WAIT,
        || async {
            let seen = spread(port, 20).await?;
            let names: Vec<String> = seen.keys().cloned().collect();
            if names == expected {
                Ok(())
            } else {
                Err(format!("reached {seen:?}"))
            }
        },
    )
    .await
}

fn kumactl(b: &Binaries, config: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(&b.kumactl)
        .arg("--config-file")
        .arg(config)
        .args(args)
        .output()
        .expect("kumactl runs");
    assert!(
        out.status.success(),
        "kumactl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_follows_backend_instances_as_they_join_and_leave() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let backend_1 = start_backend(b, &cp, "backend-1").await;
    let web = start_web(b, &cp).await;

    // Through web's outbound listener, backend's inbound listener, to the app.
    wait_for_instances(web.outbound_port, &["backend-1"]).await;
    assert_eq!(get_via(web.outbound_port).await.as_deref(), Ok("backend-1"));

    // kumactl sees both proxies connected.
    let config = cp.dir.path().join("kumactl.config");
    let api = cp.api("");
    kumactl(
        b,
        &config,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "e2e",
            "--address",
            &api,
        ],
    );
    let table = eventually(
        "kumactl inspect dataplanes to show both Online",
        WAIT,
        || async {
            let table = kumactl(b, &config, &["inspect", "dataplanes", "--mesh", "default"]);
            let online = |name: &str| {
                table.lines().any(|l| {
                    let cells: Vec<&str> = l.split_whitespace().collect();
                    cells.get(1) == Some(&name) && l.contains("Online")
                })
            };
            if online("web") && online("backend-1") {
                Ok(table)
            } else {
                Err(table)
            }
        },
    )
    .await;
    assert!(table.starts_with("MESH"), "{table}");

    // web's live Envoy configuration, which the control plane reads from
    // web's Envoy admin: it holds the outbound listener we just used.
    let dump = kumactl(
        b,
        &config,
        &[
            "inspect",
            "dataplane",
            "web",
            "--type=config-dump",
            "--mesh",
            "default",
        ],
    );
    assert!(
        dump.contains("type.googleapis.com/envoy.admin.v3.ListenersConfigDump"),
        "not an Envoy config dump:\n{dump}"
    );
    assert!(
        dump.contains(&format!(":{}", web.outbound_port)),
        "web's outbound listener on port {} is missing from its config dump",
        web.outbound_port
    );

    // A second instance joins: traffic reaches both.
    let backend_2 = start_backend(b, &cp, "backend-2").await;
    wait_for_instances(web.outbound_port, &["backend-1", "backend-2"]).await;

    // The first leaves: after the change propagates no request goes to it,
    // and none fails.
    let Backend { mut dp, _app } = backend_1;
    let status = dp.proc.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "kuma-dp backend-1 should exit 0 on SIGTERM, got {status:?}:\n{}",
        dp.proc.log()
    );
    drop(_app);
    wait_for_instances(web.outbound_port, &["backend-2"]).await;
    let after = spread(web.outbound_port, 30)
        .await
        .expect("no failures after the leave");
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        vec!["backend-2"],
        "{after:?}"
    );
    drop(backend_2);
    drop(web);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_does_not_break_traffic() {
    let b = binaries::get();
    let mut cp = ControlPlane::start(b).await;
    let _backend = start_backend(b, &cp, "backend-1").await;
    let web = start_web(b, &cp).await;
    wait_for_instances(web.outbound_port, &["backend-1"]).await;
    let connects_before = web.dp.wait_stat("control_plane.connected_state", 1).await;
    assert_eq!(connects_before, 1);

    // Traffic keeps flowing while the control plane is down and after it is back.
    let port = web.outbound_port;
    let traffic = tokio::spawn(async move {
        let mut failures = Vec::new();
        for _ in 0..60 {
            if let Err(e) = get_via(port).await {
                failures.push(e);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        failures
    });
    cp.restart().await;
    let failures = traffic.await.expect("traffic task");
    assert!(
        failures.is_empty(),
        "requests failed across the restart: {failures:?}"
    );

    // The proxies reconnect to the new control plane and still get updates:
    // a new backend instance becomes reachable.
    web.dp.wait_stat("control_plane.connected_state", 1).await;
    let _backend_2 = start_backend(b, &cp, "backend-2").await;
    wait_for_instances(web.outbound_port, &["backend-1", "backend-2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_config_is_recorded_and_traffic_keeps_the_last_good_one() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let _backend = start_backend(b, &cp, "backend-1").await;
    let web = start_web(b, &cp).await;
    wait_for_instances(web.outbound_port, &["backend-1"]).await;

    // An outbound on the port of web's own inbound: Envoy cannot have two
    // listeners on one address and rejects the update.
    let bad = web_yaml(
        web.inbound_port,
        web.app_port,
        &[web.outbound_port, web.inbound_port],
    );
    let bad_json: serde_json::Value = serde_yaml::from_str(&bad).expect("the harness writes YAML");
    cp.put("/meshes/default/dataplanes/web", &bad_json).await;

    web.dp
        .wait_stat("listener_manager.lds.update_rejected", 1)
        .await;
    let rejected = eventually("the NACK to show in web's insight", WAIT, || async {
        let overview = cp.overview("default", "web").await?;
        let total = responses_rejected(&overview);
        if total >= 1 {
            Ok(total)
        } else {
            Err(overview.to_string())
        }
    })
    .await;
    assert!(rejected >= 1);

    // The last good configuration still carries traffic.
    let seen = spread(web.outbound_port, 10)
        .await
        .expect("traffic after the NACK");
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec!["backend-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cannot_get_another_proxys_config_with_its_token() {
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
    // backend-1's Dataplane with the token issued to web.
    let mut dp = Dataplane::spawn(b, &cp, "backend-1", &yaml, "web").await;
    let status = dp.proc.wait_timeout(Duration::from_secs(20));
    let log = dp.proc.log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "kuma-dp must fail with another proxy's token, got {status:?}:\n{log}"
    );
    assert!(log.contains("refused"), "{log}");
    assert!(
        dp.admin("/ready").await.is_err(),
        "no Envoy may run for a refused proxy"
    );
}
