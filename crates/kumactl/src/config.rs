//! kumactl's own configuration: the control planes it knows and which one is
//! active. The file is Kuma's `~/.kumactl/config` (YAML, camelCase keys), so
//! a file written by Kuma's kumactl is read unchanged and vice versa.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Kuma's default API address of a control plane on this machine.
pub const DEFAULT_ADDRESS: &str = "http://localhost:5681";
const LOCAL: &str = "local";

// Fields are declared in alphabetical order: Kuma writes the file that way
// and keeping it makes files round-trip byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<Context>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_planes: Vec<ControlPlane>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_context: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub control_plane: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ContextDefaults>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextDefaults {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mesh: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    #[serde(default)]
    pub coordinates: Coordinates,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coordinates {
    #[serde(default)]
    pub api_server: ApiServer,
}

/// How to reach and authenticate to one control plane's API server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServer {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auth_conf: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_cert_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_cert_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_key_file: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_verify: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Failed to access configuration file {0:?}")]
    Inaccessible(PathBuf),
    #[error("Failed to read configuration from file {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to parse configuration from file {path:?}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("Failed to format configuration: {0}")]
    Format(#[source] serde_yaml::Error),
    #[error("Failed to create a directory {path:?}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to write configuration into file {path:?}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `~/.kumactl/config`, or `None` when there is no home directory.
pub fn default_path() -> Option<PathBuf> {
    dirs::home_dir().map(|home| home.join(".kumactl").join("config"))
}

impl Configuration {
    /// A single control plane `local` at Kuma's default address, active.
    pub fn default_local() -> Self {
        Self {
            contexts: vec![Context {
                control_plane: LOCAL.into(),
                defaults: None,
                name: LOCAL.into(),
            }],
            control_planes: vec![ControlPlane {
                coordinates: Coordinates {
                    api_server: ApiServer {
                        url: DEFAULT_ADDRESS.into(),
                        ..ApiServer::default()
                    },
                },
                name: LOCAL.into(),
            }],
            current_context: LOCAL.into(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Inaccessible(path.to_path_buf()),
            _ => ConfigError::Read {
                path: path.to_path_buf(),
                source,
            },
        })?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        if *self == Self::default() {
            // An empty configuration is written the way Kuma writes it.
            return Ok("{}\n".into());
        }
        serde_yaml::to_string(self).map_err(ConfigError::Format)
    }

    /// Writes the file, creating its directory; readable by the owner only
    /// since it may name credentials.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = self.to_yaml()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ConfigError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        write_private(path, &text).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    pub fn control_plane(&self, name: &str) -> Option<&ControlPlane> {
        self.control_planes.iter().find(|c| c.name == name)
    }

    pub fn current(&self) -> Option<&Context> {
        self.context(&self.current_context)
    }

    /// Adds (or with `overwrite` replaces) a control plane; false if the name
    /// is taken and `overwrite` is not set.
    pub fn add_control_plane(&mut self, cp: ControlPlane, overwrite: bool) -> bool {
        match self.control_planes.iter_mut().find(|c| c.name == cp.name) {
            Some(_) if !overwrite => false,
            Some(existing) => {
                *existing = cp;
                true
            }
            None => {
                self.control_planes.push(cp);
                true
            }
        }
    }

    pub fn add_context(&mut self, ctx: Context, overwrite: bool) -> bool {
        match self.contexts.iter_mut().find(|c| c.name == ctx.name) {
            Some(_) if !overwrite => false,
            Some(existing) => {
                *existing = ctx;
                true
            }
            None => {
                self.contexts.push(ctx);
                true
            }
        }
    }

    pub fn switch_context(&mut self, name: &str) -> bool {
        if self.context(name).is_none() {
            return false;
        }
        self.current_context = name.to_string();
        true
    }

    fn remove_context(&mut self, name: &str) {
        self.contexts.retain(|c| c.name != name);
        if self.current_context == name {
            // The first remaining context becomes active, as in Kuma.
            self.current_context = self
                .contexts
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default();
        }
    }

    /// Removes a control plane and every context using it.
    pub fn remove_control_plane(&mut self, name: &str) -> bool {
        if self.control_plane(name).is_none() {
            return false;
        }
        let using: Vec<String> = self
            .contexts
            .iter()
            .filter(|c| c.control_plane == name)
            .map(|c| c.name.clone())
            .collect();
        for ctx in using {
            self.remove_context(&ctx);
        }
        self.control_planes.retain(|c| c.name != name);
        true
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_control_plane(name: &str, url: &str) -> ControlPlane {
        ControlPlane {
            coordinates: Coordinates {
                api_server: ApiServer {
                    url: url.into(),
                    ..ApiServer::default()
                },
            },
            name: name.into(),
        }
    }

    fn mk_context(name: &str) -> Context {
        Context {
            control_plane: name.into(),
            defaults: None,
            name: name.into(),
        }
    }

    #[test]
    fn default_is_local_control_plane_in_kumas_layout() {
        let yaml = Configuration::default_local().to_yaml().unwrap();
        assert_eq!(
            yaml,
            "contexts:\n- controlPlane: local\n  name: local\ncontrolPlanes:\n- coordinates:\n    apiServer:\n      url: http://localhost:5681\n  name: local\ncurrentContext: local\n"
        );
    }

    #[test]
    fn reads_a_file_written_by_kuma() {
        let text = "contexts:\n- controlPlane: test1\n  defaults:\n    mesh: demo\n  name: test1\ncontrolPlanes:\n  - coordinates:\n      apiServer:\n        caCertFile: /tmp/ca.pem\n        url: https://test1.internal:5681\n    name: test1\ncurrentContext: test1\n";
        let cfg: Configuration = serde_yaml::from_str(text).unwrap();
        assert_eq!(cfg.current().unwrap().control_plane, "test1");
        let cp = cfg.control_plane("test1").unwrap();
        assert_eq!(cp.coordinates.api_server.ca_cert_file, "/tmp/ca.pem");
        assert_eq!(
            cfg.contexts[0].defaults.as_ref().unwrap().mesh,
            "demo".to_string()
        );
    }

    #[test]
    fn add_refuses_duplicates_unless_overwriting() {
        let mut cfg = Configuration::default_local();
        assert!(!cfg.add_control_plane(mk_control_plane("local", "http://x:1"), false));
        assert_eq!(
            cfg.control_plane("local")
                .unwrap()
                .coordinates
                .api_server
                .url,
            DEFAULT_ADDRESS
        );
        assert!(cfg.add_control_plane(mk_control_plane("local", "http://x:1"), true));
        assert_eq!(
            cfg.control_plane("local")
                .unwrap()
                .coordinates
                .api_server
                .url,
            "http://x:1"
        );
        assert_eq!(cfg.control_planes.len(), 1);
    }

    #[test]
    fn removing_the_active_control_plane_activates_the_first_left() {
        let mut cfg = Configuration::default_local();
        cfg.add_control_plane(mk_control_plane("b", "http://b:1"), false);
        cfg.add_context(mk_context("b"), false);
        assert!(cfg.switch_context("b"));
        assert!(cfg.remove_control_plane("b"));
        assert_eq!(cfg.current_context, "local");
        assert!(cfg.remove_control_plane("local"));
        assert_eq!(cfg.current_context, "");
        assert_eq!(cfg.to_yaml().unwrap(), "{}\n");
        assert!(!cfg.remove_control_plane("local"));
    }

    #[test]
    fn switch_to_unknown_context_fails() {
        let mut cfg = Configuration::default_local();
        assert!(!cfg.switch_context("nope"));
        assert_eq!(cfg.current_context, "local");
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("config");
        let mut cfg = Configuration::default_local();
        cfg.add_control_plane(mk_control_plane("b", "https://b:5682"), false);
        cfg.save(&path).unwrap();
        assert_eq!(Configuration::load(&path).unwrap(), cfg);
        assert!(matches!(
            Configuration::load(&dir.path().join("missing")),
            Err(ConfigError::Inaccessible(_))
        ));
    }
}
