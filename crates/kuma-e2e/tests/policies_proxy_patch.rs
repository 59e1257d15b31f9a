//! MeshProxyPatch edits what a real Envoy does: a virtual host patch adds a
//! response header clients see, an added HTTP filter answers requests, a
//! cluster patch sends traffic elsewhere, a network filter patch renames
//! the server, and an added listener (patched after being added) answers
//! on a port of its own; a patch whose result Envoy refuses is NACKed,
//! recorded in the proxy's insight, and traffic keeps flowing on the last
//! good configuration.
//!
//! Requests go straight to backend's inbound listener. Each test runs in its
//! own mesh without default policies and first shows the behaviour without
//! the patch.

use std::time::Duration;

use kuma_e2e::binaries::{self, Binaries};
use kuma_e2e::control_plane::{ControlPlane, responses_rejected};
use kuma_e2e::eventually;
use kuma_e2e::sidecar_pair::BackendInstance;
use kuma_e2e::traffic::{self, Connections, get_header};
use serde_json::{Value, json};

// Generous: the machine running these is often busy compiling.
const WAIT: Duration = Duration::from_secs(60);

/// Status and the `x-patched` header of one GET on a fresh connection.
async fn get(port: u16) -> Result<(u16, Option<String>), String> {
    get_header(port, "/", "x-patched").await
}

