//! MeshProxyPatch: a proxy's finished Envoy resources edited as the
//! policy's `appendModifications` say, in their order.
//!
//! Resources are edited in proto JSON (the form users write `value` and
//! `jsonPatches` in): clusters, listeners (with their network filters,
//! HTTP filters and inline route tables) and route configurations. Only
//! resources an edit changed are encoded again and replace the shared ones
//! in this proxy's set; the shared resources themselves are never touched.
//! An edit whose result does not read as its Envoy type is skipped with a
//! warning, keeping the resource as generated.

mod merge;
pub mod proto_json;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::policies::mesh_proxy_patch::{Conf, JsonPatchBlock, Mod, ModMatch};
use serde_json::Value;

use crate::generate::names;
use crate::{ProxyResources, XdsResource, map_order, type_url};

const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const LISTENER: &str = "envoy.config.listener.v3.Listener";
const ROUTE: &str = "envoy.config.route.v3.RouteConfiguration";
const NETWORK_FILTER: &str = "envoy.config.listener.v3.Filter";
const HTTP_FILTER: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";
const VIRTUAL_HOST: &str = "envoy.config.route.v3.VirtualHost";
const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

type Tags = BTreeMap<String, String>;

/// Where a modification's `value` must read as an Envoy message, that
/// message's type; `None` where the operation takes no value.
fn value_type(field: &str) -> &'static str {
    match field {
        "cluster" => CLUSTER,
        "listener" => LISTENER,
        "networkFilter" => NETWORK_FILTER,
        "httpFilter" => HTTP_FILTER,
        _ => VIRTUAL_HOST,
    }
}

/// Problems in `conf` that are known before any proxy gets it: values that
/// do not read as their Envoy type and JSON patches that are not RFC 6902
/// operations. Paths are relative to `spec.default`.
pub fn check(conf: &Conf) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, m) in conf
        .append_modifications
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        for (field, one) in each_mod(m) {
            let path = format!("appendModifications[{i}].{field}");
            if let Some(value) = &one.value {
                let ty = value_type(field);
                if let Err(e) = proto_json::parse_yaml(ty, value) {
                    problems.push((format!("{path}.value"), format!("is not a valid {ty}: {e}")));
                }
            }
            if let Some(patches) = &one.json_patches
                && let Err(e) = json_patch_of(patches)
            {
                problems.push((format!("{path}.jsonPatches"), e));
            }
        }
    }
    problems
}

fn each_mod(
    m: &kuma_api::policies::mesh_proxy_patch::Modification,
) -> impl Iterator<Item = (&'static str, &Mod)> {
    [
        ("cluster", &m.cluster),
        ("listener", &m.listener),
        ("networkFilter", &m.network_filter),
        ("httpFilter", &m.http_filter),
        ("virtualHost", &m.virtual_host),
    ]
    .into_iter()
    .filter_map(|(f, m)| m.as_ref().map(|m| (f, m)))
}

