//! The `kumactl inspect dataplanes` table, column for column as Kuma 2.14
//! prints it, from the API's DataplaneOverview items.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::table::{Table, age};

pub const HEADERS: &[&str] = &[
    "MESH",
    "NAME",
    "TAGS",
    "STATUS",
    "LAST CONNECTED AGO",
    "LAST UPDATED AGO",
    "TOTAL UPDATES",
    "TOTAL ERRORS",
    "CERT REGENERATED AGO",
    "CERT EXPIRATION",
    "CERT REGENERATIONS",
    "CERT BACKEND",
    "SUPPORTED CERT BACKENDS",
    "KUMA-DP VERSION",
    "ENVOY VERSION",
    "DEPENDENCIES VERSIONS",
    "NOTES",
];

pub fn dataplanes_table(items: &[Value], now: DateTime<Utc>) -> Table {
    let mut table = Table::new(HEADERS);
    for item in items {
        table.row(row(item, now));
    }
    table
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn time(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(v, path))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Protobuf JSON writes 64-bit counters as strings; accept numbers too.
fn counter(v: &Value, path: &[&str]) -> u64 {
    match path.iter().try_fold(v, |v, key| v.get(key)) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "never".to_string(), |t| age(t, now))
}

fn row(item: &Value, now: DateTime<Utc>) -> Vec<String> {
    let dataplane = item.get("dataplane").unwrap_or(&Value::Null);
    let insight = item.get("dataplaneInsight").unwrap_or(&Value::Null);
    let subscriptions = insight
        .get("subscriptions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let last = subscriptions.last().unwrap_or(&Value::Null);
    let sum = |key: &str| -> u64 {
        subscriptions
            .iter()
            .map(|s| counter(s, &["status", "total", key]))
            .sum()
    };
    let (status, notes) = status(dataplane, subscriptions);
    let mtls = insight.get("mTLS").filter(|m| m.is_object());
    let (cert_regenerated, cert_expiration, regenerations, backend, supported) = match mtls {
        None => (
            "never".to_string(),
            "-".to_string(),
            "0".to_string(),
            "-".to_string(),
            String::new(),
        ),
        Some(m) => (
            ago(time(m, &["lastCertificateRegeneration"]), now),
            time(m, &["certificateExpirationTime"]).map_or_else(
                || "-".to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
            counter(m, &["certificateRegenerations"]).to_string(),
            match text(m, &["issuedBackend"]) {
                // Proxies of Kuma 1.2 and older do not report it.
                "" => "unknown".to_string(),
                b => b.to_string(),
            },
            m.get("supportedBackends")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        ),
    };
    let dependencies = last
        .get("version")
        .and_then(|v| v.get("dependencies"))
        .and_then(Value::as_object)
        .map(|deps| {
            let sorted: BTreeMap<_, _> = deps.iter().collect();
            sorted
                .into_iter()
                .map(|(name, v)| format!("{name}: {}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".to_string());
    vec![
        text(item, &["mesh"]).to_string(),
        text(item, &["name"]).to_string(),
        tags(dataplane),
        status.to_string(),
        ago(time(last, &["connectTime"]), now),
        ago(time(last, &["status", "lastUpdateTime"]), now),
        sum("responsesSent").to_string(),
        sum("responsesRejected").to_string(),
        cert_regenerated,
        cert_expiration,
        regenerations,
        backend,
        supported,
        text(last, &["version", "kumaDp", "version"]).to_string(),
        text(last, &["version", "envoy", "version"]).to_string(),
        dependencies,
        notes.join(";"),
    ]
}

fn inbounds(dataplane: &Value) -> &[Value] {
    dataplane
        .get("networking")
        .and_then(|n| n.get("inbound"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Kuma's tag set: every value of every inbound (and gateway) tag, keys
/// sorted, values of one key sorted and comma-joined.
fn tags(dataplane: &Value) -> String {
    let mut set: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let gateway = dataplane.get("networking").and_then(|n| n.get("gateway"));
    let tag_maps = inbounds(dataplane)
        .iter()
        .chain(gateway)
        .filter_map(|i| i.get("tags").and_then(Value::as_object));
    for tags in tag_maps {
        for (k, v) in tags {
            set.entry(k.clone())
                .or_default()
                .insert(v.as_str().unwrap_or("").to_string());
        }
    }
    set.into_iter()
        .map(|(k, values)| format!("{k}={}", values.into_iter().collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Online when a subscription is connected and every inbound is ready;
/// Partially degraded when only some are; Offline otherwise. Notes name the
/// inbounds that are not ready.
fn status(dataplane: &Value, subscriptions: &[Value]) -> (&'static str, Vec<String>) {
    let mut notes = Vec::new();
    let inbounds = inbounds(dataplane);
    for inbound in inbounds {
        let unhealthy = inbound
            .get("health")
            .is_some_and(|h| h.get("ready").and_then(Value::as_bool) != Some(true));
        let not_ready = inbound.get("state").and_then(Value::as_str) == Some("NotReady");
        if unhealthy || not_ready {
            notes.push(format!(
                "inbound[port={},svc={}] is not ready",
                inbound.get("port").and_then(Value::as_u64).unwrap_or(0),
                text(inbound, &["tags", "kuma.io/service"])
            ));
        }
    }
    let online = subscriptions.iter().any(|s| {
        s.get("connectTime").is_some_and(|t| !t.is_null())
            && s.get("disconnectTime").is_none_or(Value::is_null)
    });
    let status = if !online || (!inbounds.is_empty() && notes.len() == inbounds.len()) {
        "Offline"
    } else if notes.is_empty() {
        "Online"
    } else {
        "Partially degraded"
    };
    (status, notes)
}

#[cfg(test)]
mod tests;
