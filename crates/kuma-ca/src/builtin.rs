//! The `builtin` CA backend: a self-signed root per mesh and backend, kept
//! in two Secrets so a restarted (or a second) control plane reuses it.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use kuma_api::kind::Kind;
use kuma_api::kinds::mesh::BuiltinCaConfig;
use kuma_api::kinds::secret::SecretSpec;
use kuma_api::resource::ResourceKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose, SanType,
};

use crate::error::{CaError, Result};
use crate::key::{self, DEFAULT_RSA_BITS, KeyAlgorithm};
use crate::time::to_offset;
use crate::{ALLOWED_CLOCK_SKEW, random_serial, spiffe};

/// Kuma's `conf.caCert.expiration` default: ten years of 365 days.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How a builtin root is made, read from the backend's `conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinCaOptions {
    pub key: KeyAlgorithm,
    pub validity: Duration,
}

impl Default for BuiltinCaOptions {
    fn default() -> Self {
        BuiltinCaOptions {
            key: KeyAlgorithm::default(),
            validity: DEFAULT_CA_VALIDITY,
        }
    }
}

impl BuiltinCaOptions {
    /// `caCert.RSAbits` (0 or absent: 2048) and `caCert.expiration` (mesh
    /// duration syntax, absent: 10y, at least [`crate::MIN_LIFETIME`]).
    pub fn from_conf(conf: &BuiltinCaConfig) -> Result<Self> {
        let ca_cert = conf.ca_cert.clone().unwrap_or_default();
        let bits = match ca_cert.rsa_bits {
            None | Some(0) => DEFAULT_RSA_BITS,
            Some(bits) => bits,
        };
        key::check_rsa_bits(bits).map_err(|e| CaError::InvalidConfig {
            field: "conf.caCert.RSAbits",
            reason: e.to_string(),
        })?;
        let validity =
            if ca_cert.expiration.is_empty() {
                DEFAULT_CA_VALIDITY
            } else {
                let validity = kuma_api::duration::parse_mesh_duration(&ca_cert.expiration)
                    .map_err(|reason| CaError::InvalidConfig {
                        field: "conf.caCert.expiration",
                        reason,
                    })?;
                // A root that has expired by the time it is stored would leave
                // the mesh without identities.
                crate::time::check_lifetime("conf.caCert.expiration", validity)?
            };
        Ok(BuiltinCaOptions {
            key: KeyAlgorithm::Rsa { bits },
            validity,
        })
    }
}

/// A CA certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Generates builtin roots.
pub struct BuiltinCa;

impl BuiltinCa {
    /// A new root for `mesh` as Kuma makes it from the backend `conf`.
    pub fn generate(mesh: &str, conf: &BuiltinCaConfig, now: DateTime<Utc>) -> Result<CaMaterial> {
        Self::generate_with(mesh, &BuiltinCaOptions::from_conf(conf)?, now)
    }

    /// A new root with explicit options (tests use cheap ECDSA keys).
    ///
    /// Subject `O=Kuma, OU=Mesh, CN=<mesh>`, URI SAN `spiffe://<mesh>`,
    /// basic constraints CA, key usage keyCertSign + cRLSign; valid from a
    /// little before `now` so peers with a slow clock accept it.
    pub fn generate_with(
        mesh: &str,
        options: &BuiltinCaOptions,
        now: DateTime<Utc>,
    ) -> Result<CaMaterial> {
        let uri = spiffe::trust_domain_id(mesh)?;
        let key = key::generate(options.key)?;

        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "Kuma");
        subject.push(DnType::OrganizationalUnitName, "Mesh");
        subject.push(DnType::CommonName, mesh);

        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.serial_number = Some(random_serial());
        params.subject_alt_names = vec![SanType::URI(ia5(uri)?)];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = to_offset(now - ALLOWED_CLOCK_SKEW);
        params.not_after = to_offset(now + chrono_duration(options.validity)?);

        let cert = params
            .self_signed(&key.key_pair)
            .map_err(CaError::Certificate)?;
        Ok(CaMaterial {
            cert_pem: cert.pem(),
            key_pem: key.pem,
        })
    }
}

pub(crate) fn ia5(value: String) -> Result<rcgen::string::Ia5String> {
    rcgen::string::Ia5String::try_from(value).map_err(CaError::Certificate)
}

pub(crate) fn chrono_duration(d: Duration) -> Result<chrono::TimeDelta> {
    chrono::TimeDelta::from_std(d).map_err(|e| CaError::InvalidConfig {
        field: "expiration",
        reason: e.to_string(),
    })
}

/// `<mesh>.ca-builtin-cert-<backend>`: the Secret holding the root certificate.
pub fn cert_secret_name(mesh: &str, backend: &str) -> String {
    format!("{mesh}.ca-builtin-cert-{backend}")
}

/// `<mesh>.ca-builtin-key-<backend>`: the Secret holding the root key.
pub fn key_secret_name(mesh: &str, backend: &str) -> String {
    format!("{mesh}.ca-builtin-key-{backend}")
}

/// A Secret to write: where it goes and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSecret {
    pub key: ResourceKey,
    pub spec: SecretSpec,
}

impl CaMaterial {
    /// The two Secrets, certificate first, in the mesh they belong to.
    pub fn to_secrets(&self, mesh: &str, backend: &str) -> [NamedSecret; 2] {
        let secret = |name: String, pem: &str| NamedSecret {
            key: ResourceKey::in_mesh(Kind::Secret, mesh, &name),
            spec: SecretSpec {
                data: Some(base64::engine::general_purpose::STANDARD.encode(pem)),
            },
        };
        [
            secret(cert_secret_name(mesh, backend), &self.cert_pem),
            secret(key_secret_name(mesh, backend), &self.key_pem),
        ]
    }

    /// Reads the material back from the Secrets [`CaMaterial::to_secrets`]
    /// wrote. It is not checked here; [`crate::CertificateAuthority::load`]
    /// does that.
    pub fn from_secrets(
        mesh: &str,
        backend: &str,
        cert: &SecretSpec,
        key: &SecretSpec,
    ) -> Result<Self> {
        let text = |name: String, spec: &SecretSpec| {
            spec.bytes()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|s| !s.is_empty())
                .ok_or(CaError::SecretData { name })
        };
        Ok(CaMaterial {
            cert_pem: text(cert_secret_name(mesh, backend), cert)?,
            key_pem: text(key_secret_name(mesh, backend), key)?,
        })
    }
}
