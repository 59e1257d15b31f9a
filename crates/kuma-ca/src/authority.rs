//! A CA ready to sign: certificate and key loaded and checked, from a
//! builtin CA's secrets or from the user's provided cert and key.

use chrono::{DateTime, Utc};
use rcgen::{Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{CaError, Result};
use crate::key;
use crate::time::from_asn1;

/// A checked CA certificate chain with the key of its first certificate.
pub struct CertificateAuthority {
    /// Every certificate of the cert data, re-encoded as PEM: the trust
    /// bundle handed to proxies.
    cert_pem: String,
    /// DER of the signing (first) certificate.
    signing_cert: CertificateDer<'static>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("CertificateAuthority")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads and checks a CA the way Kuma checks a `provided` backend, plus
    /// the validity window at `now`: the first certificate must match the
    /// key; every certificate must be a CA allowed to sign certificates and
    /// be valid at `now`. The first problem found is returned.
    pub fn load(cert_pem: &[u8], key_pem: &[u8], now: DateTime<Utc>) -> Result<Self> {
        let ders = parse_certificates(cert_pem)?;
        let certs = ders
            .iter()
            .enumerate()
            .map(|(index, der)| {
                X509Certificate::from_der(der)
                    .map(|(_, cert)| cert)
                    .map_err(|e| CaError::MalformedCertificate {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let key = key::load(key_pem)?;
        let signing = &certs[0];
        if signing.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        for (index, cert) in certs.iter().enumerate() {
            check_ca_constraints(index, cert)?;
        }
        for (index, cert) in certs.iter().enumerate() {
            check_validity(index, cert, now)?;
        }
        let not_before = from_asn1(signing.validity().not_before);
        let not_after = from_asn1(signing.validity().not_after);
        let signing_cert = ders[0].clone();
        let issuer = Issuer::from_ca_cert_der(&signing_cert, key).map_err(CaError::Certificate)?;
        let cert_pem = ders.iter().map(|der| to_pem(der)).collect();
        Ok(CertificateAuthority {
            cert_pem,
            signing_cert,
            not_before,
            not_after,
            issuer,
        })
    }

    /// The CA certificates as PEM: what a proxy trusts for this mesh.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn signing_cert_der(&self) -> &CertificateDer<'static> {
        &self.signing_cert
    }

    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// Every CERTIFICATE block in `pem`, in order; anything else is skipped.
pub(crate) fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let ders = CertificateDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(index, der)| {
            der.map_err(|e| CaError::MalformedCertificate {
                index,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if ders.is_empty() {
        return Err(CaError::NoCertificate);
    }
    Ok(ders)
}

fn check_ca_constraints(index: usize, cert: &X509Certificate<'_>) -> Result<()> {
    let malformed = |e: x509_parser::error::X509Error| CaError::MalformedCertificate {
        index,
        reason: e.to_string(),
    };
    let is_ca = cert
        .basic_constraints()
        .map_err(malformed)?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(CaError::NotCa { index });
    }
    // An absent key usage extension counts as no usage, as in Kuma.
    let usage = cert.key_usage().map_err(malformed)?.map(|ku| *ku.value);
    if !usage.is_some_and(|ku| ku.key_cert_sign()) {
        return Err(CaError::MissingCertSign { index });
    }
    if usage.is_some_and(|ku| ku.key_agreement()) {
        return Err(CaError::KeyAgreementSet { index });
    }
    Ok(())
}

fn check_validity(index: usize, cert: &X509Certificate<'_>, now: DateTime<Utc>) -> Result<()> {
    let not_before = from_asn1(cert.validity().not_before);
    let not_after = from_asn1(cert.validity().not_after);
    if now < not_before {
        return Err(CaError::NotYetValid { index, not_before });
    }
    if now > not_after {
        return Err(CaError::Expired { index, not_after });
    }
    Ok(())
}

pub(crate) fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
