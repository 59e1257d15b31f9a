//! `kumactl apply`: files, directories, stdin, templates, dry runs and
//! refusing invalid batches.

use crate::Env;

pub const TIMEOUT: &str = "type: MeshTimeout
name: t1
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: 20s
";

pub const DATAPLANE: &str = "type: Dataplane
mesh: default
name: web-1
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      tags:
        kuma.io/service: web
        version: v1
";

#[test]
fn applies_a_file_then_reports_updates() {
    let env = Env::start();
    let file = env.write("timeout.yaml", TIMEOUT);
    let file = file.to_str().unwrap();
    let run = env.kumactl(&["apply", "-f", file]).ok();
    assert_eq!(
        run.stdout,
        "resource type=\"MeshTimeout\" mesh=\"default\" name=\"t1\" Created\n"
    );
    let run = env.kumactl(&["apply", "-f", file]).ok();
    assert_eq!(
        run.stdout,
        "resource type=\"MeshTimeout\" mesh=\"default\" name=\"t1\" Updated\n"
    );
    let got = env
        .kumactl(&["get", "meshtimeout", "t1", "-o", "json"])
        .ok()
        .stdout;
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["spec"]["to"][0]["default"]["idleTimeout"], "20s");
}

#[test]
fn applies_multi_document_stdin_and_directories_in_name_order() {
    let env = Env::start();
    let run = env
        .kumactl_with_stdin(
            &["apply", "-f", "-"],
            &format!("type: Mesh\nname: demo\n---\n{DATAPLANE}"),
        )
        .ok();
    assert_eq!(
        run.stdout,
        "resource type=\"Mesh\" mesh=\"\" name=\"demo\" Created\nresource type=\"Dataplane\" mesh=\"default\" name=\"web-1\" Created\n"
    );

    env.write("dir/02-timeout.yml", TIMEOUT);
    env.write(
        "dir/01-mesh.json",
        "{\"type\": \"Mesh\", \"name\": \"from-json\"}",
    );
    env.write("dir/readme.txt", "not a resource");
    let dir = env.home().join("dir");
    let run = env.kumactl(&["apply", "-f", dir.to_str().unwrap()]).ok();
    assert_eq!(
        run.stdout,
        "resource type=\"Mesh\" mesh=\"\" name=\"from-json\" Created\nresource type=\"MeshTimeout\" mesh=\"default\" name=\"t1\" Created\n"
    );
    let meshes = env.kumactl(&["get", "meshes"]).ok().stdout;
    assert!(meshes.contains("\ndemo "), "{meshes}");
    assert!(meshes.contains("\nfrom-json "), "{meshes}");
}

#[test]
fn repeated_files_and_vars_are_rendered() {
    let env = Env::start();
    let mesh = env.write("mesh.yaml", "type: Mesh\nname: \"{{ name }}\"\n");
    let dp = env.write(
        "dp.yaml",
        &DATAPLANE.replace("10.0.0.1", "{{ net.address }}"),
    );
    let run = env
        .kumactl(&[
            "apply",
            "-f",
            mesh.to_str().unwrap(),
            "-f",
            dp.to_str().unwrap(),
            "-v",
            "name=templated",
            "--var",
            "net.address=10.1.2.3",
        ])
        .ok();
    assert!(
        run.stdout.contains("name=\"templated\" Created"),
        "{}",
        run.stdout
    );
    let got = env
        .kumactl(&["get", "dataplane", "web-1", "-o", "yaml"])
        .ok()
        .stdout;
    assert!(got.contains("address: 10.1.2.3"), "{got}");
}

#[test]
fn dry_run_prints_and_applies_nothing() {
    let env = Env::start();
    let file = env.write("dp.yaml", &DATAPLANE.replace("10.0.0.1", "{{address}}"));
    let run = env
        .kumactl(&[
            "apply",
            "-f",
            file.to_str().unwrap(),
            "-v",
            "address=2.2.2.2",
            "--dry-run",
        ])
        .ok();
    let printed: serde_json::Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(printed["type"], "Dataplane");
    assert_eq!(printed["name"], "web-1");
    assert_eq!(printed["networking"]["address"], "2.2.2.2");
    assert_eq!(printed["creationTime"], "0001-01-01T00:00:00Z");
    let run = env.kumactl(&["get", "dataplane", "web-1"]).failed();
    assert_eq!(run.stderr, "Error: No resources found in default mesh\n");
}

