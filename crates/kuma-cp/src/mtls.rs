//! Mesh mTLS in the control plane: each mTLS mesh's certificate authority
//! (builtin roots kept in Secrets, provided ones read from their data
//! sources), the proxies' SPIFFE identities, and when to renew them.
//!
//! - [`check_ca_backends`] runs at apply time: a provided CA that does
//!   not load is a violation under the backend's `conf`, and nothing is written.
//! - [`resolve_mesh_ca`] is what the index calls whenever a Mesh (or a Secret
//!   of an mTLS mesh) changes; for builtin backends it creates the CA Secrets
//!   when missing, so whichever control plane sees the Mesh first makes them.
//! - [`identity`] issues proxy certificates and keeps the one queue of
//!   rotation deadlines.
//! - A CA past four fifths of its validity is logged as a warning when it
//!   is loaded and when identities are issued under it
//!   ([`MeshCa::warn_if_expiring`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kuma_api::kinds::data_source::DataSource;
use kuma_api::kinds::mesh::{CaBackend, MeshSpec};
use kuma_api::kinds::secret::SecretSpec;
use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec, Violation};
use kuma_ca::{
    BuiltinCa, BuiltinCaOptions, CaError, CaMaterial, CertificateAuthority, NamedSecret,
};
use kuma_store::{ResourceStore, StoreError};

pub mod identity;

/// How often a replica that lost the race to create a builtin CA rereads
/// the winner's Secrets before giving up (the winner writes two of them).
const CA_READ_ATTEMPTS: u32 = 20;
const CA_READ_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum MtlsError {
    #[error("mesh {mesh}: backend {backend}: {source}")]
    Ca {
        mesh: String,
        backend: String,
        #[source]
        source: CaError,
    },
    #[error("mesh {mesh}: backend {backend}: {reason}")]
    Backend {
        mesh: String,
        backend: String,
        reason: String,
    },
    #[error("mesh {mesh}: could not read or write the CA secrets")]
    Store {
        mesh: String,
        #[source]
        source: StoreError,
    },
}

/// The CA an mTLS mesh signs proxy identities with, and what its proxies trust.
pub struct MeshCa {
    pub backend: String,
    pub authority: CertificateAuthority,
    /// PEMs of every backend's CA that could be loaded, the enabled one
    /// first: trusting them all lets proxies talk across a backend switch.
    pub trusted: Vec<String>,
    /// `dpCert.rotation.expiration` of the enabled backend.
    pub identity_validity: Duration,
    /// Whether the warning that this CA nears its end was logged: once per
    /// loaded CA, not once per identity issued under it.
    expiry_warned: AtomicBool,
}

impl std::fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCa")
            .field("backend", &self.backend)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl MeshCa {
    /// Identities issued under a CA with a different generation must be
    /// reissued: another backend, another root, or another validity.
    pub fn generation(&self) -> (String, String, Duration) {
        (
            self.backend.clone(),
            self.authority.cert_pem().to_string(),
            self.identity_validity,
        )
    }

    /// Past four fifths of its life (the point where a proxy identity
    /// would be renewed) a CA needs the operator: nothing rotates a root by
    /// itself, and once it expires every identity it signed stops working.
    pub fn is_expiring(&self, now: DateTime<Utc>) -> bool {
        kuma_ca::needs_rotation(self.authority.not_before(), self.authority.not_after(), now)
    }

    /// Logs a warning, once for this CA, when it [is expiring](Self::is_expiring).
    pub fn warn_if_expiring(&self, mesh: &str, now: DateTime<Utc>) {
        if self.is_expiring(now) && !self.expiry_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %mesh,
                backend = %self.backend,
                not_after = %self.authority.not_after(),
                "the mesh CA is past four fifths of its validity; add a new backend and switch \
                 mtls.enabledBackend to it before it expires"
            );
        }
    }
}

