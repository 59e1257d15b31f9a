//! The real kumactl binary against a control plane's HTTPS API with user
//! tokens, as Kuma documents the setup: the admin token from the
//! `admin-user-token` GlobalSecret, `config control-planes add --auth-type
//! tokens --auth-conf token=...` with `--ca-cert-file` or `--skip-verify`.
//! Loopback is not admin here (`localhostIsAdmin: false`), so the token is
//! what decides.

use std::path::{Path, PathBuf};
use std::process::Command;

use kuma_api::{Kind, ResourceKey, Spec};
use kuma_cp::{Config, ControlPlane};

struct Env {
    // Declared first so the control plane stops before the runtime drops.
    cp: Option<ControlPlane>,
    runtime: tokio::runtime::Runtime,
    home: tempfile::TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "kumactl failed: {}{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn failed(self) -> Run {
        assert_eq!(self.code, Some(1), "kumactl should fail: {}", self.stdout);
        self
    }
}

impl Env {
    fn start() -> Env {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let home = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests();
        config.general.work_dir = Some(home.path().join("cp"));
        config.api_server.authn.localhost_is_admin = false;
        config.api_server.authn.tokens.bootstrap_admin_token = true;
        let cp = runtime.block_on(ControlPlane::start(config)).unwrap();
        Env {
            cp: Some(cp),
            runtime,
            home,
        }
    }

    fn cp(&self) -> &ControlPlane {
        self.cp.as_ref().unwrap()
    }

    fn https_url(&self) -> String {
        self.cp().api_https_url().unwrap()
    }

    fn ca_cert(&self) -> PathBuf {
        self.cp().api_ca_cert_path().unwrap().to_path_buf()
    }

    fn admin_token(&self) -> String {
        let secret = self
            .runtime
            .block_on(
                self.cp()
                    .store()
                    .get(&ResourceKey::global(Kind::GlobalSecret, "admin-user-token")),
            )
            .unwrap();
        let Spec::GlobalSecret(spec) = &secret.spec else {
            panic!("admin-user-token is not a GlobalSecret")
        };
        String::from_utf8(spec.bytes().unwrap()).unwrap()
    }

    fn config_path(&self) -> PathBuf {
        self.home.path().join(".kumactl").join("config")
    }

    fn kumactl(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_kumactl"))
            .args(args)
            .env("HOME", self.home.path())
            .current_dir(self.home.path())
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// `config control-planes add` for `name` with a token and TLS flags.
    fn add(&self, name: &str, token: Option<&str>, tls: &[&str]) -> Run {
        let url = self.https_url();
        let conf = token.map(|t| format!("token={t}"));
        let mut args = vec![
            "config",
            "control-planes",
            "add",
            "--name",
            name,
            "--address",
            &url,
        ];
        if let Some(conf) = &conf {
            args.extend(["--auth-type", "tokens", "--auth-conf", conf]);
        }
        args.extend(tls);
        self.kumactl(&args)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(cp) = self.cp.take() {
            self.runtime.block_on(cp.shutdown());
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn admin_token_over_https_with_the_ca_then_a_user_token() {
    let env = Env::start();
    let admin = env.admin_token();
    let ca = env.ca_cert();
    env.add("admin", Some(&admin), &["--ca-cert-file", path_str(&ca)])
        .ok();

    // Stored the way Kuma's kumactl stores it.
    let file = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(
        file.contains(&format!("authConf:\n        token: {admin}\n")),
        "{file}"
    );
    assert!(file.contains("authType: tokens\n"), "{file}");
    assert!(
        file.contains(&format!("caCertFile: {}\n", ca.display())),
        "{file}"
    );
    assert!(
        file.contains(&format!("url: {}\n", env.https_url())),
        "{file}"
    );

    let out = env.kumactl(&["get", "global-secrets"]).ok().stdout;
    assert!(out.contains("admin-user-token"), "{out}");
    assert!(out.contains("user-token-signing-key-1"), "{out}");

    let john = env
        .kumactl(&[
            "generate",
            "user-token",
            "--name",
            "john",
            "--group",
            "team-a",
            "--valid-for",
            "24h",
        ])
        .ok()
        .stdout;
    assert_eq!(john.split('.').count(), 3, "{john}");

    // John (not an admin) through --skip-verify: resources yes, secrets no.
    env.add("john", Some(&john), &["--skip-verify"]).ok();
    let out = env.kumactl(&["get", "meshes"]).ok().stdout;
    assert!(out.contains("default"), "{out}");
    let run = env.kumactl(&["get", "secrets"]).failed();
    assert!(run.stderr.contains("Access Denied"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("user \"john/team-a,mesh-system:authenticated\" cannot access"),
        "{}",
        run.stderr
    );
    let run = env
        .kumactl(&["generate", "user-token", "--name", "x", "--valid-for", "1h"])
        .failed();
    assert!(run.stderr.contains("action not allowed"), "{}", run.stderr);
}

#[test]
fn without_a_token_or_with_a_bad_one() {
    let env = Env::start();
    let ca = env.ca_cert();
    env.add("anon", None, &["--ca-cert-file", path_str(&ca)])
        .ok();
    let run = env.kumactl(&["get", "global-secrets"]).failed();
    assert!(
        run.stderr.contains(
            "user \"mesh-system:anonymous/mesh-system:unauthenticated\" cannot access the resource of type \"GlobalSecret\""
        ),
        "{}",
        run.stderr
    );
    let run = env
        .kumactl(&[
            "generate",
            "dataplane-token",
            "--name",
            "dp-1",
            "--valid-for",
            "1h",
        ])
        .failed();
    assert!(run.stderr.contains("Access Denied"), "{}", run.stderr);

    // A bad token is refused when adding (the reachability check) ...
    let run = env
        .add(
            "bad",
            Some("not-a-token"),
            &["--ca-cert-file", path_str(&ca)],
        )
        .failed();
    assert!(
        run.stderr.contains("Invalid authentication data"),
        "{}",
        run.stderr
    );
    // ... and, added without the check, on every command.
    env.add(
        "bad",
        Some("not-a-token"),
        &["--ca-cert-file", path_str(&ca), "--skip-check"],
    )
    .ok();
    let run = env.kumactl(&["get", "meshes"]).failed();
    assert!(
        run.stderr
            .contains("Invalid authentication data (Unauthenticated)"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_server_certificate_is_verified() {
    let env = Env::start();
    let admin = env.admin_token();
    // No CA given: the generated certificate is not trusted by default.
    let run = env.add("untrusted", Some(&admin), &[]).failed();
    assert!(
        run.stderr
            .contains("could not connect to the Control Plane API Server"),
        "{}",
        run.stderr
    );
}
