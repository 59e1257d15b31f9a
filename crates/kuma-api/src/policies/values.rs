//! Value types several policies share (durations, percentages, header
//! matches, backend references) and the checks Kuma applies to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::parse_duration_nanos;
use crate::policies::target_ref::TargetRef;
use crate::validation::{FieldPath, Violations};

/// A duration as written (`10s`, `1m30s`); kept as text so it prints back
/// unchanged, parsed when checked or used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoDuration(pub String);

impl GoDuration {
    /// Signed nanoseconds, or `None` when the text is not a duration.
    pub fn nanos(&self) -> Option<i128> {
        parse_duration_nanos(&self.0).ok()
    }
}

/// Kubernetes' int-or-string, used for percentages (`50`, `"12.5"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    /// The number it spells, when it spells one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            IntOrString::Int(i) => Some(*i as f64),
            IntOrString::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        }
    }
}

/// One policy section aimed at a targetRef: an entry of `to` or `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetedConf<C> {
    #[serde(default = "TargetRef::unset")]
    pub target_ref: TargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<C>,
}

/// An entry of `rules` for inbound policies that may be conditioned on the
/// caller (`matches`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedRule<C> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<C>,
}

/// An entry of `rules` with nothing but a `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlainRule<C> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<C>,
}

/// Conditions on the caller of an inbound rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    #[serde(rename = "spiffeID", default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<TypedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<TypedValue>,
}

/// `{type, value}`, the shape of spiffeID and SNI matches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TypedValue {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderMatch {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderKeyValue {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderModifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<HeaderKeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<HeaderKeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Vec<String>>,
}

/// Where a route sends traffic: a targetRef plus weight and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct BackendRef {
    #[serde(flatten)]
    pub target_ref: TargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

/// A reference to a MeshOpenTelemetryBackend by labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackendResourceRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl TargetRef {
    /// The targetRef of a section whose `targetRef:` is missing; its empty
    /// kind is reported by the validator.
    pub fn unset() -> TargetRef {
        TargetRef::of_kind(crate::policies::target_ref::TargetRefKind::Unknown(
            String::new(),
        ))
    }
}

pub const MUST_BE_DEFINED: &str = "must be defined";

/// A duration that must parse and be `> 0` when present.
pub fn check_positive_duration(d: Option<&GoDuration>, path: &FieldPath, v: &mut Violations) {
    match d.map(GoDuration::nanos) {
        None => {}
        Some(None) => v.add(path, "must be a valid duration"),
        Some(Some(n)) if n <= 0 => v.add(path, "must be greater than zero when defined"),
        Some(Some(_)) => {}
    }
}

/// A duration that must parse and be `>= 0` when present.
pub fn check_non_negative_duration(d: Option<&GoDuration>, path: &FieldPath, v: &mut Violations) {
    match d.map(GoDuration::nanos) {
        None => {}
        Some(None) => v.add(path, "must be a valid duration"),
        Some(Some(n)) if n < 0 => v.add(path, "must not be negative when defined"),
        Some(Some(_)) => {}
    }
}

/// A required duration that must be `> 0`.
pub fn check_required_positive_duration(
    d: Option<&GoDuration>,
    path: &FieldPath,
    v: &mut Violations,
) {
    match d.map(GoDuration::nanos) {
        Some(None) => v.add(path, "must be a valid duration"),
        Some(Some(n)) if n > 0 => {}
        _ => v.add(path, "must be defined and greater than zero"),
    }
}

/// A percentage in `[0.0, 100.0]`; `required` reports a missing one and
/// `allow_zero` refuses `0`.
pub fn check_percentage(
    p: Option<&IntOrString>,
    path: &FieldPath,
    required: bool,
    allow_zero: bool,
    v: &mut Violations,
) {
    let Some(p) = p else {
        if required {
            v.add(path, MUST_BE_DEFINED);
        }
        return;
    };
    match p.as_f64() {
        None => v.add(path, "string must be a valid number"),
        Some(f) if !(0.0..=100.0).contains(&f) => {
            v.add(path, "must be in inclusive range [0.0, 100.0]")
        }
        Some(f) if f == 0.0 && !allow_zero => v.add(path, "must be greater than 0"),
        Some(_) => {}
    }
}

/// An unsigned percentage in `[0, 100]`.
pub fn check_uint_percentage(p: Option<u32>, path: &FieldPath, v: &mut Violations) {
    if p.is_some_and(|p| p > 100) {
        v.add(path, "must be in inclusive range [0, 100]");
    }
}

/// An integer that must be `> 0` when present.
pub fn check_positive(n: Option<i64>, path: &FieldPath, v: &mut Violations) {
    if n.is_some_and(|n| n <= 0) {
        v.add(path, "must be greater than zero when defined");
    }
}

