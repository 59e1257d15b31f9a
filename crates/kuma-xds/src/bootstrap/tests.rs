use std::process::Command;

use super::*;

const TEST_CA: &str = include_str!("../../tests/golden/test-ca.pem");

fn mk_params() -> BootstrapParams {
    let mut p = BootstrapParams::new("default", "web-1", "web", "127.0.0.1");
    p.ca_cert_pem = Some(TEST_CA.to_string());
    p.dataplane_token = Some("tok.en".to_string());
    p.metadata
        .insert("version".into(), json!({"kumaDp": {"version": "2.14.0"}}));
    p
}

#[test]
fn node_admin_and_ads() {
    let b = bootstrap(&mk_params());
    assert_eq!(b["node"]["id"], "default.web-1");
    assert_eq!(b["node"]["cluster"], "web");
    assert_eq!(
        b["node"]["metadata"]["version"]["kumaDp"]["version"],
        "2.14.0"
    );
    assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 9901);
    let ads = &b["dynamic_resources"]["ads_config"];
    assert_eq!(ads["api_type"], "DELTA_GRPC");
    assert_eq!(ads["set_node_on_first_message_only"], true);
    assert_eq!(
        ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
        ADS_CLUSTER
    );
    assert_eq!(
        ads["grpc_services"][0]["initial_metadata"][0],
        json!({"key": "authorization", "value": "Bearer tok.en"})
    );
    for source in ["cds_config", "lds_config"] {
        assert_eq!(
            b["dynamic_resources"][source],
            json!({"ads": {}, "resource_api_version": "V3"})
        );
    }
}

#[test]
fn sotw_on_request_and_no_token_no_metadata() {
    let mut p = mk_params();
    p.ads_mode = AdsMode::StateOfTheWorld;
    p.dataplane_token = None;
    let b = bootstrap(&p);
    let ads = &b["dynamic_resources"]["ads_config"];
    assert_eq!(ads["api_type"], "GRPC");
    assert!(ads["grpc_services"][0].get("initial_metadata").is_none());
}

#[test]
fn xds_cluster_speaks_http2_over_verified_tls() {
    let b = bootstrap(&mk_params());
    let c = &b["static_resources"]["clusters"][0];
    assert_eq!(c["name"], ADS_CLUSTER);
    assert_eq!(c["type"], "STATIC");
    assert_eq!(
        c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["explicit_http_config"],
        json!({"http2_protocol_options": {}})
    );
    let tls = &c["transport_socket"]["typed_config"];
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["trusted_ca"]["inline_string"],
        TEST_CA
    );
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
        "IP_ADDRESS"
    );
}

#[test]
fn hostnames_resolve_by_dns_and_plaintext_has_no_tls() {
    let mut p = BootstrapParams::new("m", "n", "s", "kuma-cp.local");
    let b = bootstrap(&p);
    assert_eq!(b["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
    assert!(
        b["static_resources"]["clusters"][0]
            .get("transport_socket")
            .is_none()
    );
    p.concurrency = Some(2);
    assert_eq!(
        p.envoy_args(),
        [
            "--drain-time-s",
            "30",
            "--disable-hot-restart",
            "--concurrency",
            "2"
        ]
    );
}

#[test]
fn envoy_accepts_the_bootstrap() {
    let Some(envoy) = crate::testing::envoy_binary() else {
        return;
    };
    for mode in [AdsMode::Delta, AdsMode::StateOfTheWorld] {
        let mut p = mk_params();
        p.ads_mode = mode;
        let path = std::env::temp_dir().join(format!(
            "kuma-xds-bootstrap-{}-{mode:?}.json",
            std::process::id()
        ));
        std::fs::write(&path, bootstrap(&p).to_string()).expect("write bootstrap");
        let out = Command::new(&envoy)
            .args(["--mode", "validate", "-c"])
            .arg(&path)
            .output()
            .expect("run envoy");
        std::fs::remove_file(&path).ok();
        assert!(
            out.status.success(),
            "envoy rejected the bootstrap:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
