//! The load generator against an in-process control plane: 200 proxies over
//! 20 services converge, and so does every scenario's change, for delta and
//! state-of-the-world streams: a mesh-wide MeshTimeout, one for svc-0, an
//! endpoint, the mesh-wide MeshTimeout again (a new value; svc-0's callers
//! keep svc-0's own), and an instance of a service everyone calls. Not
//! timed: CI machines vary.

use std::time::Duration;

use kuma_cp::{Config, ControlPlane};
use kuma_xds_load::{LoadConfig, Report, Scenario, XdsVariant};

async fn run(variant: XdsVariant, proxies: u32, services: u32) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests();
    config.general.work_dir = Some(dir.path().to_path_buf());
    let cp = ControlPlane::start(config).await.unwrap();
    let mut load = LoadConfig::new(
        &format!("https://127.0.0.1:{}", cp.dp_server_address().port()),
        &cp.api_url(),
        proxies,
        services,
    );
    load.variant = variant;
    load.scenarios = vec![
        Scenario::MeshWide,
        Scenario::Route,
        Scenario::Endpoint,
        Scenario::MeshWide,
        Scenario::MeshWideEndpoint,
    ];
    load.ca_cert_pem = Some(cp.dp_ca_cert_pem().to_string());
    // Several connections, so streams share them and connections are spread.
    load.streams_per_connection = 64;
    load.timeout = Duration::from_secs(60);
    let report = kuma_xds_load::run(&load).await.unwrap();
    let (_, list) = get(&cp.api_url(), "/meshes/xds-load").await;
    assert_eq!(list, 404, "the run removes its mesh");
    cp.shutdown().await;
    report
}

async fn get(base: &str, path: &str) -> (String, u16) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (r.text().await.unwrap(), status)
}

fn assert_converged(report: &Report, proxies: usize, services: usize) {
    assert_eq!(report.connect.targets, proxies);
    for r in std::iter::once(&report.connect).chain(&report.scenarios) {
        assert!(
            r.all_converged(),
            "{}: {:?}",
            r.line(report.proxies, report.services),
            r.problems
        );
        assert_eq!(r.latencies_ms.len(), r.targets, "{}", r.name);
    }
    let names: Vec<&str> = report.scenarios.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mesh-wide",
            "route",
            "endpoint",
            "mesh-wide",
            "mesh-wide-endpoint"
        ]
    );
    let targets: Vec<usize> = report.scenarios.iter().map(|r| r.targets).collect();
    // The mesh-wide changes reach everyone; the others only the 3 of every
    // `services` proxies that call the changed service.
    let callers = proxies * 3 / services;
    assert_eq!(targets, [proxies, callers, callers, proxies, proxies]);
    assert!(report.all_converged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_delta_proxies_converge_in_every_scenario() {
    let report = run(XdsVariant::Delta, 200, 20).await;
    assert_converged(&report, 200, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_proxies_converge_in_every_scenario() {
    let report = run(XdsVariant::Sotw, 60, 6).await;
    assert_converged(&report, 60, 6);
}
