//! Identity certificates for data plane proxies (X509-SVIDs) and when to
//! renew them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use kuma_api::kinds::mesh::CaBackend;
use rcgen::{CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};

use crate::authority::CertificateAuthority;
use crate::builtin::{chrono_duration, ia5};
use crate::error::{CaError, Result};
use crate::key::{self, KeyAlgorithm};
use crate::time::{to_offset, whole_seconds};
use crate::{ALLOWED_CLOCK_SKEW, random_serial, spiffe};

/// The tag whose values become SPIFFE IDs.
pub const SERVICE_TAG: &str = "kuma.io/service";

/// Validity of a proxy certificate when the backend sets no
/// `dpCert.rotation.expiration`: Kuma's issuer default.
pub const DEFAULT_IDENTITY_VALIDITY: Duration = Duration::from_secs(5 * 24 * 3600);

/// A proxy's tags, every value of every tag across its inbounds.
pub type TagSet = BTreeMap<String, BTreeSet<String>>;

/// `dpCert.rotation.expiration` of a backend (mesh duration syntax, at least
/// [`crate::MIN_LIFETIME`]), or the default.
pub fn identity_validity(backend: &CaBackend) -> Result<Duration> {
    let expiration = backend
        .dp_cert
        .as_ref()
        .and_then(|d| d.rotation.as_ref())
        .map(|r| r.expiration.as_str())
        .unwrap_or_default();
    if expiration.is_empty() {
        return Ok(DEFAULT_IDENTITY_VALIDITY);
    }
    let validity = kuma_api::duration::parse_mesh_duration(expiration).map_err(|reason| {
        CaError::InvalidConfig {
            field: "dpCert.rotation.expiration",
            reason,
        }
    })?;
    // Shorter lifetimes would be renewed as fast as they are issued.
    crate::time::check_lifetime("dpCert.rotation.expiration", validity)
}

/// What to put in one identity certificate.
#[derive(Debug, Clone)]
pub struct IdentityRequest<'a> {
    pub mesh: &'a str,
    pub tags: &'a TagSet,
    pub validity: Duration,
    /// Kuma issues RSA 2048 keys; ECDSA is far cheaper to generate.
    pub key: KeyAlgorithm,
}

/// An issued certificate, its key, and the times rotation is decided on.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// When the control plane issued it (the `now` it was issued with).
    pub issued_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for IdentityCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCert")
            .field("cert_pem", &self.cert_pem)
            .field("issued_at", &self.issued_at)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IdentityCert {
    pub fn needs_rotation(&self, now: DateTime<Utc>) -> bool {
        needs_rotation(self.issued_at, self.not_after, now)
    }
}

/// Kuma's renewal rule: once four fifths of the lifetime (issue time to
/// expiry) have passed, issue a new certificate.
pub fn needs_rotation(
    issued_at: DateTime<Utc>,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    now > rotation_time(issued_at, not_after)
}

/// The URI SANs of an identity: `spiffe://<mesh>/<service>` for every
/// `kuma.io/service` value, then `kuma://<tag>/<value>` for every tag and
/// value (services included), each in sorted order.
pub fn identity_uris(mesh: &str, tags: &TagSet) -> Result<Vec<String>> {
    let services = tags.get(SERVICE_TAG).filter(|s| !s.is_empty());
    let Some(services) = services else {
        return Err(CaError::NoService);
    };
    let mut uris = services
        .iter()
        .map(|service| spiffe::workload_id(mesh, service))
        .collect::<Result<Vec<_>>>()?;
    for (key, values) in tags {
        for value in values {
            check_uri_part(key, value, key)?;
            check_uri_part(key, value, value)?;
            uris.push(format!("kuma://{key}/{value}"));
        }
    }
    Ok(uris)
}

fn check_uri_part(key: &str, value: &str, part: &str) -> Result<()> {
    let invalid = |reason| CaError::InvalidTag {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    if part.is_empty() {
        return Err(invalid("empty"));
    }
    // URI SANs are IA5 strings, and a URI has no room for spaces or controls.
    if !part.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("only visible ASCII characters are allowed"));
    }
    Ok(())
}

/// Issues a certificate for a proxy with `request.tags`, signed by `ca`.
///
/// No subject (the identity is in the SANs, which are therefore critical),
/// not a CA, key usage digitalSignature + keyEncipherment + keyAgreement and
/// extended key usage serverAuth + clientAuth, as Kuma issues them. Valid
/// from a little before `now` for clock skew until `now + validity`, or
/// until the CA expires if that comes first: a certificate outliving its CA
/// fails verification anyway, and the shorter life brings its renewal
/// forward. A CA that has expired issues nothing.
pub fn issue_identity(
    ca: &CertificateAuthority,
    request: &IdentityRequest<'_>,
    now: DateTime<Utc>,
) -> Result<IdentityCert> {
    let uris = identity_uris(request.mesh, request.tags)?;
    let key = key::generate(request.key)?;
    let now = whole_seconds(now);
    let not_before = now - ALLOWED_CLOCK_SKEW;
    if now >= ca.not_after() {
        return Err(CaError::Expired {
            index: 0,
            not_after: ca.not_after(),
        });
    }
    let not_after = (now + chrono_duration(request.validity)?).min(ca.not_after());

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(random_serial());
    params.subject_alt_names = uris
        .into_iter()
        .map(|uri| ia5(uri).map(rcgen::SanType::URI))
        .collect::<Result<_>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    // Lets verifiers pick the right CA while two are trusted during rotation.
    params.use_authority_key_identifier_extension = true;
    params.not_before = to_offset(not_before);
    params.not_after = to_offset(not_after);

    let cert = params
        .signed_by(&key.key_pair, ca.issuer())
        .map_err(CaError::Certificate)?;
    Ok(IdentityCert {
        cert_pem: cert.pem(),
        key_pem: key.pem,
        issued_at: now,
        not_before,
        not_after,
    })
}

/// How far into its lifetime a certificate gets renewed, for callers that
/// schedule the next check.
pub fn rotation_time(issued_at: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime: TimeDelta = not_after - issued_at;
    issued_at + lifetime / 5 * 4
}
