//! A real data plane proxy: `kuma-dp run` with a Dataplane template, its
//! own token, admin port and config directory, driving a real Envoy.

use std::process::Command;
use std::time::Duration;

use crate::binaries::Binaries;
use crate::control_plane::ControlPlane;
use crate::process::Proc;
use crate::{eventually, free_port};

pub struct Dataplane {
    pub name: String,
    pub admin_port: u16,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

/// One inbound: Envoy listens on `port`, the application on `service_port`.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub port: u16,
    pub service_port: u16,
    pub service: String,
}

/// One outbound: Envoy listens on 127.0.0.1:`port` for `service`.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub port: u16,
    pub service: String,
}

/// Kuma Universal YAML of a Dataplane on 127.0.0.1 speaking HTTP.
pub fn dataplane_yaml(
    mesh: &str,
    name: &str,
    inbounds: &[Inbound],
    outbounds: &[Outbound],
) -> String {
    dataplane_yaml_tagged(mesh, name, inbounds, &[], outbounds)
}

const PROTOCOL_TAG: &str = "kuma.io/protocol";

/// [`dataplane_yaml`] with `tags` added to every inbound (say `version`,
/// for subsets of a service, or a `kuma.io/protocol` other than `http`).
pub fn dataplane_yaml_tagged(
    mesh: &str,
    name: &str,
    inbounds: &[Inbound],
    tags: &[(&str, &str)],
    outbounds: &[Outbound],
) -> String {
    let mut yaml = format!(
        "type: Dataplane\nmesh: {mesh}\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n"
    );
    for i in inbounds {
        yaml.push_str(&format!(
            "  - port: {}\n    servicePort: {}\n    tags:\n      kuma.io/service: {}\n",
            i.port, i.service_port, i.service
        ));
        if !tags.iter().any(|(k, _)| *k == PROTOCOL_TAG) {
            yaml.push_str(&format!("      {PROTOCOL_TAG}: http\n"));
        }
        for (k, v) in tags {
            yaml.push_str(&format!("      {k}: {v}\n"));
        }
    }
    if !outbounds.is_empty() {
        yaml.push_str("  outbound:\n");
        for o in outbounds {
            yaml.push_str(&format!(
                "  - port: {}\n    tags:\n      kuma.io/service: {}\n",
                o.port, o.service
            ));
        }
    }
    yaml
}

impl Dataplane {
    /// Starts kuma-dp with `yaml` as its Dataplane and the token of `token_for`
    /// (normally its own name). Does not wait for readiness.
    pub async fn spawn(
        binaries: &Binaries,
        cp: &ControlPlane,
        name: &str,
        yaml: &str,
        token_for: &str,
    ) -> Dataplane {
        let token = cp.dataplane_token("default", token_for).await;
        Self::spawn_with_token(binaries, cp, name, yaml, &token)
    }

    /// Starts kuma-dp with `yaml` as its Dataplane and an already issued
    /// `token`: nothing but kuma-dp's own start lies between the call and the
    /// process (what a benchmark of the start wants to time).
    pub fn spawn_with_token(
        binaries: &Binaries,
        cp: &ControlPlane,
        name: &str,
        yaml: &str,
        token: &str,
    ) -> Dataplane {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kuma-e2e-{name}-"))
            .tempdir()
            .expect("temporary directory");
        let dp_file = dir.path().join("dataplane.yaml");
        std::fs::write(&dp_file, yaml).expect("write dataplane.yaml");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).expect("write token");
        let admin_port = free_port();
        let mut command = Command::new(&binaries.kuma_dp);
        command
            .arg("run")
            .arg(format!("--cp-address={}", cp.cp_address()))
            .arg(format!("--ca-cert-file={}", cp.ca_cert_file().display()))
            .arg(format!("--dataplane-file={}", dp_file.display()))
            .arg(format!("--dataplane-token-file={}", token_file.display()))
            .arg(format!("--binary-path={}", binaries.envoy.display()))
            .arg(format!("--admin-port={admin_port}"))
            .arg(format!(
                "--config-dir={}",
                dir.path().join("config").display()
            ))
            .args([
                "--drain-time=1s",
                "--concurrency=1",
                "--envoy-log-level=warning",
            ])
            .env("KUMA_CONTROL_PLANE_RETRY_BACKOFF", "200ms")
            .env("KUMA_CONTROL_PLANE_RETRY_MAX_DURATION", "30s");
        let proc =
            Proc::spawn(name, command, &dir.path().join("kuma-dp.log")).expect("kuma-dp starts");
        Dataplane {
            name: name.to_string(),
            admin_port,
            proc,
            dir,
        }
    }

    /// Starts kuma-dp and waits until its Envoy reports ready (initial
    /// configuration received).
    pub async fn start(
        binaries: &Binaries,
        cp: &ControlPlane,
        name: &str,
        yaml: &str,
    ) -> Dataplane {
        let mut dp = Self::spawn(binaries, cp, name, yaml, name).await;
        dp.wait_ready().await;
        dp
    }

    /// Starts kuma-dp in `mesh` with a token of that mesh and waits until
    /// its Envoy reports ready.
    pub async fn start_in_mesh(
        binaries: &Binaries,
        cp: &ControlPlane,
        mesh: &str,
        name: &str,
        yaml: &str,
    ) -> Dataplane {
        let token = cp.dataplane_token(mesh, name).await;
        let mut dp = Self::spawn_with_token(binaries, cp, name, yaml, &token);
        dp.wait_ready().await;
        dp
    }

    pub async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/ready", self.admin_port);
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.proc.try_status() {
                panic!(
                    "kuma-dp {} exited ({status}):\n{}",
                    self.name,
                    self.proc.log()
                );
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "Envoy of {} not ready in 30s:\n{}",
                    self.name,
                    self.proc.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One admin endpoint of this proxy's Envoy, as text.
    pub async fn admin(&self, path: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
        r.text().await.map_err(|e| e.to_string())
    }

    /// The health flags Envoy shows for the endpoint of `cluster` on port
    /// `port` in `/clusters` (lines `<cluster>::<address>::health_flags::<flags>`),
    /// `healthy` while nothing is wrong with it.
    pub async fn endpoint_health_flags(&self, cluster: &str, port: u16) -> Result<String, String> {
        let clusters = self.admin("/clusters").await?;
        clusters
            .lines()
            .filter(|l| l.starts_with(&format!("{cluster}::")))
            .filter(|l| l.contains("::health_flags::"))
            .find(|l| l.contains(&format!(":{port}::")))
            .and_then(|l| l.rsplit("::").next())
            .map(str::to_string)
            .ok_or_else(|| format!("no endpoint on port {port} of {cluster}:\n{clusters}"))
    }

    /// Envoy's stat `name` now; `None` while Envoy has not created it.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>, String> {
        let text = self
            .admin(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse::<u64>().ok()))
    }

    /// Waits for Envoy's stat `name` to reach at least `min`.
    pub async fn wait_stat(&self, name: &str, min: u64) -> u64 {
        eventually(
            &format!("{} stat {name} >= {min}", self.name),
            Duration::from_secs(20),
            || async move {
                let value = self
                    .stat(name)
                    .await?
                    .ok_or_else(|| format!("no {name} yet"))?;
                if value >= min {
                    Ok(value)
                } else {
                    Err(format!("{name} = {value}"))
                }
            },
        )
        .await
    }
}
