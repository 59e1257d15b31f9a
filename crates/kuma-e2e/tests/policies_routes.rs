//! MeshHTTPRoute and MeshTCPRoute on real Envoys: a 90/10 canary split
//! between the v1 and v2 instances of backend, routing by header to v2,
//! matches by path (exact, prefix, regex), method and query parameter, the
//! filters (URL rewrite, redirect, header modifiers, mirror), and a
//! MeshTCPRoute moving every connection to v2.
//!
//! Before any route, web's calls reach both instances (round robin), so
//! each assertion below fails unless the route took effect.

use std::collections::BTreeMap;
use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::eventually;
use kuma_e2e::sidecar_pair::{PairOptions, SidecarPair};
use reqwest::Method;
use serde_json::{Value, json};

const PROPAGATION: Duration = Duration::from_secs(20);

/// One GET through web's outbound; the body names the instance reached
/// (or, for `/headers`, echoes the request's headers).
async fn get(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    header: Option<&str>,
) -> Result<String, String> {
    let mut request = client.get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(version) = header {
        request = request.header("x-version", version);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Counts the instances `n` requests reach.
async fn spread(
    client: &reqwest::Client,
    port: u16,
    n: usize,
    header: Option<&str>,
) -> Result<BTreeMap<String, usize>, String> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen
            .entry(get(client, port, "/", header).await?)
            .or_insert(0) += 1;
    }
    Ok(seen)
}

/// A client opening a new connection per request: a TCP route splits
/// connections, and every request should see the current listener.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client")
}

/// backend-v1 and backend-v2 (tags `version: v1/v2`) and web calling
/// backend through its outbound, in the `default` mesh; returned once web
/// reaches both instances.
async fn start_mesh(b: &Binaries, cp: &ControlPlane) -> SidecarPair {
    let options = PairOptions::default().tagged_backends(&[
        ("backend-v1", &[("version", "v1")]),
        ("backend-v2", &[("version", "v2")]),
    ]);
    let mesh = SidecarPair::start_with(b, cp, &options).await;
    // Without routes, both instances take calls.
    let client = fresh_connections();
    eventually("web to reach both backends", PROPAGATION, || async {
        let seen = spread(&client, mesh.web_outbound, 20, None).await?;
        if seen.len() == 2 {
            Ok(())
        } else {
            Err(format!("reached {seen:?}"))
        }
    })
    .await;
    mesh
}

fn subset(version: &str, weight: u32) -> Value {
    json!({
        "kind": "MeshServiceSubset",
        "name": "backend",
        "tags": { "version": version },
        "weight": weight,
    })
}

async fn apply(cp: &ControlPlane, plural: &str, name: &str, kind: &str, to: Value) {
    let body = json!({
        "type": kind,
        "mesh": "default",
        "name": name,
        "spec": {
            "targetRef": { "kind": "Mesh" },
            "to": [to],
        },
    });
    cp.put(&format!("/meshes/default/{plural}/{name}"), &body)
        .await;
}

