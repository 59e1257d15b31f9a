//! `targetRef`: how a policy names what it applies to, and the rules every
//! policy shares for checking one.
//!
//! The policy-matching engine reads the typed [`TargetRef`]; validators call
//! [`TargetRefRules::check`] with the kinds their section allows.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validation::{FieldPath, Violations};

/// What a targetRef points at. Unknown spellings are kept (not refused while
/// parsing) so the validator can name them, as Kuma does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TargetRefKind {
    #[default]
    Mesh,
    MeshSubset,
    MeshService,
    MeshServiceSubset,
    MeshGateway,
    MeshHTTPRoute,
    MeshExternalService,
    MeshMultiZoneService,
    Dataplane,
    /// Anything else the user wrote, including the empty string.
    Unknown(String),
}

impl TargetRefKind {
    pub const KNOWN: &'static [TargetRefKind] = &[
        TargetRefKind::Mesh,
        TargetRefKind::Dataplane,
        TargetRefKind::MeshSubset,
        TargetRefKind::MeshGateway,
        TargetRefKind::MeshService,
        TargetRefKind::MeshExternalService,
        TargetRefKind::MeshMultiZoneService,
        TargetRefKind::MeshServiceSubset,
        TargetRefKind::MeshHTTPRoute,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            TargetRefKind::Mesh => "Mesh",
            TargetRefKind::MeshSubset => "MeshSubset",
            TargetRefKind::MeshService => "MeshService",
            TargetRefKind::MeshServiceSubset => "MeshServiceSubset",
            TargetRefKind::MeshGateway => "MeshGateway",
            TargetRefKind::MeshHTTPRoute => "MeshHTTPRoute",
            TargetRefKind::MeshExternalService => "MeshExternalService",
            TargetRefKind::MeshMultiZoneService => "MeshMultiZoneService",
            TargetRefKind::Dataplane => "Dataplane",
            TargetRefKind::Unknown(s) => s,
        }
    }

    /// Specificity order Kuma uses when several policies match: a more
    /// specific kind wins over a broader one. Unknown kinds sort first.
    pub fn specificity(&self) -> u8 {
        match self {
            TargetRefKind::Unknown(_) => 0,
            TargetRefKind::Mesh => 1,
            TargetRefKind::Dataplane => 2,
            TargetRefKind::MeshSubset => 3,
            TargetRefKind::MeshGateway => 4,
            TargetRefKind::MeshService => 5,
            TargetRefKind::MeshExternalService => 6,
            TargetRefKind::MeshMultiZoneService => 7,
            TargetRefKind::MeshServiceSubset => 8,
            TargetRefKind::MeshHTTPRoute => 9,
        }
    }
}

impl From<String> for TargetRefKind {
    fn from(s: String) -> Self {
        TargetRefKind::KNOWN
            .iter()
            .find(|k| k.as_str() == s)
            .cloned()
            .unwrap_or(TargetRefKind::Unknown(s))
    }
}

impl From<TargetRefKind> for String {
    fn from(k: TargetRefKind) -> Self {
        k.as_str().to_string()
    }
}

impl Serialize for TargetRefKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TargetRefKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(TargetRefKind::from)
    }
}

impl fmt::Display for TargetRefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which proxies a Mesh/MeshSubset targetRef selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProxyType {
    Sidecar,
    Gateway,
}

/// A reference to the resources a policy (or one of its sections) applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    #[serde(default = "unset_kind")]
    pub kind: TargetRefKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_types: Option<Vec<ProxyType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
}

/// A missing `kind:` reads as the empty kind, which the validator reports.
fn unset_kind() -> TargetRefKind {
    TargetRefKind::Unknown(String::new())
}

impl TargetRef {
    /// `kind: Mesh`, what an absent top-level targetRef means.
    pub fn mesh() -> Self {
        TargetRef {
            kind: TargetRefKind::Mesh,
            ..TargetRef::default()
        }
    }

    pub fn of_kind(kind: TargetRefKind) -> Self {
        TargetRef {
            kind,
            ..TargetRef::default()
        }
    }

    pub fn named(kind: TargetRefKind, name: &str) -> Self {
        TargetRef {
            kind,
            name: Some(name.to_string()),
            ..TargetRef::default()
        }
    }

