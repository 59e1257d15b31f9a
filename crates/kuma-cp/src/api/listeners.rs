//! The API's listeners: HTTP (5681) and HTTPS (5682) serving one router.
//! Both pass the peer address to the router, which is how loopback callers
//! are recognized as the local admin.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::ApiState;
use crate::config::Config;
use crate::tls::ServerTls;

/// Folder of the generated HTTPS identity inside the work dir.
pub const TLS_DIR: &str = "api-server";
/// Common name of the generated CA.
pub const TLS_CA_NAME: &str = "kuma-cp API server CA";

/// The running listeners.
pub struct ApiListeners {
    pub http_address: Option<SocketAddr>,
    pub https_address: Option<SocketAddr>,
    /// The CA clients verify the HTTPS listener with (PEM file).
    pub https_ca_cert_path: Option<PathBuf>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    https: Option<JoinHandle<()>>,
}

impl ApiListeners {
    /// Binds the enabled listeners and starts serving `state`'s router.
    pub async fn start(
        config: &Config,
        state: ApiState,
        stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<ApiListeners> {
        let app =
            super::router(state).layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES));
        let api = &config.api_server;
        let mut out = ApiListeners {
            http_address: None,
            https_address: None,
            https_ca_cert_path: None,
            http: None,
            https: None,
        };
        if api.http.enabled {
            let listener = bind("apiServer.http", &api.http.interface, api.http.port).await?;
            let address = listener.local_addr()?;
            tracing::info!(%address, "API server listening (HTTP)");
            let app = app
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>();
            let mut stopped = stopped.clone();
            out.http = Some(tokio::spawn(
                async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            // Either a stop request or the sender dropping ends serving.
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await
                }
                .instrument(tracing::info_span!("api_server")),
            ));
            out.http_address = Some(address);
        }
        if api.https.enabled {
            let tls = https_identity(config).context("could not set up TLS for the API server")?;
            let server_config = tls
                .server_config()
                .context("could not set up TLS for the API server")?;
            let listener = bind("apiServer.https", &api.https.interface, api.https.port).await?;
            let address = listener.local_addr()?;
            tracing::info!(%address, ca_cert = %tls.ca_cert_path.display(), "API server listening (HTTPS)");
            out.https = Some(tokio::spawn(
                crate::tls::serve(listener, server_config, app, stopped)
                    .instrument(tracing::info_span!("api_server_https", %address)),
            ));
            out.https_address = Some(address);
            out.https_ca_cert_path = Some(tls.ca_cert_path);
        }
        Ok(out)
    }

    /// Waits for both listeners to stop (after `stopped` was signalled).
    pub async fn stopped(&mut self) {
        if let Some(server) = self.http.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "API server stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "API server task failed"),
            }
        }
        if let Some(server) = self.https.take()
            && let Err(e) = server.await
        {
            tracing::warn!(error = %e, "HTTPS API server task failed");
        }
    }
}

/// `apiServer.https.tlsCertFile`/`tlsKeyFile`, else `general.*`, else the
/// identity generated in `<workDir>/api-server/`.
fn https_identity(config: &Config) -> Result<ServerTls, crate::tls::TlsError> {
    let https = &config.api_server.https;
    let general = &config.general;
    let pair = match (&https.tls_cert_file, &https.tls_key_file) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => match (&general.tls_cert_file, &general.tls_key_file) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        },
    };
    let dir = general.effective_work_dir().join(TLS_DIR);
    ServerTls::load_or_generate(pair, &dir, TLS_CA_NAME)
}

async fn bind(setting: &str, interface: &str, port: u16) -> anyhow::Result<TcpListener> {
    let ip: IpAddr = interface
        .parse()
        .with_context(|| format!("{setting}.interface {interface:?} is not an IP address"))?;
    TcpListener::bind((ip, port))
        .await
        .with_context(|| format!("could not listen on {ip}:{port} for the API server"))
}