/// Waits until `n` requests (with `header`) all reach `instance`.
async fn wait_only(client: &reqwest::Client, port: u16, header: Option<&str>, instance: &str) {
    eventually(
        &format!("requests with x-version {header:?} to reach only {instance}"),
        PROPAGATION,
        || async {
            let seen = spread(client, port, 20, header).await?;
            if seen.keys().eq([instance]) {
                Ok(())
            } else {
                Err(format!("reached {seen:?}"))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_splits_90_10_then_routes_by_header() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = start_mesh(b, &cp).await;
    let client = fresh_connections();

    // 1. Canary: 90% to v1, 10% to v2, for every path.
    apply(
        &cp,
        "meshhttproutes",
        "canary",
        "MeshHTTPRoute",
        json!({
            "targetRef": { "kind": "MeshService", "name": "backend" },
            "rules": [{
                "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                "default": { "backendRefs": [subset("v1", 90), subset("v2", 10)] },
            }],
        }),
    )
    .await;
    // The split is in place once web's Envoy has the subset clusters.
    let web_admin = &mesh.web;
    eventually("web's Envoy to get the split", PROPAGATION, || async {
        let dump = web_admin.admin("/config_dump").await?;
        if dump.contains("weighted_clusters") {
            Ok(())
        } else {
            Err("no weighted clusters yet".to_string())
        }
    })
    .await;
    let total = 300;
    let seen = spread(&client, mesh.web_outbound, total, None)
        .await
        .expect("every request answered");
    let v2 = seen.get("backend-v2").copied().unwrap_or(0);
    let v1 = seen.get("backend-v1").copied().unwrap_or(0);
    assert_eq!(v1 + v2, total, "only backend instances answer: {seen:?}");
    // 10% of 300 is 30; 12..=54 is far outside what chance gives (p < 1e-4)
    // and far from the 50% of round robin.
    assert!(
        (12..=54).contains(&v2),
        "v2 share should be about 10%: {seen:?}"
    );

    // 2. By header: `x-version: v2` to v2 only (with a header added on the
    // way), everything else to v1 only. Replacing the route's rules.
    apply(
        &cp,
        "meshhttproutes",
        "canary",
        "MeshHTTPRoute",
        json!({
            "targetRef": { "kind": "MeshService", "name": "backend" },
            "rules": [
                {
                    // With the path too: a match with a path goes before
                    // one without (Gateway API precedence), so a header-only
                    // match would lose to the `/` rule below.
                    "matches": [{
                        "path": { "type": "PathPrefix", "value": "/" },
                        "headers": [{ "type": "Exact", "name": "x-version", "value": "v2" }],
                    }],
                    "default": {
                        "filters": [{
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": { "set": [{ "name": "x-routed-by", "value": "canary" }] },
                        }],
                        "backendRefs": [subset("v2", 1)],
                    },
                },
                {
                    "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                    "default": { "backendRefs": [subset("v1", 1)] },
                },
            ],
        }),
    )
    .await;
    wait_only(&client, mesh.web_outbound, Some("v2"), "backend-v2").await;
    wait_only(&client, mesh.web_outbound, None, "backend-v1").await;
    wait_only(&client, mesh.web_outbound, Some("v1"), "backend-v1").await;
    let headers = get(&client, mesh.web_outbound, "/headers", Some("v2"))
        .await
        .expect("headers echoed");
    assert!(
        headers.to_lowercase().contains("x-routed-by: canary"),
        "the matching rule's header modifier ran: {headers}"
    );
}

/// A request through web's outbound, redirects not followed: status,
/// body and the response headers asked for (`None` when absent).
async fn send(
    client: &reqwest::Client,
    port: u16,
    method: reqwest::Method,
    path: &str,
    headers: &[&str],
) -> Result<(u16, String, Vec<Option<String>>), String> {
    let response = client
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let found = headers
        .iter()
        .map(|h| {
            let value = response.headers().get(*h)?;
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body, found))
}

/// Waits until `n` requests of `method` to `path` are all answered by
/// `instance` with 200.
async fn wait_routed(
    client: &reqwest::Client,
    port: u16,
    method: reqwest::Method,
    path: &str,
    instance: &str,
) {
    eventually(
        &format!("{method} {path} to reach only {instance}"),
        PROPAGATION,
        || async {
            for _ in 0..10 {
                let (status, body, _) = send(client, port, method.clone(), path, &[]).await?;
                if status != 200 || body != instance {
                    return Err(format!("{status}: {body}"));
                }
            }
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_matches_and_filters_shape_the_traffic() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = start_mesh(b, &cp).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let prefix = |value: &str| json!({ "type": "PathPrefix", "value": value });
    let to = |version: &str| json!([subset(version, 1)]);
    // Paths no rule matches go to the implicit default route (both
    // instances), so every rule below shows by going to one instance only.
    apply(
        &cp,
        "meshhttproutes",
        "shaping",
        "MeshHTTPRoute",
        json!({
            "targetRef": { "kind": "MeshService", "name": "backend" },
            "rules": [
                {
                    "matches": [{ "path": prefix("/old") }],
                    "default": {
                        "filters": [
                            { "type": "URLRewrite", "urlRewrite": {
                                "path": { "type": "ReplacePrefixMatch", "replacePrefixMatch": "/headers" } } },
                            { "type": "RequestHeaderModifier", "requestHeaderModifier": {
                                "add": [{ "name": "x-rewritten", "value": "yes" }] } },
                        ],
                        "backendRefs": to("v1"),
                    },
                },
                {
                    "matches": [{ "path": { "type": "Exact", "value": "/moved" } }],
                    "default": { "filters": [{ "type": "RequestRedirect", "requestRedirect": {
                        "hostname": "example.com", "statusCode": 301 } }] },
                },
                {
                    "matches": [{ "path": { "type": "RegularExpression", "value": "^/q[0-9]+$" } }],
                    "default": { "backendRefs": to("v2") },
                },
                {
                    "matches": [{ "path": prefix("/post"), "method": "POST" }],
                    "default": { "backendRefs": to("v2") },
                },
                {
                    "matches": [{ "path": prefix("/pick"),
                                  "queryParams": [{ "type": "Exact", "name": "to", "value": "v2" }] }],
                    "default": { "backendRefs": to("v2") },
                },
                {
                    "matches": [{ "path": prefix("/pick") }],
                    "default": { "backendRefs": to("v1") },
                },
                {
                    "matches": [{ "path": prefix("/mirrored") }],
                    "default": {
                        "filters": [
                            { "type": "ResponseHeaderModifier", "responseHeaderModifier": {
                                "set": [{ "name": "x-served-by", "value": "mesh" }] } },
                            { "type": "RequestMirror", "requestMirror": {
                                "backendRef": subset("v2", 1), "percentage": "100" } },
                        ],
                        "backendRefs": to("v1"),
                    },
                },
            ],
        }),
    )
    .await;
    let port = mesh.web_outbound;
    // Matches: regex path, method, query parameter (the rule with it goes
    // before the same prefix without).
    wait_routed(&client, port, Method::GET, "/q42", "backend-v2").await;
    wait_routed(&client, port, Method::POST, "/post", "backend-v2").await;
    wait_routed(&client, port, Method::GET, "/pick?to=v2", "backend-v2").await;
    wait_routed(&client, port, Method::GET, "/pick?to=v1", "backend-v1").await;
    wait_routed(&client, port, Method::GET, "/pick", "backend-v1").await;
    // Neither the regex nor the method matches: the default route, which
    // reaches both instances.
    for path in ["/q", "/post"] {
        let mut seen = BTreeMap::new();
        for _ in 0..20 {
            let (status, body, _) = send(&client, port, Method::GET, path, &[])
                .await
                .expect("answered");
            assert_eq!(status, 200, "{path}: {body}");
            *seen.entry(body).or_insert(0) += 1;
        }
        assert_eq!(
            seen.len(),
            2,
            "GET {path} takes the default route: {seen:?}"
        );
    }

    // URL rewrite and a request header added: /old reaches v1's /headers
    // (the headers echo), with the header.
    let (status, body, _) = send(&client, port, Method::GET, "/old", &[])
        .await
        .expect("answered");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_lowercase().contains("x-rewritten: yes"),
        "/old was rewritten to /headers with the header added: {body}"
    );

    // Redirect: answered by web's Envoy, nothing reaches backend.
    let (status, _, location) = send(&client, port, Method::GET, "/moved", &["location"])
        .await
        .expect("answered");
    assert_eq!(status, 301);
    assert_eq!(location[0].as_deref(), Some("http://example.com/moved"));

    // Mirror: v1 answers, v2 gets a copy of every request; the response
    // header is set on the way back.
    let v2 = &mesh.more_backends[0].app;
    let before = v2.requests();
    let n = 20;
    for _ in 0..n {
        let (status, body, served_by) =
            send(&client, port, Method::GET, "/mirrored", &["x-served-by"])
                .await
                .expect("answered");
        assert_eq!((status, body.as_str()), (200, "backend-v1"));
        assert_eq!(served_by[0].as_deref(), Some("mesh"));
    }
    eventually("v2 to get a copy of every request", PROPAGATION, || async {
        let mirrored = v2.requests() - before;
        if mirrored >= n {
            Ok(())
        } else {
            Err(format!("v2 got {mirrored} of {n}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_route_moves_connections_to_a_subset() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = start_mesh(b, &cp).await;
    let client = fresh_connections();

    apply(
        &cp,
        "meshtcproutes",
        "to-v2",
        "MeshTCPRoute",
        json!({
            "targetRef": { "kind": "MeshService", "name": "backend" },
            "rules": [{ "default": { "backendRefs": [subset("v2", 1)] } }],
        }),
    )
    .await;
    wait_only(&client, mesh.web_outbound, None, "backend-v2").await;
    // A split: over fresh connections both subsets take traffic again.
    apply(
        &cp,
        "meshtcproutes",
        "to-v2",
        "MeshTCPRoute",
        json!({
            "targetRef": { "kind": "MeshService", "name": "backend" },
            "rules": [{ "default": { "backendRefs": [subset("v1", 50), subset("v2", 50)] } }],
        }),
    )
    .await;
    eventually("connections to reach both subsets", PROPAGATION, || async {
        let seen = spread(&client, mesh.web_outbound, 40, None).await?;
        if seen.len() == 2 {
            Ok(())
        } else {
            Err(format!("reached {seen:?}"))
        }
    })
    .await;
}
