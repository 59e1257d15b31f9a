//! Where a certificate or key comes from.
//!
//! Two shapes exist: the protobuf `DataSource` of the older kinds (one of
//! `secret`, `file`, `inline`, `inlineString`) and the `SecureDataSource` of
//! the newer kinds (`type: File|Secret|EnvVar|InsecureInline`).

use serde::{Deserialize, Serialize};

use crate::validation::{FieldPath, Violations};

/// `{secret: name}`, `{file: /path}`, `{inline: <base64>}` or `{inlineString: text}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Base64, as protobuf writes bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(
        default,
        alias = "inline_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_string: Option<String>,
}

impl DataSource {
    /// Checks the source; `path` points at the data source itself.
    pub fn validate(&self, path: &FieldPath, v: &mut Violations) {
        let chosen = [
            self.secret.is_some(),
            self.file.is_some(),
            self.inline.is_some(),
            self.inline_string.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if chosen == 0 {
            v.add(
                path,
                "data source has to be chosen. Available sources: secret, file, inline",
            );
        }
        if chosen > 1 {
            v.add(
                path,
                "only one of secret, file, inline, inlineString can be set",
            );
        }
        if self.secret.as_deref() == Some("") {
            v.add(&path.field("secret"), "cannot be empty");
        }
        if self.file.as_deref() == Some("") {
            v.add(&path.field("file"), "cannot be empty");
        }
        match self.inline.as_deref() {
            Some("") => v.add(&path.field("inline"), "cannot be empty"),
            Some(b64) if crate::kinds::secret::decode_base64(b64).is_none() => {
                v.add(&path.field("inline"), "has to be valid base64")
            }
            _ => {}
        }
    }
}

/// The newer kinds' data source, selected by `type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecureDataSource {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var: Option<EnvVarRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_inline: Option<InlineValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVarRef {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineValue {
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

impl SecureDataSource {
    pub fn validate(&self, path: &FieldPath, v: &mut Violations) {
        const MUST_BE_DEFINED: &str = "must be defined";
        match self.type_.as_str() {
            "EnvVar" => match &self.env_var {
                None => v.add(&path.field("envVar"), MUST_BE_DEFINED),
                Some(e) if e.name.is_empty() => {
                    v.add(&path.field("envVar").field("name"), MUST_BE_DEFINED)
                }
                Some(_) => {}
            },
            "InsecureInline" => match &self.insecure_inline {
                None => v.add(&path.field("insecureInline"), MUST_BE_DEFINED),
                Some(i) if i.value.is_empty() => v.add(
                    &path.field("insecureInline").field("value"),
                    MUST_BE_DEFINED,
                ),
                Some(_) => {}
            },
            "File" => match &self.file {
                None => v.add(&path.field("file"), MUST_BE_DEFINED),
                Some(f) if f.path.is_empty() => {
                    v.add(&path.field("file").field("path"), MUST_BE_DEFINED)
                }
                Some(f) if f.path.contains("..") => v.add(
                    &path.field("file").field("path"),
                    format!(
                        "file path contains directory traversal sequence: {}",
                        f.path
                    ),
                ),
                Some(f) if !f.path.starts_with('/') => v.add(
                    &path.field("file").field("path"),
                    format!("file path must be absolute: {}", f.path),
                ),
                Some(_) => {}
            },
            "Secret" => match &self.secret_ref {
                None => v.add(&path.field("secretRef"), MUST_BE_DEFINED),
                Some(r) => {
                    if r.kind != "Secret" {
                        v.add(
                            &path.field("secretRef").field("kind"),
                            format!("{} must be one of: Secret", r.kind),
                        );
                    }
                    if r.name.is_empty() {
                        v.add(&path.field("secretRef").field("name"), MUST_BE_DEFINED);
                    }
                }
            },
            other => v.add(
                &path.field("type"),
                format!("{other} must be one of: EnvVar, InsecureInline, File, Secret"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_source_needs_exactly_one_choice() {
        let mut v = Violations::new();
        let p = FieldPath::of("cert");
        DataSource::default().validate(&p, &mut v);
        DataSource {
            secret: Some(String::new()),
            ..Default::default()
        }
        .validate(&p, &mut v);
        DataSource {
            inline: Some("!!".into()),
            ..Default::default()
        }
        .validate(&p, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "cert",
                    "data source has to be chosen. Available sources: secret, file, inline"
                ),
                ("cert.secret", "cannot be empty"),
                ("cert.inline", "has to be valid base64"),
            ]
        );
    }

    #[test]
    fn secure_source_checks_its_type() {
        let mut v = Violations::new();
        let p = FieldPath::of("ca");
        let src: SecureDataSource =
            serde_json::from_str(r#"{"type":"File","file":{"path":"rel/ca.pem"}}"#).unwrap();
        src.validate(&p, &mut v);
        let src: SecureDataSource =
            serde_json::from_str(r#"{"type":"Secret","secretRef":{"kind":"Secret","name":"ca"}}"#)
                .unwrap();
        src.validate(&p, &mut v);
        let src: SecureDataSource = serde_json::from_str(r#"{"type":"Vault"}"#).unwrap();
        src.validate(&p, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ca.file.path", "file path must be absolute: rel/ca.pem"),
                (
                    "ca.type",
                    "Vault must be one of: EnvVar, InsecureInline, File, Secret"
                ),
            ]
        );
    }
}
