use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::*;

fn mk_any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: m.encode_to_vec(),
    }
}

fn mk_address(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn mk_eds_cluster(name: &str) -> Any {
    mk_any(
        type_url::CLUSTER,
        &Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig::default()),
            ..Default::default()
        },
    )
}

fn mk_cla(name: &str, ips: &[&str]) -> Any {
    let lb_endpoints = ips
        .iter()
        .map(|ip| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(mk_address(ip, 8080)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    mk_any(
        type_url::ENDPOINT,
        &ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

fn mk_listener(port: u32, filter: Any) -> Any {
    mk_any(
        type_url::LISTENER,
        &Listener {
            name: format!("l-{port}"),
            address: Some(mk_address("127.0.0.1", port)),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "f".into(),
                    config_type: Some(ConfigType::TypedConfig(filter)),
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

fn mk_topology() -> Topology {
    Topology {
        mesh: "m".into(),
        proxies: 4,
        services: 4,
    }
}

fn put(held: &mut Held, type_url: &str, name: &str, any: &Any) {
    let d = decode(type_url, name, any).unwrap();
    held.upsert(type_url, name.to_string(), d);
}

#[test]
fn eds_clusters_wait_for_their_load_assignment() {
    let mut held = Held::default();
    put(
        &mut held,
        type_url::CLUSTER,
        "svc-1",
        &mk_eds_cluster("svc-1"),
    );
    assert_eq!(held.eds_names().into_iter().collect::<Vec<_>>(), ["svc-1"]);
    assert!(!held.configured(0));
    put(
        &mut held,
        type_url::ENDPOINT,
        "svc-1",
        &mk_cla("svc-1", &["10.0.0.1"]),
    );
    assert!(held.configured(0));
    let c = Condition::Endpoint {
        cluster: "svc-1".into(),
        address: "10.0.0.2".into(),
    };
    assert!(!c.holds(&held, &mk_topology(), 0));
    put(
        &mut held,
        type_url::ENDPOINT,
        "svc-1",
        &mk_cla("svc-1", &["10.0.0.1", "10.0.0.2"]),
    );
    assert!(c.holds(&held, &mk_topology(), 0));
    held.remove(type_url::ENDPOINT, "svc-1");
    assert!(!c.holds(&held, &mk_topology(), 0));
}

#[test]
fn an_updated_cluster_is_warm_again_only_once_its_endpoints_come_again() {
    let mut held = Held::default();
    let cluster = mk_eds_cluster("svc-1");
    let cla = mk_cla("svc-1", &["10.0.0.1"]);
    put(&mut held, type_url::CLUSTER, "svc-1", &cluster);
    put(&mut held, type_url::ENDPOINT, "svc-1", &cla);
    assert!(held.configured(0));
    // Delta: the cluster sent again is rebuilt, and waits for the very same
    // endpoints before it is used.
    put(&mut held, type_url::CLUSTER, "svc-1", &cluster);
    assert!(!held.configured(0));
    put(&mut held, type_url::ENDPOINT, "svc-1", &cla);
    assert!(held.configured(0));

    // State of the world: only a cluster whose content changed is rebuilt.
    let all = |any: &Any| {
        BTreeMap::from([(
            "svc-1".to_string(),
            decode(type_url::CLUSTER, "svc-1", any).unwrap(),
        )])
    };
    held.replace(type_url::CLUSTER, all(&cluster));
    assert!(held.configured(0));
    let mut changed = Cluster::decode(cluster.value.as_slice()).unwrap();
    changed.connect_timeout = Some(PbDuration {
        seconds: 2,
        nanos: 0,
    });
    held.replace(type_url::CLUSTER, all(&mk_any(type_url::CLUSTER, &changed)));
    assert!(!held.configured(0));
    held.replace(
        type_url::ENDPOINT,
        BTreeMap::from([(
            "svc-1".to_string(),
            decode(type_url::ENDPOINT, "svc-1", &cla).unwrap(),
        )]),
    );
    assert!(held.configured(0));
}

#[test]
fn listeners_are_decoded_down_to_their_network_filter() {
    let tcp = mk_any(type_url::TCP_PROXY, &TcpProxy::default());
    let hcm = mk_any(
        type_url::HCM,
        &HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: "r1".into(),
                ..Default::default()
            })),
            ..Default::default()
        },
    );
    let Decoded::Listener(l) = decode(type_url::LISTENER, "l", &mk_listener(10001, tcp)).unwrap()
    else {
        panic!("a listener")
    };
    assert_eq!((l.port, l.http), (Some(10001), false));
    let Decoded::Listener(l) = decode(type_url::LISTENER, "l", &mk_listener(10001, hcm)).unwrap()
    else {
        panic!("a listener")
    };
    assert_eq!(
        (l.port, l.http, l.rds),
        (Some(10001), true, vec!["r1".into()])
    );
}

fn mk_timed_cluster(name: &str, connect_timeout: Option<PbDuration>) -> Any {
    mk_any(
        type_url::CLUSTER,
        &Cluster {
            name: name.into(),
            connect_timeout,
            ..Default::default()
        },
    )
}

fn ms(millis: i32) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: i64::from(millis / 1000),
        nanos: (millis % 1000) * 1_000_000,
    })
}