    /// Whether this ref can select gateway proxies (Kuma's `IncludesGateways`).
    pub fn includes_gateways(&self) -> bool {
        let gateway_proxy_type = self
            .proxy_types
            .as_ref()
            .is_none_or(|p| p.is_empty() || p.contains(&ProxyType::Gateway));
        match self.kind {
            TargetRefKind::MeshGateway | TargetRefKind::MeshHTTPRoute => true,
            TargetRefKind::Mesh | TargetRefKind::MeshSubset => gateway_proxy_type,
            _ => false,
        }
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    fn has_labels(&self) -> bool {
        self.labels.as_ref().is_some_and(|l| !l.is_empty())
    }

    fn has_tags(&self) -> bool {
        self.tags.as_ref().is_some_and(|t| !t.is_empty())
    }

    fn has(&self, field: &str) -> bool {
        fn set(s: &Option<String>) -> bool {
            s.as_deref().is_some_and(|s| !s.is_empty())
        }
        match field {
            "name" => set(&self.name),
            "namespace" => set(&self.namespace),
            "sectionName" => set(&self.section_name),
            "mesh" => set(&self.mesh),
            "labels" => self.has_labels(),
            "tags" => self.has_tags(),
            "proxyTypes" => self.proxy_types.as_ref().is_some_and(|p| !p.is_empty()),
            _ => false,
        }
    }
}

/// The top-level targetRef of a policy: absent means the whole mesh.
pub fn top_level(target_ref: &Option<TargetRef>) -> TargetRef {
    target_ref.clone().unwrap_or_else(TargetRef::mesh)
}

/// What one place in one policy accepts as a targetRef.
#[derive(Debug, Clone, Copy)]
pub struct TargetRefRules<'a> {
    pub supported: &'a [TargetRefKind],
    /// Replaces the default "value 'X' is not supported" message.
    pub unsupported_message: Option<&'a str>,
    /// MeshGateway refs may carry listener tags (system policies only).
    pub gateway_listener_tags_allowed: bool,
    /// The policy configures inbound traffic (has `from` or `rules`), so a
    /// Dataplane ref may name a section (an inbound).
    pub inbound_policy: bool,
    /// Names accepted despite their characters (route placeholders such as
    /// `kuma.io/unresolved-backend`).
    pub allowed_invalid_names: &'a [&'a str],
}

impl<'a> TargetRefRules<'a> {
    pub fn kinds(supported: &'a [TargetRefKind]) -> Self {
        TargetRefRules {
            supported,
            unsupported_message: None,
            gateway_listener_tags_allowed: false,
            inbound_policy: false,
            allowed_invalid_names: &[],
        }
    }

