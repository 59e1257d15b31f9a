//! Chain verification with a TLS-grade verifier (webpki, as rustls uses),
//! for tests and for checking what the control plane hands out.

use chrono::{DateTime, Utc};
use rustls_pki_types::UnixTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::parse_certificates;
use crate::error::{CaError, Result};
use crate::time::from_asn1;

/// Checks that the first certificate of `leaf_pem` chains to one of the
/// certificates in `ca_pem` at `now`, for both server and client use, and
/// that the CA itself is valid at `now` (webpki does not look at a trust
/// anchor's dates).
pub fn verify_chain(leaf_pem: &str, ca_pem: &str, now: DateTime<Utc>) -> Result<()> {
    let invalid = |reason: String| CaError::ChainInvalid { reason };
    let leaf = parse_certificates(leaf_pem.as_bytes())?;
    let cas = parse_certificates(ca_pem.as_bytes())?;
    let anchors = cas
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).map_err(|e| invalid(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    for ca in &cas {
        let (_, cert) = X509Certificate::from_der(ca).map_err(|e| invalid(e.to_string()))?;
        let (not_before, not_after) = (
            from_asn1(cert.validity().not_before),
            from_asn1(cert.validity().not_after),
        );
        if now < not_before || now > not_after {
            return Err(invalid(format!(
                "CA certificate is valid from {not_before} to {not_after}, not at {now}"
            )));
        }
    }
    let end_entity =
        webpki::EndEntityCert::try_from(&leaf[0]).map_err(|e| invalid(e.to_string()))?;
    let seconds = u64::try_from(now.timestamp())
        .map_err(|_| invalid(format!("time {now} is before 1970")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                time,
                usage,
                None,
                None,
            )
            .map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}
