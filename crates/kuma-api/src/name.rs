//! Rules for resource names and labels.

use crate::kind::Kind;
use crate::validation::{FieldPath, Violations};

/// Checks a resource name the way Kuma does in Universal mode.
pub fn validate_name(_kind: Kind, name: &str, v: &mut Violations) {
    let path = FieldPath::of("name");
    if name.is_empty() {
        v.add(&path, "cannot be empty");
        return;
    }
    if name.len() > 253 {
        v.add(&path, "value length must less or equal 253");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        v.add(
            &path,
            "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols.",
        );
    }
}

/// Checks one label key and value.
pub fn validate_label(key: &str, _value: &str, v: &mut Violations) {
    if key.is_empty() {
        v.add(&FieldPath::of("labels"), "label key cannot be empty");
    }
}
