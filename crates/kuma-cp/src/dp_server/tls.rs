//! The data plane server's TLS identity: the user's certificate and key, or
//! a CA and server certificate generated on first start and kept in
//! `<workDir>/dp-server/` (see [`crate::tls`], shared with the HTTPS API).

use std::path::Path;

pub use crate::tls::{CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE, TlsError};

/// Folder of the generated files inside the work dir.
pub const DIR: &str = "dp-server";
/// Common name of the generated CA.
pub const CA_NAME: &str = "kuma-cp data plane server CA";

/// What the data plane server presents, and the CA proxies should trust.
pub type DpServerTls = crate::tls::ServerTls;

/// The user's files when given, else the generated ones in
/// `<work_dir>/dp-server/` (created on first use).
pub fn load_or_generate(
    cert_and_key: Option<(&Path, &Path)>,
    work_dir: &Path,
) -> Result<DpServerTls, TlsError> {
    DpServerTls::load_or_generate(cert_and_key, &work_dir.join(DIR), CA_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_under_the_dp_server_folder() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_generate(None, dir.path()).unwrap();
        assert_eq!(tls.ca_cert_path, dir.path().join(DIR).join(CA_CERT_FILE));
    }
}
