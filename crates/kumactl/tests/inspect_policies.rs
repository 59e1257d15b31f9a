//! `kumactl inspect dataplane NAME --type=policies` and
//! `kumactl inspect <policy> NAME`: the real kumactl binary against an
//! in-process control plane on 127.0.0.1:0.

use std::process::{Command, Output, Stdio};

use kuma_cp::{Config, ControlPlane};
use serde_json::Value;

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
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn failed(self) -> Run {
        assert_eq!(
            self.code,
            Some(1),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

const RESOURCES: &str = "\
type: Mesh
name: demo
skipCreatingInitialPolicies: ['*']
---
type: Dataplane
mesh: demo
name: web-1
networking:
  address: 127.0.0.1
  inbound:
    - port: 8080
      name: http
      tags:
        kuma.io/service: web
---
type: Dataplane
mesh: demo
name: backend-1
networking:
  address: 127.0.0.2
  inbound:
    - port: 8080
      tags:
        kuma.io/service: backend
---
type: MeshTimeout
mesh: demo
name: timeout-all
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: 20s
---
type: MeshTimeout
mesh: demo
name: timeout-web
spec:
  targetRef:
    kind: MeshService
    name: web
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 3s
---
type: MeshTrace
mesh: demo
name: trace
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: Zipkin
        zipkin:
          url: http://jaeger:9411/api/v2/spans
    sampling:
      overall: 30
";

impl Env {
    fn start() -> Env {
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
        let url = format!("http://{}", env.cp.as_ref().unwrap().api_address());
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
        let file = env.home.path().join("resources.yaml");
        std::fs::write(&file, RESOURCES).unwrap();
        env.kumactl(&["apply", "-f", file.to_str().unwrap()]).ok();
        env
    }

    fn kumactl(&self, args: &[&str]) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = Command::new(env!("CARGO_BIN_EXE_kumactl"))
            .args(args)
            .env("HOME", self.home.path())
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
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
fn inspect_dataplane_policies_shows_merged_confs_and_origins() {
    let env = Env::start();
    let out = env
        .kumactl(&[
            "inspect",
            "dataplane",
            "web-1",
            "--type=policies",
            "-m",
            "demo",
        ])
        .ok()
        .stdout;
    assert!(
        out.contains("DATAPLANE:\n  MeshTrace\n    conf: {\"backends\":[{\"type\":\"Zipkin\",\"zipkin\":{\"url\":\"http://jaeger:9411/api/v2/spans\"}}],\"sampling\":{\"overall\":30}}\n    origin: trace\n"),
        "{out}"
    );
    let outbound = out
        .split("\n\n")
        .find(|s| s.starts_with("OUTBOUND Mesh demo:\n"))
        .unwrap_or_else(|| panic!("no mesh-wide outbound in\n{out}"));
    let lines: Vec<&str> = outbound.lines().collect();
    assert_eq!(lines[1], "  MeshTimeout", "{out}");
    let conf: Value =
        serde_json::from_str(lines[2].trim_start().strip_prefix("conf: ").unwrap()).unwrap();
    assert_eq!(
        conf,
        serde_json::json!({"idleTimeout": "20s", "connectionTimeout": "3s"})
    );
    assert_eq!(
        lines[3], "    origin: timeout-all[0], timeout-web[0]",
        "{out}"
    );

    // The default type is policies; backend-1 only gets the mesh-wide timeout.
    let out = env
        .kumactl(&["inspect", "dataplane", "backend-1", "--mesh", "demo"])
        .ok()
        .stdout;
    assert!(out.contains("    origin: timeout-all[0]\n"), "{out}");
    assert!(!out.contains("timeout-web"), "{out}");

    let json: Value = serde_json::from_str(
        &env.kumactl(&["inspect", "dataplane", "web-1", "-m", "demo", "-o", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["resource"]["name"], "web-1");
    let kinds: Vec<&str> = json["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["MeshTimeout", "MeshTrace"]);
    let yaml = env
        .kumactl(&["inspect", "dataplane", "web-1", "-m", "demo", "-o", "yaml"])
        .ok()
        .stdout;
    assert!(yaml.contains("toResourceRules:"), "{yaml}");

    let run = env
        .kumactl(&[
            "inspect",
            "dataplane",
            "nope",
            "-m",
            "demo",
            "--type=policies",
        ])
        .failed();
    assert!(
        run.stderr.contains("Dataplane nope not found in mesh demo"),
        "{}",
        run.stderr
    );
}

#[test]
fn inspect_policy_lists_the_proxies_it_selects() {
    let env = Env::start();
    let out = env
        .kumactl(&["inspect", "meshtimeout", "timeout-all", "-m", "demo"])
        .ok()
        .stdout;
    assert_eq!(
        out,
        "Type        Mesh   Name\nDataplane   demo   backend-1\nDataplane   demo   web-1\n\nTotal: 2\n"
    );
    // Short names work, and only the selected proxy is listed.
    let out = env
        .kumactl(&[
            "inspect",
            "mt",
            "timeout-web",
            "--mesh",
            "demo",
            "--new-api",
        ])
        .ok()
        .stdout;
    assert!(out.contains("web-1") && !out.contains("backend-1"), "{out}");
    assert!(out.ends_with("Total: 1\n"), "{out}");

    let json: Value = serde_json::from_str(
        &env.kumactl(&["inspect", "meshtrace", "trace", "-m", "demo", "-o", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["total"], 2);
    assert_eq!(json["items"][0]["type"], "Dataplane");

    let run = env
        .kumactl(&["inspect", "meshtimeout", "nope", "-m", "demo"])
        .failed();
    assert!(
        run.stderr
            .contains("MeshTimeout nope not found in mesh demo"),
        "{}",
        run.stderr
    );
    let run = env.kumactl(&["inspect", "meshservice", "x"]).failed();
    assert!(
        run.stderr.contains("unknown command \"meshservice\""),
        "{}",
        run.stderr
    );

    let help = env.kumactl(&["inspect", "--help"]).ok().stdout;
    assert!(help.contains("meshtrafficpermission"), "{help}");
}

/// Permissions as Kuma documents them: everyone may call, web may not call
/// backend. Both policies reach backend-1's inbound.
const PERMISSIONS: &str = "\
type: MeshTrafficPermission
mesh: demo
name: allow-all
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Allow
---
type: MeshTrafficPermission
mesh: demo
name: deny-web
spec:
  targetRef:
    kind: MeshService
    name: backend
  from:
    - targetRef:
        kind: MeshService
        name: web
      default:
        action: Deny
";

#[test]
fn inspect_dataplane_shows_the_permissions_of_each_inbound_per_caller() {
    let env = Env::start();
    let file = env.home.path().join("permissions.yaml");
    std::fs::write(&file, PERMISSIONS).unwrap();
    env.kumactl(&["apply", "-f", file.to_str().unwrap()]).ok();

    let out = env
        .kumactl(&["inspect", "dataplane", "backend-1", "-m", "demo"])
        .ok()
        .stdout;
    let inbound = out
        .split("\n\n")
        .find(|s| s.starts_with("INBOUND "))
        .unwrap_or_else(|| panic!("no inbound section in\n{out}"));
    let lines: Vec<&str> = inbound.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    // web is denied by the more specific policy, folded after allow-all...
    assert_eq!(
        lines[1..4],
        [
            "  MeshTrafficPermission from kuma.io/service=web",
            "    conf: {\"action\":\"Deny\"}",
            "    origin: allow-all, deny-web",
        ],
        "{out}"
    );
    // ...and every other caller is allowed by allow-all alone.
    assert_eq!(
        lines[4..7],
        [
            "  MeshTrafficPermission from !kuma.io/service=web",
            "    conf: {\"action\":\"Allow\"}",
            "    origin: allow-all",
        ],
        "{out}"
    );

    // web-1 is not backend: only allow-all reaches its inbound.
    let out = env
        .kumactl(&["inspect", "dataplane", "web-1", "-m", "demo"])
        .ok()
        .stdout;
    assert!(
        out.contains("  MeshTrafficPermission from *\n    conf: {\"action\":\"Allow\"}\n    origin: allow-all\n"),
        "{out}"
    );
    assert!(!out.contains("deny-web"), "{out}");
}
