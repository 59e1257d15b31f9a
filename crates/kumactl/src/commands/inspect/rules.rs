//! `kumactl inspect dataplane NAME --type=policies`: the `_rules` answer as
//! a tree, grouped like Kuma's policy listing (DATAPLANE, INBOUND ...,
//! OUTBOUND ...), with each policy kind's merged conf and the policies it
//! came from, in merge order, then the MeshHTTPRoute matches by hash (what
//! a `__rule-matches-hash__` matcher and an Envoy route name stand for).

use std::collections::BTreeMap;

use serde_json::Value;

/// Where a rule applies; the order sections are printed in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Dataplane,
    Inbound {
        port: u64,
        label: String,
    },
    /// An outbound by real destination (Mesh, MeshService, ...).
    Resource(String),
    /// An outbound by destination tags.
    Tags(String),
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Section::Dataplane => write!(f, "DATAPLANE"),
            Section::Inbound { label, .. } => write!(f, "INBOUND {label}"),
            Section::Resource(r) => write!(f, "OUTBOUND {r}"),
            Section::Tags(t) => write!(f, "OUTBOUND {t}"),
        }
    }
}

/// One merged conf of one policy kind.
struct Entry {
    kind: String,
    /// What inside the section it is for (`from kuma.io/service=web`).
    qualifier: Option<String>,
    conf: Value,
    origins: Vec<String>,
}

