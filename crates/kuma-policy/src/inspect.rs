//! Policy inspection: what every targetRef policy of a mesh means for one
//! Dataplane, in the shape of Kuma's `GET /meshes/{mesh}/dataplanes/{name}/_rules`
//! (`InspectRulesResponse`), and which Dataplanes one policy selects
//! (`GET /meshes/{mesh}/{policies}/{name}/_resources/dataplanes`).
//!
//! Pure: the caller hands in the mesh's resources, read however it likes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::mesh_gateway::MeshGatewaySpec;
use kuma_api::policies::TargetRef;
use kuma_api::policies::TargetRefKind;
use kuma_api::{Kind, Resource, Spec};

use crate::PolicyError;
use crate::engine::{MeshContext, PolicyIndex, ProxyRules};
use crate::matcher::{InboundKey, Proxy, tags_match};
use crate::outbound::{Destination, ResourceId};
use crate::policy::{EFFECT_LABEL, Policy};
use crate::rules::{PolicyOrigin, Rule};

mod routes;

pub use routes::{HttpMatch, RULE_MATCHES_HASH_TAG, hash_matches, rule_matches};

/// Kuma's `Meta`: how the inspect API names a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "type")]
    pub kind: String,
    pub mesh: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl Meta {
    pub fn of(resource: &Resource) -> Meta {
        Meta {
            kind: resource.kind().name().to_string(),
            mesh: resource.meta.mesh.clone().unwrap_or_default(),
            name: resource.meta.name.clone(),
            labels: resource.meta.labels.clone(),
        }
    }
}

/// `InspectRulesResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectRules {
    pub resource: Meta,
    pub rules: Vec<InspectRule>,
    /// The matches of the MeshHTTPRoute rules that reach the proxy, by
    /// hash (the name of the Envoy routes they become, and the value of
    /// `__rule-matches-hash__` in the `to` rules of policies aimed at a
    /// route), ordered by hash.
    pub http_matches: Vec<HttpMatch>,
}

/// The rules of one policy kind (`InspectRule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectRule {
    #[serde(rename = "type")]
    pub kind: String,
    /// The fold of single-item policies (`spec.default`, no to/from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_rule: Option<ProxyRule>,
    /// Outbound rules by destination tags; empty when the mesh's
    /// `meshServices.mode` is `Exclusive`, as in Kuma.
    pub to_rules: Vec<TagRule>,
    /// Outbound rules by real destination (Mesh, MeshService, ...).
    pub to_resource_rules: Vec<ResourceRuleEntry>,
    /// `from` rules per inbound.
    pub from_rules: Vec<FromRule>,
    /// `rules` entries (and `from` of the kinds Kuma serves as such) per
    /// inbound.
    pub inbound_rules: Vec<InboundRulesEntry>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyRule {
    pub conf: Value,
    pub origin: Vec<Meta>,
}

/// One tag-subset rule (`Rule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRule {
    pub matchers: Vec<RuleMatcher>,
    pub conf: Value,
    pub origin: Vec<Meta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatcher {
    pub key: String,
    pub value: String,
    pub not: bool,
}

/// An inbound as the inspect API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromRule {
    pub inbound: InboundRef,
    pub rules: Vec<TagRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundRulesEntry {
    pub inbound: InboundRef,
    pub rules: Vec<InboundRuleEntry>,
}

/// One inbound rule: Kuma wraps the conf in a one-item list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundRuleEntry {
    pub conf: Vec<Value>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Value>,
    pub origin: Vec<RuleOrigin>,
}

/// A policy that contributed, and which of its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleOrigin {
    pub resource_meta: Meta,
    pub rule_index: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRuleEntry {
    pub resource_meta: Meta,
    pub resource_section_name: String,
    pub conf: Vec<Value>,
    pub origin: Vec<RuleOrigin>,
}

