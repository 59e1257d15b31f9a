//! MeshTLS: mTLS mode, versions and ciphers of inbound traffic.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{PlainRule, TargetedConf, check_one_of};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTlsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TargetedConf<Conf>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<PlainRule<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<TlsVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ciphers: Option<Vec<String>>,
    /// `Strict` or `Permissive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

const MODES: &[&str] = &["Strict", "Permissive"];
const VERSIONS: &[&str] = &["TLSAuto", "TLS10", "TLS11", "TLS12", "TLS13"];
const CIPHERS: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

impl Validate for MeshTlsSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        let from = self.from.as_deref().unwrap_or_default();
        let rules = self.rules.as_deref().unwrap_or_default();
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[K::Mesh, K::MeshSubset, K::Dataplane])
                .inbound(!from.is_empty() || !rules.is_empty())
                .check(top, &spec.field("targetRef"), v);
        }
        if !rules.is_empty() && !from.is_empty() {
            v.add(&spec, "field 'from' must be empty when 'rules' is defined");
        }
        let top = top_level(&self.target_ref).kind;
        for (i, rule) in rules.iter().enumerate() {
            let path = spec.field("rules").index(i).field("default");
            check_conf(&rule.default.clone().unwrap_or_default(), &path, &top, v);
        }
        for (i, item) in from.iter().enumerate() {
            let path = spec.field("from").index(i);
            TargetRefRules::kinds(&[K::Mesh]).check(&item.target_ref, &path.field("targetRef"), v);
            check_conf(
                &item.default.clone().unwrap_or_default(),
                &path.field("default"),
                &top,
                v,
            );
        }
    }
}

fn check_conf(conf: &Conf, path: &FieldPath, top: &K, v: &mut Violations) {
    if let Some(mode) = &conf.mode {
        check_one_of(mode, MODES, &path.field("mode"), v);
    }
    let ciphers = conf.tls_ciphers.as_deref().unwrap_or_default();
    if !ciphers.is_empty() && *top != K::Mesh {
        v.add(
            &path.field("tlsCiphers"),
            "tlsCiphers can only be defined with top level targetRef kind: Mesh",
        );
    } else if ciphers.iter().any(|c| !CIPHERS.contains(&c.as_str())) {
        check_one_of("", CIPHERS, &path.field("tlsCiphers"), v);
    }
    let Some(version) = &conf.tls_version else {
        return;
    };
    let vp = path.field("tlsVersion");
    if *top != K::Mesh {
        v.add(
            &vp,
            "tlsVersion can only be defined with top level targetRef kind: Mesh",
        );
        return;
    }
    let rank = |s: &str| VERSIONS.iter().position(|x| *x == s);
    for (field, value) in [("min", &version.min), ("max", &version.max)] {
        if let Some(value) = value {
            check_one_of(value, VERSIONS, &vp.field(field), v);
        }
    }
    // TLSAuto leaves the choice to Envoy, so it never conflicts.
    if let (Some(min), Some(max)) = (version.min.as_deref(), version.max.as_deref())
        && let (Some(lo), Some(hi)) = (rank(min), rank(max))
        && lo > 0
        && hi > 0
        && lo > hi
    {
        v.add(&vp.field("min"), "min version must be lower than max");
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshTLS
name: strict
mesh: default
spec:
  targetRef:
    kind: Mesh
  rules:
    - default:
        mode: Strict
        tlsVersion:
          min: TLS12
          max: TLS13
        tlsCiphers:
          - ECDHE-RSA-AES256-GCM-SHA384
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshTLS
name: bad
mesh: default
spec:
  targetRef:
    kind: MeshSubset
    tags:
      app: a
  from:
    - targetRef:
        kind: Mesh
      default:
        mode: Lax
        tlsVersion:
          min: TLS12
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.from[0].default.mode",
                    "mode must be one of: Strict, Permissive"
                ),
                (
                    "spec.from[0].default.tlsVersion",
                    "tlsVersion can only be defined with top level targetRef kind: Mesh"
                ),
            ]
        );
    }
}
