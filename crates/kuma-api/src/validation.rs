//! Field-path violations, collected all at once.
//!
//! Paths follow Kuma's spelling: `spec.to[0].default.idleTimeout`,
//! `networking.inbound[1].tags["kuma.io/service"]`.

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// A path into a resource document, built while walking it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(String);

impl FieldPath {
    /// The empty path: the document itself.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// A path starting at a top-level field, e.g. `FieldPath::of("spec")`.
    pub fn of(field: &str) -> Self {
        Self(field.to_string())
    }

    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key:?}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every violation found in one document, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &FieldPath, message: impl Into<String>) {
        self.0.push(Violation {
            field: field.0.clone(),
            message: message.into(),
        });
    }

    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }

    /// `Ok(())` when nothing was found.
    pub fn into_result(self) -> Result<(), Vec<Violation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Implemented by every spec: check the spec and record what is wrong.
///
/// Specs stored in a `spec:` wrapper report paths starting at `spec`;
/// specs written inline (Mesh, Dataplane, ...) report paths from the document root.
pub trait Validate {
    fn validate(&self, ctx: &ValidationContext<'_>, violations: &mut Violations);
}

/// What a validator may know about the resource besides its spec.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    pub name: &'a str,
    pub mesh: Option<&'a str>,
}

/// Test support: what validating `spec` as resource `name` in `mesh` reports,
/// as `(field, message)` pairs.
#[cfg(test)]
pub(crate) fn violations_of<T: Validate>(
    spec: &T,
    name: &str,
    mesh: Option<&str>,
) -> Vec<(String, String)> {
    let mut v = Violations::new();
    spec.validate(&ValidationContext { name, mesh }, &mut v);
    v.into_vec()
        .into_iter()
        .map(|x| (x.field, x.message))
        .collect()
}

/// Test support: reads a spec from YAML, checks that its JSON form reads back
/// as the same spec, and returns what validating it reports.
#[cfg(test)]
pub(crate) fn yaml_violations<T>(
    yaml: &str,
    name: &str,
    mesh: Option<&str>,
) -> Vec<(String, String)>
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug + Validate,
{
    let spec: T = serde_yaml::from_str(yaml).expect("spec parses");
    let json = serde_json::to_value(&spec).expect("spec encodes");
    assert_eq!(
        serde_json::from_value::<T>(json).expect("spec reads back"),
        spec,
        "spec changed in a JSON round trip"
    );
    violations_of(&spec, name, mesh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_spelled_like_kuma() {
        let p = FieldPath::of("networking")
            .field("inbound")
            .index(1)
            .field("tags")
            .key("kuma.io/service");
        assert_eq!(
            p.as_str(),
            r#"networking.inbound[1].tags["kuma.io/service"]"#
        );
        assert_eq!(FieldPath::root().field("name").as_str(), "name");
    }

    #[test]
    fn collects_every_violation() {
        let mut v = Violations::new();
        v.add(&FieldPath::of("a"), "x");
        v.add(&FieldPath::of("b"), "y");
        let all = v.into_result().unwrap_err();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].field, "b");
    }
}