fn json_patch_of(blocks: &[JsonPatchBlock]) -> Result<json_patch::Patch, String> {
    let value = serde_json::to_value(blocks).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Applies `conf` to `out`, the resources of the proxy `dataplane`.
pub(crate) fn apply(conf: &Conf, dataplane: &DataplaneSpec, out: &mut ProxyResources) {
    let mods = conf.append_modifications.as_deref().unwrap_or_default();
    if mods.is_empty() {
        return;
    }
    // Decoding to JSON costs: only the types some modification edits.
    let edits = |fields: &[&str]| {
        mods.iter()
            .flat_map(each_mod)
            .any(|(f, _)| fields.contains(&f))
    };
    let empty = ProxyResources::default();
    let source = |needed: bool| if needed { &*out } else { &empty };
    let mut clusters = Editable::decode(source(edits(&["cluster"])), type_url::CLUSTER, CLUSTER);
    let mut listeners = Editable::decode(
        source(edits(&[
            "listener",
            "networkFilter",
            "httpFilter",
            "virtualHost",
        ])),
        type_url::LISTENER,
        LISTENER,
    );
    let mut routes = Editable::decode(source(edits(&["virtualHost"])), type_url::ROUTE, ROUTE);
    let tags = listener_tags(dataplane);
    for m in mods {
        for (field, one) in each_mod(m) {
            let result = match field {
                "cluster" => edit_resources(&mut clusters, one, CLUSTER, &|_| None),
                "listener" => edit_resources(&mut listeners, one, LISTENER, &|n| tags.get(n)),
                "networkFilter" => {
                    edit_filters(&mut listeners, one, &tags, filter_lists, NETWORK_FILTER)
                }
                "httpFilter" => {
                    edit_filters(&mut listeners, one, &tags, http_filter_lists, HTTP_FILTER)
                }
                _ => edit_virtual_hosts(&mut listeners, &mut routes, one),
            };
            if let Err(e) = result {
                tracing::warn!(dataplane = ?dataplane.address(), modification = field, error = %e, "MeshProxyPatch modification skipped");
            }
        }
    }
    clusters.encode(out);
    listeners.encode(out);
    routes.encode(out);
}

/// Tags of the proxy's listeners, as Kuma gives its listeners: an inbound's
/// tags, an outbound's tags.
fn listener_tags(dataplane: &DataplaneSpec) -> BTreeMap<String, Tags> {
    let mut tags = BTreeMap::new();
    let address = dataplane.address();
    for inbound in dataplane.inbounds() {
        let name = names::inbound_listener(inbound.dataplane_address(address), inbound.port);
        tags.insert(name, inbound.tags.clone());
    }
    for outbound in dataplane.outbounds() {
        let name = names::outbound_listener(outbound.address(), outbound.port);
        tags.insert(name, outbound.tags.clone());
    }
    tags
}

/// The resources of one type as proto JSON, with what they were.
struct Editable {
    type_url: &'static str,
    full_name: &'static str,
    items: BTreeMap<String, Value>,
    original: BTreeMap<String, Value>,
    /// Names of resources a modification added: they have no origin.
    added: BTreeSet<String>,
}

impl Editable {
    fn decode(out: &ProxyResources, type_url: &'static str, full_name: &'static str) -> Self {
        let mut items = BTreeMap::new();
        for r in out.of_type(type_url) {
            match proto_json::to_json(full_name, &r.body.value) {
                Ok(v) => {
                    items.insert(r.name.clone(), v);
                }
                Err(e) => {
                    tracing::warn!(name = %r.name, error = %e, "resource does not read as proto JSON; MeshProxyPatch leaves it")
                }
            }
        }
        Editable {
            type_url,
            full_name,
            original: items.clone(),
            items,
            added: BTreeSet::new(),
        }
    }

    /// The origin Kuma gives the resource: `inbound` or `outbound`.
    fn origin(&self, name: &str) -> Option<&'static str> {
        if self.added.contains(name) {
            return None;
        }
        origin_of(self.type_url, name)
    }

    /// Writes what changed back into `out`.
    fn encode(self, out: &mut ProxyResources) {
        for name in self.original.keys() {
            if !self.items.contains_key(name)
                && let Some(of_type) = out.by_type.get_mut(self.type_url)
            {
                of_type.remove(name);
            }
        }
        for (name, value) in self.items {
            if self.original.get(&name) == Some(&value) {
                continue;
            }
            match proto_json::from_json(self.full_name, value).and_then(|bytes| {
                // Re-encoded from maps of a per-process seed: put their
                // entries in key order, or the version changes by process.
                let desc = proto_json::message(self.full_name)?;
                Ok(map_order::sort_maps(&desc, &bytes)?)
            }) {
                Ok(bytes) => out.insert(Arc::new(XdsResource::new(
                    name,
                    Any {
                        type_url: self.type_url.to_string(),
                        value: bytes,
                    },
                ))),
                Err(e) => {
                    tracing::warn!(%name, error = %e, "patched resource does not read as its Envoy type; kept as generated")
                }
            }
        }
    }
}

fn origin_of(type_url: &str, name: &str) -> Option<&'static str> {
    if type_url == type_url::CLUSTER {
        // The local workload's clusters are `localhost:<port>`.
        return Some(if name.starts_with("localhost:") {
            "inbound"
        } else {
            "outbound"
        });
    }
    if name.starts_with("inbound:") {
        Some("inbound")
    } else if name.starts_with("outbound:") {
        Some("outbound")
    } else {
        None
    }
}

fn matches_str(want: Option<&String>, got: Option<&str>) -> bool {
    want.is_none_or(|w| got == Some(w.as_str()))
}

fn matches_tags(want: Option<&Tags>, got: Option<&Tags>) -> bool {
    want.is_none_or(|want| got.is_some_and(|got| want.iter().all(|(k, v)| got.get(k) == Some(v))))
}

fn no_match() -> ModMatch {
    ModMatch::default()
}