/// A mesh's resources prepared for inspection: the policy context, one
/// index per policy kind present, and the names to report origins with.
#[derive(Debug)]
pub struct MeshInspector {
    ctx: MeshContext,
    /// `meshServices.mode: Exclusive`: tag rules no longer apply.
    exclusive: bool,
    indexes: Vec<PolicyIndex>,
    /// Policies by (kind, name), to report labels and entry indices.
    policies: HashMap<(Kind, String), Policy>,
    gateways: Vec<(String, MeshGatewaySpec)>,
}

impl MeshInspector {
    /// `resources` are those of mesh `mesh` (any kinds; others are ignored).
    /// `exclusive` is whether the Mesh's `meshServices.mode` is `Exclusive`.
    pub fn new(mesh: &str, exclusive: bool, resources: &[Resource]) -> MeshInspector {
        let mut http_routes = Vec::new();
        let mut destinations = Vec::new();
        let mut gateways = Vec::new();
        for r in resources {
            if let Some(d) = Destination::from_resource(r) {
                destinations.push(d);
            }
            if let Spec::MeshGateway(spec) = &r.spec {
                gateways.push((r.meta.name.clone(), spec.clone()));
            }
            if r.kind() == Kind::MeshHTTPRoute
                && let Ok(p) = Policy::from_resource(r)
            {
                http_routes.push(Arc::new(p));
            }
        }
        gateways.sort_by(|a, b| a.0.cmp(&b.0));
        let ctx = MeshContext {
            mesh: mesh.to_string(),
            destinations,
            http_routes,
        };
        let mut policies = HashMap::new();
        for r in resources.iter().filter(|r| r.kind().is_policy()) {
            if let Ok(p) = Policy::from_resource(r) {
                policies.insert((p.kind, p.name.clone()), p);
            }
        }
        let indexes = Kind::ALL
            .iter()
            .filter(|k| k.is_policy())
            .filter(|k| resources.iter().any(|r| r.kind() == **k))
            .map(|k| PolicyIndex::from_resources(*k, resources, &ctx))
            .collect();
        MeshInspector {
            ctx,
            exclusive,
            indexes,
            policies,
            gateways,
        }
    }

    /// The proxy `dataplane` is, with the MeshGateway a builtin gateway
    /// serves (the first, by name, whose selector its tags satisfy).
    fn proxy<'a>(&'a self, dataplane: &'a Resource) -> Result<Proxy<'a>, PolicyError> {
        let mut proxy = Proxy::from_resource(dataplane)?;
        if proxy.spec.is_builtin_gateway() {
            let tags = proxy
                .spec
                .networking
                .as_ref()
                .and_then(|n| n.gateway.as_ref())
                .map(|g| &g.tags);
            proxy.gateway = self
                .gateways
                .iter()
                .find(|(_, gw)| {
                    tags.is_some_and(|t| gw.selectors.iter().any(|s| tags_match(&s.match_, t)))
                })
                .map(|(name, spec)| (name.as_str(), spec));
        }
        Ok(proxy)
    }

    /// Kuma's `_rules` answer for `dataplane`.
    pub fn rules(&self, dataplane: &Resource) -> Result<InspectRules, PolicyError> {
        let proxy = self.proxy(dataplane)?;
        Ok(self.rules_of(&proxy, Meta::of(dataplane)))
    }

    /// Kuma's `_rules` answer for a MeshGateway: the rules of a builtin
    /// gateway proxy carrying the tags of its first selector. `None` when
    /// `gateway` is not a MeshGateway or has no selector.
    pub fn gateway_rules(&self, gateway: &Resource) -> Option<InspectRules> {
        let Spec::MeshGateway(spec) = &gateway.spec else {
            return None;
        };
        let tags = &spec.selectors.first()?.match_;
        let dataplane: DataplaneSpec = serde_json::from_value(serde_json::json!({
            "networking": {"address": "", "gateway": {"type": "BUILTIN", "tags": tags}}
        }))
        .ok()?;
        let proxy = Proxy {
            name: &gateway.meta.name,
            labels: &gateway.meta.labels,
            spec: &dataplane,
            gateway: Some((&gateway.meta.name, spec)),
        };
        Some(self.rules_of(&proxy, Meta::of(gateway)))
    }

