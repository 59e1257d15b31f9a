//! MeshCircuitBreaker (total failure, gateway failure, local-origin
//! failure, failure percentage and success rate detectors, connection
//! limits) and MeshHealthCheck take failing endpoints out of a real Envoy's
//! load balancing; MeshRetry's TCP connect attempts get past an endpoint
//! nobody listens on.
//!
//! Each test runs in its own mesh created with
//! `skipCreatingInitialPolicies: ["*"]`, so no default policy is present:
//! before the test applies its policy the failing instance still gets
//! traffic, and every change after comes from that policy.

use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::sidecar_pair::{
    BackendInstance, PairOptions, SidecarPair, mesh_wide_policy, quick_health_check,
};
use kuma_e2e::traffic::{self, Connections};
use kuma_e2e::{eventually, free_port};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
/// Requests in one batch: with two instances under round robin, enough
/// that each gets several.
const BATCH: usize = 20;

/// web's proxy with one outbound to backend, and two backend instances
/// (backend-1, backend-2) each behind its own proxy, in `mesh`; returned
/// once web reaches both.
async fn start_mesh(b: &Binaries, cp: &ControlPlane, mesh: &str) -> SidecarPair {
    let options = PairOptions::bare_mesh(mesh).backends(&["backend-1", "backend-2"]);
    let m = SidecarPair::start_with(b, cp, &options).await;
    // Both instances answer before anything fails.
    eventually("web to reach both backend instances", WAIT, || async {
        let answers = batch(m.web_outbound).await?;
        let reached = |name: &str| answers.iter().any(|(s, body)| *s == 200 && body == name);
        if reached("backend-1") && reached("backend-2") {
            Ok(())
        } else {
            Err(format!("{answers:?}"))
        }
    })
    .await;
    m
}

/// backend-2: the instance each test makes fail.
fn bad(m: &SidecarPair) -> &BackendInstance {
    &m.more_backends[0]
}

/// Status and body of [`BATCH`] GETs through web's outbound listener.
async fn batch(port: u16) -> Result<Vec<(u16, String)>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut answers = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let response = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        answers.push((status, response.text().await.map_err(|e| e.to_string())?));
    }
    Ok(answers)
}

/// A batch in which every request was answered 200 by backend-1.
async fn all_from_good_instance(port: u16) -> Result<(), String> {
    let answers = batch(port).await?;
    if answers
        .iter()
        .all(|(s, body)| *s == 200 && body == "backend-1")
    {
        Ok(())
    } else {
        Err(format!("{answers:?}"))
    }
}

/// A batch answered by backend-1 alone, with nothing reaching backend-2.
async fn out_of_rotation(m: &SidecarPair) {
    let before = bad(m).app.requests();
    all_from_good_instance(m.web_outbound)
        .await
        .expect("every request answered by backend-1");
    assert_eq!(
        bad(m).app.requests(),
        before,
        "no request reached backend-2"
    );
}

/// Waits until web's active clusters, as its Envoy dumps them, pass `check`.
async fn until_clusters(m: &SidecarPair, what: &str, check: impl Fn(&str) -> bool) {
    eventually(what, WAIT, || async {
        let clusters = m
            .web
            .admin("/config_dump?resource=dynamic_active_clusters")
            .await?;
        if check(&clusters) {
            Ok(())
        } else {
            Err("not yet in web's clusters".to_string())
        }
    })
    .await;
}

/// Waits until web's Envoy shows `flag` among backend-2's health flags.
async fn until_flagged(m: &SidecarPair, flag: &str) {
    eventually(&format!("backend-2 to be {flag}"), WAIT, || async {
        let flags = m
            .web
            .endpoint_health_flags("backend", bad(m).inbound)
            .await?;
        if flags.contains(flag) {
            Ok(())
        } else {
            Err(flags)
        }
    })
    .await;
}

/// A mesh-wide MeshCircuitBreaker `name` whose outlier detection is quick
/// enough for tests: a check every second, ejections of a minute, at most
/// half the hosts out, no panic mode (which would balance over every host
/// again). `more` adds the rest (`detectors`, and any other field).
fn quick_outlier_detection(mesh: &str, name: &str, more: serde_json::Value) -> serde_json::Value {
    let mut detection = json!({
        "interval": "1s",
        "baseEjectionTime": "1m",
        "maxEjectionPercent": 50,
        "healthyPanicThreshold": 0,
    });
    if let (Some(detection), serde_json::Value::Object(more)) = (detection.as_object_mut(), more) {
        detection.extend(more);
    }
    mesh_wide_policy(
        "MeshCircuitBreaker",
        mesh,
        name,
        json!({ "outlierDetection": detection }),
    )
}

