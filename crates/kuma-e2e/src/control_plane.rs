//! A real `kuma-cp run` on loopback ports with its own work directory (and
//! embedded store), restartable in place.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::binaries::Binaries;
use crate::process::Proc;
use crate::{eventually, free_port};

pub struct ControlPlane {
    proc: Option<Proc>,
    binaries: Binaries,
    pub dir: tempfile::TempDir,
    pub api_port: u16,
    pub dp_port: u16,
    http: reqwest::Client,
    starts: u32,
}

impl ControlPlane {
    pub async fn start(binaries: &Binaries) -> ControlPlane {
        let dir = tempfile::Builder::new()
            .prefix("kuma-e2e-")
            .tempdir()
            .expect("temporary directory");
        let mut cp = ControlPlane {
            proc: None,
            binaries: binaries.clone(),
            dir,
            api_port: free_port(),
            dp_port: free_port(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            starts: 0,
        };
        cp.launch().await;
        cp
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let mut command = Command::new(&self.binaries.kuma_cp);
        command
            .arg("run")
            .env("KUMA_GENERAL_WORK_DIR", self.dir.path().join("work"))
            .env("KUMA_API_SERVER_HTTP_PORT", self.api_port.to_string())
            .env("KUMA_API_SERVER_HTTP_INTERFACE", "127.0.0.1")
            .env("KUMA_DP_SERVER_PORT", self.dp_port.to_string())
            .env("KUMA_DP_SERVER_INTERFACE", "127.0.0.1")
            // Control planes of tests running side by side must not meet on
            // the fixed HTTPS API (5682) and diagnostics (5680) ports; no
            // test talks to those, so the system picks any free port (a
            // port probed free beforehand can be taken before kuma-cp binds).
            .env("KUMA_API_SERVER_HTTPS_PORT", "0")
            .env("KUMA_API_SERVER_HTTPS_INTERFACE", "127.0.0.1")
            .env("KUMA_DIAGNOSTICS_SERVER_PORT", "0")
            .env("KUMA_DIAGNOSTICS_INTERFACE", "127.0.0.1");
        let log = self.dir.path().join(format!("kuma-cp.{}.log", self.starts));
        self.proc = Some(Proc::spawn("kuma-cp", command, &log).expect("kuma-cp starts"));
        let url = self.api("/");
        let http = self.http.clone();
        let dp_port = self.dp_port;
        let started = eventually(
            "kuma-cp to serve its API and data plane server",
            Duration::from_secs(30),
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let api = http.get(&url).send().await.map_err(|e| e.to_string())?;
                    if !api.status().is_success() {
                        return Err(format!("API answered {}", api.status()));
                    }
                    tokio::net::TcpStream::connect(("127.0.0.1", dp_port))
                        .await
                        .map_err(|e| format!("data plane server: {e}"))?;
                    Ok(())
                }
            },
        );
        let exited = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(p) = self.proc.as_mut()
                    && let Some(status) = p.try_status()
                {
                    return status;
                }
            }
        };
        tokio::select! {
            () = started => {}
            status = exited => panic!(
                "kuma-cp exited during start ({status}):\n{}",
                self.log()
            ),
        }
    }

    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// Stops the control plane (SIGTERM) and starts it again on the same
    /// ports and work directory.
    pub async fn restart(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
        self.launch().await;
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    pub fn cp_address(&self) -> String {
        format!("https://127.0.0.1:{}", self.dp_port)
    }

    /// The CA the data plane server's certificate chains to.
    pub fn ca_cert_file(&self) -> PathBuf {
        self.dir.path().join("work/dp-server/ca.crt")
    }

    pub async fn put(&self, path: &str, body: &Value) {
        let response = self
            .http
            .put(self.api(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "PUT {path} answered {status}: {text}");
    }

    pub async fn delete(&self, path: &str) {
        let response = self
            .http
            .delete(self.api(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "DELETE {path} answered {status}: {text}"
        );
    }

    /// Creates mesh `name` without Kuma's initial policies
    /// (`skipCreatingInitialPolicies: ["*"]`): no default timeout, retry or
    /// circuit breaker, so every effect a test sees comes from the policies
    /// it applies.
    pub async fn create_mesh_without_initial_policies(&self, name: &str) {
        let body = json!({"type": "Mesh", "name": name, "skipCreatingInitialPolicies": ["*"]});
        self.put(&format!("/meshes/{name}"), &body).await;
    }

    pub async fn get_json(&self, path: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(self.api(path))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("GET {path} answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}: {text}"))
    }

    pub async fn dataplane_token(&self, mesh: &str, name: &str) -> String {
        let response = self
            .http
            .post(self.api("/tokens/dataplane"))
            .json(&json!({ "name": name, "mesh": mesh, "validFor": "1h" }))
            .send()
            .await
            .expect("POST /tokens/dataplane");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "token for {name}: {status}: {text}");
        text.trim().to_string()
    }

    /// The DataplaneOverview item of `name` from `dataplanes+insights`.
    pub async fn overview(&self, mesh: &str, name: &str) -> Result<Value, String> {
        let list = self
            .get_json(&format!("/meshes/{mesh}/dataplanes+insights"))
            .await?;
        list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == name))
            .cloned()
            .ok_or_else(|| format!("{name} is not among the overviews: {list}"))
    }
}

/// Responses the proxy rejected (NACKs) over all subscriptions of a
/// DataplaneOverview, as [`ControlPlane::overview`] returns it. Counters
/// may come as numbers or, as protobuf JSON writes 64-bit ones, strings.
pub fn responses_rejected(overview: &Value) -> u64 {
    overview["dataplaneInsight"]["subscriptions"]
        .as_array()
        .map(|subs| {
            subs.iter()
                .map(|s| {
                    let v = &s["status"]["total"]["responsesRejected"];
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0)
}
