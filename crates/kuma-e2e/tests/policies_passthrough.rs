//! What a transparent proxy lets its application reach outside the mesh,
//! with real traffic: the Mesh's `networking.outbound.passthrough` switch
//! and MeshPassthrough (`Matched` by IP, CIDR, HTTP Host and TLS SNI, then
//! `All` and `None`) decide which connections a real Envoy forwards to
//! their original destination.
//!
//! The test runs in a network namespace of its own (see `kuma_e2e::netns`):
//! the hosts "outside the mesh" are addresses of 203.0.113.0/24 and
//! 2001:db8::/32 on its loopback, and iptables rules send every TCP
//! connection the test's client opens to the proxy's outbound redirect
//! port, as Kuma's transparent proxy does for an application's
//! connections. The proxy runs dual-stack, Kuma's default: IPv4 and IPv6
//! connections meet a passthrough listener each. It needs root.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kuma_e2e::binaries;
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, dataplane_yaml};
use kuma_e2e::netns::{self, address_on_loopback, connect_marked, redirect_marked_clients};
use kuma_e2e::service::TestService;
use kuma_e2e::{eventually, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// Generous: the machine running these is often busy compiling.
const WAIT: Duration = Duration::from_secs(60);
const MESH: &str = "passthrough";
const REDIRECT_PORT_OUTBOUND: u16 = 15001;

const TEN: [u8; 4] = [203, 0, 113, 10];
const TWENTY: [u8; 4] = [203, 0, 113, 20];
/// In 203.0.113.128/25, which no other host is.
const ONE_THIRTY: [u8; 4] = [203, 0, 113, 130];
const TEN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const TWENTY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);

fn at(host: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(host.into(), port)
}

/// What an application got back: the status and body of its `GET /`, or
/// why nothing came.
type Reply = Result<(u16, String), String>;

/// `GET /` with `Host: host`, sent to `to` by the application behind the
/// proxy.
async fn get(to: SocketAddr, host: &str) -> Reply {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let reply = exchange(to, request.as_bytes()).await?;
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_string()))
}

/// A TLS ClientHello naming `sni`, sent to `to` by the application behind
/// the proxy; what came back (the servers here are not TLS servers: they
/// answer their name to whatever arrives).
async fn tls_hello(to: SocketAddr, sni: &str) -> Result<String, String> {
    let reply = exchange(to, &client_hello(sni)).await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Sends `bytes` on a redirected connection to `to` and reads until the
/// other side closes; an error when nothing came back.
async fn exchange(to: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let attempt = async {
        let mut stream = connect_marked(to)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if reply.is_empty() {
            Err("closed without an answer".to_string())
        } else {
            Ok(reply)
        }
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "no answer in 5s".to_string())?
}

fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("server name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("ClientHello");
    hello
}

/// A server at `address` that answers `name` to the first bytes it gets
/// and closes its side: a stand-in for a TLS service, which the proxy only
/// forwards. It reads on until the client closes, as a socket closed with
/// unread bytes would reset the connection.
async fn start_raw_server(name: &'static str, address: SocketAddr) {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .unwrap_or_else(|e| panic!("bind {address}: {e}"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                if stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {
                    let _ = stream.write_all(name.as_bytes()).await;
                    let _ = stream.shutdown().await;
                    while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
                }
            });
        }
    });
}

fn answered(reply: &Reply, name: &str) -> bool {
    matches!(reply, Ok((200, body)) if body == name)
}

/// `GET /` to `to` is answered by `name`.
async fn assert_reached(to: SocketAddr, name: &str) {
    let reply = get(to, "outside").await;
    assert!(answered(&reply, name), "{to}: {reply:?}");
}

/// `GET /` to each of `targets` is not let through.
async fn assert_blocked(targets: &[SocketAddr]) {
    for to in targets {
        let reply = get(*to, "outside").await;
        assert!(reply.is_err(), "{to}: {reply:?}");
    }
}

/// Waits until `GET /` to `to` is answered by `name` (`Some`) or not let
/// through at all (`None`): the sign that the proxy has the configuration
/// a step applied.
async fn until_reply(to: SocketAddr, name: Option<&str>) {
    eventually(&format!("{to} to be {name:?}"), WAIT, || async {
        let reply = get(to, "outside").await;
        match (name, &reply) {
            (Some(name), _) if answered(&reply, name) => Ok(()),
            (None, Err(_)) => Ok(()),
            _ => Err(format!("{reply:?}")),
        }
    })
    .await;
}

fn passthrough_policy(mode: &str) -> Value {
    json!({
        "type": "MeshPassthrough",
        "mesh": MESH,
        "name": "outside",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "default": {
                "passthroughMode": mode,
                "appendMatch": [
                    {"type": "IP", "value": "203.0.113.10", "port": 8080, "protocol": "tcp"},
                    {"type": "IP", "value": "2001:db8::10", "port": 8080, "protocol": "tcp"},
                    {"type": "CIDR", "value": "203.0.113.128/25", "protocol": "tcp"},
                    {"type": "Domain", "value": "api.example.com", "port": 80, "protocol": "http"},
                    {"type": "Domain", "value": "*.example.org", "port": 80, "protocol": "http"},
                    {"type": "Domain", "value": "api.example.com", "port": 443, "protocol": "tls"},
                ],
            },
        },
    })
}