/// Checks the CA backends of a Mesh about to be written: a `provided`
/// backend's cert and key must load and form a usable CA at `now`, a
/// `builtin` backend's root must be one that can be generated (and not be
/// expired from the start), and identities must live at least a second.
/// Violations use Kuma's paths (`mtls.backends[i].conf.cert`,
/// `...conf.cert[j]`, `...conf.key`, `...dpCert.rotation.expiration`).
pub async fn check_ca_backends(
    store: &dyn ResourceStore,
    mesh: &str,
    spec: &MeshSpec,
    now: DateTime<Utc>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let Some(mtls) = &spec.mtls else {
        return violations;
    };
    if mtls.skip_validation {
        return violations;
    }
    for (i, backend) in mtls.backends.iter().enumerate() {
        let conf_path = format!("mtls.backends[{i}].conf");
        // Identities shorter lived than this would be renewed without pause.
        if let Err(CaError::InvalidConfig { field, reason }) = kuma_ca::identity_validity(backend) {
            violations.push(Violation {
                field: format!("mtls.backends[{i}].{field}"),
                message: reason,
            });
        }
        if backend.type_ == "builtin" {
            // A root this crate cannot generate (say, RSA 1024) would only
            // fail after the Mesh is written; refuse it now instead.
            if let Ok(conf) = backend.builtin_conf()
                && let Err(CaError::InvalidConfig { field, reason }) =
                    BuiltinCaOptions::from_conf(&conf)
            {
                violations.push(Violation {
                    field: format!("mtls.backends[{i}].{field}"),
                    message: reason,
                });
            }
            continue;
        }
        if backend.type_ != "provided" {
            continue;
        }
        match load_provided(store, mesh, backend, now).await {
            Ok(_) => {}
            // As Kuma: data that does not load is reported at both fields.
            Err(ProvidedError::Load(reason)) => {
                for field in ["cert", "key"] {
                    violations.push(Violation {
                        field: format!("{conf_path}.{field}"),
                        message: reason.clone(),
                    });
                }
            }
            Err(ProvidedError::Ca(e)) => violations.push(Violation {
                field: match e.conf_field() {
                    Some(field) => format!("{conf_path}.{field}"),
                    None => conf_path,
                },
                message: e.to_string(),
            }),
        }
    }
    violations
}

enum ProvidedError {
    /// The cert or the key could not be read.
    Load(String),
    Ca(CaError),
}

async fn load_provided(
    store: &dyn ResourceStore,
    mesh: &str,
    backend: &CaBackend,
    now: DateTime<Utc>,
) -> Result<CertificateAuthority, ProvidedError> {
    let conf = backend.provided_conf().map_err(|reason| {
        ProvidedError::Load(format!("could not convert backend config: {reason}"))
    })?;
    let cert = read_source(store, mesh, conf.cert.as_ref()).await?;
    let key = read_source(store, mesh, conf.key.as_ref()).await?;
    CertificateAuthority::load(&cert, &key, now).map_err(ProvidedError::Ca)
}

