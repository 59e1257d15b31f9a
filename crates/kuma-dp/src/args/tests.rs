use super::*;

use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn parse(args: &[&str]) -> RunArgs {
    let mut all = vec!["kuma-dp"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap().run
}

const TEMPLATE: &str = "type: Dataplane
mesh: default
name: {{ name }}
networking:
  address: 127.0.0.1
  inbound:
  - port: {{ port }}
    tags:
      kuma.io/service: backend
";

#[test]
fn kuma_flag_names_and_defaults() {
    let args = parse(&["--name", "web-1", "--mesh", "demo"]);
    assert_eq!(args.cp_address, "https://localhost:5678");
    assert_eq!(args.drain_time, Duration::from_secs(30));
    assert_eq!(args.proxy_type, "dataplane");
    assert_eq!(args.cp_retry_backoff, Duration::from_secs(3));
    let args = parse(&[
        "--cp-address=https://127.0.0.1:5678",
        "--dataplane-file=dp.yaml",
        "-v",
        "name=a",
        "--dataplane-var",
        "port=1,x=y",
        "--drain-time=1m30s",
        "--concurrency=2",
        "--admin-port=0",
        "--binary-path=/opt/envoy",
        "--config-dir=/tmp/c",
        "--dataplane-token-file=/t",
        "--ca-cert-file=/ca.pem",
        "--envoy-log-level=debug",
    ]);
    assert_eq!(args.dataplane_vars.len(), 3);
    assert_eq!(args.drain_time, Duration::from_secs(90));
    assert_eq!(args.concurrency, Some(2));
    assert_eq!(args.admin_port, Some(0));
}

#[test]
fn template_is_rendered_and_its_name_and_mesh_win() {
    let args = parse(&[
        "--name=ignored",
        "--dataplane-file=dp.yaml",
        "-v",
        "name=backend-1",
        "-v",
        "port=8080",
    ]);
    let loaded = Loaded {
        template: Some(TEMPLATE.into()),
        token_file: Some("  tok\n".into()),
        ca_file: Some("PEM".into()),
    };
    let id = args.identity(&loaded, "/w").unwrap();
    assert_eq!(id.name, "backend-1");
    assert_eq!(id.mesh, "default");
    assert_eq!(id.proxy_type, "dataplane");
    assert_eq!(id.token, "tok");
    assert_eq!(id.ca_cert_pem, "PEM");
    assert_eq!(id.workdir, "/w");
    let dp: serde_json::Value = serde_json::from_str(&id.dataplane_json).unwrap();
    assert_eq!(dp["networking"]["inbound"][0]["port"], 8080);
    assert_eq!(dp["name"], "backend-1");
}

#[test]
fn indirect_mode_needs_name_and_mesh() {
    let err = parse(&["--mesh=default"])
        .identity(&Loaded::default(), "/w")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--name"), "{err}");
    let err = parse(&["--name=a"])
        .identity(&Loaded::default(), "/w")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--mesh"), "{err}");
    let id = parse(&["--name=a", "--mesh=m", "--dataplane-token=t"])
        .identity(&Loaded::default(), "/w")
        .unwrap();
    assert_eq!(
        (id.name.as_str(), id.mesh.as_str(), id.token.as_str()),
        ("a", "m", "t")
    );
    assert!(id.dataplane_json.is_empty());
}

#[test]
fn conflicting_or_bad_inputs_are_refused() {
    let loaded = Loaded {
        token_file: Some("x".into()),
        ..Loaded::default()
    };
    assert!(
        parse(&[
            "--name=a",
            "--mesh=m",
            "--dataplane-token=t",
            "--dataplane-token-file=/t"
        ])
        .identity(&loaded, "/w")
        .is_err()
    );
    assert!(
        parse(&["--name=a", "--mesh=m", "--proxy-type=sidecar"])
            .identity(&Loaded::default(), "/w")
            .is_err()
    );
    let err = parse(&["--dataplane=type: Mesh\nname: x"])
        .identity(&Loaded::default(), "/w")
        .unwrap_err()
        .to_string();
    assert!(err.contains("Mesh"), "{err}");
    assert!(
        parse(&["--name=a${x}", "--mesh=m"])
            .identity(&Loaded::default(), "/w")
            .is_err()
    );
}

#[test]
fn go_durations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("3x").is_err());
}
