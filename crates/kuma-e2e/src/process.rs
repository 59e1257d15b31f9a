//! A child process that is stopped when dropped: SIGTERM to its whole
//! process group (kuma-dp and the Envoy it started), then SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("could not start {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not create log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Proc {
    /// Spawns `command` in its own process group with stdout and stderr in `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Proc, ProcError> {
        use std::os::unix::process::CommandExt as _;
        let file = std::fs::File::create(log).map_err(|source| ProcError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let err = file.try_clone().map_err(|source| ProcError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| ProcError::Spawn {
                name: name.to_string(),
                source,
            })?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM to the process itself (kuma-dp forwards it to Envoy).
    pub fn terminate(&self) {
        if let Some(pid) = pid_of(self.child.id()) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
    }

    /// SIGTERM, then after `grace` SIGKILL of the whole group; returns the status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            self.kill_group();
            return Some(status);
        }
        self.terminate();
        let status = self.wait_timeout(grace);
        // Whatever happened to the leader, nothing of the group may outlive the test.
        self.kill_group();
        status.or_else(|| self.child.wait().ok())
    }

    fn kill_group(&mut self) {
        if let Some(pid) = pid_of(self.child.id()) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn pid_of(id: u32) -> Option<Pid> {
    i32::try_from(id).ok().and_then(Pid::from_raw)
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
