//! The golden scenarios (`tests/golden/*.input.yaml`): a header document
//! naming the proxy, its mesh (`default` when absent) and optionally its
//! identity among the fixtures, then the resources a user could apply.

use std::path::{Path, PathBuf};

use kuma_api::{ResourceDocument, yaml_documents};
use kuma_xds::ProxyResources;
use kuma_xds::generate::{MeshSnapshot, ProxyIdentity, generate_proxy_with_identity};
use serde_json::Value;

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every scenario's input file, in name order.
pub fn inputs() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".input.yaml"))
        .collect();
    inputs.sort();
    inputs
}

/// The identity `name` (`mtls/web`) from the fixtures beside the scenarios.
fn identity(name: &str) -> ProxyIdentity {
    let dir = golden_dir();
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let ca = Path::new(name).with_file_name("ca.pem");
    ProxyIdentity {
        cert_chain_pem: read(dir.join(format!("{name}.pem"))),
        private_key_pem: read(dir.join(format!("{name}.key"))),
        ca_pems: vec![read(dir.join(ca))],
    }
}

/// What the scenario's proxy receives, built from scratch (snapshot
/// included).
pub fn generate(input: &Path) -> ProxyResources {
    let text = std::fs::read_to_string(input).expect("readable input");
    generate_text(&text, &input.display().to_string())
}

/// [`generate`] for a scenario's text; `origin` names it in failures.
pub fn generate_text(text: &str, origin: &str) -> ProxyResources {
    let docs = yaml_documents(text).expect("valid YAML");
    let (header, resources) = docs.split_first().expect("a header document");
    let field = |k: &str| header.get(k).and_then(Value::as_str).map(str::to_string);
    let proxy = field("proxy").expect("header names the proxy");
    let mesh = field("mesh").unwrap_or_else(|| "default".to_string());
    let mut builder = MeshSnapshot::builder(&mesh);
    for value in resources {
        let doc = ResourceDocument::from_json(value.clone()).expect("a Kuma resource");
        // Scenarios are what a user could apply: they must be valid.
        doc.validate()
            .unwrap_or_else(|e| panic!("{origin}: {} is invalid: {e:?}", doc.name));
        builder.add(doc.mesh.as_deref(), &doc.name, &doc.labels, doc.spec);
    }
    let snapshot = builder.build();
    let identity = field("identity").map(|name| identity(&name));
    generate_proxy_with_identity(&snapshot, &proxy, identity.as_ref()).expect("generates")
}
