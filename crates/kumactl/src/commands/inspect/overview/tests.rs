use super::*;

use serde_json::json;

fn now() -> DateTime<Utc> {
    "2019-07-17T18:08:41Z".parse().unwrap()
}

fn mk_subscription(connect: &str, sent: &str, rejected: &str) -> Value {
    json!({
        "id": "1",
        "controlPlaneInstanceId": "cp-1",
        "connectTime": connect,
        "status": {
            "lastUpdateTime": "2019-07-17T18:08:11Z",
            "total": { "responsesSent": sent, "responsesRejected": rejected }
        },
        "version": {
            "kumaDp": { "version": "2.14.0" },
            "envoy": { "version": "1.40.0", "build": "x/1.40.0/Clean/RELEASE/BoringSSL" },
            "dependencies": { "coredns": "1.8.3" }
        }
    })
}

fn mk_overview(name: &str, inbounds: Value, subscriptions: Value, mtls: Option<Value>) -> Value {
    let mut insight = json!({ "subscriptions": subscriptions });
    if let Some(m) = mtls {
        insight["mTLS"] = m;
    }
    json!({
        "type": "DataplaneOverview",
        "mesh": "default",
        "name": name,
        "dataplane": { "networking": { "address": "127.0.0.1", "inbound": inbounds } },
        "dataplaneInsight": insight
    })
}

fn inbound(port: u16, service: &str, extra: Value) -> Value {
    let mut v = json!({ "port": port, "tags": { "kuma.io/service": service } });
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    v
}

#[test]
fn header_is_kumas() {
    let table = dataplanes_table(&[], now()).render();
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, HEADERS.to_vec());
}

#[test]
fn connected_proxy_row() {
    let item = mk_overview(
        "web-1",
        json!([
            inbound(
                8080,
                "mobile",
                json!({ "tags": { "kuma.io/service": "mobile", "version": "v1" } })
            ),
            inbound(
                8090,
                "metrics",
                json!({ "tags": { "kuma.io/service": "metrics", "version": "v1" } })
            ),
        ]),
        json!([
            mk_subscription("2018-07-17T16:05:36.995Z", "10", "1"),
            mk_subscription("2019-07-17T16:05:36.995Z", "20", "2"),
        ]),
        Some(json!({
            "certificateExpirationTime": "2020-05-08T08:28:22Z",
            "lastCertificateRegeneration": "2019-07-16T19:48:08Z",
            "certificateRegenerations": 10
        })),
    );
    assert_eq!(
        row(&item, now()),
        vec![
            "default",
            "web-1",
            "kuma.io/service=metrics,mobile version=v1",
            "Online",
            "2h",
            "30s",
            "30",
            "3",
            "22h",
            "2020-05-08 08:28:22",
            "10",
            "unknown",
            "",
            "2.14.0",
            "1.40.0",
            "coredns: 1.8.3",
            "",
        ]
    );
}

#[test]
fn readiness_decides_degraded_and_offline() {
    let subs = json!([mk_subscription("2019-07-17T16:05:36.995Z", "1", "0")]);
    let degraded = mk_overview(
        "d",
        json!([
            inbound(8080, "example", json!({})),
            inbound(9001, "example", json!({ "health": {} })),
        ]),
        subs.clone(),
        None,
    );
    let r = row(&degraded, now());
    assert_eq!(r[3], "Partially degraded");
    assert_eq!(r[16], "inbound[port=9001,svc=example] is not ready");
    // No mTLS: Kuma's placeholders.
    assert_eq!(&r[8..13], &["never", "-", "0", "-", ""]);

    let all_down = mk_overview(
        "o",
        json!([
            inbound(8080, "example", json!({ "health": { "ready": false } })),
            inbound(9001, "example", json!({ "state": "NotReady" })),
        ]),
        subs,
        None,
    );
    let r = row(&all_down, now());
    assert_eq!(r[3], "Offline");
    assert_eq!(
        r[16],
        "inbound[port=8080,svc=example] is not ready;inbound[port=9001,svc=example] is not ready"
    );
}

#[test]
fn never_connected_or_disconnected_is_offline() {
    let never = mk_overview(
        "n",
        json!([inbound(8080, "example", json!({}))]),
        json!([{ "id": "1", "controlPlaneInstanceId": "cp-1" }]),
        None,
    );
    let r = row(&never, now());
    assert_eq!(&r[3..8], &["Offline", "never", "never", "0", "0"]);
    assert_eq!(r[15], "-");

    let mut gone = mk_subscription("2019-07-17T16:05:36.995Z", "5", "0");
    gone["disconnectTime"] = json!("2019-07-17T17:00:00Z");
    let left = mk_overview(
        "l",
        json!([inbound(8080, "example", json!({}))]),
        json!([gone]),
        None,
    );
    assert_eq!(row(&left, now())[3], "Offline");
}

#[test]
fn counters_may_be_numbers() {
    let mut sub = mk_subscription("2019-07-17T16:05:36.995Z", "0", "0");
    sub["status"]["total"] = json!({ "responsesSent": 7, "responsesRejected": 2 });
    let item = mk_overview("x", json!([]), json!([sub]), None);
    let r = row(&item, now());
    assert_eq!((r[6].as_str(), r[7].as_str()), ("7", "2"));
    assert_eq!(r[3], "Online");
}
