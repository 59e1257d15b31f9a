//! A tiny HTTP service on 127.0.0.1 answering every request with its
//! instance name: what a request reached is in the response body.

use std::net::SocketAddr;

use tokio::sync::oneshot;

pub struct TestService {
    pub name: String,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestService {
    /// Starts on a free port, on the current tokio runtime.
    pub async fn start(name: &str) -> std::io::Result<TestService> {
        Self::start_on(name, 0).await
    }

    /// Starts on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(name: &str, port: u16) -> std::io::Result<TestService> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let body = name.to_string();
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { body }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(TestService {
            name: name.to_string(),
            address,
            stop: Some(stop),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
