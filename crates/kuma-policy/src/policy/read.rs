//! Reading a policy spec into the parts the engine works with. Confs end up
//! as JSON (one engine folds every kind alike), but they are serialized
//! straight from the typed spec: writing the whole spec out as JSON and
//! reading its targetRefs back was most of what indexing a mesh's policies
//! cost. The JSON reader stays for kinds without a typed reader; both give
//! the same parts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use kuma_api::Spec;
use kuma_api::policies::values::{Match, MatchedRule, PlainRule, TargetedConf};
use kuma_api::policies::{
    TargetRef, mesh_access_log, mesh_circuit_breaker, mesh_fault_injection, mesh_health_check,
    mesh_http_route, mesh_load_balancing_strategy, mesh_metric, mesh_passthrough, mesh_proxy_patch,
    mesh_rate_limit, mesh_retry, mesh_tcp_route, mesh_timeout, mesh_tls, mesh_trace,
    mesh_traffic_permission,
};

use super::{MatchedEntry, TargetedEntry};
use crate::PolicyError;

/// What the engine reads of a spec, whatever its kind.
#[derive(Debug, PartialEq)]
pub(super) struct Parts {
    pub(super) target_ref: TargetRef,
    pub(super) to: Vec<TargetedEntry>,
    pub(super) from: Vec<TargetedEntry>,
    pub(super) rules: Vec<MatchedEntry>,
    pub(super) default: Option<Arc<Value>>,
}

impl Parts {
    fn new(target_ref: Option<TargetRef>) -> Parts {
        Parts {
            target_ref: target_ref.unwrap_or_else(TargetRef::mesh),
            to: Vec::new(),
            from: Vec::new(),
            rules: Vec::new(),
            default: None,
        }
    }
}

