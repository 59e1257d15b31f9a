//! Real Envoy accepts what we generate: every golden scenario's listeners
//! and clusters, loaded as static resources beside our bootstrap, pass
//! `envoy --mode validate`. This also proves the golden YAML is faithful to
//! the protobufs (Envoy reads it back as the same messages).
//!
//! Skipped, with a notice, when no Envoy binary is around.

use std::path::{Path, PathBuf};
use std::process::Command;

use kuma_xds::bootstrap::{BootstrapParams, bootstrap};
use serde_json::Value;

/// Envoy from `ENVOY_BIN`, the PATH, or the workspace's `.venv`.
fn envoy_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("envoy"));
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    on_path.chain([venv]).find(|p| p.is_file())
}

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
        eprintln!(
            "NOTICE: envoy not found (ENVOY_BIN, PATH, .venv); generated config not validated"
        );
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
        eprintln!("NOTICE: envoy not found; negative validation skipped");
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
