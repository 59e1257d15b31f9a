//! The real kumactl binary against an in-process control plane on 127.0.0.1:0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kuma_cp::{Config, ControlPlane};

// The crate root sits in tests/, so submodules are named by path.
#[path = "cli/apply.rs"]
mod apply;
#[path = "cli/config.rs"]
mod config;
#[path = "cli/get_delete.rs"]
mod get_delete;

/// A running control plane, a temporary HOME and a kumactl configuration
/// pointing at the control plane.
pub struct Env {
    // Declared first so the control plane stops before the runtime drops.
    cp: Option<ControlPlane>,
    runtime: tokio::runtime::Runtime,
    home: tempfile::TempDir,
}

/// What one kumactl run did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "kumactl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn failed(self) -> Run {
        assert_eq!(
            self.code,
            Some(1),
            "kumactl should fail with 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Env {
    pub fn start() -> Env {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cp = runtime
            .block_on(ControlPlane::start(Config::for_tests()))
            .unwrap();
        let env = Env {
            cp: Some(cp),
            runtime,
            home: tempfile::tempdir().unwrap(),
        };
        let url = env.url();
        env.kumactl(&[
            "config",
            "control-planes",
            "add",
            "--name",
            "test",
            "--address",
            &url,
        ])
        .ok();
        env
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.cp.as_ref().unwrap().api_address())
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.home().join(".kumactl").join("config")
    }

    /// A file in the temporary directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn kumactl(&self, args: &[&str]) -> Run {
        self.kumactl_with_stdin(args, "")
    }

    pub fn kumactl_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kumactl"))
            .args(args)
            .env("HOME", self.home())
            .current_dir(self.home())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            code: status.code(),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(cp) = self.cp.take() {
            self.runtime.block_on(cp.shutdown());
        }
    }
}

#[test]
fn completion_scripts_name_the_commands() {
    let env = Env::start();
    let bash = env.kumactl(&["completion", "bash"]).ok().stdout;
    assert!(bash.contains("_kumactl()"), "{bash}");
    assert!(bash.contains("control-planes"), "{bash}");
    let zsh = env.kumactl(&["completion", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef kumactl"), "{zsh}");
    let fish = env.kumactl(&["completion", "fish"]).ok().stdout;
    assert!(fish.contains("complete -c kumactl"), "{fish}");
    env.kumactl(&["completion", "powershell"]).failed();
}

#[test]
fn version_prints_client_and_server() {
    let env = Env::start();
    let out = env.kumactl(&["version"]).ok().stdout;
    assert!(out.starts_with("Client: Kuma "), "{out}");
    assert!(out.contains("\nServer: Kuma "), "{out}");
}

#[test]
fn unreachable_control_plane_is_an_error_not_a_panic() {
    let env = Env::start();
    let config = env.write(
        "unreachable.yaml",
        "contexts:\n- controlPlane: gone\n  name: gone\ncontrolPlanes:\n- coordinates:\n    apiServer:\n      url: http://127.0.0.1:1\n  name: gone\ncurrentContext: gone\n",
    );
    let config = config.to_str().unwrap();
    let run = env
        .kumactl(&["--config-file", config, "get", "meshes"])
        .failed();
    assert!(
        run.stderr.starts_with("Error: failed to list Mesh: "),
        "{}",
        run.stderr
    );
    let run = env.kumactl(&["--config-file", config, "version"]).ok();
    assert!(
        run.stderr
            .starts_with("Unable to connect to control plane: "),
        "{}",
        run.stderr
    );
}
