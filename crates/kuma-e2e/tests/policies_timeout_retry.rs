//! MeshTimeout (request, stream idle, idle and max stream timeouts),
//! MeshRetry and MeshLoadBalancingStrategy change what real Envoys do to
//! real requests.
//!
//! Each test runs in its own mesh created with
//! `skipCreatingInitialPolicies: ["*"]`, so that Kuma's default timeout and
//! retry policies are absent and every effect seen comes from the policy the
//! test applies (and goes away without it).

use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::eventually;
use kuma_e2e::sidecar_pair::{PairOptions, SidecarPair, mesh_wide_policy};
use kuma_e2e::traffic::{self, Connections};
use reqwest::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A client proxy (web) with one outbound to backend, and the proxies of
/// backend's `instances` in front of their test services, in `mesh`;
/// returned once web reaches backend.
async fn start_pair(
    b: &Binaries,
    cp: &ControlPlane,
    mesh: &str,
    instances: &[&str],
) -> SidecarPair {
    let options = PairOptions::bare_mesh(mesh).backends(instances);
    let pair = SidecarPair::start_with(b, cp, &options).await;
    eventually("web to reach backend", WAIT, || async {
        match get(pair.web_outbound, "/").await {
            Ok(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    pair
}

/// One `method` request of `path` to 127.0.0.1:`port`: status, body (which
/// tells Envoy's timeouts apart) and how long it took.
async fn request(port: u16, method: Method, path: &str) -> Result<(u16, String, Duration), String> {
    let start = std::time::Instant::now();
    // Longer than any delay the tests ask for: the proxy, not the client,
    // must be what gives up.
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body, start.elapsed()))
}

/// The status of one GET through web's outbound listener.
async fn get(port: u16, path: &str) -> Result<u16, String> {
    request(port, Method::GET, path)
        .await
        .map(|(status, _, _)| status)
}

async fn request_timeout(cp: &ControlPlane, mesh: &str, timeout: &str) {
    let body = mesh_wide_policy(
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
    let pair = start_pair(b, &cp, mesh, &["backend-1"]).await;

    // No MeshTimeout: Envoy waits out a 3 s answer.
    assert_eq!(get(pair.web_outbound, "/delay/3000").await, Ok(200));

    request_timeout(&cp, mesh, "1s").await;
    eventually("the 1s request timeout to answer 504", WAIT, || async {
        match get(pair.web_outbound, "/delay/3000").await {
            Ok(504) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // A fast request still passes under the same policy.
    assert_eq!(get(pair.web_outbound, "/delay/100").await, Ok(200));

    // A longer timeout lets the same slow request through again.
    request_timeout(&cp, mesh, "5s").await;
    eventually("the 5s request timeout to let 3s through", WAIT, || async {
        match get(pair.web_outbound, "/delay/3000").await {
            Ok(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // On the inbound side (`from`): backend's own proxy answers 504 to any
    // caller, here one that skips web's proxy.
    let body = json!({
        "type": "MeshTimeout",
        "mesh": mesh,
        "name": "backend-inbound",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "1s"}}}],
        },
    });
    assert_eq!(get(pair.backend_inbound, "/delay/3000").await, Ok(200));
    cp.put(
        &format!("/meshes/{mesh}/meshtimeouts/backend-inbound"),
        &body,
    )
    .await;
    eventually(
        "the inbound 1s request timeout to answer 504",
        WAIT,
        || async {
            match get(pair.backend_inbound, "/delay/3000").await {
                Ok(504) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(get(pair.backend_inbound, "/delay/100").await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_idle_and_max_stream_timeouts_cut_what_runs_too_long() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "stream-timeouts";
    let pair = start_pair(b, &cp, mesh, &["backend-1"]).await;
    let idle_closed = "cluster.backend.upstream_cx_idle_timeout";
    let put = |conf: serde_json::Value| {
        let body = mesh_wide_policy("MeshTimeout", mesh, "cut", conf);
        let cp = &cp;
        async move {
            cp.put(&format!("/meshes/{mesh}/meshtimeouts/cut"), &body)
                .await
        }
    };
    let slow = "/delay/3000";
    let quick = Duration::from_millis(2500);

    // Without MeshTimeout: a 3 s answer arrives, and a connection left idle
    // for 2 s stays open.
    assert_eq!(get(pair.web_outbound, slow).await, Ok(200));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pair.web
            .stat(idle_closed)
            .await
            .map(Option::unwrap_or_default),
        Ok(0)
    );

    // streamIdleTimeout: a stream without a byte for 1 s is cut (504 with
    // Envoy's "stream timeout", the request being complete); idleTimeout:
    // web's connections to backend close after 1 s without a request.
    put(json!({"idleTimeout": "1s", "http": {"streamIdleTimeout": "1s"}})).await;
    eventually("an idle stream to be cut after 1s", WAIT, || async {
        match request(pair.web_outbound, Method::GET, slow).await? {
            (504, body, took) if body == "stream timeout" && took < quick => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(get(pair.web_outbound, "/delay/200").await, Ok(200));
    pair.web.wait_stat(idle_closed, 1).await;

    // maxStreamDuration: a stream is cut after 1 s however busy, with the
    // stream idle timeout back at Kuma's 30 minutes.
    put(json!({"http": {"maxStreamDuration": "1s"}})).await;
    let (status, body, took) = eventually("a long stream to be cut at 1s", WAIT, || async {
        match request(pair.web_outbound, Method::GET, slow).await? {
            (status, body, took) if status != 200 && body != "stream timeout" && took < quick => {
                Ok((status, body, took))
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        took >= Duration::from_millis(900),
        "cut at {took:?}: {status} {body}"
    );
    assert_eq!(get(pair.web_outbound, "/delay/200").await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_turn_a_flaky_backends_failures_into_success() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "retries";
    let pair = start_pair(b, &cp, mesh, &["backend-1"]).await;

    // No MeshRetry: the first failure reaches the client.
    assert_eq!(flaky(&pair, Method::GET, "/", 503).await, Ok((503, 1)));

    let body = mesh_wide_policy(
        "MeshRetry",
        mesh,
        "retry-5xx",
        json!({"http": {"numRetries": 3, "retryOn": ["5xx"]}}),
    );
    cp.put(&format!("/meshes/{mesh}/meshretries/retry-5xx"), &body)
        .await;
    let (status, seen) = eventually("retries to hide two failures", WAIT, || async {
        match flaky(&pair, Method::GET, "/", 503).await {
            Ok((200, seen)) => Ok((200, seen)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!((status, seen), (200, 3), "two failures, then success");

    // numRetries 1 is not enough for two failures in a row.
    let body = mesh_wide_policy(
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
            match flaky(&pair, Method::GET, "/", 503).await {
                Ok((503, 2)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// One `method` request to `path` while backend fails its next two with
/// `failure`: the status web's client sees and how many requests backend
/// received for it.
async fn flaky(
    pair: &SidecarPair,
    method: Method,
    path: &str,
    failure: u16,
) -> Result<(u16, u64), String> {
    pair.backend_app.fail_next(2, failure);
    let before = pair.backend_app.requests();
    let answer = request(pair.web_outbound, method, path).await;
    let seen = pair.backend_app.requests() - before;
    pair.backend_app.fail_next(0, failure);
    answer.map(|(status, _, _)| (status, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_status_codes_methods_and_a_per_try_timeout() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "retry-conditions";
    let pair = start_pair(b, &cp, mesh, &["backend-1"]).await;
    let path = format!("/meshes/{mesh}/meshretries/conditions");
    let put = |conf: serde_json::Value| {
        let body = mesh_wide_policy("MeshRetry", mesh, "conditions", conf);
        let (cp, path) = (&cp, &path);
        async move { cp.put(path, &body).await }
    };

    // Status 418 is retried, for GETs only.
    put(json!({"http": {
        "numRetries": 3,
        "retryOn": ["418", "HttpMethodGet"],
        "backOff": {"baseInterval": "10ms", "maxInterval": "20ms"},
    }}))
    .await;
    let seen = eventually("418s to be retried", WAIT, || async {
        match flaky(&pair, Method::GET, "/", 418).await? {
            (200, seen) => Ok(seen),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(seen, 3, "two 418s, then success");
    // Another status, or another method, is not retried. (Not 502-504: as
    // in Kuma, a retryOn of only codes and methods keeps the default
    // conditions, gateway-error among them.)
    assert_eq!(flaky(&pair, Method::GET, "/", 500).await, Ok((500, 1)));
    assert_eq!(flaky(&pair, Method::POST, "/", 418).await, Ok((418, 1)));

    // A per-try timeout of 300 ms: a 1 s answer is tried three times (the
    // first try and two retries), then given up.
    put(json!({"http": {"numRetries": 2, "perTryTimeout": "300ms", "retryOn": ["5xx"]}})).await;
    let took = eventually("the per-try timeout to cut slow tries", WAIT, || async {
        let started = std::time::Instant::now();
        match get(pair.web_outbound, "/delay/1000").await {
            Ok(504) => Ok(started.elapsed()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        took >= Duration::from_millis(850) && took < Duration::from_millis(3000),
        "three tries of 300 ms took {took:?}"
    );
    // Each of the three tries ended at its timeout (backend's app cannot
    // count them: a cut request never finishes there).
    pair.web
        .wait_stat("cluster.backend.upstream_rq_per_try_timeout", 3)
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

/// Waits until `n` requests of `user` reach exactly `want` instances.
async fn until_spread(port: u16, user: &str, want: usize, what: &str) {
    eventually(what, WAIT, || async {
        match instances_reached(port, user, 20).await {
            Ok(seen) if seen.len() == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_balancers_keep_a_user_on_one_instance() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "balancing";
    let pair = start_pair(b, &cp, mesh, &["backend-1", "backend-2"]).await;
    let port = pair.web_outbound;
    let path = format!("/meshes/{mesh}/meshloadbalancingstrategies/sticky-users");
    let hashing = |kind: &str, field: &str| {
        mesh_wide_policy(
            "MeshLoadBalancingStrategy",
            mesh,
            "sticky-users",
            json!({"loadBalancer": {
                "type": kind,
                field: {"hashPolicies": [{"type": "Header", "header": {"name": "x-user"}}]},
            }}),
        )
    };

    // Round robin (Envoy's default) spreads one user over both.
    until_spread(port, "alice", 2, "round robin to reach both instances").await;

    cp.put(&path, &hashing("RingHash", "ringHash")).await;
    until_spread(port, "alice", 1, "ring hash to keep alice on one instance").await;
    // And it stays so: every one of many more requests lands there too.
    assert_eq!(
        instances_reached(port, "alice", 50).await.map(|s| s.len()),
        Ok(1)
    );

    // Without the policy, round robin again; then Maglev, sticky too.
    cp.delete(&path).await;
    until_spread(port, "alice", 2, "round robin to come back").await;
    cp.put(&path, &hashing("Maglev", "maglev")).await;
    until_spread(port, "alice", 1, "maglev to keep alice on one instance").await;
    assert_eq!(
        instances_reached(port, "alice", 50).await.map(|s| s.len()),
        Ok(1)
    );
}

/// Waits until web's backend cluster, as its Envoy dumps it, balances
/// with `lb_policy` (`"ROUND_ROBIN"` is Envoy's default and not dumped).
async fn until_lb_policy(pair: &SidecarPair, lb_policy: &str) {
    eventually(
        &format!("web's backend cluster on {lb_policy}"),
        WAIT,
        || async {
            let clusters = pair
                .web
                .admin("/config_dump?resource=dynamic_active_clusters")
                .await?;
            if clusters.contains(&format!("\"lb_policy\": \"{lb_policy}\"")) {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
}

/// The body (the instance's name) of one GET of `/`, which must succeed.
async fn answered_body(client: &reqwest::Client, port: u16) -> String {
    match traffic::request(client, port).await.answer {
        Ok((200, body)) => body,
        other => panic!("GET / through web's outbound: {other:?}"),
    }
}

/// backend-2's share of the GETs of `/` that 4 clients, each sending one
/// after the other, get answered within 2 s; every one must succeed.
async fn backend_2_share(port: u16) -> f64 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut to_backend_2, mut all) = (0usize, 0usize);
                while tokio::time::Instant::now() < until {
                    let body = answered_body(&client, port).await;
                    all += 1;
                    to_backend_2 += usize::from(body == "backend-2");
                }
                (to_backend_2, all)
            })
        })
        .collect();
    let (mut to_backend_2, mut all) = (0, 0);
    for worker in workers {
        let (mine, total) = worker.await.expect("client finished");
        to_backend_2 += mine;
        all += total;
    }
    to_backend_2 as f64 / all.max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_keeps_requests_off_a_busy_instance() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "least-request";
    let pair = start_pair(b, &cp, mesh, &["backend-1", "backend-2"]).await;
    // backend-2 holds every request for a second; backend-1 answers at once.
    pair.more_backends[0].app.set_delay(Duration::from_secs(1));

    // Round robin gives the busy instance its turn all the same: the
    // clients spend their time waiting on it, and about half of what gets
    // answered comes from it.
    let share = backend_2_share(pair.web_outbound).await;
    assert!(share >= 0.25, "round robin: backend-2 answered {share:.2}");

    // Least request (of 8 random picks, the one with the fewest active
    // requests): while backend-2 holds a request, the others go to
    // backend-1, which answers hundreds in the same time.
    let body = mesh_wide_policy(
        "MeshLoadBalancingStrategy",
        mesh,
        "least-request",
        json!({"loadBalancer": {"type": "LeastRequest", "leastRequest": {"choiceCount": 8}}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshloadbalancingstrategies/least-request"),
        &body,
    )
    .await;
    until_lb_policy(&pair, "LEAST_REQUEST").await;
    let share = backend_2_share(pair.web_outbound).await;
    assert!(share <= 0.1, "least request: backend-2 answered {share:.2}");
}

/// The instances that answered `n` GETs of `/` sent one after the other
/// on one connection, in order.
async fn in_order(port: u16, n: usize) -> Vec<String> {
    let client = traffic::client(Connections::Reused, Duration::from_secs(5));
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(answered_body(&client, port).await);
    }
    seen
}

/// Whether some instance answered two requests in a row.
fn repeats(seen: &[String]) -> bool {
    seen.windows(2).any(|w| w[0] == w[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_balancing_breaks_round_robin_turns() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "random-balancing";
    let pair = start_pair(b, &cp, mesh, &["backend-1", "backend-2"]).await;

    // On one connection (one Envoy worker) round robin takes strict turns.
    let seen = in_order(pair.web_outbound, 30).await;
    assert!(!repeats(&seen), "round robin alternates: {seen:?}");

    let body = mesh_wide_policy(
        "MeshLoadBalancingStrategy",
        mesh,
        "random",
        json!({"loadBalancer": {"type": "Random"}}),
    );
    cp.put(
        &format!("/meshes/{mesh}/meshloadbalancingstrategies/random"),
        &body,
    )
    .await;
    until_lb_policy(&pair, "RANDOM").await;
    // Random picks repeat an instance somewhere in 30 requests, short of a
    // chance of 2 in 2^30, and still reach both.
    let seen = in_order(pair.web_outbound, 30).await;
    assert!(repeats(&seen), "random repeats an instance: {seen:?}");
    assert!(
        seen.iter().any(|s| s == "backend-1") && seen.iter().any(|s| s == "backend-2"),
        "random reaches both: {seen:?}"
    );
}
