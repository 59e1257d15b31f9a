//! The registry of resource kinds: the one place where a kind is declared.
//!
//! Each line of [`kinds!`] names a kind, its spec type and how the API and
//! kumactl spell it. The macro derives the [`Kind`] enum, the [`Spec`] enum
//! holding a typed spec of any kind, and their lookups.

use serde_json::Value;

use crate::validation::{Validate, ValidationContext, Violations};

/// Where a resource lives: inside one mesh, or once for the whole control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Scope {
    Global,
    Mesh,
}

/// How a kind's spec is written in Universal YAML/JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Spec fields sit beside `type`/`name`/`mesh` (Mesh, Dataplane, Secret, ...).
    Inline,
    /// Spec sits under `spec:` (targetRef policies and the newer kinds).
    Wrapped,
}

/// Everything the API, the store and kumactl need to know about one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindDescriptor {
    /// `MeshTimeout`
    pub name: &'static str,
    /// Path segment in the REST API: `meshtimeouts`
    pub plural: &'static str,
    /// kumactl's argument for one resource: `meshtimeout`
    pub cli_singular: &'static str,
    /// kumactl's argument for a list: `meshtimeouts`
    pub cli_plural: &'static str,
    /// Kubernetes-style short name: `mt`
    pub short_name: Option<&'static str>,
    pub scope: Scope,
    /// A targetRef policy (listed by `GET /policies`).
    pub is_policy: bool,
    pub layout: Layout,
}

macro_rules! kinds {
    ($(
        $variant:ident($spec:ty) {
            plural: $plural:literal,
            cli: ($cli_singular:literal, $cli_plural:literal),
            short: $short:expr,
            scope: $scope:ident,
            policy: $policy:literal,
            layout: $layout:ident $(,)?
        }
    ),+ $(,)?) => {
        /// A resource kind.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($variant),+
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            pub fn descriptor(self) -> &'static KindDescriptor {
                match self {
                    $(Kind::$variant => &KindDescriptor {
                        name: stringify!($variant),
                        plural: $plural,
                        cli_singular: $cli_singular,
                        cli_plural: $cli_plural,
                        short_name: $short,
                        scope: Scope::$scope,
                        is_policy: $policy,
                        layout: Layout::$layout,
                    }),+
                }
            }
        }

        /// The typed spec of a resource of any kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec {
            $($variant($spec)),+
        }

        impl Spec {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Spec::$variant(_) => Kind::$variant),+
                }
            }

            /// Reads a spec of `kind` from its JSON form. Errors carry the path
            /// of the offending field, relative to the spec.
            pub fn from_json(
                kind: Kind,
                value: Value,
            ) -> Result<Spec, serde_path_to_error::Error<serde_json::Error>> {
                Ok(match kind {
                    $(Kind::$variant => Spec::$variant(serde_path_to_error::deserialize(value)?)),+
                })
            }

            pub fn to_json(&self) -> Value {
                let encoded = match self {
                    $(Spec::$variant(s) => serde_json::to_value(s)),+
                };
                // Specs are plain data (strings, numbers, maps with string keys):
                // encoding them cannot fail.
                encoded.unwrap_or(Value::Null)
            }

            pub fn validate(&self, ctx: &ValidationContext<'_>, violations: &mut Violations) {
                match self {
                    $(Spec::$variant(s) => Validate::validate(s, ctx, violations)),+
                }
            }
        }
    };
}

use crate::kinds::*;
use crate::policies::*;

