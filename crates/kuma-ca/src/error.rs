//! Everything that can go wrong generating, loading or using a CA.

use chrono::{DateTime, Utc};

/// One error for the crate. The provided-CA variants are meant to be shown
/// to the user as apply-time validation messages, so each says what is wrong
/// and with which certificate (`index` counts PEM blocks in the cert data,
/// the signing CA first).
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("invalid CA backend configuration at {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    // Kuma's words for a pair Go's TLS stack refuses, so a Kuma user sees
    // the message they know.
    #[error("not a valid TLS key pair: tls: failed to find any PEM data in certificate input")]
    NoCertificate,

    #[error("certificate [{index}] is not a valid x509 certificate: {reason}")]
    MalformedCertificate { index: usize, reason: String },

    #[error("not a valid TLS key pair: tls: failed to find any PEM data in key input")]
    NoPrivateKey,

    #[error("not a valid private key: {reason}")]
    MalformedKey { reason: String },

    #[error("unsupported key type {algorithm}: use RSA (2048 to 4096 bits) or ECDSA P-256/P-384")]
    UnsupportedKey { algorithm: String },

    #[error("not a valid TLS key pair: tls: private key does not match public key")]
    KeyMismatch,

    #[error(
        "certificate [{index}]: basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)"
    )]
    NotCa { index: usize },

    #[error(
        "certificate [{index}]: key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)"
    )]
    MissingCertSign { index: usize },

    #[error(
        "certificate [{index}]: key usage extension 'keyAgreement' must NOT be set (see X509-SVID: Appendix A. X.509 Field Reference)"
    )]
    KeyAgreementSet { index: usize },

    #[error("certificate [{index}] expired at {not_after}")]
    Expired {
        index: usize,
        not_after: DateTime<Utc>,
    },

    #[error("certificate [{index}] is not valid before {not_before}")]
    NotYetValid {
        index: usize,
        not_before: DateTime<Utc>,
    },

    #[error("cannot build a SPIFFE ID from {value:?}: {reason}")]
    InvalidSpiffeId { value: String, reason: &'static str },

    #[error("tag {key:?}={value:?} cannot be written as a kuma:// URI SAN: {reason}")]
    InvalidTag {
        key: String,
        value: String,
        reason: &'static str,
    },

    #[error("the identity has no kuma.io/service tag, so it has no SPIFFE ID")]
    NoService,

    #[error("secret {name:?} has no data or its data is not valid base64")]
    SecretData { name: String },

    #[error("could not generate a key pair: {reason}")]
    KeyGeneration { reason: String },

    #[error("could not build the certificate")]
    Certificate(#[source] rcgen::Error),

    #[error("certificate chain does not verify: {reason}")]
    ChainInvalid { reason: String },
}

pub type Result<T, E = CaError> = std::result::Result<T, E>;

impl CaError {
    /// Where under a provided backend's `conf` Kuma reports this problem
    /// (`mtls.backends[i].conf.<here>`): `cert` for a pair that does not
    /// load, `cert[i]` for a certificate that may not act as a CA. `None`
    /// for errors that are not about the provided certificate and key.
    pub fn conf_field(&self) -> Option<String> {
        match self {
            CaError::NoCertificate
            | CaError::MalformedCertificate { .. }
            | CaError::NoPrivateKey
            | CaError::MalformedKey { .. }
            | CaError::UnsupportedKey { .. }
            | CaError::KeyMismatch => Some("cert".to_string()),
            CaError::NotCa { index }
            | CaError::MissingCertSign { index }
            | CaError::KeyAgreementSet { index }
            | CaError::Expired { index, .. }
            | CaError::NotYetValid { index, .. } => Some(format!("cert[{index}]")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_ca_problems_name_kumas_conf_field() {
        assert_eq!(CaError::KeyMismatch.conf_field().as_deref(), Some("cert"));
        assert_eq!(
            CaError::NotCa { index: 1 }.conf_field().as_deref(),
            Some("cert[1]")
        );
        let expired = CaError::Expired {
            index: 0,
            not_after: DateTime::UNIX_EPOCH,
        };
        assert_eq!(expired.conf_field().as_deref(), Some("cert[0]"));
        assert_eq!(CaError::NoService.conf_field(), None);
    }
}