    pub fn allow_names(mut self, names: &'a [&'a str]) -> Self {
        self.allowed_invalid_names = names;
        self
    }

    pub fn inbound(mut self, inbound_policy: bool) -> Self {
        self.inbound_policy = inbound_policy;
        self
    }

    pub fn gateway_listener_tags(mut self) -> Self {
        self.gateway_listener_tags_allowed = true;
        self
    }

    /// Records every problem with `r`, at paths below `path`
    /// (`spec.to[0].targetRef.kind`, ...).
    pub fn check(&self, r: &TargetRef, path: &FieldPath, v: &mut Violations) {
        use TargetRefKind as K;
        if r.kind.as_str().is_empty() {
            v.add(&path.field("kind"), "must be defined");
            return;
        }
        if !self.supported.contains(&r.kind) {
            let msg = match self.unsupported_message {
                Some(m) => m.to_string(),
                None => format!("value '{}' is not supported", r.kind),
            };
            v.add(&path.field("kind"), msg);
            return;
        }
        let forbid = |v: &mut Violations, fields: &[&str]| {
            for field in fields {
                if r.has(field) {
                    v.add(
                        &path.field(field),
                        format!("must not be set with kind {}", r.kind),
                    );
                }
            }
        };
        let labels_exclusive = |v: &mut Violations, msg: &str| {
            if r.has_labels() && (r.has("name") || r.has("namespace")) {
                v.add(&path.field("labels"), msg);
            }
        };
        let name_or_labels = |v: &mut Violations| {
            if !r.has_labels() && !r.has("name") {
                v.add(
                    path,
                    format!("name or labels must be set when kind is {}", r.kind),
                );
            }
        };
        const BOTH: &str = "either labels or name and namespace must be specified";
        match &r.kind {
            K::Mesh => {
                if r.has("name") {
                    v.add(
                        &path.field("name"),
                        format!("using name with kind {} is not yet supported", r.kind),
                    );
                }
                forbid(v, &["mesh", "tags", "labels", "namespace", "sectionName"]);
                check_proxy_types(r, path, v);
            }
            K::Dataplane => {
                forbid(v, &["tags", "mesh", "proxyTypes"]);
                labels_exclusive(v, BOTH);
                if !self.inbound_policy && r.has("sectionName") {
                    v.add(
                        &path.field("sectionName"),
                        "can only be used with inbound policies",
                    );
                }
            }
            K::MeshSubset => {
                forbid(v, &["name", "mesh"]);
                check_tags(r.tags.as_ref(), &path.field("tags"), false, v);
                forbid(v, &["labels", "namespace", "sectionName"]);
                check_proxy_types(r, path, v);
            }
            K::MeshService => {
                self.check_name(r, path, v);
                forbid(v, &["mesh", "tags", "proxyTypes"]);
                name_or_labels(v);
                labels_exclusive(v, BOTH);
            }
            K::MeshHTTPRoute => {
                self.check_name(r, path, v);
                forbid(v, &["mesh", "tags", "proxyTypes", "sectionName"]);
                name_or_labels(v);
                labels_exclusive(v, BOTH);
            }
            K::MeshServiceSubset | K::MeshGateway => {
                if !r.has("name") {
                    v.add(
                        &path.field("name"),
                        format!("must be set when kind is {}", r.kind),
                    );
                }
                self.check_name(r, path, v);
                forbid(v, &["mesh", "proxyTypes"]);
                check_tags(r.tags.as_ref(), &path.field("tags"), true, v);
                if r.kind == K::MeshGateway && r.has_tags() && !self.gateway_listener_tags_allowed {
                    forbid(v, &["tags"]);
                }
                forbid(v, &["labels", "namespace", "sectionName"]);
            }
            K::MeshExternalService => {
                self.check_name(r, path, v);
                forbid(v, &["mesh", "tags", "proxyTypes"]);
                name_or_labels(v);
                labels_exclusive(v, "either labels or name must be specified");
                forbid(v, &["sectionName"]);
            }
            // MeshMultiZoneService has no rules of its own in Kuma's validator.
            K::MeshMultiZoneService | K::Unknown(_) => {}
        }
    }
}

fn check_proxy_types(r: &TargetRef, path: &FieldPath, v: &mut Violations) {
    if r.proxy_types.as_ref().is_some_and(Vec::is_empty) {
        v.add(
            &path.field("proxyTypes"),
            "must be undefined or have at least one element",
        );
    }
}

impl TargetRefRules<'_> {
    fn check_name(&self, r: &TargetRef, path: &FieldPath, v: &mut Violations) {
        if self.allowed_invalid_names.contains(&r.name()) {
            return;
        }
        let valid = r
            .name()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
        if !valid {
            v.add(
            &path.field("name"),
            "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'.",
        );
        }
    }
}

