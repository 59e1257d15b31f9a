//! TLS for the control plane's servers (data plane server, HTTPS API).
//!
//! The identity is the user's certificate and key, or a CA and server
//! certificate generated on first start and kept in a folder of the work
//! dir, so restarts (and clients holding the CA) keep working. [`serve`]
//! runs an axum router over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
/// A TLS handshake slower than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("could not generate a server certificate")]
    Generate(#[from] rcgen::Error),
    #[error("the TLS certificate and key do not make a usable server identity")]
    Rustls(#[from] rustls::Error),
}

/// What a server presents, and the CA its clients should trust.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// PEM of the certificate clients verify the server with: the generated
    /// CA, or for a user's certificate the last certificate of its chain.
    pub ca_cert_pem: String,
    /// Where that CA lives on disk (for `kuma-dp --ca-cert-file`,
    /// `kumactl config control-planes add --ca-cert-file`).
    pub ca_cert_path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key_pem: Vec<u8>,
}

impl ServerTls {
    /// The user's files when given, else the generated ones in `dir`
    /// (created on first use, with a CA named `ca_name`).
    pub fn load_or_generate(
        cert_and_key: Option<(&Path, &Path)>,
        dir: &Path,
        ca_name: &str,
    ) -> Result<Self, TlsError> {
        match cert_and_key {
            Some((cert, key)) => Self::from_files(cert, key, None),
            None => {
                if !dir.join(KEY_FILE).exists() {
                    generate_into(dir, ca_name)?;
                }
                Self::from_files(
                    &dir.join(CERT_FILE),
                    &dir.join(KEY_FILE),
                    Some(&dir.join(CA_CERT_FILE)),
                )
            }
        }
    }

    fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> Result<Self, TlsError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| TlsError::Pem {
                path: cert.to_path_buf(),
                what: "certificate",
            })?;
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
            path: key.to_path_buf(),
            what: "private key",
        })?;
        let (ca_cert_pem, ca_cert_path) = match ca {
            Some(ca) => (String::from_utf8_lossy(&read(ca)?).into_owned(), ca.into()),
            None => {
                // A user's chain ends with the certificate closest to the
                // root they gave: that is what clients are told to trust.
                let last = chain.last().map(|c| pem_of(c)).unwrap_or_default();
                (last, cert.to_path_buf())
            }
        };
        Ok(Self {
            ca_cert_pem,
            ca_cert_path,
            chain,
            key_pem,
        })
    }

    /// A rustls server config offering HTTP/2 (ADS, API clients) and
    /// HTTP/1.1 (kuma-dp's bootstrap request, curl) on the same port.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|_| TlsError::Pem {
            path: PathBuf::from(KEY_FILE),
            what: "private key",
        })?;
        // An explicit provider: the process default is ambiguous when some
        // other crate in the build enables a second rustls backend.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_of(cert: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Names clients may use to reach this control plane.
fn server_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    if let Some(host) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h != "localhost")
    {
        names.push(host);
    }
    names
}

/// Writes a fresh CA and server certificate into `dir`. Built in a sibling
/// folder and renamed into place, so two control planes starting at once on
/// one work dir end with one consistent set (the loser uses the winner's).
fn generate_into(dir: &Path, ca_name: &str) -> Result<(), TlsError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let folder = dir
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(parent).map_err(|source| TlsError::Write {
        path: parent.to_path_buf(),
        source,
    })?;
    let staging = parent.join(format!(".{folder}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let write = |name: &str, text: &str| {
        let path = staging.join(name);
        std::fs::write(&path, text).map_err(|source| TlsError::Write { path, source })
    };
    std::fs::create_dir_all(&staging).map_err(|source| TlsError::Write {
        path: staging.clone(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(server_names())?;
    params.subject_alt_names.extend([
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    params
        .distinguished_name
        .push(DnType::CommonName, "kuma-control-plane");
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;

    write(CA_CERT_FILE, &ca_cert.pem())?;
    write(CA_KEY_FILE, &ca_key.serialize_pem())?;
    write(CERT_FILE, &cert.pem())?;
    write(KEY_FILE, &key.serialize_pem())?;
    restrict(&staging.join(CA_KEY_FILE));
    restrict(&staging.join(KEY_FILE));
    if std::fs::rename(&staging, dir).is_err() {
        // Someone else's set won the race (or the folder exists without a
        // key, which loading will report).
        let _ = std::fs::remove_dir_all(&staging);
    } else {
        tracing::info!(dir = %dir.display(), ca = ca_name, "generated a CA and server certificate");
    }
    Ok(())
}

/// Private keys readable by the owner only.
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Serves `app` over TLS until `stop`, offering HTTP/2 and HTTP/1.1; each
/// request carries the peer's address as `ConnectInfo`, as
/// `axum::serve` with connect info does for plain HTTP.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        connections.spawn(
            async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let app = tower::ServiceExt::map_request(
                    app,
                    move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        req
                    },
                );
                let service = hyper_util::service::TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                if let Err(e) = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("tls_connection", %peer)),
        );
    }
    // In-flight requests end with the server.
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "test CA";

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("server");
        let first = ServerTls::load_or_generate(None, &d, CA).unwrap();
        assert!(first.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(first.ca_cert_path, d.join(CA_CERT_FILE));
        let second = ServerTls::load_or_generate(None, &d, CA).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.chain, second.chain);
        let config = second.server_config().unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        let other = ServerTls::load_or_generate(None, &dir.path().join("other"), CA).unwrap();
        assert_ne!(
            other.ca_cert_pem, first.ca_cert_pem,
            "each folder has its own CA"
        );
    }

    #[test]
    fn user_files_are_used_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("server");
        let generated = ServerTls::load_or_generate(None, &d, CA).unwrap();
        let user = ServerTls::load_or_generate(
            Some((&d.join(CERT_FILE), &d.join(KEY_FILE))),
            Path::new("/nonexistent"),
            CA,
        )
        .unwrap();
        assert_eq!(user.chain, generated.chain);
        let err = ServerTls::load_or_generate(
            Some((&d.join(CA_CERT_FILE), &d.join(CA_CERT_FILE))),
            &d,
            CA,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Pem {
                    what: "private key",
                    ..
                }
            ),
            "{err}"
        );
    }
}
