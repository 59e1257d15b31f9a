//! Printing resources: tables with Kuma's columns per kind, YAML and JSON.
//!
//! Rows are read from the API's JSON, not from typed specs, so a field the
//! server adds never stops kumactl from printing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use kuma_api::{Kind, Scope};
use serde_json::{Value, json};

use crate::client::ResourcePage;
use crate::table::{Table, age};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Yaml,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "yaml" => Ok(Format::Yaml),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown output format {other:?}")),
        }
    }
}

/// The table columns for `kind`.
pub fn headers(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Mesh => &["NAME", "mTLS", "LOCALITY", "ZONEEGRESS", "AGE"],
        Kind::Dataplane => &["MESH", "NAME", "TAGS", "ADDRESS", "AGE"],
        _ => match kind.scope() {
            Scope::Mesh => &["MESH", "NAME", "AGE"],
            Scope::Global => &["NAME", "AGE"],
        },
    }
}

/// One table row for one resource (as the API returns it).
pub fn row(kind: Kind, item: &Value, now: DateTime<Utc>) -> Vec<String> {
    let name = str_at(item, &["name"]);
    let mesh = str_at(item, &["mesh"]);
    let age = item
        .get("modificationTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| age(t.with_timezone(&Utc), now))
        .unwrap_or_default();
    match kind {
        Kind::Mesh => vec![
            name,
            mesh_mtls(item),
            on_off(bool_at(item, &["routing", "localityAwareLoadBalancing"])),
            on_off(bool_at(item, &["routing", "zoneEgress"])),
            age,
        ],
        Kind::Dataplane => vec![
            mesh,
            name,
            dataplane_tags(item),
            dataplane_address(item),
            age,
        ],
        _ => match kind.scope() {
            Scope::Mesh => vec![mesh, name, age],
            Scope::Global => vec![name, age],
        },
    }
}

/// `type/name` of the enabled CA backend, or `off`.
fn mesh_mtls(mesh: &Value) -> String {
    let enabled = str_at(mesh, &["mtls", "enabledBackend"]);
    if enabled.is_empty() {
        return "off".into();
    }
    let backend_type = mesh
        .pointer("/mtls/backends")
        .and_then(Value::as_array)
        .and_then(|backends| {
            backends
                .iter()
                .find(|b| b.get("name").and_then(Value::as_str) == Some(enabled.as_str()))
        })
        .map(|b| str_at(b, &["type"]))
        .unwrap_or_default();
    format!("{backend_type}/{enabled}")
}

/// Every tag of every inbound (and of the gateway), `key=v1,v2` sorted.
fn dataplane_tags(dp: &Value) -> String {
    let mut tags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut collect = |t: Option<&Value>| {
        if let Some(Value::Object(map)) = t {
            for (k, v) in map {
                if let Some(v) = v.as_str() {
                    tags.entry(k.clone()).or_default().insert(v.to_string());
                }
            }
        }
    };
    if let Some(inbounds) = dp.pointer("/networking/inbound").and_then(Value::as_array) {
        for inbound in inbounds {
            collect(inbound.get("tags"));
        }
    }
    collect(dp.pointer("/networking/gateway/tags"));
    tags.iter()
        .map(|(k, vs)| format!("{k}={}", vs.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The advertised address if set, else the address.
fn dataplane_address(dp: &Value) -> String {
    let advertised = str_at(dp, &["networking", "advertisedAddress"]);
    if advertised.is_empty() {
        str_at(dp, &["networking", "address"])
    } else {
        advertised
    }
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.into()
}

fn str_at(v: &Value, path: &[&str]) -> String {
    walk(v, path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    walk(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn walk<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

/// A list as a table; `next_offset` adds Kuma's hint for the next page.
pub fn list_table(
    kind: Kind,
    items: &[Value],
    next_offset: Option<&str>,
    now: DateTime<Utc>,
) -> Table {
    let mut table = Table::new(headers(kind));
    for item in items {
        table.row(row(kind, item, now));
    }
    table.footer = next_offset.map(|offset| {
        format!("Rerun command with --offset={offset} argument to retrieve more resources")
    });
    table
}

/// Kuma's list shape: `{"total", "items", "next"}`.
pub fn list_value(page: &ResourcePage) -> Value {
    json!({
        "total": page.total,
        "items": page.items,
        "next": page.next,
    })
}

pub fn to_yaml(value: &Value) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(value)
}

/// Indented JSON with a trailing newline.
pub fn to_json(value: &Value) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value).map(|s| s + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn mesh_rows_show_ca_backend_locality_and_egress() {
        let mesh = json!({
            "type": "Mesh", "name": "default",
            "modificationTime": "2024-01-01T22:00:00Z",
            "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
            "routing": {"localityAwareLoadBalancing": true}
        });
        assert_eq!(
            row(Kind::Mesh, &mesh, now()),
            vec!["default", "builtin/ca-1", "on", "off", "2h"]
        );
        let plain = json!({"type": "Mesh", "name": "m2"});
        assert_eq!(
            row(Kind::Mesh, &plain, now()),
            vec!["m2", "off", "off", "off", ""]
        );
    }

    #[test]
    fn dataplane_rows_merge_inbound_tags_and_prefer_advertised_address() {
        let dp = json!({
            "type": "Dataplane", "mesh": "default", "name": "web-1",
            "modificationTime": "2024-01-01T23:59:55Z",
            "networking": {
                "address": "10.0.0.1", "advertisedAddress": "1.2.3.4",
                "inbound": [
                    {"port": 80, "tags": {"kuma.io/service": "web", "version": "v2"}},
                    {"port": 81, "tags": {"kuma.io/service": "web", "version": "v1"}}
                ]
            }
        });
        assert_eq!(
            row(Kind::Dataplane, &dp, now()),
            vec![
                "default",
                "web-1",
                "kuma.io/service=web version=v1,v2",
                "1.2.3.4",
                "5s"
            ]
        );
    }

    #[test]
    fn other_kinds_use_basic_columns_by_scope() {
        assert_eq!(headers(Kind::MeshTimeout), &["MESH", "NAME", "AGE"]);
        assert_eq!(headers(Kind::Zone), &["NAME", "AGE"]);
        assert_eq!(headers(Kind::Secret), &["MESH", "NAME", "AGE"]);
    }

    #[test]
    fn list_table_renders_with_pagination_hint() {
        let items = vec![
            json!({"mesh": "default", "name": "t1", "modificationTime": "2024-01-01T00:00:00Z"}),
        ];
        let text = list_table(Kind::MeshTimeout, &items, Some("1"), now()).render();
        assert_eq!(
            text,
            "MESH      NAME   AGE\ndefault   t1     1d\n\nRerun command with --offset=1 argument to retrieve more resources\n"
        );
    }

    #[test]
    fn formats_parse_and_reject_unknown() {
        assert_eq!("yaml".parse::<Format>(), Ok(Format::Yaml));
        assert_eq!(
            "xml".parse::<Format>(),
            Err("unknown output format \"xml\"".to_string())
        );
    }

    #[test]
    fn list_value_has_kumas_shape() {
        let page = ResourcePage {
            total: 1,
            items: vec![json!({"name": "a"})],
            next: None,
        };
        assert_eq!(
            to_json(&list_value(&page)).unwrap(),
            "{\n  \"total\": 1,\n  \"items\": [\n    {\n      \"name\": \"a\"\n    }\n  ],\n  \"next\": null\n}\n"
        );
    }
}
