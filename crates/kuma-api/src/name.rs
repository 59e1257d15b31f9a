//! Rules for resource names and labels, as Kuma's API server applies them.

use std::sync::LazyLock;

use regex::Regex;

use crate::kind::Kind;
use crate::kinds::address::is_rfc1123_subdomain;
use crate::validation::{FieldPath, Violations};

const NAME_MESSAGE: &str = "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Mesh names become parts of other names (secrets, SNI), so they are shorter.
const MAX_MESH_NAME: usize = 63;

/// Checks a resource name the way Kuma does in Universal mode: a lowercase
/// RFC 1123 subdomain of at most 253 characters (63 for a Mesh).
pub fn validate_name(kind: Kind, name: &str, v: &mut Violations) {
    let path = FieldPath::of("name");
    if name.is_empty() {
        v.add(&path, "cannot be empty");
        return;
    }
    if name.len() > 253 {
        v.add(&path, "value length must less or equal 253");
    } else if !is_rfc1123_subdomain(name) {
        v.add(&path, NAME_MESSAGE);
    }
    if kind == Kind::Mesh && name.len() > MAX_MESH_NAME {
        v.add(&path, "cannot be longer than 63 characters");
    }
}

/// The characters Kuma accepts in a resource's `mesh` field.
pub fn is_valid_mesh_reference(mesh: &str) -> bool {
    mesh.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("static regex")
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("static regex")
});

const NAME_PART_MESSAGE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const PREFIX_MESSAGE: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Checks one label as Kubernetes does: the key is an optionally prefixed
/// qualified name (`kuma.io/zone`), the value at most 63 label characters.
/// Violations are reported at `labels["<key>"]`.
pub fn validate_label(key: &str, value: &str, v: &mut Violations) {
    let path = FieldPath::of("labels").key(key);
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                v.add(&path, "prefix part must be non-empty");
            } else {
                if prefix.len() > 253 {
                    v.add(&path, "prefix part must be no more than 253 characters");
                }
                if !is_rfc1123_subdomain(prefix) {
                    v.add(&path, PREFIX_MESSAGE);
                }
            }
            *name
        }
        _ => {
            v.add(
                &path,
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            );
            ""
        }
    };
    if parts.len() <= 2 {
        if name.is_empty() {
            v.add(&path, "name part must be non-empty");
        } else {
            if name.len() > 63 {
                v.add(&path, "name part must be no more than 63 characters");
            }
            if !QUALIFIED_NAME.is_match(name) {
                v.add(&path, NAME_PART_MESSAGE);
            }
        }
    }
    if value.len() > 63 {
        v.add(&path, "must be no more than 63 characters");
    }
    if !LABEL_VALUE.is_match(value) {
        v.add(&path, VALUE_MESSAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_violations(kind: Kind, name: &str) -> Vec<String> {
        let mut v = Violations::new();
        validate_name(kind, name, &mut v);
        v.into_vec().into_iter().map(|x| x.message).collect()
    }

    #[test]
    fn names_are_rfc1123_subdomains() {
        assert!(name_violations(Kind::Dataplane, "backend-01.zone-a").is_empty());
        assert_eq!(
            name_violations(Kind::Dataplane, ""),
            vec!["cannot be empty"]
        );
        assert_eq!(
            name_violations(Kind::Dataplane, "Web_1"),
            vec![NAME_MESSAGE]
        );
        assert_eq!(name_violations(Kind::Dataplane, "-web"), vec![NAME_MESSAGE]);
        assert_eq!(
            name_violations(Kind::Dataplane, &"a".repeat(254)),
            vec!["value length must less or equal 253"]
        );
        assert!(name_violations(Kind::Dataplane, &"a".repeat(64)).is_empty());
        assert_eq!(
            name_violations(Kind::Mesh, &"a".repeat(64)),
            vec!["cannot be longer than 63 characters"]
        );
    }

    #[test]
    fn labels_follow_kubernetes_rules() {
        let mut v = Violations::new();
        validate_label("kuma.io/zone", "zone-1", &mut v);
        validate_label("team", "", &mut v);
        assert!(v.is_empty());
        validate_label("Bad_Prefix/x", "ok", &mut v);
        validate_label("app", "bad value!", &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (r#"labels["Bad_Prefix/x"]"#, PREFIX_MESSAGE),
                (r#"labels["app"]"#, VALUE_MESSAGE),
            ]
        );
    }
}
