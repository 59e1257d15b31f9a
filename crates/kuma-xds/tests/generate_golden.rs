//! Golden files: each `tests/golden/<scenario>.input.yaml` (a header
//! document naming the proxy, then Kuma Universal resources) must generate
//! exactly `<scenario>.golden.yaml`. Regenerate with `UPDATE_GOLDEN=1`.
//!
//! A header `identity: mtls/web` gives the proxy the mTLS identity
//! `mtls/web.pem` + `mtls/web.key`, trusting `mtls/ca.pem` (test fixtures,
//! valid for a century, so that Envoy accepts them in `generate_envoy`).

use std::path::{Path, PathBuf};

use kuma_xds::golden::{check_golden, render_proxy};

#[allow(dead_code)]
#[path = "support/scenario.rs"]
mod scenario;

use scenario::golden_dir;

/// The YAML of what the scenario's proxy receives.
fn run_scenario(input: &Path) -> String {
    render_proxy(&scenario::generate(input)).expect("renders")
}

#[test]
fn scenarios_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let inputs = scenario::inputs();
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
