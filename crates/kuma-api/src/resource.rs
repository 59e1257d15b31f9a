//! A resource: identity and metadata around a typed spec, and its Universal
//! YAML/JSON form.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::kind::{Kind, Layout, Scope, Spec};
use crate::name::validate_name;
use crate::validation::{FieldPath, ValidationContext, Violation, Violations};

/// Identity of a resource: (kind, mesh, name). Global kinds have no mesh.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub kind: Kind,
    pub mesh: Option<String>,
    pub name: String,
}

impl ResourceKey {
    pub fn new(kind: Kind, mesh: Option<&str>, name: &str) -> Self {
        Self {
            kind,
            mesh: mesh.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn global(kind: Kind, name: &str) -> Self {
        Self::new(kind, None, name)
    }

    pub fn in_mesh(kind: Kind, mesh: &str, name: &str) -> Self {
        Self::new(kind, Some(mesh), name)
    }
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mesh {
            Some(mesh) => write!(f, "{} {}/{}", self.kind, mesh, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What the store keeps beside the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMeta {
    pub mesh: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub creation_time: DateTime<Utc>,
    pub modification_time: DateTime<Utc>,
    /// Optimistic-concurrency version, assigned by the store; 0 before the first write.
    pub version: u64,
}

/// A stored (or about to be stored) resource of any kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub meta: ResourceMeta,
    pub spec: Spec,
}

impl Resource {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind(),
            mesh: self.meta.mesh.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// Checks the name, the mesh and the spec; returns every violation at once.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut v = Violations::new();
        validate_name(self.kind(), &self.meta.name, &mut v);
        match (self.kind().scope(), &self.meta.mesh) {
            (Scope::Mesh, None) => v.add(&FieldPath::of("mesh"), "cannot be empty"),
            (Scope::Mesh, Some(m)) if m.is_empty() => {
                v.add(&FieldPath::of("mesh"), "cannot be empty")
            }
            (Scope::Mesh, Some(m)) if !crate::name::is_valid_mesh_reference(m) => v.add(
                &FieldPath::of("mesh"),
                "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols.",
            ),
            _ => {}
        }
        for (key, value) in &self.meta.labels {
            crate::name::validate_label(key, value, &mut v);
        }
        let ctx = ValidationContext {
            name: &self.meta.name,
            mesh: self.meta.mesh.as_deref(),
        };
        self.spec.validate(&ctx, &mut v);
        v.into_result().map_err(ApiError::Invalid)
    }

    /// The Universal JSON form, as the REST API returns it.
    pub fn to_json(&self) -> Value {
        let kind = self.kind();
        let mut out = Map::new();
        out.insert("type".into(), Value::String(kind.name().into()));
        if let Some(mesh) = &self.meta.mesh {
            out.insert("mesh".into(), Value::String(mesh.clone()));
        }
        out.insert("name".into(), Value::String(self.meta.name.clone()));
        out.insert(
            "creationTime".into(),
            Value::String(format_time(&self.meta.creation_time)),
        );
        out.insert(
            "modificationTime".into(),
            Value::String(format_time(&self.meta.modification_time)),
        );
        if !self.meta.labels.is_empty() {
            let labels = self
                .meta
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            out.insert("labels".into(), Value::Object(labels));
        }
        match (kind.layout(), self.spec.to_json()) {
            (Layout::Inline, Value::Object(fields)) => {
                for (k, v) in fields {
                    out.entry(k).or_insert(v);
                }
            }
            (Layout::Inline, _) => {}
            (Layout::Wrapped, spec) => {
                out.insert("spec".into(), spec);
            }
        }
        Value::Object(out)
    }
}

/// Formats a timestamp the way Kuma's API does (RFC 3339, UTC, `Z`).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Keys of a document that are metadata, not spec, for inline kinds.
const META_KEYS: &[&str] = &[
    "type",
    "mesh",
    "name",
    "labels",
    "creationTime",
    "modificationTime",
];

/// A resource as a user wrote it (kumactl apply, PUT body): parsed and typed,
/// but not yet validated and without store metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDocument {
    pub mesh: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: Spec,
}

impl ResourceDocument {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind(),
            mesh: self.mesh.clone(),
            name: self.name.clone(),
        }
    }

