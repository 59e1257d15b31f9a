//! MeshTrafficPermission as Envoy RBAC: who may call an inbound, told by the
//! identity in the client's certificate.
//!
//! The `from` rules of an inbound are first-match: a client gets the action
//! of the first rule whose subset holds its tags. RBAC has no order, so each
//! allowing rule becomes "its subset, and none of the subsets of the denying
//! rules before it"; a client no rule allows is denied (RBAC `ALLOW` with
//! no matching policy), which is also what an inbound without any
//! MeshTrafficPermission gets.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::util::pack_any;
use kuma_api::kinds::tags::SERVICE_TAG;
use kuma_api::policies::mesh_traffic_permission::{Action, Conf};
use kuma_policy::{Rule, Subset};

use super::names;

const NETWORK_RBAC: &str = "envoy.filters.network.rbac";
const HTTP_RBAC: &str = "envoy.filters.http.rbac";
/// The one RBAC policy per inbound; a single key keeps the encoding (a map)
/// deterministic.
const POLICY_NAME: &str = "MeshTrafficPermission";

/// Clients an inbound lets in: enforced, and (when some rule says
/// `AllowWithShadowDeny`) what would be let in were those denials enforced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Permissions {
    allowed: Vec<Principal>,
    shadow_allowed: Option<Vec<Principal>>,
}

fn action(rule: &Rule) -> Action {
    // A conf without a readable action allows nothing: failing closed.
    rule.conf_as::<Conf>()
        .ok()
        .and_then(|c| c.action)
        .unwrap_or(Action::Deny)
}

impl Permissions {
    /// From an inbound's `from` rules, in their first-match order.
    pub fn from_rules(mesh: &str, rules: &[Rule]) -> Permissions {
        let enforced = allowed_principals(mesh, rules, |a| a != Action::Deny);
        let shadow = rules
            .iter()
            .any(|r| action(r) == Action::AllowWithShadowDeny)
            .then(|| allowed_principals(mesh, rules, |a| a == Action::Allow));
        Permissions {
            allowed: enforced,
            shadow_allowed: shadow,
        }
    }

    /// Whether no client at all may call.
    #[cfg(test)]
    pub fn denies_all(&self) -> bool {
        self.allowed.is_empty()
    }
}

/// Principals of the rules `allows` accepts, each excluding the subsets of
/// the rules before it that it does not accept (and could overlap).
fn allowed_principals(
    mesh: &str,
    rules: &[Rule],
    allows: impl Fn(Action) -> bool,
) -> Vec<Principal> {
    let mut denied_before: Vec<&Subset> = Vec::new();
    let mut out = Vec::new();
    for rule in rules {
        if !allows(action(rule)) {
            denied_before.push(&rule.subset);
            continue;
        }
        let who = subset_principal(mesh, &rule.subset);
        let overlapping: Vec<Principal> = denied_before
            .iter()
            .filter(|d| !disjoint(&rule.subset, d))
            .map(|d| subset_principal(mesh, d))
            .collect();
        if overlapping.is_empty() {
            out.push(who);
        } else {
            out.push(all_of(vec![who, not(one_of(overlapping))]));
        }
    }
    out
}

/// Whether no client can be in both subsets: on some key one requires a
/// value the other requires otherwise or excludes.
fn disjoint(a: &Subset, b: &Subset) -> bool {
    a.tags().iter().any(|x| {
        b.tags().iter().any(|y| {
            x.key == y.key
                && match (x.not, y.not) {
                    (false, false) => x.value != y.value,
                    (false, true) | (true, false) => x.value == y.value,
                    (true, true) => false,
                }
        })
    })
}

fn all_of(mut ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        return ids.remove(0);
    }
    Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

fn one_of(mut ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        return ids.remove(0);
    }
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn not(p: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(p))),
    }
}

/// A client certificate carries `spiffe://<mesh>/<service>` for its
/// service and `kuma://<key>/<value>` for each of its other tags.
fn subset_principal(mesh: &str, subset: &Subset) -> Principal {
    if subset.is_empty() {
        return Principal {
            identifier: Some(principal::Identifier::Any(true)),
        };
    }
    let ids = subset
        .tags()
        .iter()
        .map(|tag| {
            let uri = if tag.key == SERVICE_TAG {
                names::spiffe_id(mesh, &tag.value)
            } else {
                names::tag_uri(&tag.key, &tag.value)
            };
            let id = Principal {
                identifier: Some(principal::Identifier::Authenticated(
                    principal::Authenticated {
                        principal_name: Some(StringMatcher {
                            match_pattern: Some(MatchPattern::Exact(uri)),
                            ..StringMatcher::default()
                        }),
                    },
                )),
            };
            if tag.not { not(id) } else { id }
        })
        .collect();
    all_of(ids)
}

fn rbac_rules(principals: &[Principal]) -> Rbac {
    let mut policies = HashMap::new();
    if !principals.is_empty() {
        policies.insert(
            POLICY_NAME.to_string(),
            Policy {
                permissions: vec![Permission {
                    rule: Some(permission::Rule::Any(true)),
                }],
                principals: principals.to_vec(),
                ..Policy::default()
            },
        );
    }
    Rbac {
        action: rbac::Action::Allow as i32,
        policies,
        ..Rbac::default()
    }
}

/// TCP inbounds: a denied client's connection is closed.
pub(crate) fn network_filter(stat_prefix: &str, permissions: &Permissions) -> Filter {
    let config = NetworkRbac {
        rules: Some(rbac_rules(&permissions.allowed)),
        shadow_rules: permissions.shadow_allowed.as_deref().map(rbac_rules),
        stat_prefix: format!("{stat_prefix}."),
        ..NetworkRbac::default()
    };
    Filter {
        name: NETWORK_RBAC.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// HTTP inbounds: a denied request gets 403.
pub(crate) fn http_filter(permissions: &Permissions) -> HttpFilter {
    let config = HttpRbac {
        rules: Some(rbac_rules(&permissions.allowed)),
        shadow_rules: permissions.shadow_allowed.as_deref().map(rbac_rules),
        ..HttpRbac::default()
    };
    HttpFilter {
        name: HTTP_RBAC.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..HttpFilter::default()
    }
}

#[cfg(test)]
mod tests;