/// `value` merged into `target` as proto merges messages, then the JSON
/// patches applied; `target` is left as it was when either fails.
fn patch_value(target: &mut Value, one: &Mod, full_name: &str) -> Result<(), String> {
    let mut edited = target.clone();
    if let Some(value) = &one.value {
        let patch = proto_json::parse_yaml(full_name, value).map_err(|e| e.to_string())?;
        let desc = proto_json::message(full_name).map_err(|e| e.to_string())?;
        merge::message(&mut edited, patch, &desc);
    }
    if let Some(blocks) = &one.json_patches {
        let patch = json_patch_of(blocks)?;
        json_patch::patch(&mut edited, &patch).map_err(|e| e.to_string())?;
    }
    *target = edited;
    Ok(())
}

fn parse_value(one: &Mod, full_name: &str) -> Result<Value, String> {
    let text = one.value.as_deref().ok_or("value is not defined")?;
    proto_json::parse_yaml(full_name, text).map_err(|e| e.to_string())
}

/// Add, Remove or Patch of whole clusters or listeners.
fn edit_resources<'t>(
    set: &mut Editable,
    one: &Mod,
    full_name: &str,
    tags: &dyn Fn(&str) -> Option<&'t Tags>,
) -> Result<(), String> {
    let none = no_match();
    let m = one.matcher.as_ref().unwrap_or(&none);
    let selected: Vec<String> = set
        .items
        .keys()
        .filter(|name| {
            matches_str(m.name.as_ref(), Some(name))
                && matches_str(m.origin.as_ref(), set.origin(name))
                && matches_tags(m.tags.as_ref(), tags(name))
        })
        .cloned()
        .collect();
    match one.operation.as_str() {
        "Add" => {
            let value = parse_value(one, full_name)?;
            let name = value
                .get("name")
                .and_then(Value::as_str)
                .ok_or("value has no name")?
                .to_string();
            // Add replaces a resource of the same name, as in Kuma.
            set.items.insert(name.clone(), value);
            set.added.insert(name);
        }
        "Remove" => {
            for name in selected {
                set.items.remove(&name);
            }
        }
        "Patch" => {
            for name in selected {
                if let Some(item) = set.items.get_mut(&name) {
                    patch_value(item, one, full_name)?;
                }
            }
        }
        other => return Err(format!("operation {other} does not apply here")),
    }
    Ok(())
}

/// The listeners a filter modification selects by `listenerName`,
/// `listenerTags` and `origin`.
fn selected_listeners(
    listeners: &Editable,
    m: &ModMatch,
    tags: &BTreeMap<String, Tags>,
) -> Vec<String> {
    listeners
        .items
        .keys()
        .filter(|name| {
            matches_str(m.listener_name.as_ref(), Some(name))
                && matches_str(m.origin.as_ref(), listeners.origin(name))
                && matches_tags(m.listener_tags.as_ref(), tags.get(name.as_str()))
        })
        .cloned()
        .collect()
}

/// Every `filters` list of the listener's filter chains.
fn filter_lists(listener: &mut Value) -> Vec<&mut Vec<Value>> {
    let mut lists = Vec::new();
    if let Some(chains) = listener
        .get_mut("filterChains")
        .and_then(Value::as_array_mut)
    {
        for chain in chains {
            if let Some(filters) = chain.get_mut("filters").and_then(Value::as_array_mut) {
                lists.push(filters);
            }
        }
    }
    lists
}

/// One filter-list edit (network or HTTP filters alike). `patch` patches a
/// matched filter; for both kinds JSON patches address its typed config.
fn edit_filter_list(filters: &mut Vec<Value>, one: &Mod, full_name: &str) -> Result<(), String> {
    let none = no_match();
    let m = one.matcher.as_ref().unwrap_or(&none);
    let named = |f: &Value| matches_str(m.name.as_ref(), f.get("name").and_then(Value::as_str));
    match one.operation.as_str() {
        "AddFirst" => filters.insert(0, parse_value(one, full_name)?),
        "AddLast" => filters.push(parse_value(one, full_name)?),
        "AddBefore" | "AddAfter" => {
            if m.name.is_none() {
                return Err("match.name is required to add before or after a filter".into());
            }
            if let Some(at) = filters.iter().position(named) {
                let at = if one.operation == "AddAfter" {
                    at + 1
                } else {
                    at
                };
                filters.insert(at, parse_value(one, full_name)?);
            }
        }
        "Remove" => filters.retain(|f| !named(f)),
        "Patch" => {
            for filter in filters.iter_mut().filter(|f| named(f)) {
                let mut edited = filter.clone();
                if let Some(value) = &one.value {
                    let patch =
                        proto_json::parse_yaml(full_name, value).map_err(|e| e.to_string())?;
                    let desc = proto_json::message(full_name).map_err(|e| e.to_string())?;
                    merge::message(&mut edited, patch, &desc);
                }
                if let Some(blocks) = &one.json_patches {
                    let patch = json_patch_of(blocks)?;
                    let config = edited
                        .get_mut("typedConfig")
                        .ok_or("the filter has no typed config to patch")?;
                    json_patch::patch(config, &patch).map_err(|e| e.to_string())?;
                }
                *filter = edited;
            }
        }
        other => return Err(format!("operation {other} does not apply to filters")),
    }
    Ok(())
}