/// web's Envoy shows backend's endpoint on `port` ejected by outlier
/// detection in `/clusters`.
async fn assert_ejected(m: &SidecarPair, port: u16) {
    let flags = m.web.endpoint_health_flags("backend", port).await;
    assert!(
        flags
            .as_deref()
            .is_ok_and(|f| f.contains("failed_outlier_check")),
        "endpoint on port {port} ejected in /clusters: {flags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_ejects_a_failing_endpoint() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "breaker";
    let m = start_mesh(b, &cp, mesh).await;
    bad(&m).app.fail_all(Some(500));

    // No MeshCircuitBreaker: backend-2's failures keep reaching the client.
    for _ in 0..2 {
        let answers = batch(m.web_outbound).await.expect("batch");
        let failed = answers.iter().filter(|(s, _)| *s == 500).count();
        assert!(
            failed >= BATCH / 4,
            "backend-2 fails its share: {answers:?}"
        );
    }

    let body = quick_outlier_detection(
        mesh,
        "eject-5xx",
        json!({"detectors": {"totalFailures": {"consecutive": 3}}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshcircuitbreakers/eject-5xx"),
        &body,
    )
    .await;

    // Warm-up: the first failures after the update are what ejects.
    eventually("backend-2 to be ejected", WAIT, || {
        all_from_good_instance(m.web_outbound)
    })
    .await;
    assert_ejected(&m, bad(&m).inbound).await;
    m.web
        .wait_stat(
            "cluster.backend.outlier_detection.ejections_enforced_consecutive_5xx",
            1,
        )
        .await;
    assert!(
        m.web
            .wait_stat("cluster.backend.outlier_detection.ejections_active", 1)
            .await
            >= 1
    );
    // Ejected, it gets nothing more while the client keeps succeeding.
    out_of_rotation(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_endpoint_stops_receiving_traffic() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "health";
    let m = start_mesh(b, &cp, mesh).await;
    bad(&m).app.set_healthy(false);

    // No MeshHealthCheck: nothing asks backend-2 how it is, so it keeps
    // getting its share.
    let before = bad(&m).app.requests();
    let answers = batch(m.web_outbound).await.expect("batch");
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert!(
        bad(&m).app.requests() - before >= (BATCH / 4) as u64,
        "backend-2 served its share: {answers:?}"
    );

    let events = tempfile::tempdir().expect("temp dir");
    let event_log = events.path().join("health.log");
    let body = quick_health_check(
        mesh,
        "backend-health",
        json!({
            "eventLogPath": event_log.to_string_lossy(),
            "http": {"path": "/health", "expectedStatuses": [200]},
        }),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshhealthchecks/backend-health"),
        &body,
    )
    .await;

    until_flagged(&m, "failed_active_hc").await;
    // Several intervals later it still gets nothing, and every request
    // succeeds on backend-1.
    let before = bad(&m).app.requests();
    for _ in 0..3 {
        all_from_good_instance(m.web_outbound)
            .await
            .expect("every request answered by backend-1");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        bad(&m).app.requests(),
        before,
        "no request reached backend-2"
    );
    m.web
        .wait_stat("cluster.backend.health_check.failure", 2)
        .await;
    // Envoy's event log (eventLogPath) records backend-2 failing its check.
    // Envoy buffers the file and flushes it on a timer (10 s by default),
    // so the line shows up some seconds after the failure itself.
    let port = format!("\"port_value\":{}", bad(&m).inbound);
    eventually(
        "the event log to name backend-2's failure",
        WAIT,
        || async {
            let log = std::fs::read_to_string(&event_log).unwrap_or_default();
            if log
                .lines()
                .any(|l| l.contains(&port) && l.contains("health_check_failure_event"))
            {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;

    // Healthy again, it is back in the rotation: the check decides.
    bad(&m).app.set_healthy(true);
    back_in_rotation(&m).await;

    // A TCP check instead (the HTTP one disabled): it sends an HTTP request
    // as its payload and wants `HTTP/1.1 200` back, which backend-2 stops
    // answering once unhealthy. Kuma sends the text as it is.
    let body = quick_health_check(
        mesh,
        "backend-health",
        json!({
            "http": {"disabled": true},
            "tcp": {"send": "GET /health HTTP/1.1\r\nHost: backend\r\n\r\n", "receive": ["HTTP/1.1 200"]},
        }),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshhealthchecks/backend-health"),
        &body,
    )
    .await;
    until_clusters(&m, "web's backend cluster to check over TCP", |clusters| {
        clusters.contains("tcp_health_check") && !clusters.contains("http_health_check")
    })
    .await;
    let checks = "cluster.backend.health_check.success";
    let before = m.web.wait_stat(checks, 1).await;
    m.web.wait_stat(checks, before + 2).await;
    bad(&m).app.set_healthy(false);
    until_flagged(&m, "failed_active_hc").await;
    out_of_rotation(&m).await;
    bad(&m).app.set_healthy(true);
    back_in_rotation(&m).await;
}

/// Waits until backend-2 takes requests again.
async fn back_in_rotation(m: &SidecarPair) {
    eventually("backend-2 to get traffic again", WAIT, || async {
        let before = bad(m).app.requests();
        let answers = batch(m.web_outbound).await?;
        if bad(m).app.requests() > before {
            Ok(())
        } else {
            Err(format!("{answers:?}"))
        }
    })
    .await;
}

/// Statuses of `n` GETs of `path` sent at once through web's outbound.
async fn concurrent(port: u16, path: &str, n: usize) -> Result<Vec<u16>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}{path}");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = client.get(&url).send();
            tokio::spawn(async move { request.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        let status = task.await.map_err(|e| e.to_string())?;
        statuses.push(status.map_err(|e| e.to_string())?);
    }
    Ok(statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_turn_excess_requests_away() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "limits";
    let m = start_mesh(b, &cp, mesh).await;
    const SLOW: &str = "/delay/2000";

    // No MeshCircuitBreaker: Envoy's own limits (1024) take all of them.
    let statuses = concurrent(m.web_outbound, SLOW, 8).await.expect("requests");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let body = mesh_wide_policy(
        "MeshCircuitBreaker",
        mesh,
        "one-at-a-time",
        json!({"connectionLimits": {
            "maxConnections": 1,
            "maxPendingRequests": 1,
            "maxRequests": 1,
        }}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshcircuitbreakers/one-at-a-time"),
        &body,
    )
    .await;

    // Requests beyond one in flight and one waiting are refused with 503
    // at once, while the ones admitted still succeed.
    eventually("excess requests to be turned away", WAIT, || async {
        let statuses = concurrent(m.web_outbound, SLOW, 8).await?;
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let refused = statuses.iter().filter(|s| **s == 503).count();
        if ok >= 1 && refused >= 4 && ok + refused == statuses.len() {
            Ok(())
        } else {
            Err(format!("{statuses:?}"))
        }
    })
    .await;
    m.web
        .wait_stat("cluster.backend.upstream_rq_pending_overflow", 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_failure_detector_ejects_on_503_not_on_500() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "gateway-failures";
    let m = start_mesh(b, &cp, mesh).await;
    let body = quick_outlier_detection(
        mesh,
        "eject-gateway-failures",
        json!({"detectors": {"gatewayFailures": {"consecutive": 3}}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshcircuitbreakers/eject-gateway-failures"),
        &body,
    )
    .await;
    until_clusters(&m, "web's backend cluster to detect outliers", |clusters| {
        clusters.contains("consecutive_gateway_failure")
    })
    .await;

    // 500 is no gateway failure (502-504 are): backend-2 keeps its share.
    bad(&m).app.fail_all(Some(500));
    for _ in 0..2 {
        let answers = batch(m.web_outbound).await.expect("batch");
        let failed = answers.iter().filter(|(s, _)| *s == 500).count();
        assert!(failed >= BATCH / 4, "backend-2 not ejected: {answers:?}");
    }
    // 503 is: ejected after three in a row.
    bad(&m).app.fail_all(Some(503));
    eventually("backend-2 to be ejected", WAIT, || {
        all_from_good_instance(m.web_outbound)
    })
    .await;
    until_flagged(&m, "failed_outlier_check").await;
    out_of_rotation(&m).await;
}

/// Of `n` requests through web's outbound, each on a connection of its
/// own, how many backend-1 answered.
async fn answered(port: u16, n: usize) -> usize {
    let client = traffic::client(Connections::PerRequest, Duration::from_secs(3));
    let mut ok = 0;
    for _ in 0..n {
        if traffic::request(&client, port).await.is_ok("backend-1") {
            ok += 1;
        }
    }
    ok
}

/// Connections through web's outbound in each round of
/// [`with_dead_endpoint`]'s tests.
const CONNECTIONS: usize = 20;

/// A TCP backend (backend-1 behind its proxy) and a second instance whose
/// port nobody listens on (a Dataplane without a proxy, which endpoints
/// list all the same), in `mesh`; returned with that port once web has
/// both endpoints and, with Envoy's one connect attempt, connections sent
/// to the dead endpoint fail.
async fn with_dead_endpoint(b: &Binaries, cp: &ControlPlane, mesh: &str) -> (SidecarPair, u16) {
    let options = PairOptions::bare_mesh(mesh)
        .tagged_backends(&[("backend-1", &[("kuma.io/protocol", "tcp")])]);
    let m = SidecarPair::start_with(b, cp, &options).await;
    let dead = free_port();
    let body = json!({
        "type": "Dataplane", "mesh": mesh, "name": "backend-dead",
        "networking": {"address": "127.0.0.1", "inbound": [{
            "port": dead, "servicePort": free_port(),
            "tags": {"kuma.io/service": "backend", "kuma.io/protocol": "tcp"},
        }]},
    });
    cp.put(&format!("/meshes/{mesh}/dataplanes/backend-dead"), &body)
        .await;
    eventually("web to have both endpoints", WAIT, || async {
        m.web.endpoint_health_flags("backend", dead).await.map(drop)
    })
    .await;
    let (n, ok) = (CONNECTIONS, answered(m.web_outbound, CONNECTIONS).await);
    assert!(ok <= n - 3, "{ok} of {n} answered with a dead endpoint");
    (m, dead)
}

/// Waits until every one of [`CONNECTIONS`] connections gets through.
async fn until_every_connection_answered(port: u16) {
    let n = CONNECTIONS;
    eventually("every connection to get through", WAIT, || async {
        match answered(port, n).await {
            ok if ok == n => Ok(()),
            ok => Err(format!("{ok} of {n}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connect_attempts_get_past_a_dead_endpoint() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "connect-attempts";
    let (m, _) = with_dead_endpoint(b, &cp, mesh).await;

    let body = mesh_wide_policy(
        "MeshRetry",
        mesh,
        "connect-attempts",
        json!({"tcp": {"maxConnectAttempt": 5}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshretries/connect-attempts"),
        &body,
    )
    .await;
    until_every_connection_answered(m.web_outbound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_origin_failure_detector_ejects_an_endpoint_nobody_listens_on() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "local-origin-failures";
    let (m, dead) = with_dead_endpoint(b, &cp, mesh).await;

    // Refused connections are failures of local origin: with them counted
    // apart, two in a row eject the endpoint.
    let body = quick_outlier_detection(
        mesh,
        "eject-unreachable",
        json!({
            "splitExternalAndLocalErrors": true,
            "detectors": {"localOriginFailures": {"consecutive": 2}},
        }),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshcircuitbreakers/eject-unreachable"),
        &body,
    )
    .await;
    until_every_connection_answered(m.web_outbound).await;
    assert_ejected(&m, dead).await;
    m.web
        .wait_stat(
            "cluster.backend.outlier_detection.ejections_enforced_consecutive_local_origin_failure",
            1,
        )
        .await;
}

/// Applies a mesh-wide MeshCircuitBreaker with only `detector` on (Kuma
/// switches off the detectors a policy does not name) while backend-2
/// fails every request, and waits until `stat` shows backend-2 ejected for
/// that detector's reason; it then gets nothing more.
async fn ejected_by(mesh: &str, detector: serde_json::Value, stat: &str) {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let m = start_mesh(b, &cp, mesh).await;
    bad(&m).app.fail_all(Some(500));
    let body = quick_outlier_detection(mesh, "eject", json!({ "detectors": detector }));
    cp.put(&format!("/meshes/{mesh}/meshcircuitbreakers/eject"), &body)
        .await;
    eventually("backend-2 to be ejected", WAIT, || {
        all_from_good_instance(m.web_outbound)
    })
    .await;
    until_flagged(&m, "failed_outlier_check").await;
    m.web
        .wait_stat(&format!("cluster.backend.outlier_detection.{stat}"), 1)
        .await;
    // No consecutive-5xx ejection: only the named detector was on.
    assert_eq!(
        m.web
            .stat("cluster.backend.outlier_detection.ejections_enforced_consecutive_5xx")
            .await,
        Ok(Some(0))
    );
    out_of_rotation(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_percentage_detector_ejects_the_failing_endpoint() {
    ejected_by(
        "failure-percentage",
        json!({"failurePercentage": {"requestVolume": 5, "minimumHosts": 2, "threshold": 80}}),
        "ejections_enforced_failure_percentage",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_rate_detector_ejects_the_outlier() {
    // Two hosts at 100% and 0% success: mean 50, deviation 50; with a
    // factor of 0.9 the threshold is 5%, which backend-2 falls under.
    ejected_by(
        "success-rate",
        json!({"successRate": {"requestVolume": 5, "minimumHosts": 2,
                               "standardDeviationFactor": "0.9"}}),
        "ejections_enforced_success_rate",
    )
    .await;
}
