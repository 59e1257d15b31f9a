//! Golden files: each `tests/golden/<scenario>.input.yaml` (a header
//! document naming the proxy, then Kuma Universal resources) must generate
//! exactly `<scenario>.golden.yaml`. Regenerate with `UPDATE_GOLDEN=1`.
//!
//! A header `identity: mtls/web` gives the proxy the mTLS identity
//! `mtls/web.pem` + `mtls/web.key`, trusting `mtls/ca.pem` (test fixtures,
//! valid for a century, so that Envoy accepts them in `generate_envoy`).

use std::path::{Path, PathBuf};

use kuma_api::{ResourceDocument, yaml_documents};
use kuma_xds::generate::{MeshSnapshot, ProxyIdentity, generate_proxy_with_identity};
use kuma_xds::golden::{check_golden, render_proxy};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The identity `name` (`mtls/web`) from the fixtures beside the scenarios.
fn identity(name: &str) -> ProxyIdentity {
    let dir = golden_dir();
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let ca = Path::new(name).with_file_name("ca.pem");
    ProxyIdentity {
        cert_chain_pem: read(dir.join(format!("{name}.pem"))),
        private_key_pem: read(dir.join(format!("{name}.key"))),
        ca_pems: vec![read(dir.join(ca))],
    }
}

/// The YAML of what the scenario's proxy receives.
fn run_scenario(input: &Path) -> String {
    let text = std::fs::read_to_string(input).expect("readable input");
    let docs = yaml_documents(&text).expect("valid YAML");
    let (header, resources) = docs.split_first().expect("a header document");
    let field = |k: &str| header.get(k).and_then(Value::as_str).map(str::to_string);
    let proxy = field("proxy").expect("header names the proxy");
    let mesh = field("mesh").unwrap_or_else(|| "default".to_string());

    let mut builder = MeshSnapshot::builder(&mesh);
    for value in resources {
        let doc = ResourceDocument::from_json(value.clone()).expect("a Kuma resource");
        // Scenarios are what a user could apply: they must be valid.
        doc.validate()
            .unwrap_or_else(|e| panic!("{}: {} is invalid: {e:?}", input.display(), doc.name));
        builder.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    let snapshot = builder.build();
    let identity = field("identity").map(|name| identity(&name));
    let resources =
        generate_proxy_with_identity(&snapshot, &proxy, identity.as_ref()).expect("generates");
    render_proxy(&resources).expect("renders")
}

#[test]
fn scenarios_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".input.yaml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 7, "scenarios missing: {inputs:?}");
    let mut failures = Vec::new();
    for input in &inputs {
        let actual = run_scenario(input);
        let golden = PathBuf::from(
            input
                .to_string_lossy()
                .replace(".input.yaml", ".golden.yaml"),
        );
        if let Err(e) = check_golden(&golden, &actual, update) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_changed_output_fails_with_a_diff() {
    let input = golden_dir().join("http.input.yaml");
    let golden = golden_dir().join("http.golden.yaml");
    let actual = run_scenario(&input).replace("10.0.0.2", "10.0.0.99");
    let err = check_golden(&golden, &actual, false).expect_err("differs");
    let text = err.to_string();
    assert!(text.contains("- ") && text.contains("10.0.0.99"), "{text}");
}