    /// Reads a document in Universal form. Reports every problem it can see
    /// (missing type, unknown kind, wrong field types) with its field path.
    pub fn from_json(value: Value) -> Result<ResourceDocument, ApiError> {
        let Value::Object(mut obj) = value else {
            return Err(ApiError::Malformed(
                "a resource must be a YAML or JSON object".into(),
            ));
        };
        let kind = match obj.get("type") {
            Some(Value::String(t)) => match Kind::from_name(t) {
                Some(kind) => kind,
                None => return Err(ApiError::UnknownKind(t.clone())),
            },
            Some(_) => return Err(invalid("type", "must be a string")),
            None => return Err(invalid("type", "cannot be empty")),
        };
        let mut v = Violations::new();
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => {
                v.add(&FieldPath::of("name"), "must be a string");
                String::new()
            }
            None => String::new(),
        };
        let mesh = match obj.get("mesh") {
            Some(Value::String(m)) => Some(m.clone()),
            Some(Value::Null) | None => None,
            Some(_) => {
                v.add(&FieldPath::of("mesh"), "must be a string");
                None
            }
        };
        let labels = match obj.get("labels") {
            Some(Value::Object(l)) => {
                let mut labels = BTreeMap::new();
                for (k, val) in l {
                    match val {
                        Value::String(s) => {
                            labels.insert(k.clone(), s.clone());
                        }
                        _ => v.add(&FieldPath::of("labels").key(k), "must be a string"),
                    }
                }
                labels
            }
            Some(Value::Null) | None => BTreeMap::new(),
            Some(_) => {
                v.add(&FieldPath::of("labels"), "must be a map of strings");
                BTreeMap::new()
            }
        };
        let (spec_value, prefix) = match kind.layout() {
            Layout::Inline => {
                for key in META_KEYS {
                    obj.remove(*key);
                }
                (Value::Object(obj), FieldPath::root())
            }
            Layout::Wrapped => match obj.remove("spec") {
                Some(Value::Null) | None => (Value::Object(Map::new()), FieldPath::of("spec")),
                Some(spec) => (spec, FieldPath::of("spec")),
            },
        };
        let spec = match Spec::from_json(kind, spec_value) {
            Ok(spec) => Some(spec),
            Err(e) => {
                let path = e.path().to_string();
                let field = match (prefix.as_str(), path.as_str()) {
                    (p, ".") => p.to_string(),
                    ("", rest) => rest.to_string(),
                    (p, rest) => format!("{p}.{rest}"),
                };
                v.add(&FieldPath::of(&field), type_error_message(e.inner()));
                None
            }
        };
        match (spec, v.into_result()) {
            (Some(spec), Ok(())) => Ok(ResourceDocument {
                mesh,
                name,
                labels,
                spec,
            }),
            (_, Err(violations)) => Err(ApiError::Invalid(violations)),
            (None, Ok(())) => Err(ApiError::Malformed("spec could not be read".into())),
        }
    }

    /// Reads one YAML (or JSON, a subset of YAML) document.
    pub fn from_yaml(text: &str) -> Result<ResourceDocument, ApiError> {
        let value: Value =
            serde_yaml::from_str(text).map_err(|e| ApiError::Malformed(e.to_string()))?;
        Self::from_json(value)
    }

    /// A resource carrying this document, with fresh metadata; the store
    /// assigns times and version when it writes.
    pub fn into_resource(self, now: DateTime<Utc>) -> Resource {
        Resource {
            meta: ResourceMeta {
                mesh: self.mesh,
                name: self.name,
                labels: self.labels,
                creation_time: now,
                modification_time: now,
                version: 0,
            },
            spec: self.spec,
        }
    }

    /// Validates name, mesh, labels and spec, all violations at once.
    pub fn validate(&self) -> Result<(), ApiError> {
        self.clone()
            .into_resource(DateTime::<Utc>::MIN_UTC)
            .validate()
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid(vec![Violation {
        field: field.into(),
        message: message.into(),
    }])
}

/// Turns serde's message into the short reason a user needs.
fn type_error_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json appends " at line X column Y" for text input; values have none.
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// Splits a multi-document YAML stream into JSON values, skipping empty documents.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, ApiError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .map_err(|e| ApiError::Malformed(format!("document {}: {e}", i + 1)))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_timeout(mesh: Option<&str>, name: &str) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "type": "MeshTimeout", "name": name,
            "spec": {"targetRef": {"kind": "Mesh"},
                     "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}]}
        });
        if let Some(mesh) = mesh {
            doc["mesh"] = mesh.into();
        }
        doc
    }

    fn fields(err: ApiError) -> Vec<String> {
        err.violations().iter().map(|v| v.field.clone()).collect()
    }

    #[test]
    fn mesh_scoped_resources_need_a_well_formed_mesh() {
        let doc = ResourceDocument::from_json(mk_timeout(None, "t1")).unwrap();
        assert_eq!(fields(doc.validate().unwrap_err()), ["mesh"]);
        let doc = ResourceDocument::from_json(mk_timeout(Some("Bad Mesh"), "t1")).unwrap();
        assert_eq!(fields(doc.validate().unwrap_err()), ["mesh"]);
        let doc = ResourceDocument::from_json(mk_timeout(Some("default"), "t1")).unwrap();
        doc.validate().unwrap();
    }

    #[test]
    fn name_and_mesh_violations_come_together() {
        let doc = ResourceDocument::from_json(mk_timeout(None, "Bad_Name")).unwrap();
        assert_eq!(fields(doc.validate().unwrap_err()), ["name", "mesh"]);
    }

    #[test]
    fn wrong_field_types_name_their_path() {
        let mut doc = mk_timeout(Some("default"), "t1");
        doc["spec"]["targetRef"]["kind"] = serde_json::json!(42);
        let err = ResourceDocument::from_json(doc).unwrap_err();
        assert_eq!(fields(err), ["spec.targetRef.kind"]);
    }

    #[test]
    fn wire_form_round_trips() {
        let doc = ResourceDocument::from_json(mk_timeout(Some("default"), "t1")).unwrap();
        let resource = doc.clone().into_resource(Utc::now());
        let again = ResourceDocument::from_json(resource.to_json()).unwrap();
        assert_eq!(again, doc);
        assert_eq!(resource.to_json()["spec"]["targetRef"]["kind"], "Mesh");
    }
}
