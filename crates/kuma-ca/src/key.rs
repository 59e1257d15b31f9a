//! Private keys: generating them and reading the PEM forms users and Kuma
//! write (PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY", PKCS#8).

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{CaError, Result};

/// Kuma's `conf.caCert.RSAbits` default, also the size of its workload keys.
pub const DEFAULT_RSA_BITS: u32 = 2048;

/// ring signs with RSA keys of these sizes only.
const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=4096;

/// The kind of key to generate for a CA or an identity certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Kuma's choice for both CA and workload keys.
    Rsa { bits: u32 },
    /// Much cheaper to generate; every TLS stack in the mesh accepts it.
    EcdsaP256,
}

impl Default for KeyAlgorithm {
    fn default() -> Self {
        KeyAlgorithm::Rsa {
            bits: DEFAULT_RSA_BITS,
        }
    }
}

/// A fresh key: the signer for rcgen and the PEM to store or hand out.
pub(crate) struct GeneratedKey {
    pub(crate) key_pair: KeyPair,
    pub(crate) pem: String,
}

pub(crate) fn generate(algorithm: KeyAlgorithm) -> Result<GeneratedKey> {
    match algorithm {
        KeyAlgorithm::Rsa { bits } => generate_rsa(bits),
        KeyAlgorithm::EcdsaP256 => {
            let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| {
                CaError::KeyGeneration {
                    reason: e.to_string(),
                }
            })?;
            let pem = key_pair.serialize_pem();
            Ok(GeneratedKey { key_pair, pem })
        }
    }
}

pub(crate) fn check_rsa_bits(bits: u32) -> Result<()> {
    if RSA_BITS.contains(&bits) {
        Ok(())
    } else {
        Err(CaError::UnsupportedKey {
            algorithm: format!("RSA {bits} bits"),
        })
    }
}

fn generate_rsa(bits: u32) -> Result<GeneratedKey> {
    check_rsa_bits(bits)?;
    let failed = |e: &dyn std::fmt::Display| CaError::KeyGeneration {
        reason: e.to_string(),
    };
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits as usize)
        .map_err(|e| failed(&e))?;
    let pkcs8 = private.to_pkcs8_der().map_err(|e| failed(&e))?;
    let key_pair = KeyPair::try_from(pkcs8.as_bytes()).map_err(|e| failed(&e))?;
    // PKCS#1 like Kuma writes it, so a Kuma control plane reading the same
    // store sees the form it expects.
    let pem = private
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| failed(&e))?
        .to_string();
    Ok(GeneratedKey { key_pair, pem })
}

/// Reads the first private key in `pem` into a signer, whatever its PEM form.
pub(crate) fn load(pem: &[u8]) -> Result<KeyPair> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CaError::NoPrivateKey,
        other => CaError::MalformedKey {
            reason: other.to_string(),
        },
    })?;
    // ring reads PKCS#8 only, so the other forms are rewrapped first.
    let key_pair =
        match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => from_pkcs8(pkcs8.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(pkcs1) => {
                let private = rsa::RsaPrivateKey::from_pkcs1_der(pkcs1.secret_pkcs1_der())
                    .map_err(|e| CaError::MalformedKey {
                        reason: e.to_string(),
                    })?;
                check_rsa_bits(rsa_bits(&private))?;
                let pkcs8 = private.to_pkcs8_der().map_err(|e| CaError::MalformedKey {
                    reason: e.to_string(),
                })?;
                from_pkcs8(pkcs8.as_bytes())
            }
            PrivateKeyDer::Sec1(sec1) => [OID_P256, OID_P384]
                .iter()
                .find_map(|curve| from_pkcs8(&sec1_to_pkcs8(sec1.secret_sec1_der(), curve)).ok())
                .ok_or_else(|| CaError::UnsupportedKey {
                    algorithm: "EC key on a curve other than P-256/P-384".to_string(),
                }),
            _ => Err(CaError::MalformedKey {
                reason: "unknown private key encoding".to_string(),
            }),
        }?;
    Ok(key_pair)
}

fn from_pkcs8(der: &[u8]) -> Result<KeyPair> {
    match KeyPair::try_from(der) {
        Ok(key_pair) => {
            let alg = key_pair.algorithm();
            if alg == &PKCS_RSA_SHA256
                || alg == &PKCS_ECDSA_P256_SHA256
                || alg == &PKCS_ECDSA_P384_SHA384
            {
                Ok(key_pair)
            } else {
                Err(CaError::UnsupportedKey {
                    algorithm: format!("{alg:?}"),
                })
            }
        }
        // ring refused it: say why when it is a well-formed RSA key of a size
        // ring will not sign with, the common case for old 1024-bit CAs.
        Err(e) => match rsa::RsaPrivateKey::from_pkcs8_der(der) {
            Ok(private) => Err(CaError::UnsupportedKey {
                algorithm: format!("RSA {} bits", rsa_bits(&private)),
            }),
            Err(_) => Err(CaError::MalformedKey {
                reason: e.to_string(),
            }),
        },
    }
}

fn rsa_bits(key: &rsa::RsaPrivateKey) -> u32 {
    u32::try_from(key.n().bits()).unwrap_or(u32::MAX)
}

/// DER of the named-curve OIDs, tag and length included.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// PKCS#8 PrivateKeyInfo around a SEC1 ECPrivateKey (RFC 5915 / 5208).
fn sec1_to_pkcs8(sec1: &[u8], curve_oid: &[u8]) -> Vec<u8> {
    let algorithm = der_tlv(0x30, &[OID_EC_PUBLIC_KEY, curve_oid].concat());
    let version = [0x02, 0x01, 0x00];
    let body = [&version[..], &algorithm, &der_tlv(0x04, sec1)].concat();
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_key_round_trips_through_pem() {
        let key = generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert!(key.pem.contains("BEGIN PRIVATE KEY"));
        let loaded = load(key.pem.as_bytes()).unwrap();
        assert_eq!(loaded.public_key_raw(), key.key_pair.public_key_raw());
    }

    #[test]
    fn sec1_ec_keys_are_read() {
        let key = generate(KeyAlgorithm::EcdsaP256).unwrap();
        // Pull the SEC1 structure back out of the PKCS#8 wrapper: it is the
        // last OCTET STRING, and rewrapping must give identical bytes.
        let pkcs8 = key.key_pair.serialize_der();
        let sec1 = x509_parser::der_parser::parse_der(&pkcs8)
            .unwrap()
            .1
            .as_sequence()
            .unwrap()[2]
            .as_slice()
            .unwrap()
            .to_vec();
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64_lines(&sec1)
        );
        let loaded = load(pem.as_bytes()).unwrap();
        assert_eq!(loaded.public_key_raw(), key.key_pair.public_key_raw());
    }

    #[test]
    fn garbage_and_missing_keys_are_told_apart() {
        assert!(matches!(load(b"hello"), Err(CaError::NoPrivateKey)));
        let bad = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(load(bad), Err(CaError::MalformedKey { .. })));
    }

    #[test]
    fn rsa_sizes_ring_cannot_sign_with_are_refused() {
        assert!(check_rsa_bits(2048).is_ok());
        assert!(check_rsa_bits(4096).is_ok());
        assert!(matches!(
            check_rsa_bits(1024),
            Err(CaError::UnsupportedKey { .. })
        ));
        assert!(matches!(
            generate(KeyAlgorithm::Rsa { bits: 8192 }),
            Err(CaError::UnsupportedKey { .. })
        ));
    }

    #[test]
    fn long_der_lengths_use_the_long_form() {
        assert_eq!(der_tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(der_tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der_tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    fn base64_lines(der: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}