/// Network or HTTP filter edits (`lists` finds the filter lists of a
/// listener) on the listeners `one` selects. Each listener is edited on a
/// copy, so a modification that fails leaves it as it was.
fn edit_filters(
    listeners: &mut Editable,
    one: &Mod,
    tags: &BTreeMap<String, Tags>,
    lists: fn(&mut Value) -> Vec<&mut Vec<Value>>,
    full_name: &str,
) -> Result<(), String> {
    let none = no_match();
    let m = one.matcher.as_ref().unwrap_or(&none);
    for name in selected_listeners(listeners, m, tags) {
        if let Some(listener) = listeners.items.get_mut(&name) {
            let mut edited = listener.clone();
            for filters in lists(&mut edited) {
                edit_filter_list(filters, one, full_name)?;
            }
            *listener = edited;
        }
    }
    Ok(())
}

/// The typed configs of the HTTP connection managers of a listener.
fn connection_managers(listener: &mut Value) -> Vec<&mut Value> {
    filter_lists(listener)
        .into_iter()
        .flat_map(|filters| filters.iter_mut())
        .filter_map(|f| f.get_mut("typedConfig"))
        .filter(|c| c.get("@type").and_then(Value::as_str) == Some(HCM_TYPE_URL))
        .collect()
}

/// The `httpFilters` lists of a listener's HTTP connection managers.
fn http_filter_lists(listener: &mut Value) -> Vec<&mut Vec<Value>> {
    connection_managers(listener)
        .into_iter()
        .filter_map(|hcm| hcm.get_mut("httpFilters").and_then(Value::as_array_mut))
        .collect()
}

/// Virtual hosts of route tables inline in listeners and of route
/// configurations, selected by `routeConfigurationName` and `origin`.
fn edit_virtual_hosts(
    listeners: &mut Editable,
    routes: &mut Editable,
    one: &Mod,
) -> Result<(), String> {
    let none = no_match();
    let m = one.matcher.as_ref().unwrap_or(&none);
    let listener_names: Vec<String> = listeners.items.keys().cloned().collect();
    for name in listener_names {
        let origin = listeners.origin(&name);
        if !matches_str(m.origin.as_ref(), origin) {
            continue;
        }
        if let Some(listener) = listeners.items.get_mut(&name) {
            let mut edited = listener.clone();
            for hcm in connection_managers(&mut edited) {
                if let Some(table) = hcm.get_mut("routeConfig") {
                    edit_route_table(table, m, one)?;
                }
            }
            *listener = edited;
        }
    }
    let route_names: Vec<String> = routes.items.keys().cloned().collect();
    for name in route_names {
        if !matches_str(m.origin.as_ref(), routes.origin(&name)) {
            continue;
        }
        if let Some(table) = routes.items.get_mut(&name) {
            edit_route_table(table, m, one)?;
        }
    }
    Ok(())
}

fn edit_route_table(table: &mut Value, m: &ModMatch, one: &Mod) -> Result<(), String> {
    let table_name = table.get("name").and_then(Value::as_str);
    if !matches_str(m.route_configuration_name.as_ref(), table_name) {
        return Ok(());
    }
    let Some(object) = table.as_object_mut() else {
        return Ok(());
    };
    let hosts = object
        .entry("virtualHosts")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(hosts) = hosts.as_array_mut() else {
        return Ok(());
    };
    let named = |h: &Value| matches_str(m.name.as_ref(), h.get("name").and_then(Value::as_str));
    match one.operation.as_str() {
        "Add" => hosts.push(parse_value(one, VIRTUAL_HOST)?),
        "Remove" => hosts.retain(|h| !named(h)),
        "Patch" => {
            for host in hosts.iter_mut().filter(|h| named(h)) {
                patch_value(host, one, VIRTUAL_HOST)?;
            }
        }
        other => return Err(format!("operation {other} does not apply to virtual hosts")),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
