//! Real Envoy accepts what we generate: every golden scenario's listeners
//! and clusters, loaded as static resources beside our bootstrap, pass
//! `envoy --mode validate`. This also proves the golden YAML is faithful to
//! the protobufs (Envoy reads it back as the same messages).
//!
//! mTLS scenarios reference their secrets over SDS; here the same secrets
//! are loaded as static resources and the references made static, since
//! SDS over ADS needs a server (the secrets themselves are checked too:
//! Envoy parses the certificates and keys).
//!
//! Skipped, with a notice, when no Envoy binary is around (a failure instead
//! under `KUMA_REQUIRE_ENVOY=1`, as the project's test command runs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use kuma_xds::bootstrap::{BootstrapParams, bootstrap};
use kuma_xds::testing::envoy_binary;
use serde_json::Value;

fn validate(envoy: &Path, config: &Value, label: &str) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!(
        "kuma-xds-validate-{}-{label}.json",
        std::process::id()
    ));
    std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    std::fs::remove_file(&path).ok();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{label}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// SDS references by name only: Envoy then looks the secret up among the
/// static ones.
fn without_sds_sources(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in [
                "tls_certificate_sds_secret_configs",
                "validation_context_sds_secret_config",
            ] {
                if let Some(v) = map.get_mut(key) {
                    strip_sds_config(v);
                }
            }
            map.values_mut().for_each(without_sds_sources);
        }
        Value::Array(items) => items.iter_mut().for_each(without_sds_sources),
        _ => {}
    }
}

fn strip_sds_config(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("sds_config");
        }
        Value::Array(items) => items.iter_mut().for_each(strip_sds_config),
        _ => {}
    }
}

fn read_golden(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("golden");
    serde_yaml::from_str(&text).expect("golden is YAML")
}

/// Our bootstrap with a scenario's resources as static resources.
fn static_config(resources: &Value) -> Value {
    let mut config = bootstrap(&BootstrapParams::new("default", "p", "s", "127.0.0.1"));
    let statics = &mut config["static_resources"];
    if let Some(Value::Array(clusters)) = resources.get("clusters")
        && let Some(Value::Array(all)) = statics.get_mut("clusters")
    {
        all.extend(clusters.iter().cloned());
    }
    if let Some(listeners) = resources.get("listeners") {
        statics["listeners"] = listeners.clone();
    }
    if let Some(secrets) = resources.get("secrets") {
        statics["secrets"] = secrets.clone();
        without_sds_sources(statics);
    }
    config
}

#[test]
fn envoy_accepts_every_golden_scenario() {
    let Some(envoy) = envoy_binary() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut goldens: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".golden.yaml"))
        .collect();
    goldens.sort();
    assert!(!goldens.is_empty());
    let with_secrets = goldens
        .iter()
        .filter(|g| std::fs::read_to_string(g).is_ok_and(|t| t.contains("\nsecrets:\n")))
        .count();
    assert!(with_secrets >= 6, "mTLS scenarios missing");
    let mut failures = Vec::new();
    for golden in &goldens {
        let config = static_config(&read_golden(golden));
        let label = golden
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Err(e) = validate(&envoy, &config, &label) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn envoy_rejects_a_broken_listener() {
    // The check above must be able to fail: an HCM without a route config is invalid.
    let Some(envoy) = envoy_binary() else {
        return;
    };
    let mut config = bootstrap(&BootstrapParams::new("default", "p", "s", "127.0.0.1"));
    config["static_resources"]["listeners"] = serde_json::json!([{
        "name": "broken",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "x"
            }
        }]}]
    }]);
    assert!(validate(&envoy, &config, "broken").is_err());
}

#[test]
fn envoy_rejects_a_broken_identity() {
    // Secrets are checked for real: a key that does not parse fails validation.
    let Some(envoy) = envoy_binary() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mtls-strict.golden.yaml");
    let mut resources = read_golden(&path);
    let key = resources
        .pointer_mut("/secrets/0/tls_certificate/private_key/inline_string")
        .expect("identity key in the scenario");
    *key = Value::String(
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".into(),
    );
    let config = static_config(&resources);
    assert!(validate(&envoy, &config, "broken-identity").is_err());
    // ...while the scenario as generated passes.
    let config = static_config(&read_golden(&path));
    validate(&envoy, &config, "identity").expect("valid");
}