#[test]
fn the_mesh_switch_and_mesh_passthrough_decide_what_a_transparent_proxy_reaches() {
    let b = binaries::get();
    let hosts = [
        "203.0.113.10/32",
        "203.0.113.20/32",
        "203.0.113.130/32",
        "2001:db8::10/128",
        "2001:db8::20/128",
    ];
    let mut setup: Vec<Vec<String>> = hosts.into_iter().map(address_on_loopback).collect();
    setup.extend(redirect_marked_clients(REDIRECT_PORT_OUTBOUND));
    netns::run(&setup, || async {
        let mut services = Vec::new();
        for (name, address) in [
            ("ten", at(TEN, 8080)),
            ("twenty", at(TWENTY, 8080)),
            ("one-thirty", at(ONE_THIRTY, 8080)),
            ("one-thirty-9090", at(ONE_THIRTY, 9090)),
            ("web-ten", at(TEN, 80)),
            ("ten-v6", at(TEN_V6, 8080)),
            ("twenty-v6", at(TWENTY_V6, 8080)),
        ] {
            let service = TestService::start_at(name, address).await;
            services.push(service.unwrap_or_else(|e| panic!("{name} on {address}: {e}")));
        }
        start_raw_server("tls-twenty", at(TWENTY, 443)).await;

        let cp = ControlPlane::start(b).await;
        cp.create_mesh_without_initial_policies(MESH).await;
        let app = TestService::start("app").await.expect("app");
        let inbound = Inbound {
            port: free_port(),
            service_port: app.port(),
            service: "app".into(),
        };
        let yaml = dataplane_yaml(MESH, "app-1", &[inbound], &[])
            + &format!(
                "  transparentProxying:\n    redirectPortInbound: 15006\n    \
                 redirectPortOutbound: {REDIRECT_PORT_OUTBOUND}\n"
            );
        let dp = Dataplane::start_in_mesh(b, &cp, MESH, "app-1", &yaml).await;

        // The Mesh's default (passthrough on), no policy: anything goes, and
        // it goes through the proxy's original-destination cluster.
        until_reply(at(TWENTY, 8080), Some("twenty")).await;
        until_reply(at(TWENTY_V6, 8080), Some("twenty-v6")).await;
        for family in ["ipv4", "ipv6"] {
            dp.wait_stat(
                &format!("cluster.outbound_passthrough_{family}.upstream_cx_total"),
                1,
            )
            .await;
        }

        // The Mesh's switch off: nothing outside the mesh is reachable.
        let mesh = json!({
            "type": "Mesh", "name": MESH, "skipCreatingInitialPolicies": ["*"],
            "networking": {"outbound": {"passthrough": false}},
        });
        cp.put(&format!("/meshes/{MESH}"), &mesh).await;
        until_reply(at(TWENTY, 8080), None).await;
        assert_blocked(&[at(TEN, 8080), at(TWENTY_V6, 8080)]).await;

        // Matched: exactly what the policy lists.
        let path = format!("/meshes/{MESH}/meshpassthroughs/outside");
        cp.put(&path, &passthrough_policy("Matched")).await;
        until_reply(at(TEN, 8080), Some("ten")).await;
        assert_reached(at(ONE_THIRTY, 9090), "one-thirty-9090").await;
        // Envoy picks chains by destination port first: the CIDR match,
        // without a port, does not apply to 8080, which the IP match names.
        assert_blocked(&[at(ONE_THIRTY, 8080)]).await;
        assert_reached(at(TEN_V6, 8080), "ten-v6").await;
        assert_blocked(&[at(TWENTY, 8080), at(TWENTY_V6, 8080)]).await;
        // HTTP by Host, exact and wildcard, on the listed port.
        for host in ["api.example.com", "api.example.com:80", "www.example.org"] {
            let reply = get(at(TEN, 80), host).await;
            assert!(answered(&reply, "web-ten"), "Host {host}: {reply:?}");
        }
        let other_host = get(at(TEN, 80), "api.example.net").await;
        assert!(
            matches!(&other_host, Ok((503, body)) if body.contains("No routes matched this domain")),
            "{other_host:?}"
        );
        // TLS by SNI.
        let sni = tls_hello(at(TWENTY, 443), "api.example.com").await;
        assert_eq!(sni.as_deref(), Ok("tls-twenty"));
        let other_sni = tls_hello(at(TWENTY, 443), "api.example.net").await;
        assert!(other_sni.is_err(), "{other_sni:?}");

        // All: everything again, whatever the Mesh's switch says.
        cp.put(&path, &passthrough_policy("All")).await;
        until_reply(at(TWENTY, 8080), Some("twenty")).await;
        assert_reached(at(TWENTY_V6, 8080), "twenty-v6").await;

        // None: nothing, not even what the policy lists.
        cp.put(&path, &passthrough_policy("None")).await;
        until_reply(at(TEN, 8080), None).await;
        assert_blocked(&[at(ONE_THIRTY, 9090), at(TEN_V6, 8080)]).await;
    });
}
