//! Running Envoy as a child and supervising it: a stop request drains
//! Envoy's inbound listeners through its admin API, waits the drain time,
//! then asks Envoy to exit with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::signals::Signals;

/// How long Envoy gets to exit after SIGTERM before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Everything Envoy's command line needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub binary: PathBuf,
    pub bootstrap_file: PathBuf,
    /// Envoy writes its admin address here; with admin port 0 that is the
    /// only way to learn the port.
    pub admin_address_file: PathBuf,
    pub drain_time: Duration,
    pub log_level: String,
    pub component_log_level: Option<String>,
    pub concurrency: Option<u32>,
}

impl Launch {
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--config-path".to_string(),
            self.bootstrap_file.display().to_string(),
            "--drain-time-s".to_string(),
            self.drain_time.as_secs().max(1).to_string(),
            // Several proxies share a host; hot restart would share memory between them.
            "--disable-hot-restart".to_string(),
            "--admin-address-path".to_string(),
            self.admin_address_file.display().to_string(),
            "--log-level".to_string(),
            self.log_level.clone(),
        ];
        if let Some(levels) = &self.component_log_level {
            args.extend(["--component-log-level".to_string(), levels.clone()]);
        }
        if let Some(concurrency) = self.concurrency {
            args.extend(["--concurrency".to_string(), concurrency.to_string()]);
        }
        args
    }
}

/// How Envoy ended.
#[derive(Debug)]
pub enum Exit {
    /// We asked it to stop (a signal reached kuma-dp).
    Requested(ExitStatus),
    /// It ended by itself: a crash, a bad bootstrap, someone killed it.
    Unexpected(ExitStatus),
}

pub struct EnvoyProcess {
    child: Child,
    launch: Launch,
}

impl EnvoyProcess {
    pub fn spawn(launch: Launch) -> anyhow::Result<Self> {
        // A stale file from an earlier run would point the drain at a dead port.
        let _ = std::fs::remove_file(&launch.admin_address_file);
        let child = Command::new(&launch.binary)
            .args(launch.args())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start Envoy {}", launch.binary.display()))?;
        tracing::info!(pid = child.id(), binary = %launch.binary.display(), "Envoy started");
        Ok(Self { child, launch })
    }

    /// Runs until Envoy exits; a signal starts the graceful stop.
    pub async fn supervise(mut self, signals: &mut Signals) -> anyhow::Result<Exit> {
        tokio::select! {
            status = self.child.wait() => {
                Ok(Exit::Unexpected(status.context("could not wait for Envoy")?))
            }
            signal = signals.recv() => {
                tracing::info!("received {signal}: draining Envoy for {:?}", self.launch.drain_time);
                self.stop(signals).await.map(Exit::Requested)
            }
        }
    }

    async fn stop(&mut self, signals: &mut Signals) -> anyhow::Result<ExitStatus> {
        match read_admin_address(&self.launch.admin_address_file) {
            Some(admin) => {
                if let Err(e) = drain_listeners(&admin).await {
                    tracing::warn!("could not ask Envoy to drain: {e:#}");
                }
            }
            None => tracing::warn!("Envoy's admin address is unknown; stopping without draining"),
        }
        tokio::select! {
            status = self.child.wait() => return status.context("could not wait for Envoy"),
            _ = tokio::time::sleep(self.launch.drain_time) => {}
            signal = signals.recv() => tracing::info!("received {signal} again: stopping Envoy now"),
        }
        self.terminate();
        match tokio::time::timeout(EXIT_GRACE, self.child.wait()).await {
            Ok(status) => status.context("could not wait for Envoy"),
            Err(_) => {
                tracing::warn!("Envoy did not exit {EXIT_GRACE:?} after SIGTERM; killing it");
                self.child.kill().await.context("could not kill Envoy")?;
                self.child.wait().await.context("could not wait for Envoy")
            }
        }
    }

    fn terminate(&self) {
        let Some(pid) = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            return; // already reaped
        };
        if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
            tracing::warn!("could not send SIGTERM to Envoy: {e}");
        }
    }
}

fn read_admin_address(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let address = text.trim();
    (!address.is_empty()).then(|| address.to_string())
}

/// Stops inbound listeners from taking new connections while outbound
/// traffic of the application keeps flowing, as Kuma's kuma-dp does.
async fn drain_listeners(admin: &str) -> anyhow::Result<()> {
    let url = format!("http://{admin}/drain_listeners?inboundonly&graceful");
    let response = reqwest::Client::new()
        .post(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "POST {url} answered {}",
        response.status()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_launch() -> Launch {
        Launch {
            binary: "/opt/envoy".into(),
            bootstrap_file: "/w/bootstrap.yaml".into(),
            admin_address_file: "/w/admin-address".into(),
            drain_time: Duration::from_secs(30),
            log_level: "info".into(),
            component_log_level: None,
            concurrency: Some(2),
        }
    }

    #[test]
    fn command_line_has_the_flags_several_proxies_per_host_need() {
        let args = mk_launch().args();
        let joined = args.join(" ");
        assert!(
            joined.contains("--config-path /w/bootstrap.yaml"),
            "{joined}"
        );
        assert!(joined.contains("--drain-time-s 30"), "{joined}");
        assert!(joined.contains("--disable-hot-restart"), "{joined}");
        assert!(
            joined.contains("--admin-address-path /w/admin-address"),
            "{joined}"
        );
        assert!(joined.contains("--log-level info"), "{joined}");
        assert!(joined.contains("--concurrency 2"), "{joined}");
        assert!(!joined.contains("--component-log-level"), "{joined}");
    }

    #[test]
    fn sub_second_drain_time_rounds_up_for_envoy() {
        let launch = Launch {
            drain_time: Duration::from_millis(200),
            ..mk_launch()
        };
        assert!(launch.args().join(" ").contains("--drain-time-s 1"));
    }

    /// A stand-in Envoy: a shell script is enough to check supervision.
    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("envoy");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn an_envoy_that_dies_is_an_unexpected_exit_with_its_status() {
        let tmp = tempfile::tempdir().unwrap();
        let launch = Launch {
            binary: script(tmp.path(), "exit 3"),
            admin_address_file: tmp.path().join("admin"),
            ..mk_launch()
        };
        let mut signals = Signals::install().unwrap();
        let exit = EnvoyProcess::spawn(launch)
            .unwrap()
            .supervise(&mut signals)
            .await
            .unwrap();
        match exit {
            Exit::Unexpected(status) => assert_eq!(status.code(), Some(3)),
            other => panic!("expected an unexpected exit, got {other:?}"),
        }
    }
}
