//! Labels Kuma computes on write for a standalone Universal zone, so that
//! label filters (`filter[label.kuma.io/mesh]=...`) work as they do in Kuma.

use kuma_api::kinds::tags::DEFAULT_ZONE as ZONE_NAME;
use kuma_api::{Kind, Resource, Scope};

/// Adds the computed labels the user did not set themselves.
pub fn with_computed_labels(mut resource: Resource) -> Resource {
    let kind = resource.kind();
    let labels = &mut resource.meta.labels;
    if kind.scope() == Scope::Mesh {
        let mesh = resource
            .meta
            .mesh
            .clone()
            .unwrap_or_else(|| "default".into());
        labels.entry("kuma.io/mesh".into()).or_insert(mesh);
    }
    if provided_by_zone(kind) {
        let origin = labels
            .entry("kuma.io/origin".into())
            .or_insert_with(|| "zone".into())
            .clone();
        if origin != "global" {
            labels
                .entry("kuma.io/zone".into())
                .or_insert_with(|| ZONE_NAME.into());
            labels
                .entry("kuma.io/env".into())
                .or_insert_with(|| "universal".into());
        }
    }
    resource
}

/// Kinds a zone creates itself (as opposed to ones only synced from global).
fn provided_by_zone(kind: Kind) -> bool {
    kind.is_policy()
        || matches!(
            kind,
            Kind::Dataplane
                | Kind::ZoneIngress
                | Kind::ZoneEgress
                | Kind::MeshService
                | Kind::MeshExternalService
                | Kind::MeshGateway
                | Kind::MeshIdentity
                | Kind::MeshTrust
                | Kind::MeshOpenTelemetryBackend
                | Kind::HostnameGenerator
        )
}
