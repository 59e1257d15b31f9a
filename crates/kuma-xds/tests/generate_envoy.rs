//! Real Envoy accepts what we generate: every golden scenario's listeners
//! and clusters, loaded as static resources beside our bootstrap, pass
//! `envoy --mode validate`. This also proves the golden YAML is faithful to
//! the protobufs (Envoy reads it back as the same messages).
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
    let mut failures = Vec::new();
    for golden in &goldens {
        let text = std::fs::read_to_string(golden).expect("golden");
        let resources: Value = serde_yaml::from_str(&text).expect("golden is YAML");
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
