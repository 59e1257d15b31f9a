//! What a fresh control plane and a fresh Mesh start with: the `default`
//! Mesh, and the mesh-wide default policies of every new Mesh: Kuma 2.14's
//! timeouts, circuit breaker and retries, plus `allow-all-<mesh>`, a
//! MeshTrafficPermission letting every identity call every proxy.
//!
//! Kuma stopped creating the allow-all permission in 2.6; this product keeps
//! it so that turning mTLS on does not cut a mesh's traffic (without mTLS
//! traffic permissions do not apply at all). A mesh that wants deny by
//! default lists `MeshTrafficPermission` (or `*`) in
//! `skipCreatingInitialPolicies`, or deletes the policy.

use chrono::Utc;
use kuma_api::{Kind, Resource, ResourceDocument, ResourceKey};
use kuma_store::{ResourceStore, StoreError};
use serde_json::{Value, json};

pub const DEFAULT_MESH: &str = "default";

/// Creates the `default` Mesh (and its policies) unless it exists.
pub async fn ensure_default_mesh(store: &dyn ResourceStore) -> Result<(), StoreError> {
    let key = ResourceKey::global(Kind::Mesh, DEFAULT_MESH);
    match store.get(&key).await {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let doc = match ResourceDocument::from_json(json!({"type": "Mesh", "name": DEFAULT_MESH})) {
        Ok(doc) => doc,
        Err(e) => {
            // The literal above is always readable; reaching here is a bug in kuma-api.
            tracing::error!(error = %e, "cannot build the default Mesh");
            return Ok(());
        }
    };
    let mesh = match store.create(doc.into_resource(Utc::now())).await {
        Ok(mesh) => mesh,
        // Another replica won the race; it creates the policies too.
        Err(StoreError::AlreadyExists(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    tracing::info!("default Mesh created");
    ensure_mesh_policies(store, &mesh).await
}

/// Creates the default policies of a new Mesh, honouring its
/// `skipCreatingInitialPolicies` (`["*"]` or a list of policy kinds).
pub async fn ensure_mesh_policies(
    store: &dyn ResourceStore,
    mesh: &Resource,
) -> Result<(), StoreError> {
    let mesh_name = &mesh.meta.name;
    let skipped = skipped_policies(&mesh.spec.to_json());
    if skipped.iter().any(|s| s == "*") {
        tracing::info!(mesh = %mesh_name, "skipping all default policy creation");
        return Ok(());
    }
    for (prefix, kind, spec) in default_policies() {
        if skipped.iter().any(|s| s == kind.name()) {
            tracing::info!(mesh = %mesh_name, kind = %kind, "skipping default policy creation");
            continue;
        }
        let name = format!("{prefix}-{mesh_name}");
        let body = json!({"type": kind.name(), "mesh": mesh_name, "name": name, "spec": spec});
        let doc = match ResourceDocument::from_json(body) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::error!(error = %e, %name, "cannot build a default policy");
                continue;
            }
        };
        let resource = crate::labels::with_computed_labels(doc.into_resource(Utc::now()));
        match store.create(resource).await {
            Ok(_) => tracing::info!(mesh = %mesh_name, %kind, %name, "default policy created"),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn skipped_policies(mesh_spec: &Value) -> Vec<String> {
    mesh_spec
        .get("skipCreatingInitialPolicies")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Name prefix, kind and spec of each default policy: Kuma 2.14's, and the
/// allow-all permission.
fn default_policies() -> Vec<(&'static str, Kind, Value)> {
    let mesh = json!({"kind": "Mesh"});
    vec![
        (
            "allow-all",
            Kind::MeshTrafficPermission,
            json!({
                "targetRef": mesh,
                "from": [{"targetRef": mesh, "default": {"action": "Allow"}}]
            }),
        ),
        (
            "mesh-gateways-timeout-all",
            Kind::MeshTimeout,
            json!({
                "targetRef": {"kind": "Mesh", "proxyTypes": ["Gateway"]},
                "from": [{"targetRef": mesh, "default": {
                    "idleTimeout": "5m0s",
                    "http": {"streamIdleTimeout": "5s", "requestHeadersTimeout": "500ms"}
                }}],
                "to": [{"targetRef": mesh, "default": {
                    "idleTimeout": "1h0m0s",
                    "http": {"streamIdleTimeout": "5s"}
                }}]
            }),
        ),
        (
            "mesh-timeout-all",
            Kind::MeshTimeout,
            json!({
                "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar"]},
                // Inbound side: twice the outbound timeouts, or disabled.
                "from": [{"targetRef": mesh, "default": {
                    "connectionTimeout": "10s",
                    "idleTimeout": "2h0m0s",
                    "http": {"requestTimeout": "0s", "streamIdleTimeout": "1h0m0s", "maxStreamDuration": "0s"}
                }}],
                "to": [{"targetRef": mesh, "default": {
                    "connectionTimeout": "5s",
                    "idleTimeout": "1h0m0s",
                    "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m0s"}
                }}]
            }),
        ),
        (
            "mesh-circuit-breaker-all",
            Kind::MeshCircuitBreaker,
            json!({
                "targetRef": mesh,
                "to": [{"targetRef": mesh, "default": {
                    "connectionLimits": {
                        "maxConnections": 1024, "maxPendingRequests": 1024,
                        "maxRequests": 1024, "maxRetries": 3
                    }
                }}]
            }),
        ),
        (
            "mesh-retry-all",
            Kind::MeshRetry,
            json!({
                "targetRef": mesh,
                "to": [{"targetRef": mesh, "default": {
                    "tcp": {"maxConnectAttempt": 5},
                    "http": {"numRetries": 5, "perTryTimeout": "16s",
                             "backOff": {"baseInterval": "25ms", "maxInterval": "250ms"}},
                    "grpc": {"numRetries": 5, "perTryTimeout": "16s",
                             "backOff": {"baseInterval": "25ms", "maxInterval": "250ms"}}
                }}]
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_policy_is_a_valid_document() {
        for (prefix, kind, spec) in default_policies() {
            let body = json!({"type": kind.name(), "mesh": "m", "name": format!("{prefix}-m"), "spec": spec});
            let doc = ResourceDocument::from_json(body).unwrap();
            assert_eq!(doc.kind(), kind);
            doc.validate().unwrap_or_else(|e| panic!("{prefix}: {e:?}"));
        }
    }

    #[test]
    fn reads_skip_list() {
        assert_eq!(
            skipped_policies(&json!({"skipCreatingInitialPolicies": ["*"]})),
            vec!["*"]
        );
        assert!(skipped_policies(&json!({})).is_empty());
    }

    #[test]
    fn the_allow_all_permission_allows_every_identity() {
        let (_, kind, spec) = default_policies()
            .into_iter()
            .find(|(prefix, _, _)| *prefix == "allow-all")
            .expect("an allow-all default");
        assert_eq!(kind, Kind::MeshTrafficPermission);
        assert_eq!(spec["targetRef"], json!({"kind": "Mesh"}));
        assert_eq!(
            spec["from"],
            json!([{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}])
        );
    }
}