/// backend-1 behind its proxy in a new `mesh` without initial policies,
/// returned once its inbound answers.
async fn start_backend(b: &Binaries, cp: &ControlPlane, mesh: &str) -> BackendInstance {
    cp.create_mesh_without_initial_policies(mesh).await;
    let backend = BackendInstance::start(b, cp, mesh, "backend-1", &[]).await;
    eventually("backend's inbound to answer", WAIT, || async {
        match get(backend.inbound).await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    backend
}

fn mk_patch(mesh: &str, modifications: Value) -> Value {
    json!({
        "type": "MeshProxyPatch",
        "mesh": mesh,
        "name": "patch",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "default": {"appendModifications": modifications},
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_host_patch_adds_a_response_header_clients_see() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "proxypatch";
    let backend = start_backend(b, &cp, mesh).await;
    assert_eq!(get(backend.inbound).await, Ok((200, None)));

    let patch = mk_patch(
        mesh,
        json!([{"virtualHost": {
            "operation": "Patch",
            "match": {"origin": "inbound", "routeConfigurationName": "inbound:backend"},
            "jsonPatches": [{
                "op": "add",
                "path": "/responseHeadersToAdd",
                "value": [{"header": {"key": "x-patched", "value": "by-mesh-proxy-patch"}}],
            }],
        }}]),
    );
    cp.put(&format!("/meshes/{mesh}/meshproxypatches/patch"), &patch)
        .await;
    eventually("the patched header on responses", WAIT, || async {
        match get(backend.inbound).await {
            Ok((200, Some(v))) if v == "by-mesh-proxy-patch" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_filter_and_cluster_patches_change_real_traffic() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "proxypatchfilters";
    let backend = start_backend(b, &cp, mesh).await;
    let path = format!("/meshes/{mesh}/meshproxypatches/patch");

    // An HTTP filter added before the router of inbound listeners: a fault
    // filter that answers every request 418 itself.
    let fault = [
        "name: envoy.filters.http.fault",
        "typedConfig:",
        "  '@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        "  abort: {httpStatus: 418, percentage: {numerator: 100}}",
    ]
    .join("\n");
    let patch = mk_patch(
        mesh,
        json!([{"httpFilter": {
            "operation": "AddBefore",
            "match": {"name": "envoy.filters.http.router", "origin": "inbound"},
            "value": fault,
        }}]),
    );
    cp.put(&path, &patch).await;
    eventually("the added filter to answer 418", WAIT, || async {
        match get(backend.inbound).await {
            Ok((418, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Instead, the inbound cluster patched to send to a port nobody listens
    // on: the proxy can no longer reach its application (503).
    let patch = mk_patch(
        mesh,
        json!([{"cluster": {
            "operation": "Patch",
            "match": {"name": format!("localhost:{}", backend.app.port()), "origin": "inbound"},
            "jsonPatches": [{
                "op": "replace",
                "path": "/loadAssignment/endpoints/0/lbEndpoints/0/endpoint/address/socketAddress/portValue",
                "value": kuma_e2e::free_port(),
            }],
        }}]),
    );
    cp.put(&path, &patch).await;
    eventually(
        "the patched cluster to miss the application",
        WAIT,
        || async {
            match get(backend.inbound).await {
                Ok((503, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // Without the patch, back to normal.
    cp.delete(&path).await;
    eventually("the unpatched proxy to answer", WAIT, || async {
        match get(backend.inbound).await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The `server` header of one GET of backend's inbound.
async fn server(port: u16) -> Result<(u16, Option<String>), String> {
    get_header(port, "/", "server").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_filter_and_listener_patches_change_real_traffic() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "proxypatchlisteners";
    let backend = start_backend(b, &cp, mesh).await;
    let path = format!("/meshes/{mesh}/meshproxypatches/patch");
    // Envoy's HTTP connection manager names itself in `server`.
    assert_eq!(
        server(backend.inbound).await,
        Ok((200, Some("envoy".to_string())))
    );

    // The inbound's HTTP connection manager merged with another server name.
    let hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    let patch = mk_patch(
        mesh,
        json!([{"networkFilter": {
            "operation": "Patch",
            "match": {"name": "envoy.filters.network.http_connection_manager", "origin": "inbound"},
            "value": format!("name: envoy.filters.network.http_connection_manager\ntypedConfig:\n  '@type': {hcm}\n  serverName: patched-by-mesh\n"),
        }}]),
    );
    cp.put(&path, &patch).await;
    eventually("the patched server name", WAIT, || async {
        match server(backend.inbound).await {
            Ok((200, Some(name))) if name == "patched-by-mesh" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Instead, a listener of its own on another port answering directly,
    // and a JSON patch of that listener (applied after the addition, in
    // order) changing its answer.
    let port = kuma_e2e::free_port();
    let listener = [
        "name: added-by-patch".to_string(),
        format!("address: {{socketAddress: {{address: 127.0.0.1, portValue: {port}}}}}"),
        "filterChains:".to_string(),
        "- filters:".to_string(),
        "  - name: envoy.filters.network.http_connection_manager".to_string(),
        "    typedConfig:".to_string(),
        format!("      '@type': {hcm}"),
        "      statPrefix: added".to_string(),
        "      httpFilters:".to_string(),
        "      - name: envoy.filters.http.router".to_string(),
        "        typedConfig: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}".to_string(),
        "      routeConfig:".to_string(),
        "        virtualHosts:".to_string(),
        "        - name: all".to_string(),
        "          domains: ['*']".to_string(),
        "          routes:".to_string(),
        "          - match: {prefix: /}".to_string(),
        "            directResponse: {status: 200, body: {inlineString: as-added}}".to_string(),
    ]
    .join("\n");
    let patch = mk_patch(
        mesh,
        json!([
            {"listener": {"operation": "Add", "value": listener}},
            {"listener": {
                "operation": "Patch",
                "match": {"name": "added-by-patch"},
                "jsonPatches": [{
                    "op": "replace",
                    "path": "/filterChains/0/filters/0/typedConfig/routeConfig/virtualHosts/0/routes/0/directResponse/body/inlineString",
                    "value": "as-patched",
                }],
            }},
        ]),
    );
    cp.put(&path, &patch).await;
    let client = traffic::client(Connections::PerRequest, Duration::from_secs(5));
    eventually("the added listener to answer", WAIT, || async {
        match traffic::request(&client, port).await.answer {
            Ok((200, text)) if text == "as-patched" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The network filter patch is gone with the policy it was in.
    assert_eq!(
        server(backend.inbound).await,
        Ok((200, Some("envoy".to_string())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_envoy_refuses_is_nacked_and_recorded() {
    let b = binaries::get();
    let cp = ControlPlane::start(b).await;
    let mesh = "proxypatchnack";
    let backend = start_backend(b, &cp, mesh).await;

    // A filter after the router reads as a valid HttpFilter, so the API
    // takes it; only Envoy knows the router must come last.
    let patch = mk_patch(
        mesh,
        json!([{"httpFilter": {
            "operation": "AddLast",
            "match": {"origin": "inbound"},
            "value": "name: envoy.filters.http.cors\ntypedConfig:\n  '@type': type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors\n",
        }}]),
    );
    cp.put(&format!("/meshes/{mesh}/meshproxypatches/patch"), &patch)
        .await;
    backend
        .dp
        .wait_stat("listener_manager.lds.update_rejected", 1)
        .await;
    eventually("the NACK in backend's insight", WAIT, || async {
        let overview = cp.overview(mesh, "backend-1").await?;
        let rejected = responses_rejected(&overview);
        if rejected >= 1 {
            Ok(())
        } else {
            Err(overview.to_string())
        }
    })
    .await;
    // The last good listener still serves.
    assert_eq!(get(backend.inbound).await, Ok((200, None)));
}