kinds! {
    Mesh(mesh::MeshSpec) { plural: "meshes", cli: ("mesh", "meshes"), short: None, scope: Global, policy: false, layout: Inline },
    Dataplane(dataplane::DataplaneSpec) { plural: "dataplanes", cli: ("dataplane", "dataplanes"), short: None, scope: Mesh, policy: false, layout: Inline },
    Secret(secret::SecretSpec) { plural: "secrets", cli: ("secret", "secrets"), short: None, scope: Mesh, policy: false, layout: Inline },
    GlobalSecret(secret::SecretSpec) { plural: "global-secrets", cli: ("global-secret", "global-secrets"), short: None, scope: Global, policy: false, layout: Inline },
    Zone(zone::ZoneSpec) { plural: "zones", cli: ("zone", "zones"), short: None, scope: Global, policy: false, layout: Inline },
    ZoneIngress(zone_ingress::ZoneIngressSpec) { plural: "zoneingresses", cli: ("zone-ingress", "zone-ingresses"), short: None, scope: Global, policy: false, layout: Inline },
    ZoneEgress(zone_egress::ZoneEgressSpec) { plural: "zoneegresses", cli: ("zoneegress", "zoneegresses"), short: None, scope: Global, policy: false, layout: Inline },
    MeshGateway(mesh_gateway::MeshGatewaySpec) { plural: "meshgateways", cli: ("meshgateway", "meshgateways"), short: None, scope: Mesh, policy: false, layout: Inline },
    MeshGatewayRoute(mesh_gateway_route::MeshGatewayRouteSpec) { plural: "meshgatewayroutes", cli: ("meshgatewayroute", "meshgatewayroutes"), short: None, scope: Mesh, policy: false, layout: Inline },
    MeshService(mesh_service::MeshServiceSpec) { plural: "meshservices", cli: ("meshservice", "meshservices"), short: Some("msvc"), scope: Mesh, policy: false, layout: Wrapped },
    MeshExternalService(mesh_external_service::MeshExternalServiceSpec) { plural: "meshexternalservices", cli: ("meshexternalservice", "meshexternalservices"), short: Some("mes"), scope: Mesh, policy: false, layout: Wrapped },
    MeshMultiZoneService(mesh_multi_zone_service::MeshMultiZoneServiceSpec) { plural: "meshmultizoneservices", cli: ("meshmultizoneservice", "meshmultizoneservices"), short: Some("mzsvc"), scope: Mesh, policy: false, layout: Wrapped },
    HostnameGenerator(hostname_generator::HostnameGeneratorSpec) { plural: "hostnamegenerators", cli: ("hostnamegenerator", "hostnamegenerators"), short: Some("hg"), scope: Global, policy: false, layout: Wrapped },
    MeshIdentity(mesh_identity::MeshIdentitySpec) { plural: "meshidentities", cli: ("meshidentity", "meshidentities"), short: Some("mid"), scope: Mesh, policy: false, layout: Wrapped },
    MeshTrust(mesh_trust::MeshTrustSpec) { plural: "meshtrusts", cli: ("meshtrust", "meshtrusts"), short: Some("mtrust"), scope: Mesh, policy: false, layout: Wrapped },
    MeshOpenTelemetryBackend(mesh_open_telemetry_backend::MeshOpenTelemetryBackendSpec) { plural: "meshopentelemetrybackends", cli: ("meshopentelemetrybackend", "meshopentelemetrybackends"), short: Some("motb"), scope: Mesh, policy: false, layout: Wrapped },
    MeshTrafficPermission(mesh_traffic_permission::MeshTrafficPermissionSpec) { plural: "meshtrafficpermissions", cli: ("meshtrafficpermission", "meshtrafficpermissions"), short: Some("mtp"), scope: Mesh, policy: true, layout: Wrapped },
    MeshTimeout(mesh_timeout::MeshTimeoutSpec) { plural: "meshtimeouts", cli: ("meshtimeout", "meshtimeouts"), short: Some("mt"), scope: Mesh, policy: true, layout: Wrapped },
    MeshRetry(mesh_retry::MeshRetrySpec) { plural: "meshretries", cli: ("meshretry", "meshretries"), short: Some("mr"), scope: Mesh, policy: true, layout: Wrapped },
    MeshCircuitBreaker(mesh_circuit_breaker::MeshCircuitBreakerSpec) { plural: "meshcircuitbreakers", cli: ("meshcircuitbreaker", "meshcircuitbreakers"), short: Some("mcb"), scope: Mesh, policy: true, layout: Wrapped },
    MeshHealthCheck(mesh_health_check::MeshHealthCheckSpec) { plural: "meshhealthchecks", cli: ("meshhealthcheck", "meshhealthchecks"), short: Some("mhc"), scope: Mesh, policy: true, layout: Wrapped },
    MeshHTTPRoute(mesh_http_route::MeshHttpRouteSpec) { plural: "meshhttproutes", cli: ("meshhttproute", "meshhttproutes"), short: Some("mhttpr"), scope: Mesh, policy: true, layout: Wrapped },
    MeshTCPRoute(mesh_tcp_route::MeshTcpRouteSpec) { plural: "meshtcproutes", cli: ("meshtcproute", "meshtcproutes"), short: Some("mtcpr"), scope: Mesh, policy: true, layout: Wrapped },
    MeshLoadBalancingStrategy(mesh_load_balancing_strategy::MeshLoadBalancingStrategySpec) { plural: "meshloadbalancingstrategies", cli: ("meshloadbalancingstrategy", "meshloadbalancingstrategies"), short: Some("mlbs"), scope: Mesh, policy: true, layout: Wrapped },
    MeshRateLimit(mesh_rate_limit::MeshRateLimitSpec) { plural: "meshratelimits", cli: ("meshratelimit", "meshratelimits"), short: Some("mrl"), scope: Mesh, policy: true, layout: Wrapped },
    MeshFaultInjection(mesh_fault_injection::MeshFaultInjectionSpec) { plural: "meshfaultinjections", cli: ("meshfaultinjection", "meshfaultinjections"), short: Some("mfi"), scope: Mesh, policy: true, layout: Wrapped },
    MeshAccessLog(mesh_access_log::MeshAccessLogSpec) { plural: "meshaccesslogs", cli: ("meshaccesslog", "meshaccesslogs"), short: Some("mal"), scope: Mesh, policy: true, layout: Wrapped },
    MeshTrace(mesh_trace::MeshTraceSpec) { plural: "meshtraces", cli: ("meshtrace", "meshtraces"), short: Some("mtr"), scope: Mesh, policy: true, layout: Wrapped },
    MeshMetric(mesh_metric::MeshMetricSpec) { plural: "meshmetrics", cli: ("meshmetric", "meshmetrics"), short: Some("mm"), scope: Mesh, policy: true, layout: Wrapped },
    MeshProxyPatch(mesh_proxy_patch::MeshProxyPatchSpec) { plural: "meshproxypatches", cli: ("meshproxypatch", "meshproxypatches"), short: Some("mpp"), scope: Mesh, policy: true, layout: Wrapped },
    MeshPassthrough(mesh_passthrough::MeshPassthroughSpec) { plural: "meshpassthroughs", cli: ("meshpassthrough", "meshpassthroughs"), short: Some("mp"), scope: Mesh, policy: true, layout: Wrapped },
    MeshTLS(mesh_tls::MeshTlsSpec) { plural: "meshtlses", cli: ("meshtls", "meshtlses"), short: Some("mtls"), scope: Mesh, policy: true, layout: Wrapped },
}