/// Kuma's tag rules; `selector` also allows `/` in values and the `*` wildcard.
pub fn check_tags(
    tags: Option<&BTreeMap<String, String>>,
    path: &FieldPath,
    selector: bool,
    v: &mut Violations,
) {
    let Some(tags) = tags else { return };
    let key_ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'))
    };
    let value_ok = |s: &str| {
        if selector {
            s == "*" || key_ok(s)
        } else {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        }
    };
    for (key, value) in tags {
        if key.is_empty() {
            v.add(path, "tag name must be non-empty");
        }
        if !key_ok(key) {
            v.add(
                &path.key(key),
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            );
        }
        if value.is_empty() {
            v.add(&path.key(key), "tag value must be non-empty");
        }
        if !value_ok(value) {
            let msg = if selector {
                r#"tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be "*""#
            } else {
                "tag value must consist of alphanumeric characters, dots, dashes and underscores"
            };
            v.add(&path.key(key), msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rules: TargetRefRules<'_>, r: &TargetRef) -> Vec<(String, String)> {
        let mut v = Violations::new();
        rules.check(r, &FieldPath::of("spec").field("targetRef"), &mut v);
        v.into_vec()
            .into_iter()
            .map(|x| (x.field, x.message))
            .collect()
    }

    const ALL: &[TargetRefKind] = TargetRefKind::KNOWN;

    #[test]
    fn kind_reads_known_and_keeps_unknown() {
        let r: TargetRef = serde_json::from_str(r#"{"kind":"MeshFoo","name":"x"}"#).unwrap();
        assert_eq!(r.kind, TargetRefKind::Unknown("MeshFoo".into()));
        let r: TargetRef = serde_json::from_str(r#"{"kind":"MeshHTTPRoute"}"#).unwrap();
        assert_eq!(r.kind, TargetRefKind::MeshHTTPRoute);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"kind":"MeshHTTPRoute"}"#
        );
        assert_eq!(top_level(&None), TargetRef::mesh());
    }

    #[test]
    fn unsupported_and_missing_kind() {
        let only_mesh = TargetRefRules::kinds(&[TargetRefKind::Mesh]);
        assert_eq!(
            check(
                only_mesh,
                &TargetRef::named(TargetRefKind::MeshService, "a")
            ),
            vec![(
                "spec.targetRef.kind".into(),
                "value 'MeshService' is not supported".into()
            )]
        );
        assert_eq!(
            check(only_mesh, &TargetRef::of_kind(unset_kind())),
            vec![("spec.targetRef.kind".into(), "must be defined".into())]
        );
    }

    #[test]
    fn mesh_refuses_name_and_tags() {
        let mut r = TargetRef::named(TargetRefKind::Mesh, "x");
        r.tags = Some([("a".to_string(), "b".to_string())].into());
        r.proxy_types = Some(vec![]);
        assert_eq!(
            check(TargetRefRules::kinds(ALL), &r),
            vec![
                (
                    "spec.targetRef.name".into(),
                    "using name with kind Mesh is not yet supported".into()
                ),
                (
                    "spec.targetRef.tags".into(),
                    "must not be set with kind Mesh".into()
                ),
                (
                    "spec.targetRef.proxyTypes".into(),
                    "must be undefined or have at least one element".into()
                ),
            ]
        );
    }

    #[test]
    fn subset_kinds_need_names_and_valid_tags() {
        let r = TargetRef::of_kind(TargetRefKind::MeshServiceSubset);
        assert_eq!(
            check(TargetRefRules::kinds(ALL), &r),
            vec![(
                "spec.targetRef.name".into(),
                "must be set when kind is MeshServiceSubset".into()
            )]
        );
        let mut r = TargetRef::of_kind(TargetRefKind::MeshSubset);
        r.tags = Some([("version".to_string(), "a b".to_string())].into());
        assert_eq!(
            check(TargetRefRules::kinds(ALL), &r),
            vec![(
                r#"spec.targetRef.tags["version"]"#.into(),
                "tag value must consist of alphanumeric characters, dots, dashes and underscores"
                    .into()
            )]
        );
    }

    #[test]
    fn mesh_service_needs_name_or_labels_but_not_both() {
        let r = TargetRef::of_kind(TargetRefKind::MeshService);
        assert_eq!(
            check(TargetRefRules::kinds(ALL), &r),
            vec![(
                "spec.targetRef".into(),
                "name or labels must be set when kind is MeshService".into()
            )]
        );
        let mut r = TargetRef::named(TargetRefKind::MeshService, "Bad");
        r.labels = Some([("a".to_string(), "b".to_string())].into());
        let got = check(TargetRefRules::kinds(ALL), &r);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "spec.targetRef.labels");
    }

    #[test]
    fn dataplane_section_name_only_for_inbound_policies() {
        let mut r = TargetRef::of_kind(TargetRefKind::Dataplane);
        r.section_name = Some("http".into());
        assert_eq!(
            check(TargetRefRules::kinds(ALL), &r),
            vec![(
                "spec.targetRef.sectionName".into(),
                "can only be used with inbound policies".into()
            )]
        );
        assert!(check(TargetRefRules::kinds(ALL).inbound(true), &r).is_empty());
    }
}