#[test]
fn clusters_keep_their_connect_timeout_as_envoy_reads_it() {
    let Decoded::Cluster(c) =
        decode(type_url::CLUSTER, "c", &mk_timed_cluster("c", ms(20_001))).unwrap()
    else {
        panic!("a cluster")
    };
    assert_eq!(c.connect_timeout, Duration::from_millis(20_001));
    let Decoded::Cluster(c) = decode(type_url::CLUSTER, "c", &mk_timed_cluster("c", None)).unwrap()
    else {
        panic!("a cluster")
    };
    assert_eq!(c.connect_timeout, Duration::from_secs(5), "Envoy's default");
    for bad in [
        PbDuration::default(),
        PbDuration {
            seconds: -1,
            nanos: 0,
        },
        PbDuration {
            seconds: 0,
            nanos: 1_000_000_000,
        },
    ] {
        assert!(
            matches!(
                decode(type_url::CLUSTER, "c", &mk_timed_cluster("c", Some(bad))),
                Err(DecodeError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn connect_timeout_needs_every_chosen_outbound_cluster() {
    // Proxy 3 serves svc-3 and calls mesh-wide, svc-0, svc-1 and svc-2.
    let t = mk_topology();
    let timeout = Duration::from_millis(20_001);
    let everywhere = Condition::ConnectTimeout {
        to: Outbounds::AllExcept(vec![]),
        timeout,
    };
    let but_svc_0 = Condition::ConnectTimeout {
        to: Outbounds::AllExcept(vec!["svc-0".into()]),
        timeout,
    };
    let svc_0 = Condition::ConnectTimeout {
        to: Outbounds::To("svc-0".into()),
        timeout,
    };
    let mut held = Held::default();
    for name in ["mesh-wide", "svc-0", "svc-1", "svc-2"] {
        put(
            &mut held,
            type_url::CLUSTER,
            name,
            &mk_timed_cluster(name, ms(5_000)),
        );
    }
    assert!(!everywhere.holds(&held, &t, 3));
    put(
        &mut held,
        type_url::CLUSTER,
        "svc-0",
        &mk_timed_cluster("svc-0", ms(20_001)),
    );
    assert!(svc_0.holds(&held, &t, 3));
    assert!(!svc_0.holds(&held, &t, 0), "proxy 0 does not call svc-0");
    assert!(!but_svc_0.holds(&held, &t, 3));
    for name in ["mesh-wide", "svc-1", "svc-2"] {
        put(
            &mut held,
            type_url::CLUSTER,
            name,
            &mk_timed_cluster(name, ms(20_001)),
        );
    }
    assert!(but_svc_0.holds(&held, &t, 3));
    assert!(everywhere.holds(&held, &t, 3));
    // A cluster missing is not one with the timeout.
    held.remove(type_url::CLUSTER, "svc-2");
    assert!(!but_svc_0.holds(&held, &t, 3));
    // An EDS cluster waiting for its endpoints is not in use yet.
    put(&mut held, type_url::CLUSTER, "svc-2", &{
        let mut c = Cluster::decode(mk_eds_cluster("svc-2").value.as_slice()).unwrap();
        c.connect_timeout = ms(20_001);
        mk_any(type_url::CLUSTER, &c)
    });
    assert!(!everywhere.holds(&held, &t, 3));
    put(
        &mut held,
        type_url::ENDPOINT,
        "svc-2",
        &mk_cla("svc-2", &["10.0.0.3"]),
    );
    assert!(everywhere.holds(&held, &t, 3));
}

#[test]
fn garbage_and_wrong_types_are_refused() {
    let bad = Any {
        type_url: type_url::CLUSTER.into(),
        value: vec![0xff, 0xff, 0xff],
    };
    assert!(matches!(
        decode(type_url::CLUSTER, "c", &bad),
        Err(DecodeError::Proto { .. })
    ));
    assert!(matches!(
        decode(type_url::LISTENER, "c", &mk_eds_cluster("c")),
        Err(DecodeError::WrongType { .. })
    ));
}

fn mk_probe() -> (Probe, mpsc::UnboundedReceiver<ProxyEvent>) {
    let (_, expect) = watch::channel(Arc::new(Expectation {
        id: 0,
        condition: Condition::Configured,
        targets: vec![true],
    }));
    let (events, rx) = mpsc::unbounded_channel();
    let probe = Probe {
        proxy: 0,
        topology: Arc::new(mk_topology()),
        expect,
        events,
        held: Arc::default(),
        reported: 0,
    };
    (probe, rx)
}

#[tokio::test]
async fn refusals_and_drops_are_retried_and_the_rest_ends_the_proxy() {
    assert!(matches!(
        Failure::opening(tonic::Status::unavailable("store failure")),
        Failure::Unavailable(_)
    ));
    assert!(matches!(
        Failure::opening(tonic::Status::unauthenticated("bad token")),
        Failure::Broken(_)
    ));
    let (probe, mut events) = mk_probe();
    let mut attempts = Attempts::new(0);
    attempts.base = std::time::Duration::from_micros(1);
    assert!(
        !attempts
            .retry_after(&probe, Err(Failure::Broken("bad token".into())))
            .await
    );
    assert!(matches!(events.try_recv(), Ok(ProxyEvent::Failed { .. })));
    assert!(
        attempts
            .retry_after(&probe, Err(Failure::Unavailable("busy".into())))
            .await
    );
    assert!(matches!(
        events.try_recv(),
        Ok(ProxyEvent::Retried { proxy: 0 })
    ));
    assert!(
        attempts
            .retry_after(&probe, Err(Failure::Dropped("gone".into())))
            .await
    );
    assert!(matches!(
        events.try_recv(),
        Ok(ProxyEvent::Disconnected { proxy: 0, .. })
    ));
    let mut given_up = false;
    for _ in 0..retry::MAX_REFUSALS {
        if !attempts
            .retry_after(&probe, Err(Failure::Unavailable("busy".into())))
            .await
        {
            given_up = true;
            break;
        }
    }
    assert!(given_up, "gives up after {} refusals", retry::MAX_REFUSALS);
    let last = std::iter::from_fn(|| events.try_recv().ok()).last();
    assert!(matches!(last, Some(ProxyEvent::Failed { .. })));
}

#[test]
fn resynced_needs_a_new_stream_with_every_type_answered() {
    let topology = Topology {
        mesh: "m".into(),
        proxies: 1,
        services: 1,
    };
    let mut held = Held::default();
    held.stream_opened([]);
    // Inbound and 4 outbound listeners (TCP), the clusters warm.
    for port in [8080, 10000, 10001, 10002, 10003] {
        put(
            &mut held,
            type_url::LISTENER,
            &format!("l{port}"),
            &mk_listener(port, mk_any(type_url::TCP_PROXY, &TcpProxy::default())),
        );
    }
    let condition = Condition::Resynced {
        baseline: Arc::new(vec![1]),
    };
    assert!(!condition.holds(&held, &topology, 0), "same stream");
    held.stream_opened([
        type_url::CLUSTER.to_string(),
        type_url::LISTENER.to_string(),
    ]);
    assert!(
        !condition.holds(&held, &topology, 0),
        "nothing answered yet"
    );
    held.answered(type_url::CLUSTER);
    held.answered(type_url::LISTENER);
    assert!(condition.holds(&held, &topology, 0));
}

#[test]
fn held_versions_follow_upserts_and_removals() {
    let mut held = Held::default();
    held.upsert(type_url::CLUSTER, "a".into(), Decoded::Secret);
    held.set_version(type_url::CLUSTER, "a", "01");
    held.set_version(type_url::CLUSTER, "b", "02");
    held.remove(type_url::CLUSTER, "b");
    let versions = held.versions(type_url::CLUSTER);
    assert_eq!(versions.len(), 1);
    assert_eq!(versions["a"], "01");
    assert!(held.versions(type_url::LISTENER).is_empty());
}
