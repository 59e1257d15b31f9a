//! Certificate authorities for mesh mTLS.
//!
//! - [`BuiltinCa`] makes a self-signed root per mesh and backend; the control
//!   plane keeps it in two Secrets ([`CaMaterial::to_secrets`]).
//! - [`CertificateAuthority::load`] reads and checks a CA (builtin or
//!   `provided`): key matches, is a CA, may sign, is valid now.
//! - [`issue_identity`] issues a proxy's SPIFFE certificate;
//!   [`needs_rotation`] says when to issue the next one.
//!
//! Everything takes `now` from the caller: nothing here reads a clock, and
//! randomness is used only for keys and serial numbers.

mod authority;
mod builtin;
mod error;
mod identity;
mod key;
pub mod spiffe;
mod time;
mod verify;

pub use authority::CertificateAuthority;
pub use builtin::{
    BuiltinCa, BuiltinCaOptions, CaMaterial, DEFAULT_CA_VALIDITY, NamedSecret, cert_secret_name,
    key_secret_name,
};
pub use error::{CaError, Result};
pub use identity::{
    DEFAULT_IDENTITY_VALIDITY, IdentityCert, IdentityRequest, SERVICE_TAG, TagSet, identity_uris,
    identity_validity, issue_identity, needs_rotation, rotation_time,
};
pub use key::{DEFAULT_RSA_BITS, KeyAlgorithm};
pub use verify::verify_chain;

/// Certificates start this long before `now`, so a peer whose clock is a
/// little behind does not reject a fresh one (Kuma uses the same 10s).
pub const ALLOWED_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// The shortest lifetime a CA (`conf.caCert.expiration`) or an identity
/// (`dpCert.rotation.expiration`) may be given. Certificates count whole
/// seconds, so anything shorter is expired when issued, or due for renewal
/// as soon as it is sent.
pub const MIN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(1);

/// A random positive 128-bit serial number, never zero.
fn random_serial() -> rcgen::SerialNumber {
    use rsa::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rsa::rand_core::OsRng.fill_bytes(&mut bytes);
    // Clear the sign bit so the DER integer stays positive, and set the
    // next one so it is never zero and always 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    rcgen::SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests;
