//! Test helpers: read a YAML document, check it round-trips and validates.

use crate::ApiError;
use crate::resource::ResourceDocument;

/// One violation, comparable with `("spec.x", "message")`.
#[derive(Debug)]
pub struct Found(pub String, pub String);

impl PartialEq<(&str, &str)> for Found {
    fn eq(&self, other: &(&str, &str)) -> bool {
        self.0 == other.0 && self.1 == other.1
    }
}

/// The document parses, prints back to what was read, and is valid.
pub fn assert_valid_round_trip(yaml: &str) {
    let doc = ResourceDocument::from_yaml(yaml).expect("parses");
    let json = doc.clone().into_resource(chrono::Utc::now()).to_json();
    let again = ResourceDocument::from_json(json.clone()).expect("parses again");
    assert_eq!(doc, again, "round trip changed the document");
    let original: serde_json::Value = serde_yaml::from_str(yaml).expect("yaml");
    assert_eq!(
        json["spec"], original["spec"],
        "spec did not print back as written"
    );
    if let Err(e) = doc.validate() {
        panic!("expected valid, got {:?}", e.violations());
    }
}

/// The violations of a document that parses.
pub fn violations(yaml: &str) -> Vec<Found> {
    let doc = ResourceDocument::from_yaml(yaml).expect("parses");
    match doc.validate() {
        Ok(()) => vec![],
        Err(ApiError::Invalid(v)) => v.into_iter().map(|v| Found(v.field, v.message)).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}