    fn rules_of(&self, proxy: &Proxy<'_>, resource: Meta) -> InspectRules {
        let mut http_matches = BTreeMap::new();
        let rules = self
            .indexes
            .iter()
            .filter_map(|index| {
                let mut rules = index.rules_for(proxy, &self.ctx);
                if index.kind() == Kind::MeshHTTPRoute {
                    routes::collect_http_matches(&rules, &mut http_matches);
                }
                if let Some(to) = routes::to_rules_with_routes(index, &rules, &self.ctx.http_routes)
                {
                    rules.to = to;
                }
                self.inspect_rule(index.kind(), &rules, proxy)
            })
            .collect();
        InspectRules {
            resource,
            rules,
            http_matches: http_matches.into_values().collect(),
        }
    }

    /// The Dataplanes among `dataplanes` that `policy`'s top-level
    /// targetRef selects (shadow policies included: inspecting them is how
    /// their effect is previewed).
    pub fn selected_by<'r>(
        &self,
        policy: &Resource,
        dataplanes: &'r [Resource],
    ) -> Result<Vec<&'r Resource>, PolicyError> {
        let mut policy = Policy::from_resource(policy)?;
        policy.labels.remove(EFFECT_LABEL);
        let index = PolicyIndex::new(policy.kind, vec![policy], &self.ctx);
        let mut out = Vec::new();
        for dp in dataplanes {
            let Ok(proxy) = self.proxy(dp) else { continue };
            if !index.matching(&proxy).is_empty() {
                out.push(dp);
            }
        }
        Ok(out)
    }

    fn origin_meta(&self, origin: &PolicyOrigin) -> Meta {
        let labels = Kind::from_name(&origin.kind)
            .and_then(|k| self.policies.get(&(k, origin.name.to_string())))
            .map(|p| p.labels.clone())
            .unwrap_or_default();
        Meta {
            kind: origin.kind.to_string(),
            mesh: origin.mesh.to_string(),
            name: origin.name.to_string(),
            labels,
        }
    }

    fn tag_rules(&self, rules: &[Rule]) -> Vec<TagRule> {
        rules
            .iter()
            .map(|r| TagRule {
                matchers: r
                    .subset
                    .tags()
                    .iter()
                    .map(|t| RuleMatcher {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        not: t.not,
                    })
                    .collect(),
                conf: r.conf.clone(),
                origin: r.origins.iter().map(|o| self.origin_meta(o)).collect(),
            })
            .collect()
    }

    fn inbound_ref(&self, key: &InboundKey, proxy: &Proxy<'_>) -> InboundRef {
        let gateway_tags = proxy
            .spec
            .networking
            .as_ref()
            .and_then(|n| n.gateway.as_ref())
            .map(|g| g.tags.clone());
        let inbound = proxy
            .spec
            .inbounds()
            .iter()
            .find(|i| proxy.inbound_key(i) == *key);
        InboundRef {
            name: inbound.map(|i| i.name.clone()).filter(|n| !n.is_empty()),
            tags: gateway_tags.or_else(|| inbound.map(|i| i.tags.clone())),
            port: key.port,
        }
    }

    /// The index of the first `to` entry of the origin policy that reaches
    /// `id` (Kuma's `ruleIndex`).
    fn to_entry_index(&self, origin: &PolicyOrigin, id: &ResourceId) -> usize {
        let Some(policy) = Kind::from_name(&origin.kind)
            .and_then(|k| self.policies.get(&(k, origin.name.to_string())))
        else {
            return 0;
        };
        policy
            .to
            .iter()
            .position(|e| self.reaches(&e.target_ref, id))
            .unwrap_or(0)
    }

    fn reaches(&self, target_ref: &TargetRef, id: &ResourceId) -> bool {
        if target_ref.kind == TargetRefKind::Mesh {
            return true;
        }
        if target_ref.kind.as_str() != id.kind {
            return false;
        }
        let named = match (&target_ref.labels, &target_ref.name) {
            (Some(labels), _) => self.ctx.destinations.iter().any(|d| {
                d.kind == target_ref.kind
                    && d.name == id.name
                    && labels.iter().all(|(k, v)| d.labels.get(k) == Some(v))
            }),
            (None, Some(name)) => *name == id.name,
            (None, None) => false,
        };
        let section = target_ref.section_name.as_deref().filter(|s| !s.is_empty());
        named && (section.is_none() || section == id.section_name.as_deref())
    }

    fn resource_meta(&self, id: &ResourceId) -> Meta {
        if id.kind == "Mesh" {
            // Kuma leaves a Mesh's own mesh empty.
            return Meta {
                kind: id.kind.clone(),
                mesh: String::new(),
                name: id.name.clone(),
                labels: BTreeMap::new(),
            };
        }
        let labels = self
            .ctx
            .destinations
            .iter()
            .find(|d| d.kind.as_str() == id.kind && d.name == id.name)
            .map(|d| d.labels.clone())
            .unwrap_or_default();
        Meta {
            kind: id.kind.clone(),
            mesh: self.ctx.mesh.clone(),
            name: id.name.clone(),
            labels,
        }
    }

    /// One kind's entry, or `None` when nothing of the kind applies.
    fn inspect_rule(
        &self,
        kind: Kind,
        rules: &ProxyRules,
        proxy: &Proxy<'_>,
    ) -> Option<InspectRule> {
        let proxy_rule = rules.single_item.first().map(|r| ProxyRule {
            conf: r.conf.clone(),
            origin: r.origins.iter().map(|o| self.origin_meta(o)).collect(),
        });
        let to_rules = if self.exclusive {
            Vec::new()
        } else {
            self.tag_rules(&rules.to)
        };
        let from_rules: Vec<FromRule> = rules
            .from
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(key, r)| FromRule {
                inbound: self.inbound_ref(key, proxy),
                rules: self.tag_rules(r),
            })
            .collect();
        let inbound_rules: Vec<InboundRulesEntry> = rules
            .inbound
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(key, r)| InboundRulesEntry {
                inbound: self.inbound_ref(key, proxy),
                rules: r
                    .iter()
                    .map(|rule| InboundRuleEntry {
                        conf: vec![rule.conf.clone()],
                        matches: rule
                            .matches
                            .as_ref()
                            .and_then(|m| serde_json::to_value(m).ok()),
                        origin: vec![RuleOrigin {
                            resource_meta: self.origin_meta(&rule.origin),
                            rule_index: rule.rule_index,
                        }],
                    })
                    .collect(),
            })
            .collect();
        let mut to_resource_rules: Vec<ResourceRuleEntry> = rules
            .to_resources
            .0
            .values()
            .map(|r| ResourceRuleEntry {
                resource_meta: self.resource_meta(&r.resource),
                resource_section_name: r.resource.section_name.clone().unwrap_or_default(),
                conf: vec![r.conf.clone()],
                origin: r
                    .origins
                    .iter()
                    .map(|o| RuleOrigin {
                        resource_meta: self.origin_meta(o),
                        rule_index: self.to_entry_index(o, &r.resource),
                    })
                    .collect(),
            })
            .collect();
        // Kuma orders them by name only; the sort is stable over our
        // (kind, name, section) order.
        to_resource_rules.sort_by(|a, b| a.resource_meta.name.cmp(&b.resource_meta.name));
        let nothing = proxy_rule.is_none()
            && to_rules.is_empty()
            && to_resource_rules.is_empty()
            && from_rules.is_empty()
            && inbound_rules.is_empty();
        if nothing {
            return None;
        }
        Some(InspectRule {
            kind: kind.name().to_string(),
            proxy_rule,
            to_rules,
            to_resource_rules,
            from_rules,
            inbound_rules,
            warnings: rules.warnings.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