/// `value` must be one of `allowed`; the message lists them as Kuma does.
pub fn check_one_of(value: &str, allowed: &[&str], path: &FieldPath, v: &mut Violations) {
    if !allowed.contains(&value) {
        v.add(
            path,
            format!(
                "{} must be one of: {}",
                path.as_str().rsplit('.').next().unwrap_or_default(),
                allowed.join(", ")
            ),
        );
    }
}

/// The checks every `matches` entry of an inbound rule gets.
pub fn check_match(m: &Match, path: &FieldPath, v: &mut Violations) {
    if let Some(id) = &m.spiffe_id
        && let Err(e) = check_spiffe_id(&id.value)
    {
        v.add(
            &path.field("spiffeID"),
            format!("must be a valid Spiffe ID: {e}"),
        );
    }
    if let Some(sni) = &m.sni {
        match sni.kind.as_str() {
            "Exact" => {}
            "" => v.add(&path.field("sni").field("type"), "must be set"),
            other => v.add(
                &path.field("sni").field("type"),
                format!("unrecognized type {other:?}, supported values are: Exact"),
            ),
        }
        if sni.value.is_empty() {
            v.add(&path.field("sni").field("value"), "must be set");
        } else if !is_dns1123_subdomain(&sni.value) {
            v.add(
                &path.field("sni").field("value"),
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
    }
}

/// The spiffeID `type` of a match, as MeshTimeout/MeshFaultInjection/... check it.
pub fn check_match_types(m: &Match, path: &FieldPath, v: &mut Violations) {
    if m.spiffe_id.is_none() && m.sni.is_none() {
        v.add(path, "must specify at least one of 'spiffeID' or 'sni'");
        return;
    }
    if let Some(id) = &m.spiffe_id {
        let type_path = path.field("spiffeID").field("type");
        match id.kind.as_str() {
            "Exact" | "Prefix" => {}
            "" => v.add(&type_path, "must be set"),
            other => v.add(
                &type_path,
                format!("unrecognized type {other:?}, supported values are: Exact, Prefix"),
            ),
        }
    }
}

fn check_spiffe_id(id: &str) -> Result<(), &'static str> {
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return Err("scheme is missing or invalid");
    };
    let (trust_domain, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if trust_domain.is_empty() {
        return Err("trust domain is missing");
    }
    if !trust_domain
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
    {
        return Err(
            "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
        );
    }
    for segment in path.split('/').skip(1) {
        if segment.is_empty() {
            return Err("path cannot contain empty segments");
        }
        if segment == "." || segment == ".." {
            return Err("path cannot contain dot segments");
        }
        if !segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores",
            );
        }
    }
    Ok(())
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A MeshMultiZoneService backend needs an explicit port.
pub fn check_backend_ref(b: &BackendRef, path: &FieldPath, v: &mut Violations) {
    if b.target_ref.kind == crate::policies::target_ref::TargetRefKind::MeshMultiZoneService
        && b.port.is_none()
    {
        v.add(
            &path.field("port"),
            "must be defined with kind MeshMultiZoneService",
        );
    }
}

/// A regular expression Envoy will be given must compile; the `regex`
/// crate's syntax is close to RE2's, which Envoy uses.
pub fn check_regex(value: &str, path: &FieldPath, v: &mut Violations) {
    if regex::Regex::new(value).is_err() {
        v.add(path, "must be a valid regular expression");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages() {
        let mut v = Violations::new();
        let p = FieldPath::of("x");
        check_positive_duration(Some(&GoDuration("0s".into())), &p, &mut v);
        check_non_negative_duration(Some(&GoDuration("-1s".into())), &p, &mut v);
        check_non_negative_duration(Some(&GoDuration("abc".into())), &p, &mut v);
        check_percentage(
            Some(&IntOrString::String("101".into())),
            &p,
            true,
            true,
            &mut v,
        );
        check_percentage(
            Some(&IntOrString::String("x".into())),
            &p,
            true,
            true,
            &mut v,
        );
        check_percentage(None, &p, true, true, &mut v);
        check_percentage(Some(&IntOrString::Int(50)), &p, true, false, &mut v);
        let msgs: Vec<_> = v.into_vec().into_iter().map(|x| x.message).collect();
        assert_eq!(
            msgs,
            vec![
                "must be greater than zero when defined",
                "must not be negative when defined",
                "must be a valid duration",
                "must be in inclusive range [0.0, 100.0]",
                "string must be a valid number",
                "must be defined",
            ]
        );
    }

    #[test]
    fn spiffe_ids() {
        assert!(check_spiffe_id("spiffe://default/ns/a/sa/b").is_ok());
        assert!(check_spiffe_id("http://default").is_err());
        assert!(check_spiffe_id("spiffe:///x").is_err());
    }
}
