//! `GET /`, `GET /config`, `GET /_resources`, `GET /policies`.

use axum::Json;
use axum::extract::State;
use kuma_api::{Kind, Scope};
use serde_json::{Value, json};

use super::ApiState;

/// The Kuma release whose API this server speaks.
pub const KUMA_VERSION: &str = "2.14.0";

/// Facts about this process shown by `GET /`.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub hostname: String,
    pub instance_id: String,
    pub cluster_id: String,
}

impl ServerInfo {
    pub fn detect() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let id = random_hex(16);
        Self {
            instance_id: format!("{hostname}-{}", &id[..4]),
            cluster_id: format!(
                "{}-{}-{}-{}-{}",
                &id[..8],
                &id[8..12],
                &id[12..16],
                &id[16..20],
                &id[20..32]
            ),
            hostname,
        }
    }
}

/// Random enough for ids that only need to differ between processes.
fn random_hex(bytes: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < bytes * 2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    out.truncate(bytes * 2);
    out
}

pub async fn index(State(state): State<ApiState>) -> Json<Value> {
    let info = &state.info;
    Json(json!({
        "hostname": info.hostname,
        "tagline": "Kuma",
        "product": "Kuma",
        "version": KUMA_VERSION,
        "instanceId": info.instance_id,
        "clusterId": info.cluster_id,
        "gui": "The gui is available at /gui",
    }))
}

pub async fn config(State(state): State<ApiState>) -> Json<Value> {
    Json(serde_json::to_value(state.config.sanitized()).unwrap_or(Value::Null))
}

pub async fn resource_types() -> Json<Value> {
    let mut kinds: Vec<Kind> = Kind::ALL.to_vec();
    kinds.sort_by_key(|k| k.name());
    let resources: Vec<Value> = kinds
        .into_iter()
        .map(|kind| {
            let d = kind.descriptor();
            let mut entry = json!({
                "name": d.name,
                "path": d.plural,
                "scope": match d.scope { Scope::Global => "Global", Scope::Mesh => "Mesh" },
                "readOnly": false,
                "singularDisplayName": display_name(d.name),
                "pluralDisplayName": plural_display_name(kind),
                "includeInFederation": include_in_federation(kind),
            });
            if let Some(short) = d.short_name {
                entry["shortName"] = json!(short);
            }
            if d.is_policy {
                let (from, to, rules) = directions(kind);
                entry["policy"] = json!({
                    "isTargetRef": true,
                    "hasFromTargetRef": from,
                    "hasToTargetRef": to,
                    "hasRulesTargetRef": rules,
                    "isFromAsRules": from && rules,
                });
            }
            entry
        })
        .collect();
    Json(json!({ "resources": resources }))
}

pub async fn policies() -> Json<Value> {
    let mut kinds: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| k.is_policy())
        .collect();
    kinds.sort_by_key(|k| k.name());
    let policies: Vec<Value> = kinds
        .into_iter()
        .map(|kind| {
            let (from, to, rules) = directions(kind);
            json!({
                "name": kind.name(),
                "readOnly": false,
                "path": kind.plural(),
                "singularDisplayName": display_name(kind.name()),
                "pluralDisplayName": plural_display_name(kind),
                "isExperimental": false,
                "isTargetRefBased": true,
                "isInbound": from || rules,
                "isOutbound": to,
            })
        })
        .collect();
    Json(json!({ "policies": policies }))
}

/// Which sections a policy kind has: (from, to, rules).
fn directions(kind: Kind) -> (bool, bool, bool) {
    match kind {
        Kind::MeshTrafficPermission | Kind::MeshFaultInjection | Kind::MeshRateLimit => {
            (true, kind != Kind::MeshTrafficPermission, true)
        }
        Kind::MeshTimeout | Kind::MeshAccessLog => (true, true, true),
        Kind::MeshTLS => (true, false, true),
        Kind::MeshHTTPRoute | Kind::MeshTCPRoute => (false, true, false),
        Kind::MeshCircuitBreaker => (true, true, true),
        Kind::MeshRetry | Kind::MeshHealthCheck | Kind::MeshLoadBalancingStrategy => {
            (false, true, false)
        }
        _ => (false, false, false),
    }
}

/// Kinds a standalone zone would send to a global control plane.
fn include_in_federation(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::Dataplane | Kind::Zone | Kind::ZoneIngress | Kind::ZoneEgress | Kind::MeshService
    )
}

/// `MeshHTTPRoute` -> `Mesh HTTP Route`: words split at case changes.
fn display_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev_lower = chars[i - 1].is_ascii_lowercase();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev_lower || (next_lower && chars[i - 1].is_ascii_uppercase()) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

/// The display name with its last word in the plural the API path uses.
fn plural_display_name(kind: Kind) -> String {
    let singular = display_name(kind.name());
    let lower = kind.name().to_ascii_lowercase();
    let plural = kind.plural().replace('-', "");
    // The API plural shares a prefix with the lowercase name; what differs is the ending.
    let common = lower
        .chars()
        .zip(plural.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let kept: usize = singular
        .char_indices()
        .filter(|(_, c)| *c != ' ')
        .nth(common)
        .map(|(i, _)| i)
        .unwrap_or(singular.len());
    format!("{}{}", &singular[..kept], &plural[common..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_split_words() {
        assert_eq!(display_name("MeshTimeout"), "Mesh Timeout");
        assert_eq!(display_name("MeshHTTPRoute"), "Mesh HTTP Route");
        assert_eq!(plural_display_name(Kind::MeshTimeout), "Mesh Timeouts");
        assert_eq!(plural_display_name(Kind::MeshRetry), "Mesh Retries");
        assert_eq!(plural_display_name(Kind::Mesh), "Meshes");
    }
}
