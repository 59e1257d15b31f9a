//! Tags (`kuma.io/service: web`) and tag selectors, checked as Kuma does.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::validation::{FieldPath, Violations};

pub const SERVICE_TAG: &str = "kuma.io/service";
pub const PROTOCOL_TAG: &str = "kuma.io/protocol";
pub const ZONE_TAG: &str = "kuma.io/zone";
/// The zone of a control plane that is not part of a multi-zone
/// deployment, as Kuma names it by default.
pub const DEFAULT_ZONE: &str = "default";
pub const EXTERNAL_SERVICE_TAG: &str = "kuma.io/external-service-name";

/// Protocols a service may declare, in the order Kuma lists them.
pub const SUPPORTED_PROTOCOLS: &[&str] = &["grpc", "http", "http2", "kafka", "tcp"];

pub fn is_supported_protocol(p: &str) -> bool {
    SUPPORTED_PROTOCOLS.contains(&p)
}

/// Kuma's `Allowed values: a, b` hint.
pub fn allowed_values_hint(values: &[&str]) -> String {
    if values.is_empty() {
        "Allowed values: (none)".to_string()
    } else {
        format!("Allowed values: {}", values.join(", "))
    }
}

static TAG_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9.\-_:/]*$").expect("static regex"));
static TAG_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9.\-_:]*$").expect("static regex"));
static SELECTOR_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-zA-Z0-9.\-_:/]*|\*)$").expect("static regex"));

/// Extra requirements on a set of tags.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagRules<'a> {
    pub require_at_least_one: bool,
    pub require_service: bool,
    /// Keys that may not appear (`tag name must not be "kuma.io/service"`).
    pub forbidden_keys: &'a [&'a str],
}

/// Tags describing a proxy: values are plain (no `*`, no `/`).
pub fn validate_tags(
    path: &FieldPath,
    tags: &BTreeMap<String, String>,
    rules: TagRules<'_>,
    v: &mut Violations,
) {
    validate_key_values(path, tags, rules, false, v);
}

/// Tags selecting proxies: values may be `*` and may contain `/`.
pub fn validate_selector(
    path: &FieldPath,
    tags: &BTreeMap<String, String>,
    rules: TagRules<'_>,
    v: &mut Violations,
) {
    validate_key_values(path, tags, rules, true, v);
}

fn validate_key_values(
    path: &FieldPath,
    tags: &BTreeMap<String, String>,
    rules: TagRules<'_>,
    selector: bool,
    v: &mut Violations,
) {
    if rules.require_at_least_one && tags.is_empty() {
        v.add(path, "must have at least one tag");
    }
    // BTreeMap iterates keys sorted, the order Kuma reports them in.
    for (key, value) in tags {
        if key.is_empty() {
            v.add(path, "tag name must be non-empty");
        }
        if !TAG_NAME.is_match(key) {
            v.add(
                &path.key(key),
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            );
        }
        if rules.forbidden_keys.contains(&key.as_str()) {
            v.add(&path.key(key), format!("tag name must not be {key:?}"));
        }
        if value.is_empty() {
            v.add(&path.key(key), "tag value must be non-empty");
        }
        if selector {
            if !SELECTOR_VALUE.is_match(value) {
                v.add(
                    &path.key(key),
                    r#"tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be "*""#,
                );
            }
        } else if !TAG_VALUE.is_match(value) {
            v.add(
                &path.key(key),
                "tag value must consist of alphanumeric characters, dots, dashes and underscores",
            );
        }
    }
    if rules.require_service && !tags.contains_key(SERVICE_TAG) {
        v.add(path, format!("mandatory tag {SERVICE_TAG:?} is missing"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reports_every_bad_tag_in_key_order() {
        let mut v = Violations::new();
        let path = FieldPath::of("tags");
        validate_tags(
            &path,
            &tags(&[("version", ""), ("app", "we b"), ("bad key!", "x")]),
            TagRules {
                require_service: true,
                ..Default::default()
            },
            &mut v,
        );
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    r#"tags["app"]"#,
                    "tag value must consist of alphanumeric characters, dots, dashes and underscores"
                ),
                (
                    r#"tags["bad key!"]"#,
                    "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"
                ),
                (r#"tags["version"]"#, "tag value must be non-empty"),
                ("tags", r#"mandatory tag "kuma.io/service" is missing"#),
            ]
        );
    }

    #[test]
    fn selectors_accept_wildcards() {
        let mut v = Violations::new();
        let path = FieldPath::of("match");
        validate_selector(
            &path,
            &tags(&[(SERVICE_TAG, "*")]),
            TagRules::default(),
            &mut v,
        );
        assert!(v.is_empty());
        validate_tags(
            &path,
            &tags(&[(SERVICE_TAG, "*")]),
            TagRules::default(),
            &mut v,
        );
        assert_eq!(v.len(), 1);
    }
}