#[test]
fn an_invalid_document_applies_nothing_and_names_every_field() {
    let env = Env::start();
    let batch = format!(
        "type: Mesh\nname: should-not-exist\n---\n{TIMEOUT}---\ntype: MeshTimeout\nname: bad\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: -1s\n---\ntype: Dataplane\nname: no-mesh\nnetworking:\n  address: 10.0.0.2\n  inbound:\n    - port: 80\n      tags:\n        kuma.io/service: x\n"
    );
    let run = env
        .kumactl_with_stdin(&["apply", "-f", "-"], &batch)
        .failed();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("resource[2]: failed to parse resource: spec.to[0].default.idleTimeout: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("resource[3]: failed to read meta: mesh: cannot be empty"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("resource[0]") && !run.stderr.contains("resource[1]"));
    assert!(
        run.stderr
            .ends_with("Error: failed to validate some resources\n"),
        "{}",
        run.stderr
    );
    env.kumactl(&["get", "mesh", "should-not-exist"]).failed();
    env.kumactl(&["get", "meshtimeout", "t1"]).failed();
}

#[test]
fn empty_input_and_missing_files_are_errors() {
    let env = Env::start();
    let run = env.kumactl_with_stdin(&["apply", "-f", "-"], "").failed();
    assert_eq!(run.stderr, "Error: no resource(s) passed to apply\n");
    let run = env.kumactl(&["apply", "-f", "no-such-file.yaml"]).failed();
    assert!(
        run.stderr
            .starts_with("Error: error while reading provided file: "),
        "{}",
        run.stderr
    );
    let run = env
        .kumactl_with_stdin(&["apply", "-f", "-"], "type: Nope\nname: x\n")
        .failed();
    assert!(
        run.stderr
            .contains("resource[0]: failed to parse resource: unknown type \"Nope\""),
        "{}",
        run.stderr
    );
}

#[test]
fn server_side_rejections_print_the_servers_explanation() {
    let env = Env::start();
    let run = env
        .kumactl_with_stdin(
            &["apply", "-f", "-"],
            &TIMEOUT.replace("mesh: default", "mesh: missing"),
        )
        .failed();
    assert!(
        run.stderr.starts_with(
            "Error: resource type=\"MeshTimeout\" mesh=\"missing\" name=\"t1\": failed server side: "
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Mesh"), "{}", run.stderr);
}

/// Answers every request with `status` and `body`, for as many requests as given.
fn fake_server(answers: Vec<(u16, &'static str)>) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut request_body = vec![0; length];
            let _ = reader.read_exact(&mut request_body);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn server_violations_are_printed_with_their_fields() {
    let env = Env::start();
    let url = fake_server(vec![
        (404, r#"{"title":"Not found","detail":"Not found"}"#),
        (
            400,
            r#"{"type":"/std-errors","status":400,"title":"Could not process resource","detail":"Resource is not valid","invalid_parameters":[{"field":"path","reason":"cannot be empty"},{"field":"mesh","reason":"cannot be empty"}]}"#,
        ),
    ]);
    let config = env.write(
        "fake.yaml",
        &format!("contexts:\n- controlPlane: fake\n  name: fake\ncontrolPlanes:\n- coordinates:\n    apiServer:\n      url: {url}\n  name: fake\ncurrentContext: fake\n"),
    );
    let run = env
        .kumactl_with_stdin(
            &[
                "--config-file",
                config.to_str().unwrap(),
                "apply",
                "-f",
                "-",
            ],
            "type: Mesh\nname: sample\n",
        )
        .failed();
    assert_eq!(
        run.stderr,
        "Error: resource type=\"Mesh\" mesh=\"\" name=\"sample\": failed server side: Could not process resource (Resource is not valid);path=cannot be empty ;mesh=cannot be empty \n"
    );
}
