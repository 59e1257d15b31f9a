//! MeshTimeout, MeshRetry and MeshLoadBalancingStrategy change what real
//! Envoys do to real requests.
//!
//! Each test runs in its own mesh created with
//! `skipCreatingInitialPolicies: ["*"]`, so that Kuma's default timeout and
//! retry policies are absent and every effect seen comes from the policy the
//! test applies (and goes away without it).

use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml};
use kuma_e2e::service::TestService;
use kuma_e2e::{eventually, free_port};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A client proxy (web) with one outbound to backend, and backend's proxy
/// in front of its test service, in `mesh`.
struct Pair {
    _web: Dataplane,
    _backend: Dataplane,
    _web_app: TestService,
    backend_app: TestService,
    outbound_port: u16,
}

async fn start_dataplane(
    b: &Binaries,
    cp: &ControlPlane,
    mesh: &str,
    name: &str,
    yaml: &str,
) -> Dataplane {
    let token = cp.dataplane_token(mesh, name).await;
    let mut dp = Dataplane::spawn_with_token(b, cp, name, yaml, &token);
    dp.wait_ready().await;
    dp
}

async fn start_pair(b: &Binaries, cp: &ControlPlane, mesh: &str) -> Pair {
    let mesh_body = json!({
        "type": "Mesh",
        "name": mesh,
        "skipCreatingInitialPolicies": ["*"],
    });
    cp.put(&format!("/meshes/{mesh}"), &mesh_body).await;

    let backend_app = TestService::start("backend-1").await.expect("backend app");
    let backend_yaml = dataplane_yaml(
        mesh,
        "backend-1",
        &[Inbound {
            port: free_port(),
            service_port: backend_app.port(),
            service: "backend".into(),
        }],
        &[],
    );
    let backend = start_dataplane(b, cp, mesh, "backend-1", &backend_yaml).await;

    let web_app = TestService::start("web").await.expect("web app");
    let outbound_port = free_port();
    let web_yaml = dataplane_yaml(
        mesh,
        "web",
        &[Inbound {
            port: free_port(),
            service_port: web_app.port(),
            service: "web".into(),
        }],
        &[Outbound {
            port: outbound_port,
            service: "backend".into(),
        }],
    );
    let web = start_dataplane(b, cp, mesh, "web", &web_yaml).await;

    let pair = Pair {
        _web: web,
        _backend: backend,
        _web_app: web_app,
        backend_app,
        outbound_port,
    };
    eventually("web to reach backend", WAIT, || async {
        match get(pair.outbound_port, "/").await {
            Ok(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    pair
}

/// The status of one GET through web's outbound listener.
async fn get(port: u16, path: &str) -> Result<u16, String> {
    // Longer than any delay the tests ask for: the proxy, not the client,
    // must be what gives up.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

fn policy(kind: &str, mesh: &str, name: &str, to_default: Value) -> Value {
    json!({
        "type": kind,
        "mesh": mesh,
        "name": name,
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": to_default}],
        },
    })
}

async fn request_timeout(cp: &ControlPlane, mesh: &str, timeout: &str) {
    let body = policy(
        "MeshTimeout",
        mesh,
        "web-to-backend",
        json!({"http": {"requestTimeout": timeout}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshtimeouts/web-to-backend"),
        &body,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_answers_504_for_a_slow_backend() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "timeouts";
    let pair = start_pair(b, &cp, mesh).await;

    // No MeshTimeout: Envoy waits out a 3 s answer.
    assert_eq!(get(pair.outbound_port, "/delay/3000").await, Ok(200));

    request_timeout(&cp, mesh, "1s").await;
    eventually("the 1s request timeout to answer 504", WAIT, || async {
        match get(pair.outbound_port, "/delay/3000").await {
            Ok(504) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // A fast request still passes under the same policy.
    assert_eq!(get(pair.outbound_port, "/delay/100").await, Ok(200));

    // A longer timeout lets the same slow request through again.
    request_timeout(&cp, mesh, "5s").await;
    eventually("the 5s request timeout to let 3s through", WAIT, || async {
        match get(pair.outbound_port, "/delay/3000").await {
            Ok(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// One request while backend fails its next two: the status web's client
/// sees and how many requests backend received for it.
async fn flaky_request(pair: &Pair) -> (Result<u16, String>, u64) {
    pair.backend_app.fail_next(2, 503);
    let before = pair.backend_app.requests();
    let status = get(pair.outbound_port, "/").await;
    let seen = pair.backend_app.requests() - before;
    pair.backend_app.fail_next(0, 503);
    (status, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_turn_a_flaky_backends_failures_into_success() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "retries";
    let pair = start_pair(b, &cp, mesh).await;

    // No MeshRetry: the first failure reaches the client.
    assert_eq!(flaky_request(&pair).await, (Ok(503), 1));

    let body = policy(
        "MeshRetry",
        mesh,
        "retry-5xx",
        json!({"http": {"numRetries": 3, "retryOn": ["5xx"]}}),
    );
    cp.put(&format!("/meshes/{mesh}/meshretries/retry-5xx"), &body)
        .await;
    let (status, seen) = eventually("retries to hide two failures", WAIT, || async {
        match flaky_request(&pair).await {
            (Ok(200), seen) => Ok((200, seen)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!((status, seen), (200, 3), "two failures, then success");

    // numRetries 1 is not enough for two failures in a row.
    let body = policy(
        "MeshRetry",
        mesh,
        "retry-5xx",
        json!({"http": {"numRetries": 1, "retryOn": ["5xx"]}}),
    );
    cp.put(&format!("/meshes/{mesh}/meshretries/retry-5xx"), &body)
        .await;
    eventually(
        "one retry to let the second failure through",
        WAIT,
        || async {
            match flaky_request(&pair).await {
                (Ok(503), 2) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// The bodies (instance names) of `n` GETs carrying `x-user: user`.
async fn instances_reached(port: u16, user: &str, n: usize) -> Result<Vec<String>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    for _ in 0..n {
        let response = client
            .get(format!("http://127.0.0.1:{port}/"))
            .header("x-user", user)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        seen.push(response.text().await.map_err(|e| e.to_string())?);
    }
    seen.sort();
    seen.dedup();
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_header_keeps_a_user_on_one_instance() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "balancing";
    // backend-1 and web come from the pair; backend-2 joins the service.
    let pair = start_pair(b, &cp, mesh).await;
    let app_2 = TestService::start("backend-2")
        .await
        .expect("backend-2 app");
    let yaml = dataplane_yaml(
        mesh,
        "backend-2",
        &[Inbound {
            port: free_port(),
            service_port: app_2.port(),
            service: "backend".into(),
        }],
        &[],
    );
    let _backend_2 = start_dataplane(b, &cp, mesh, "backend-2", &yaml).await;

    // Round robin (Envoy's default) spreads one user over both.
    let both = vec!["backend-1".to_string(), "backend-2".to_string()];
    eventually("round robin to reach both instances", WAIT, || async {
        match instances_reached(pair.outbound_port, "alice", 10).await {
            Ok(seen) if seen == both => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let body = policy(
        "MeshLoadBalancingStrategy",
        mesh,
        "sticky-users",
        json!({"loadBalancer": {
            "type": "RingHash",
            "ringHash": {"hashPolicies": [{"type": "Header", "header": {"name": "x-user"}}]},
        }}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshloadbalancingstrategies/sticky-users"),
        &body,
    )
    .await;
    eventually("ring hash to keep alice on one instance", WAIT, || async {
        match instances_reached(pair.outbound_port, "alice", 20).await {
            Ok(seen) if seen.len() == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // And it stays so: every one of many more requests lands there too.
    assert_eq!(
        instances_reached(pair.outbound_port, "alice", 50)
            .await
            .map(|s| s.len()),
        Ok(1)
    );
}
