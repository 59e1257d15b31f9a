//! The churn and reconnect scenarios against an in-process control plane on
//! the embedded store: endpoint changes reach every caller, and after the
//! control plane restarts (same ports, same data) every proxy reconnects
//! and is back in sync, with no NACK, and follows changes again. Not timed.

use std::time::Duration;

use kuma_cp::{Config, ControlPlane, StoreType};
use kuma_xds_load::{LoadConfig, Scenario, XdsVariant};

fn extra<'a>(r: &'a kuma_xds_load::ScenarioResult, key: &str) -> &'a str {
    r.extra
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{} has no {key}", r.name))
}

async fn restart_and_churn(variant: XdsVariant) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests();
    config.general.work_dir = Some(dir.path().to_path_buf());
    config.store.store_type = StoreType::Embedded;
    let cp = ControlPlane::start(config.clone()).await.unwrap();
    let dp_port = cp.dp_server_address().port();
    let api_url = cp.api_url();
    let api_port: u16 = api_url.rsplit(':').next().unwrap().parse().unwrap();

    let (restart, mut restart_requests) = tokio::sync::mpsc::unbounded_channel();
    let mut load = LoadConfig::new(&format!("https://127.0.0.1:{dp_port}"), &api_url, 200, 20);
    load.variant = variant;
    load.ca_cert_pem = Some(cp.dp_ca_cert_pem().to_string());
    load.streams_per_connection = 64;
    load.timeout = Duration::from_secs(120);
    load.scenarios = vec![Scenario::Churn, Scenario::Reconnect, Scenario::Endpoint];
    load.restart = Some(restart);
    load.cp_pid = Some(std::process::id());
    load.settle = Duration::from_millis(100);
    load.churn_rate = 40;
    load.churn_seconds = 2;
    let run = tokio::spawn(async move { kuma_xds_load::run(&load).await });

    tokio::time::timeout(Duration::from_secs(300), restart_requests.recv())
        .await
        .expect("asked to restart in time")
        .expect("asked to restart");
    cp.shutdown().await;
    config.api_server.http.port = api_port;
    config.dp_server.port = dp_port;
    let cp = ControlPlane::start(config).await.unwrap();

    let report = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap();
    cp.shutdown().await;

    let lines: Vec<String> = std::iter::once(&report.connect)
        .chain(&report.scenarios)
        .map(|r| format!("{} {:?}", r.line(200, 20), r.problems))
        .collect();
    eprintln!("{lines:#?}");
    assert!(report.all_converged(), "{lines:#?}");
    let [churn, reconnect, endpoint] = &report.scenarios[..] else {
        panic!("{lines:#?}");
    };
    // 2 s at 40/s: 80 adds and removals, each seen by every caller.
    assert_eq!(churn.targets, 80);
    assert_eq!(churn.converged, 80, "{lines:#?}");
    assert_eq!(extra(churn, "unconfirmed"), "0");
    assert!(extra(churn, "changes_per_s").parse::<f64>().unwrap() > 0.0);
    assert_eq!(reconnect.targets, 200);
    assert_eq!(reconnect.converged, 200);
    assert_eq!(reconnect.nacks, 0);
    assert_eq!(extra(reconnect, "unconfigured"), "0");
    assert!(
        extra(reconnect, "first_ms").parse::<f64>().unwrap() <= reconnect.latencies_ms[0] + 0.01
    );
    assert!(extra(reconnect, "disconnects").parse::<u32>().unwrap() >= 200);
    assert!(
        reconnect
            .line(200, 20)
            .starts_with("scenario=reconnect proxies=200")
    );
    // The restarted control plane still pushes changes to the same streams' successors.
    assert_eq!(endpoint.converged, 3 * 200 / 20);
    let memory = report.memory.expect("memory read");
    assert!(memory.steady_kib > 0 && memory.base_kib > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_proxies_follow_churn_and_resync_after_a_restart() {
    restart_and_churn(XdsVariant::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_proxies_follow_churn_and_resync_after_a_restart() {
    restart_and_churn(XdsVariant::Sotw).await;
}
