//! Envoy configuration of one data plane proxy, as a pure function of a
//! [`MeshSnapshot`] and the proxy's name.
//!
//! What a proxy receives:
//! - per inbound (not `Ignored`): a listener on `<address>:<port>` and a
//!   static cluster to the workload (`localhost:<servicePort>`); HTTP
//!   connection manager for http/http2/grpc, TCP proxy otherwise;
//! - per declared outbound (by `kuma.io/service` tag or MeshService
//!   `backendRef`): a listener on `<address or 127.0.0.1>:<port>`, an EDS
//!   cluster and its ClusterLoadAssignment listing the ready inbounds of
//!   the destination in the same mesh;
//! - with transparent proxying: the clusters and endpoints of
//!   `reachableServices`, or of every service of the mesh when unset;
//! - with the mesh's mTLS on and an identity for the proxy
//!   ([`generate_proxy_with_identity`]): the SDS secrets
//!   `identity_cert:secret:<mesh>` and `mesh_ca:secret:<mesh>`, clusters that
//!   originate TLS and accept only `spiffe://<mesh>/<destination>`, inbounds
//!   that require a mesh certificate (STRICT) or also take plaintext
//!   (PERMISSIVE), and MeshTrafficPermission as RBAC on each inbound
//!   (nobody allowed when no permission says so).
//!
//! Clusters, endpoints and outbound listeners are identical for every proxy
//! that has them, so they are built once per snapshot and shared.

mod carry;
mod cluster;
mod endpoints;
mod inbound;
mod listener;
mod mtls;
pub mod names;
mod outbound;
mod passthrough;
mod permissions;
mod policies;
mod snapshot;

pub use policies::mesh_proxy_patch::check as check_proxy_patch;
pub use policies::mesh_proxy_patch::proto_json;
pub use snapshot::{Destination, Endpoint, MeshSnapshot, MeshSnapshotBuilder, Protocol};

use std::sync::Arc;

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_policy::Proxy;

use crate::ProxyResources;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("dataplane {name} not found in mesh {mesh}")]
    DataplaneNotFound { mesh: String, name: String },
    #[error("dataplane {dataplane}: inbound on port {port} has no address")]
    NoInboundAddress { dataplane: String, port: u32 },
    #[error("dataplane {name}: builtin gateways are not supported")]
    BuiltinGateway { name: String },
}

/// The proxy's mTLS identity, issued by the mesh's CA: its certificate chain
/// and key (SPIFFE `spiffe://<mesh>/<service>`), and the CA certificates it
/// trusts to verify its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyIdentity {
    pub cert_chain_pem: String,
    pub private_key_pem: String,
    pub ca_pems: Vec<String>,
}

/// Everything the proxy `dataplane_name` of the snapshot's mesh should have,
/// without mTLS.
pub fn generate_proxy(
    snapshot: &MeshSnapshot,
    dataplane_name: &str,
) -> Result<ProxyResources, GenerateError> {
    generate_proxy_with_identity(snapshot, dataplane_name, None)
}

/// Everything the proxy `dataplane_name` should have. With the mesh's mTLS
/// enabled and an `identity`, traffic between proxies is mutual TLS and
/// MeshTrafficPermission applies; otherwise this is plaintext as without mTLS.
pub fn generate_proxy_with_identity(
    snapshot: &MeshSnapshot,
    dataplane_name: &str,
    identity: Option<&ProxyIdentity>,
) -> Result<ProxyResources, GenerateError> {
    let dataplane =
        snapshot
            .dataplane(dataplane_name)
            .ok_or_else(|| GenerateError::DataplaneNotFound {
                mesh: snapshot.mesh().to_string(),
                name: dataplane_name.to_string(),
            })?;
    if dataplane.is_builtin_gateway() {
        return Err(GenerateError::BuiltinGateway {
            name: dataplane_name.to_string(),
        });
    }
    let tls = mtls::MeshTls::of(snapshot, identity);
    let proxy = Proxy {
        name: dataplane_name,
        labels: snapshot.dataplane_labels(dataplane_name),
        spec: dataplane,
        gateway: None,
    };
    let policies = policies::ProxyPolicies::of(snapshot, &proxy);
    // Gathered first and sorted into place at once: inserting each of a
    // transparent proxy's hundreds of resources into the maps one by one
    // cost more than building them from sorted runs.
    let mut generated = Vec::with_capacity(expected_resources(snapshot, dataplane));
    inbound::generate(snapshot, &proxy, &policies, tls.as_ref(), &mut generated)?;
    outbound::generate(snapshot, &proxy, &policies, tls.as_ref(), &mut generated);
    passthrough::generate(snapshot, dataplane, &policies, &mut generated);
    if let Some(tls) = &tls {
        for secret in tls.secrets() {
            generated.push(Arc::new(secret));
        }
    }
    let mut out: ProxyResources = generated.into_iter().collect();
    // Last, so that patches see (and may change) everything generated.
    policies.apply_proxy_patch(dataplane, &mut out);
    Ok(out)
}

/// About how many resources `dataplane` gets, to gather them without
/// growing the list again and again: two per inbound and per outbound
/// (listener and cluster, cluster and load assignment), two per service a
/// transparent proxy reaches, and its passthrough listeners and clusters.
fn expected_resources(snapshot: &MeshSnapshot, dataplane: &DataplaneSpec) -> usize {
    let declared = dataplane.inbounds().len() + dataplane.outbounds().len();
    let reachable = dataplane.transparent_proxying().map_or(0, |tp| {
        8 + if tp.reachable_services.is_empty() {
            snapshot.service_count()
        } else {
            tp.reachable_services.len()
        }
    });
    2 * (declared + reachable) + 2
}