/// The bytes a provided backend's `cert` or `key` data source names.
async fn read_source(
    store: &dyn ResourceStore,
    mesh: &str,
    source: Option<&DataSource>,
) -> Result<Vec<u8>, ProvidedError> {
    let fail = |reason: String| ProvidedError::Load(format!("could not load data: {reason}"));
    let Some(source) = source else {
        return Err(ProvidedError::Load("has to be defined".into()));
    };
    if let Some(name) = &source.secret {
        let key = ResourceKey::in_mesh(Kind::Secret, mesh, name);
        return match store.get(&key).await {
            Ok(Resource {
                spec: Spec::Secret(secret),
                ..
            }) => secret
                .bytes()
                .ok_or_else(|| fail(format!("secret {name:?} has no valid base64 data"))),
            Ok(_) => Err(fail(format!("{name:?} is not a Secret"))),
            // Kuma's store wording.
            Err(StoreError::NotFound(_)) => Err(fail(format!(
                "Resource not found: type=\"Secret\" name=\"{name}\" mesh=\"{mesh}\""
            ))),
            Err(e) => Err(fail(e.to_string())),
        };
    }
    if let Some(b64) = &source.inline {
        return kuma_api::kinds::secret::decode_base64(b64)
            .ok_or_else(|| fail("inline data is not valid base64".into()));
    }
    if let Some(text) = &source.inline_string {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(path) = &source.file {
        return tokio::fs::read(path)
            .await
            .map_err(|e| fail(format!("open {path}: {e}")));
    }
    Err(ProvidedError::Load(
        "data source has to be chosen. Available sources: secret, file, inline".into(),
    ))
}

/// The CA of `mesh` as its spec says, or `None` when mTLS is off. Builtin
/// backends get their Secrets created when missing (every builtin backend,
/// so a later switch finds its root ready and already trusted).
pub async fn resolve_mesh_ca(
    store: &dyn ResourceStore,
    mesh: &str,
    spec: &MeshSpec,
    now: DateTime<Utc>,
) -> Result<Option<Arc<MeshCa>>, MtlsError> {
    let Some(enabled) = spec.enabled_ca_backend() else {
        return Ok(None);
    };
    let mut authority = None;
    let mut trusted = Vec::new();
    let backends = spec.mtls.as_ref().map(|m| m.backends.as_slice());
    for backend in backends.unwrap_or_default() {
        let loaded = load_backend(store, mesh, backend, now).await;
        if backend.name == enabled.name {
            let ca = loaded?;
            trusted.insert(0, ca.cert_pem().to_string());
            authority = Some(ca);
        } else {
            match loaded {
                Ok(ca) => trusted.push(ca.cert_pem().to_string()),
                // A broken spare backend must not take the mesh down.
                Err(e) => tracing::warn!(error = %e, "a non-enabled CA backend does not load"),
            }
        }
    }
    let ca_error = |source| MtlsError::Ca {
        mesh: mesh.to_string(),
        backend: enabled.name.clone(),
        source,
    };
    let identity_validity = kuma_ca::identity_validity(enabled).map_err(ca_error)?;
    let Some(authority) = authority else {
        return Ok(None);
    };
    let ca = MeshCa {
        backend: enabled.name.clone(),
        authority,
        trusted,
        identity_validity,
        expiry_warned: AtomicBool::new(false),
    };
    ca.warn_if_expiring(mesh, now);
    Ok(Some(Arc::new(ca)))
}

async fn load_backend(
    store: &dyn ResourceStore,
    mesh: &str,
    backend: &CaBackend,
    now: DateTime<Utc>,
) -> Result<CertificateAuthority, MtlsError> {
    let ca_error = |source| MtlsError::Ca {
        mesh: mesh.to_string(),
        backend: backend.name.clone(),
        source,
    };
    match backend.type_.as_str() {
        "builtin" => {
            let material = ensure_builtin(store, mesh, backend, now).await?;
            CertificateAuthority::load(
                material.cert_pem.as_bytes(),
                material.key_pem.as_bytes(),
                now,
            )
            .map_err(ca_error)
        }
        "provided" => load_provided(store, mesh, backend, now)
            .await
            .map_err(|e| match e {
                ProvidedError::Ca(e) => ca_error(e),
                ProvidedError::Load(reason) => MtlsError::Backend {
                    mesh: mesh.to_string(),
                    backend: backend.name.clone(),
                    reason,
                },
            }),
        other => Err(MtlsError::Backend {
            mesh: mesh.to_string(),
            backend: backend.name.clone(),
            reason: format!("unsupported CA backend type {other:?}"),
        }),
    }
}

/// The builtin root of `backend`, created and stored when missing.
///
/// Replicas may race here. Whoever creates the certificate Secret owns the
/// root and writes the key beside it; a replica whose create conflicts
/// rereads until the owner's key is there.
pub async fn ensure_builtin(
    store: &dyn ResourceStore,
    mesh: &str,
    backend: &CaBackend,
    now: DateTime<Utc>,
) -> Result<CaMaterial, MtlsError> {
    let store_error = |source| MtlsError::Store {
        mesh: mesh.to_string(),
        source,
    };
    if let Some(existing) = read_builtin(store, mesh, backend)
        .await
        .map_err(store_error)?
    {
        return existing;
    }
    let conf = backend
        .builtin_conf()
        .map_err(|reason| MtlsError::Backend {
            mesh: mesh.to_string(),
            backend: backend.name.clone(),
            reason: format!("could not convert backend config: {reason}"),
        })?;
    // RSA key generation takes a while; keep it off the async workers.
    let owned_mesh = mesh.to_string();
    let material =
        tokio::task::spawn_blocking(move || BuiltinCa::generate(&owned_mesh, &conf, now))
            .await
            .map_err(|e| MtlsError::Backend {
                mesh: mesh.to_string(),
                backend: backend.name.clone(),
                reason: format!("CA generation failed: {e}"),
            })?
            .map_err(|source| MtlsError::Ca {
                mesh: mesh.to_string(),
                backend: backend.name.clone(),
                source,
            })?;
    let [cert, key] = material.to_secrets(mesh, &backend.name);
    match store.create(secret_resource(cert, now)).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists(_)) => {
            // Another replica is making this root: use theirs.
            for _ in 0..CA_READ_ATTEMPTS {
                if let Some(theirs) = read_builtin(store, mesh, backend)
                    .await
                    .map_err(store_error)?
                {
                    return theirs;
                }
                tokio::time::sleep(CA_READ_PAUSE).await;
            }
            return Err(MtlsError::Backend {
                mesh: mesh.to_string(),
                backend: backend.name.clone(),
                reason: "the CA certificate secret exists but its key never appeared".into(),
            });
        }
        Err(e) => return Err(store_error(e)),
    }
    // Our certificate is stored, so the key must be ours too, even over a
    // key left behind by an earlier, interrupted attempt.
    let key_key = key.key.clone();
    match store.create(secret_resource(key.clone(), now)).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists(_)) => {
            let stale = store.get(&key_key).await.map_err(store_error)?;
            let mut ours = secret_resource(key, now);
            ours.meta.version = stale.meta.version;
            ours.meta.creation_time = stale.meta.creation_time;
            store.update(ours).await.map_err(store_error)?;
        }
        Err(e) => return Err(store_error(e)),
    }
    tracing::info!(%mesh, backend = %backend.name, "builtin CA created");
    Ok(material)
}

