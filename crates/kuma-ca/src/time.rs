//! Conversions between the clock the control plane passes in (chrono) and
//! the ones the certificate libraries use. Certificates keep whole seconds.

use chrono::{DateTime, Utc};
use time::OffsetDateTime;
use x509_parser::time::ASN1Time;

pub(crate) fn to_offset(t: DateTime<Utc>) -> OffsetDateTime {
    // Every chrono timestamp in whole seconds fits OffsetDateTime's range
    // for any date a certificate can carry (years 1..9999).
    OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn from_asn1(t: ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default()
}

/// `t` with its sub-second part dropped, as it will read back from a certificate.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Refuses a certificate lifetime below [`crate::MIN_LIFETIME`] as an
/// invalid `field`.
pub(crate) fn check_lifetime(
    field: &'static str,
    lifetime: std::time::Duration,
) -> crate::Result<std::time::Duration> {
    if lifetime < crate::MIN_LIFETIME {
        return Err(crate::CaError::InvalidConfig {
            field,
            reason: "must be at least 1s".to_string(),
        });
    }
    Ok(lifetime)
}