impl Kind {
    pub fn name(self) -> &'static str {
        self.descriptor().name
    }

    pub fn plural(self) -> &'static str {
        self.descriptor().plural
    }

    pub fn scope(self) -> Scope {
        self.descriptor().scope
    }

    pub fn is_policy(self) -> bool {
        self.descriptor().is_policy
    }

    pub fn layout(self) -> Layout {
        self.descriptor().layout
    }

    /// The kind whose `type:` is exactly `name` (as written in YAML).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The kind served under `/{plural}` in the REST API.
    pub fn from_plural(plural: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.plural() == plural)
    }

    /// The kind a kumactl user means: singular, plural, short name or kind
    /// name, case-insensitively (`meshtimeout`, `meshtimeouts`, `mt`, `MeshTimeout`).
    pub fn from_cli(arg: &str) -> Option<Kind> {
        let arg = arg.to_ascii_lowercase();
        Kind::ALL.iter().copied().find(|k| {
            let d = k.descriptor();
            d.cli_singular == arg
                || d.cli_plural == arg
                || d.plural == arg
                || d.short_name == Some(arg.as_str())
                || d.name.eq_ignore_ascii_case(&arg)
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_plurals_and_short_names_are_unique() {
        let mut seen = HashSet::new();
        for k in Kind::ALL {
            let d = k.descriptor();
            for word in [Some(d.plural), Some(d.cli_singular), d.short_name] {
                let Some(word) = word else { continue };
                assert!(seen.insert(word.to_string()), "{word} used twice");
            }
        }
    }

    #[test]
    fn kumactl_spellings_resolve() {
        assert_eq!(Kind::from_cli("mt"), Some(Kind::MeshTimeout));
        assert_eq!(Kind::from_cli("MeshTimeout"), Some(Kind::MeshTimeout));
        assert_eq!(Kind::from_cli("meshtimeouts"), Some(Kind::MeshTimeout));
        assert_eq!(Kind::from_cli("zone-ingresses"), Some(Kind::ZoneIngress));
        assert_eq!(Kind::from_plural("zoneingresses"), Some(Kind::ZoneIngress));
        assert_eq!(Kind::from_name("meshtimeout"), None);
    }

    #[test]
    fn global_secret_shares_the_secret_spec_but_not_the_scope() {
        assert_eq!(Kind::GlobalSecret.scope(), Scope::Global);
        assert_eq!(Kind::Secret.scope(), Scope::Mesh);
    }
}