/// The tree for an `InspectRulesResponse`.
pub fn render(response: &Value) -> String {
    let mut sections: BTreeMap<Section, Vec<Entry>> = BTreeMap::new();
    let mut warnings = Vec::new();
    for rule in array(&response["rules"]) {
        let kind = text(&rule["type"]);
        if let Some(proxy) = rule.get("proxyRule").filter(|p| !p.is_null()) {
            sections.entry(Section::Dataplane).or_default().push(Entry {
                kind: kind.clone(),
                qualifier: None,
                conf: proxy["conf"].clone(),
                origins: array(&proxy["origin"]).iter().map(meta_name).collect(),
            });
        }
        for from in array(&rule["fromRules"]) {
            let section = inbound_section(&from["inbound"]);
            for r in array(&from["rules"]) {
                sections.entry(section.clone()).or_default().push(Entry {
                    kind: kind.clone(),
                    qualifier: Some(format!("from {}", matchers(&r["matchers"]))),
                    conf: r["conf"].clone(),
                    origins: array(&r["origin"]).iter().map(meta_name).collect(),
                });
            }
        }
        for entry in array(&rule["inboundRules"]) {
            let section = inbound_section(&entry["inbound"]);
            for r in array(&entry["rules"]) {
                let qualifier = match r.get("match").filter(|m| !m.is_null()) {
                    Some(m) => format!("rule match {m}"),
                    None => "rule (all callers)".to_string(),
                };
                sections.entry(section.clone()).or_default().push(Entry {
                    kind: kind.clone(),
                    qualifier: Some(qualifier),
                    conf: single(&r["conf"]),
                    origins: array(&r["origin"]).iter().map(rule_origin).collect(),
                });
            }
        }
        for r in array(&rule["toResourceRules"]) {
            let meta = &r["resourceMeta"];
            let mut target = format!("{} {}", text(&meta["type"]), text(&meta["name"]));
            let section_name = text(&r["resourceSectionName"]);
            if !section_name.is_empty() {
                target = format!("{target}:{section_name}");
            }
            sections
                .entry(Section::Resource(target))
                .or_default()
                .push(Entry {
                    kind: kind.clone(),
                    qualifier: None,
                    conf: single(&r["conf"]),
                    origins: array(&r["origin"]).iter().map(rule_origin).collect(),
                });
        }
        for r in array(&rule["toRules"]) {
            sections
                .entry(Section::Tags(matchers(&r["matchers"])))
                .or_default()
                .push(Entry {
                    kind: kind.clone(),
                    qualifier: None,
                    conf: r["conf"].clone(),
                    origins: array(&r["origin"]).iter().map(meta_name).collect(),
                });
        }
        for w in array(&rule["warnings"]) {
            warnings.push(format!("{kind}: {}", text(w)));
        }
    }

    let mut out = String::new();
    for (section, entries) in &sections {
        out.push_str(&format!("{section}:\n"));
        for e in entries {
            match &e.qualifier {
                Some(q) => out.push_str(&format!("  {} {q}\n", e.kind)),
                None => out.push_str(&format!("  {}\n", e.kind)),
            }
            out.push_str(&format!("    conf: {}\n", e.conf));
            out.push_str(&format!("    origin: {}\n", e.origins.join(", ")));
        }
        out.push('\n');
    }
    let http_matches = array(&response["httpMatches"]);
    if !http_matches.is_empty() {
        out.push_str("HTTP MATCHES:\n");
        for m in http_matches {
            out.push_str(&format!("  {}: {}\n", text(&m["hash"]), m["match"]));
        }
        out.push('\n');
    }
    if !warnings.is_empty() {
        out.push_str("WARNINGS:\n");
        for w in warnings {
            out.push_str(&format!("  {w}\n"));
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("No policies apply to this data plane proxy\n");
    }
    out
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Kuma wraps inbound and resource confs in a one-item list.
fn single(conf: &Value) -> Value {
    match conf.as_array().map(Vec::as_slice) {
        Some([one]) => one.clone(),
        _ => conf.clone(),
    }
}

fn meta_name(meta: &Value) -> String {
    text(&meta["name"])
}

/// `name[index]`: the policy and which of its entries.
fn rule_origin(origin: &Value) -> String {
    let name = meta_name(&origin["resourceMeta"]);
    match origin["ruleIndex"].as_u64() {
        Some(i) => format!("{name}[{i}]"),
        None => name,
    }
}

/// `kuma.io/service=web,!version=v1`, or `*` for everything.
fn matchers(list: &Value) -> String {
    let parts: Vec<String> = array(list)
        .iter()
        .map(|m| {
            let not = if m["not"].as_bool().unwrap_or(false) {
                "!"
            } else {
                ""
            };
            format!("{not}{}={}", text(&m["key"]), text(&m["value"]))
        })
        .collect();
    if parts.is_empty() {
        "*".to_string()
    } else {
        parts.join(",")
    }
}

/// `INBOUND 8080(http)`, naming the inbound or its service.
fn inbound_section(inbound: &Value) -> Section {
    let port = inbound["port"].as_u64().unwrap_or(0);
    let name = inbound["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| inbound["tags"]["kuma.io/service"].as_str())
        .unwrap_or_default();
    let label = if name.is_empty() {
        port.to_string()
    } else {
        format!("{port}({name})")
    };
    Section::Inbound { port, label }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(kind: &str, name: &str) -> Value {
        json!({"type": kind, "mesh": "default", "name": name, "labels": {}})
    }

    #[test]
    fn groups_by_where_rules_apply_with_confs_and_origins() {
        let response = json!({
            "resource": meta("Dataplane", "dp-1"),
            "httpMatches": [],
            "rules": [
                {
                    "type": "MeshTrace",
                    "proxyRule": {"conf": {"sampling": {"overall": 50}},
                                  "origin": [meta("MeshTrace", "default"), meta("MeshTrace", "override")]},
                    "toRules": [], "toResourceRules": [], "fromRules": [], "inboundRules": [],
                    "warnings": ["something odd"]
                },
                {
                    "type": "MeshTimeout",
                    "toRules": [{"matchers": [{"key": "kuma.io/service", "value": "bar", "not": false}],
                                 "conf": {"idleTimeout": "1s"}, "origin": [meta("MeshTimeout", "a")]}],
                    "toResourceRules": [{"resourceMeta": {"type": "Mesh", "mesh": "", "name": "default", "labels": {}},
                                         "resourceSectionName": "", "conf": [{"idleTimeout": "2s"}],
                                         "origin": [{"resourceMeta": meta("MeshTimeout", "a"), "ruleIndex": 0}]}],
                    "fromRules": [{"inbound": {"port": 8080, "tags": {"kuma.io/service": "foo"}},
                                   "rules": [{"matchers": [], "conf": {"idleTimeout": "3s"},
                                              "origin": [meta("MeshTimeout", "a"), meta("MeshTimeout", "b")]}]}],
                    "inboundRules": [{"inbound": {"name": "http", "port": 8080, "tags": {}},
                                      "rules": [{"conf": [{"idleTimeout": "4s"}],
                                                 "origin": [{"resourceMeta": meta("MeshTimeout", "b"), "ruleIndex": 1}]}]}],
                    "warnings": []
                }
            ]
        });
        let text = render(&response);
        let expected = "\
DATAPLANE:
  MeshTrace
    conf: {\"sampling\":{\"overall\":50}}
    origin: default, override

INBOUND 8080(foo):
  MeshTimeout from *
    conf: {\"idleTimeout\":\"3s\"}
    origin: a, b

INBOUND 8080(http):
  MeshTimeout rule (all callers)
    conf: {\"idleTimeout\":\"4s\"}
    origin: b[1]

OUTBOUND Mesh default:
  MeshTimeout
    conf: {\"idleTimeout\":\"2s\"}
    origin: a[0]

OUTBOUND kuma.io/service=bar:
  MeshTimeout
    conf: {\"idleTimeout\":\"1s\"}
    origin: a

WARNINGS:
  MeshTrace: something odd

";
        assert_eq!(text, expected, "{text}");
    }

    #[test]
    fn lists_route_matches_by_hash_after_the_rules() {
        let hash = "waFsoIISmZDTfFWYqxvY265/GASHYEWvHQTwMh/bpuU=";
        let response = json!({
            "resource": meta("Dataplane", "dp-1"),
            "httpMatches": [{"hash": hash, "match": [{"path": {"value": "/api", "type": "PathPrefix"}}]}],
            "rules": [{
                "type": "MeshTimeout",
                "toRules": [{"matchers": [{"key": "__rule-matches-hash__", "value": hash, "not": false}],
                             "conf": {"idleTimeout": "1s"}, "origin": [meta("MeshTimeout", "a")]}],
                "toResourceRules": [], "fromRules": [], "inboundRules": [], "warnings": []
            }]
        });
        let text = render(&response);
        let expected = format!(
            "\
OUTBOUND __rule-matches-hash__={hash}:
  MeshTimeout
    conf: {{\"idleTimeout\":\"1s\"}}
    origin: a

HTTP MATCHES:
  {hash}: [{{\"path\":{{\"value\":\"/api\",\"type\":\"PathPrefix\"}}}}]

"
        );
        assert_eq!(text, expected, "{text}");
    }

    #[test]
    fn says_so_when_nothing_applies() {
        let text =
            render(&json!({"resource": meta("Dataplane", "dp"), "rules": [], "httpMatches": []}));
        assert_eq!(text, "No policies apply to this data plane proxy\n");
    }
}
