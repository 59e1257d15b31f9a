//! MeshRateLimit, MeshFaultInjection and MeshTLS change what a real Envoy
//! does with requests arriving at an inbound.
//!
//! Requests go straight to backend's inbound listener (the inbound policies
//! act there, whoever the client is), except where clients are told apart:
//! there they come through each client's own sidecar. Each test runs in its own mesh created
//! with `skipCreatingInitialPolicies: ["*"]` and first shows the behaviour
//! without the policy, so that what changes afterwards is the policy's doing.

use std::time::{Duration, Instant};

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml};
use kuma_e2e::service::TestService;
use kuma_e2e::sidecar_pair::{BackendInstance, mtls_mesh};
use kuma_e2e::traffic::get_header;
use kuma_e2e::{eventually, free_port};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

async fn status(port: u16, path: &str) -> Result<u16, String> {
    get_header(port, path, "-").await.map(|(s, _)| s)
}

/// Waits until a request to 127.0.0.1:`port` answers `code`.
async fn until_status(what: &str, port: u16, code: u16) {
    eventually(what, WAIT, || async move {
        match status(port, "/").await {
            Ok(answered) if answered == code => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Waits until `dp`'s Envoy holds a configuration containing `needle`:
/// token buckets are measured full, so a limit's arrival is read from
/// Envoy's configuration rather than by spending tokens.
async fn until_config_holds(what: &str, dp: &Dataplane, needle: &str) {
    eventually(what, WAIT, || async {
        match dp.admin("/config_dump").await {
            Ok(dump) if dump.contains(needle) => Ok(()),
            Ok(_) => Err(format!("no {needle} in the config")),
            Err(e) => Err(e),
        }
    })
    .await;
}

/// backend-1's proxy in front of its test service, alone in `mesh`
/// (created without initial policies), once its inbound answers.
async fn start_backend(b: &Binaries, cp: &ControlPlane, mesh: &str) -> BackendInstance {
    cp.create_mesh_without_initial_policies(mesh).await;
    let backend = BackendInstance::start(b, cp, mesh, "backend-1", &[]).await;
    until_status("backend's inbound to answer", backend.inbound, 200).await;
    backend
}

/// Puts `mesh` without initial policies and with mTLS STRICT from a
/// builtin CA.
async fn put_strict_mtls_mesh(cp: &ControlPlane, mesh: &str) {
    let mut body = mtls_mesh("STRICT", "");
    body["name"] = json!(mesh);
    body["skipCreatingInitialPolicies"] = json!(["*"]);
    cp.put(&format!("/meshes/{mesh}"), &body).await;
}

/// A policy on every sidecar's inbounds with one `rule` (its `default`,
/// and `matches` if any).
fn inbound_policy_rule(kind: &str, mesh: &str, name: &str, rule: Value) -> Value {
    json!({
        "type": kind,
        "mesh": mesh,
        "name": name,
        "spec": {
            "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar"]},
            "rules": [rule],
        },
    })
}

/// A policy on every sidecar's inbounds, one match-less rule.
fn inbound_policy(kind: &str, mesh: &str, name: &str, default: Value) -> Value {
    inbound_policy_rule(kind, mesh, name, json!({"default": default}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_answers_429_past_the_limit_with_its_headers() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "ratelimit";
    let backend = start_backend(b, &cp, mesh).await;

    // No MeshRateLimit: a burst well past the coming limit all passes.
    for _ in 0..12 {
        assert_eq!(status(backend.inbound, "/").await, Ok(200));
    }

    let body = inbound_policy(
        "MeshRateLimit",
        mesh,
        "five-per-minute",
        json!({"local": {"http": {
            "requestRate": {"num": 5, "interval": "1m"},
            "onRateLimit": {"headers": {"set": [{"name": "x-kuma-rate-limited", "value": "true"}]}},
        }}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshratelimits/five-per-minute"),
        &body,
    )
    .await;
    // Envoy refills the bucket continuously (here one token per 12 s), so
    // the limit is measured on a full bucket.
    until_config_holds(
        "Envoy to hold the rate limit",
        &backend.dp,
        "local_rate_limit_enforced",
    )
    .await;
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(get_header(backend.inbound, "/", "x-kuma-rate-limited").await);
    }
    let passed = vec![Ok((200, None)); 5];
    let limited = vec![Ok((429, Some("true".to_string()))); 5];
    assert_eq!(answers[..5], passed[..], "the bucket's 5 requests");
    assert_eq!(answers[5..], limited[..], "requests 6 to 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_rate_limit_closes_connections_past_the_limit() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "connlimit";
    cp.create_mesh_without_initial_policies(mesh).await;
    let app = TestService::start("db-1").await.expect("db app");
    let inbound = free_port();
    // A TCP inbound: Envoy only forwards bytes (HTTP from the test client).
    let yaml = format!(
        "type: Dataplane\nmesh: {mesh}\nname: db-1\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: {inbound}\n    servicePort: {}\n    tags:\n      kuma.io/service: db\n      kuma.io/protocol: tcp\n",
        app.port()
    );
    let dp = Dataplane::start_in_mesh(b, &cp, mesh, "db-1", &yaml).await;

    // No MeshRateLimit: many connections in a row are served.
    until_status("db's inbound to answer", inbound, 200).await;
    for _ in 0..6 {
        assert_eq!(status(inbound, "/").await, Ok(200));
    }

    let body = inbound_policy(
        "MeshRateLimit",
        mesh,
        "three-connections",
        json!({"local": {"tcp": {"connectionRate": {"num": 3, "interval": "1m"}}}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshratelimits/three-connections"),
        &body,
    )
    .await;
    // As for requests: measured on a full bucket (one token per 20 s).
    until_config_holds("Envoy to hold the connection limit", &dp, "tcp_rate_limit").await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(status(inbound, "/").await);
    }
    assert_eq!(answers[..3], [Ok(200), Ok(200), Ok(200)], "{answers:?}");
    assert!(
        answers[3..].iter().all(Result::is_err),
        "connections 4 to 6 must be closed: {answers:?}"
    );
}

/// How many of `n` requests answered `code`.
async fn count_status(port: u16, n: usize, code: u16) -> Result<usize, String> {
    let mut hits = 0;
    for _ in 0..n {
        if status(port, "/").await? == code {
            hits += 1;
        }
    }
    Ok(hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_aborts_delays_and_limits_bandwidth_by_percentage() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "faults";
    let backend = start_backend(b, &cp, mesh).await;
    let path = format!("/meshes/{mesh}/meshfaultinjections/faults");

    // No MeshFaultInjection: nothing fails.
    assert_eq!(count_status(backend.inbound, 50, 503).await, Ok(0));

    let body = inbound_policy(
        "MeshFaultInjection",
        mesh,
        "faults",
        json!({"http": [{"abort": {"httpStatus": 503, "percentage": 50}}]}),
    );
    cp.put(&path, &body).await;
    eventually("aborts to show", WAIT, || async {
        match count_status(backend.inbound, 20, 503).await {
            Ok(n) if n > 0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let aborted = count_status(backend.inbound, 200, 503)
        .await
        .expect("answers");
    assert!(
        (70..=130).contains(&aborted),
        "{aborted} of 200 requests aborted, expected about half"
    );

    // Every request delayed by 500 ms, none aborted any more.
    let body = inbound_policy(
        "MeshFaultInjection",
        mesh,
        "faults",
        json!({"http": [{"delay": {"value": "500ms", "percentage": 100}}]}),
    );
    cp.put(&path, &body).await;
    let stat = format!(
        "http.localhost_{}.fault.delays_injected",
        backend.app.port()
    );
    eventually("the delay to replace the abort", WAIT, || async {
        match count_status(backend.inbound, 10, 503).await {
            Ok(0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let before = backend.dp.wait_stat(&stat, 1).await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(status(backend.inbound, "/").await, Ok(200));
        // A lower bound only: a busy machine can make it longer, never
        // shorter (less a little for the precision of Envoy's timers);
        // undelayed, these requests take a few milliseconds.
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "answered after {:?}",
            started.elapsed()
        );
    }
    backend.dp.wait_stat(&stat, before + 3).await;

    // Response bandwidth for every response, nothing delayed any more. As
    // Kuma does, "8kbps" becomes Envoy's `limit_kbps: 8`, which Envoy reads
    // as KiB per second: 16 KiB then take about 2 s; unlimited, a few ms.
    let body = inbound_policy(
        "MeshFaultInjection",
        mesh,
        "faults",
        json!({"http": [{"responseBandwidth": {"limit": "8kbps", "percentage": 100}}]}),
    );
    cp.put(&path, &body).await;
    let limited = format!(
        "http.localhost_{}.fault.response_rl_injected",
        backend.app.port()
    );
    eventually("the bandwidth limit to replace the delay", WAIT, || async {
        let started = Instant::now();
        status(backend.inbound, "/").await?;
        if started.elapsed() < Duration::from_millis(400) {
            Ok(())
        } else {
            Err(format!("answered after {:?}", started.elapsed()))
        }
    })
    .await;
    let before = backend.dp.wait_stat(&limited, 1).await;
    let started = Instant::now();
    let body = reqwest::get(format!("http://127.0.0.1:{}/bytes/16384", backend.inbound))
        .await
        .expect("answered")
        .bytes()
        .await
        .expect("the whole body");
    assert_eq!(body.len(), 16384);
    // A lower bound only, as above.
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "16 KiB at 8 KiB/s arrived after {:?}",
        started.elapsed()
    );
    backend.dp.wait_stat(&limited, before + 1).await;
}

/// A client `name` of backend in `mesh`: its own app and sidecar, and the
/// port of its outbound listener for backend.
struct Client {
    _dp: Dataplane,
    _app: TestService,
    outbound: u16,
}

async fn start_client(b: &Binaries, cp: &ControlPlane, mesh: &str, name: &str) -> Client {
    let app = TestService::start(name).await.expect("client app");
    let outbound = free_port();
    let yaml = dataplane_yaml(
        mesh,
        &format!("{name}-1"),
        &[Inbound {
            port: free_port(),
            service_port: app.port(),
            service: name.into(),
        }],
        &[Outbound {
            port: outbound,
            service: "backend".into(),
        }],
    );
    let dp = Dataplane::start_in_mesh(b, cp, mesh, &format!("{name}-1"), &yaml).await;
    Client {
        _dp: dp,
        _app: app,
        outbound,
    }
}

/// The clients web and other of backend in `mesh`, once both reach it
/// through their own sidecars.
async fn start_web_and_other(b: &Binaries, cp: &ControlPlane, mesh: &str) -> (Client, Client) {
    let web = start_client(b, cp, mesh, "web").await;
    let other = start_client(b, cp, mesh, "other").await;
    for client in [&web, &other] {
        until_status(
            "the client's outbound to reach backend",
            client.outbound,
            200,
        )
        .await;
    }
    (web, other)
}

/// The answers of `n` requests.
async fn statuses(port: u16, path: &str, n: usize) -> Vec<Result<u16, String>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(status(port, path).await);
    }
    out
}

/// Applies `fault`, a MeshFaultInjection meant for web's requests alone,
/// and waits until one of web's requests is aborted. From then on the
/// abort is in place on backend's inbound: all `n` further requests of web
/// must fail and all `n` of other pass.
async fn abort_web_only(
    cp: &ControlPlane,
    fault: &Value,
    (web, other): (&Client, &Client),
    n: usize,
) {
    let (Some(mesh), Some(name)) = (fault["mesh"].as_str(), fault["name"].as_str()) else {
        panic!("a policy without mesh or name: {fault}");
    };
    cp.put(&format!("/meshes/{mesh}/meshfaultinjections/{name}"), fault)
        .await;
    until_status("web's requests to be aborted", web.outbound, 503).await;
    assert_eq!(statuses(web.outbound, "/", n).await, vec![Ok(503); n]);
    assert_eq!(statuses(other.outbound, "/", n).await, vec![Ok(200); n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_from_a_subset_aborts_only_that_clients_requests() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "perclient";
    let _backend = start_backend(b, &cp, mesh).await;
    let (web, other) = start_web_and_other(b, &cp, mesh).await;

    let body = json!({
        "type": "MeshFaultInjection",
        "mesh": mesh,
        "name": "web-fails",
        "spec": {
            // Aimed at backend alone: web's and other's proxies must still
            // start sending their tags for backend to tell them apart.
            "targetRef": {"kind": "MeshService", "name": "backend"},
            "from": [{
                "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "web"}},
                "default": {"http": [{"abort": {"httpStatus": 503, "percentage": 100}}]},
            }],
        },
    });
    abort_web_only(&cp, &body, (&web, &other), 20).await;

    // The tags that told them apart stay between the proxies.
    let (code, seen) =
        match reqwest::get(format!("http://127.0.0.1:{}/headers", other.outbound)).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => panic!("other's request: {e}"),
        };
    assert_eq!(code, 200, "{seen}");
    assert!(!seen.to_lowercase().contains("x-kuma-tags"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_matched_on_the_callers_identity_single_out_web() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "identity";
    let backend = start_backend(b, &cp, mesh).await;
    cp.put(
        &format!("/meshes/{mesh}/meshtrafficpermissions/allow-all"),
        &json!({
            "type": "MeshTrafficPermission",
            "mesh": mesh,
            "name": "allow-all",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}],
            },
        }),
    )
    .await;
    put_strict_mtls_mesh(&cp, mesh).await;
    let web_identity =
        json!([{"spiffeID": {"type": "Exact", "value": format!("spiffe://{mesh}/web")}}]);

    // A limit for web's identity only: 3 requests per 10 minutes (Envoy
    // refills continuously: one token every 200 s). In place before the
    // clients start, so that their connections meet it.
    let body = inbound_policy_rule(
        "MeshRateLimit",
        mesh,
        "web-limited",
        json!({
            "matches": web_identity,
            "default": {"local": {"http": {"requestRate": {"num": 3, "interval": "10m"}}}},
        }),
    );
    cp.put(&format!("/meshes/{mesh}/meshratelimits/web-limited"), &body)
        .await;
    until_config_holds(
        "Envoy to hold the identity's limit",
        &backend.dp,
        "kuma.mesh_rate_limit.match.spiffe_id",
    )
    .await;
    let (web, other) = start_web_and_other(b, &cp, mesh).await;
    // web spent one of its tokens getting through above.
    let answers = statuses(web.outbound, "/", 8).await;
    let passed = answers.iter().take_while(|a| **a == Ok(200)).count();
    assert!(passed <= 2, "web is past its 3 requests: {answers:?}");
    assert_eq!(answers[passed..], vec![Ok(429); 8 - passed], "{answers:?}");
    assert_eq!(statuses(other.outbound, "/", 10).await, vec![Ok(200); 10]);

    // Faults for web's identity only (they come before the limit).
    let body = inbound_policy_rule(
        "MeshFaultInjection",
        mesh,
        "web-fails",
        json!({
            "matches": web_identity,
            "default": {"http": [{"abort": {"httpStatus": 503, "percentage": 100}}]},
        }),
    );
    abort_web_only(&cp, &body, (&web, &other), 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_tls_permissive_inbound_takes_plaintext_in_a_strict_mesh() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "meshtls";
    put_strict_mtls_mesh(&cp, mesh).await;
    let api_app = TestService::start("backend-api").await.expect("api app");
    let admin_app = TestService::start("backend-admin")
        .await
        .expect("admin app");
    let (api, admin) = (free_port(), free_port());
    let yaml = dataplane_yaml(
        mesh,
        "backend-1",
        &[
            Inbound {
                port: api,
                service_port: api_app.port(),
                service: "backend-api".into(),
            },
            Inbound {
                port: admin,
                service_port: admin_app.port(),
                service: "backend-admin".into(),
            },
        ],
        &[],
    );
    let _dp = Dataplane::start_in_mesh(b, &cp, mesh, "backend-1", &yaml).await;

    // STRICT: plaintext gets no answer on either inbound.
    for port in [api, admin] {
        eventually("STRICT to refuse plaintext", WAIT, || async {
            match status(port, "/").await {
                Err(_) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    let body = json!({
        "type": "MeshTLS",
        "mesh": mesh,
        "name": "admin-permissive",
        "spec": {
            "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "backend-admin"}},
            "rules": [{"default": {"mode": "Permissive"}}],
        },
    });
    cp.put(&format!("/meshes/{mesh}/meshtlses/admin-permissive"), &body)
        .await;
    until_status("the Permissive inbound to take plaintext", admin, 200).await;
    // The other inbound of the same proxy stays STRICT.
    for _ in 0..5 {
        let answer = status(api, "/").await;
        assert!(answer.is_err(), "STRICT inbound answered {answer:?}");
    }
}