/// Both Secrets of a builtin root, when both exist.
async fn read_builtin(
    store: &dyn ResourceStore,
    mesh: &str,
    backend: &CaBackend,
) -> Result<Option<Result<CaMaterial, MtlsError>>, StoreError> {
    let get = |name: String| async move {
        match store
            .get(&ResourceKey::in_mesh(Kind::Secret, mesh, &name))
            .await
        {
            Ok(Resource {
                spec: Spec::Secret(s),
                ..
            }) => Ok(Some(s)),
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let cert = get(kuma_ca::cert_secret_name(mesh, &backend.name)).await?;
    let key = get(kuma_ca::key_secret_name(mesh, &backend.name)).await?;
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    Ok(Some(
        CaMaterial::from_secrets(mesh, &backend.name, &cert, &key).map_err(|source| {
            MtlsError::Ca {
                mesh: mesh.to_string(),
                backend: backend.name.clone(),
                source,
            }
        }),
    ))
}

fn secret_resource(secret: NamedSecret, now: DateTime<Utc>) -> Resource {
    crate::labels::with_computed_labels(Resource {
        meta: ResourceMeta {
            mesh: secret.key.mesh.clone(),
            name: secret.key.name.clone(),
            labels: Default::default(),
            creation_time: now,
            modification_time: now,
            version: 0,
        },
        spec: Spec::Secret(SecretSpec {
            data: secret.spec.data,
        }),
    })
}

#[cfg(test)]
mod tests;