/// The parts of a policy spec read from its typed form; the spec back for
/// kinds without a typed reader (read them with [`from_json`]). TargetRefs
/// and matches are moved out of the spec, confs serialized from it.
///
/// Specs are taken apart field by field, without `..`, so that a field
/// added to a spec fails to compile here instead of being silently left out.
pub(super) fn from_typed(spec: Spec, confs: &mut SharedConfs) -> Result<Parts, Box<Spec>> {
    Ok(match spec {
        Spec::MeshTrafficPermission(s) => {
            let mesh_traffic_permission::MeshTrafficPermissionSpec {
                target_ref,
                from,
                rules,
            } = s;
            let from = targeted(from, confs);
            let rules = rules.into_iter().flatten().map(|rule| {
                let mesh_traffic_permission::Rule { default } = &rule;
                MatchedEntry {
                    matches: Vec::new(),
                    conf: entry_conf(Some(default), &rule, confs),
                }
            });
            Parts {
                from,
                rules: rules.collect(),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshTimeout(s) => {
            let mesh_timeout::MeshTimeoutSpec {
                target_ref,
                to,
                from,
                rules,
            } = s;
            Parts {
                to: targeted(to, confs),
                from: targeted(from, confs),
                rules: matched(rules, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshRetry(s) => {
            let mesh_retry::MeshRetrySpec { target_ref, to } = s;
            Parts {
                to: targeted(to, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshCircuitBreaker(s) => {
            let mesh_circuit_breaker::MeshCircuitBreakerSpec {
                target_ref,
                to,
                from,
                rules,
            } = s;
            Parts {
                to: targeted(to, confs),
                from: targeted(from, confs),
                rules: plain(rules, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshHealthCheck(s) => {
            let mesh_health_check::MeshHealthCheckSpec { target_ref, to } = s;
            Parts {
                to: targeted(to, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshHTTPRoute(s) => {
            let mesh_http_route::MeshHttpRouteSpec { target_ref, to } = s;
            let to = to.into_iter().flatten().map(|entry| {
                let mesh_http_route::To {
                    hostnames,
                    target_ref,
                    rules,
                } = entry;
                TargetedEntry {
                    target_ref,
                    conf: route_conf(&RouteConf {
                        hostnames: hostnames.as_ref(),
                        rules: &rules,
                    }),
                }
            });
            Parts {
                to: to.collect(),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshTCPRoute(s) => {
            let mesh_tcp_route::MeshTcpRouteSpec { target_ref, to } = s;
            let to = to.into_iter().flatten().map(|entry| {
                let mesh_tcp_route::To { target_ref, rules } = entry;
                TargetedEntry {
                    target_ref,
                    conf: route_conf(&RouteConf {
                        hostnames: None::<&Vec<String>>,
                        rules: &rules,
                    }),
                }
            });
            Parts {
                to: to.collect(),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshLoadBalancingStrategy(s) => {
            let mesh_load_balancing_strategy::MeshLoadBalancingStrategySpec { target_ref, to } = s;
            Parts {
                to: targeted(to, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshRateLimit(s) => {
            let mesh_rate_limit::MeshRateLimitSpec {
                target_ref,
                from,
                to,
                rules,
            } = s;
            Parts {
                to: targeted(to, confs),
                from: targeted(from, confs),
                rules: matched(rules, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshFaultInjection(s) => {
            let mesh_fault_injection::MeshFaultInjectionSpec {
                target_ref,
                from,
                to,
                rules,
            } = s;
            Parts {
                to: targeted(to, confs),
                from: targeted(from, confs),
                rules: matched(rules, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshAccessLog(s) => {
            let mesh_access_log::MeshAccessLogSpec {
                target_ref,
                to,
                from,
                rules,
            } = s;
            Parts {
                to: targeted(to, confs),
                from: targeted(from, confs),
                rules: matched(rules, confs),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshTrace(s) => {
            let mesh_trace::MeshTraceSpec {
                target_ref,
                default,
            } = s;
            Parts {
                default: confs.read(&default),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshMetric(s) => {
            let mesh_metric::MeshMetricSpec {
                target_ref,
                default,
            } = s;
            Parts {
                default: confs.read(&default),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshProxyPatch(s) => {
            let mesh_proxy_patch::MeshProxyPatchSpec {
                target_ref,
                default,
            } = s;
            Parts {
                default: confs.read(&default),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshPassthrough(s) => {
            let mesh_passthrough::MeshPassthroughSpec {
                target_ref,
                default,
            } = s;
            Parts {
                default: default.as_ref().and_then(|d| confs.read(d)),
                ..Parts::new(target_ref)
            }
        }
        Spec::MeshTLS(s) => {
            let mesh_tls::MeshTlsSpec {
                target_ref,
                from,
                rules,
            } = s;
            Parts {
                from: targeted(from, confs),
                rules: plain(rules, confs),
                ..Parts::new(target_ref)
            }
        }
        other => return Err(Box::new(other)),
    })
}

/// A route kind's `to` entry without its targetRef, which is what its conf
/// is: written as the entry would be (same names, same order, same empty
/// fields left out) minus the targetRef, never serialized only to be
/// removed again.
#[derive(Serialize)]
struct RouteConf<'a, H, R> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostnames: Option<&'a H>,
    #[serde(skip_serializing_if = "<[R]>::is_empty")]
    rules: &'a [R],
}

/// A route entry's conf, not shared: routes name their own paths and
/// backends, so equal ones are rare, and their folds (keyed by matches)
/// do not skip repeats anyway.
fn route_conf<H: Serialize, R: Serialize>(conf: &RouteConf<'_, H, R>) -> Arc<Value> {
    Arc::new(to_value(conf))
}

fn targeted<C: Serialize>(
    entries: Option<Vec<TargetedConf<C>>>,
    confs: &mut SharedConfs,
) -> Vec<TargetedEntry> {
    entries
        .into_iter()
        .flatten()
        .map(|entry| {
            let TargetedConf {
                target_ref: _,
                default,
            } = &entry;
            let conf = entry_conf(default.as_ref(), &entry, confs);
            TargetedEntry {
                target_ref: entry.target_ref,
                conf,
            }
        })
        .collect()
}

fn matched<C: Serialize>(
    rules: Option<Vec<MatchedRule<C>>>,
    confs: &mut SharedConfs,
) -> Vec<MatchedEntry> {
    rules
        .into_iter()
        .flatten()
        .map(|rule| {
            let MatchedRule {
                matches: _,
                default,
            } = &rule;
            let conf = entry_conf(default.as_ref(), &rule, confs);
            MatchedEntry {
                matches: rule.matches.unwrap_or_default(),
                conf,
            }
        })
        .collect()
}

fn plain<C: Serialize>(
    rules: Option<Vec<PlainRule<C>>>,
    confs: &mut SharedConfs,
) -> Vec<MatchedEntry> {
    rules
        .into_iter()
        .flatten()
        .map(|rule| {
            let PlainRule { default } = &rule;
            MatchedEntry {
                matches: Vec::new(),
                conf: entry_conf(default.as_ref(), &rule, confs),
            }
        })
        .collect()
}

/// An entry's conf: its `default`, else the entry without its targetRef
/// (as [`from_json`] reads it).
fn entry_conf<C: Serialize>(
    default: Option<&C>,
    entry: &impl Serialize,
    confs: &mut SharedConfs,
) -> Arc<Value> {
    match default.and_then(|d| confs.read(d)) {
        Some(conf) => conf,
        None => confs.entry(&rest_of(to_value(entry))),
    }
}

/// The confs of policies read together, by their JSON text: equal confs
/// (many policies often set the same) are converted to a value once and
/// shared. Writing a conf as text costs a fraction of building its value.
#[derive(Debug, Default)]
pub struct SharedConfs {
    by_text: foldhash::HashMap<Box<[u8]>, Arc<Value>>,
    /// The text of the conf being read, kept for its buffer.
    text: Vec<u8>,
}

impl SharedConfs {
    /// `conf` as a value, `None` when it is `null`.
    fn read(&mut self, conf: &impl Serialize) -> Option<Arc<Value>> {
        self.text.clear();
        // Specs are plain data (strings, numbers, maps with string keys):
        // serializing them cannot fail.
        if serde_json::to_writer(&mut self.text, conf).is_err() || self.text == b"null" {
            return None;
        }
        if let Some(shared) = self.by_text.get(self.text.as_slice()) {
            return Some(shared.clone());
        }
        // Equal text, equal value: the value is built from the same
        // serialization as the text (numbers of either kind written apart,
        // members in the same order).
        let value = Arc::new(to_value(conf));
        self.by_text
            .insert(self.text.as_slice().into(), value.clone());
        Some(value)
    }

    /// `conf` as a value, `null` included.
    fn entry(&mut self, conf: &impl Serialize) -> Arc<Value> {
        self.read(conf).unwrap_or_else(|| Arc::new(Value::Null))
    }
}

fn rest_of(entry: Value) -> Value {
    let mut rest = match entry {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    rest.remove("targetRef");
    Value::Object(rest)
}

fn to_value(value: &impl Serialize) -> Value {
    // Specs are plain data (strings, numbers, maps with string keys):
    // serializing them cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The parts of a policy spec in its JSON form (`policy` names it in
/// errors): top-level `targetRef`, `to`, `from`, `rules` and `default`.
pub(super) fn from_json(spec: &Value, policy: &str) -> Result<Parts, PolicyError> {
    let read_ref = |value: &Value, field: &dyn Fn() -> String| {
        TargetRef::deserialize(value).map_err(|source| PolicyError::TargetRef {
            policy: policy.to_string(),
            field: field(),
            source,
        })
    };
    let target_ref = match spec.get("targetRef") {
        Some(v) if !v.is_null() => read_ref(v, &|| "spec.targetRef".to_string())?,
        _ => TargetRef::mesh(),
    };
    let targeted = |section: &str| -> Result<Vec<TargetedEntry>, PolicyError> {
        let Some(Value::Array(items)) = spec.get(section) else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = || format!("spec.{section}[{i}].targetRef");
                Ok(TargetedEntry {
                    target_ref: read_ref(item.get("targetRef").unwrap_or(&Value::Null), &field)?,
                    conf: Arc::new(json_conf(item)),
                })
            })
            .collect()
    };
    let to = targeted("to")?;
    let from = targeted("from")?;
    let rules = match spec.get("rules") {
        // MeshHTTPRoute/MeshTCPRoute keep `rules` inside `to`; a
        // top-level `rules` is always the inbound form.
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| MatchedEntry {
                matches: item
                    .get("matches")
                    .and_then(|m| Vec::<Match>::deserialize(m).ok())
                    .unwrap_or_default(),
                conf: Arc::new(json_conf(item)),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Parts {
        target_ref,
        to,
        from,
        rules,
        default: spec
            .get("default")
            .filter(|d| !d.is_null())
            .map(|d| Arc::new(d.clone())),
    })
}

/// An entry's conf: its `default`, or for route kinds (whose `to` entries
/// carry `rules`/`hostnames` beside the targetRef) everything but the
/// targetRef.
fn json_conf(item: &Value) -> Value {
    match item.get("default") {
        Some(v) if !v.is_null() => v.clone(),
        _ => rest_of(item.clone()),
    }
}

#[cfg(test)]
mod tests;
