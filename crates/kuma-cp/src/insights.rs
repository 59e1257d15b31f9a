//! What each proxy's ADS streams did: when they connected and disconnected,
//! which versions were sent, ACKed and NACKed. Kept in memory by the control
//! plane instance serving the stream, so with several instances each knows
//! only its own streams (per-instance, not yet shared through the store).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use kuma_api::resource::format_time;
use kuma_xds::server::{Protocol, ProxyId, StreamEvent, StreamId};
use kuma_xds::type_url;
use serde_json::{Map, Value, json};

/// Subscriptions kept per proxy; older ones are dropped.
const MAX_SUBSCRIPTIONS: usize = 5;

/// Kuma's short names of the xDS types in subscription stats.
fn short_type(url: &str) -> &'static str {
    match url {
        type_url::CLUSTER => "cds",
        type_url::ENDPOINT => "eds",
        type_url::LISTENER => "lds",
        type_url::ROUTE => "rds",
        type_url::SECRET => "sds",
        _ => "other",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeStats {
    pub responses_sent: u64,
    pub responses_acknowledged: u64,
    pub responses_rejected: u64,
    pub last_sent_version: Option<String>,
    pub last_acked_version: Option<String>,
}

impl TypeStats {
    /// Kuma's DiscoveryServiceStats JSON (protojson: zero counts omitted,
    /// 64-bit counts as strings), plus the last versions, our addition.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut count = |name: &str, n: u64| {
            if n > 0 {
                m.insert(name.into(), Value::String(n.to_string()));
            }
        };
        count("responsesSent", self.responses_sent);
        count("responsesAcknowledged", self.responses_acknowledged);
        count("responsesRejected", self.responses_rejected);
        if let Some(v) = &self.last_sent_version {
            m.insert("lastSentVersion".into(), v.clone().into());
        }
        if let Some(v) = &self.last_acked_version {
            m.insert("lastAckedVersion".into(), v.clone().into());
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub type_url: String,
    pub version: String,
    pub error_detail: String,
    pub time: DateTime<Utc>,
}

/// One ADS stream of a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub control_plane_instance_id: String,
    pub connect_time: DateTime<Utc>,
    pub disconnect_time: Option<DateTime<Utc>>,
    pub protocol: Option<Protocol>,
    pub last_update_time: DateTime<Utc>,
    pub total: TypeStats,
    /// By Kuma's short type name (cds, eds, lds, rds, sds).
    pub by_type: BTreeMap<&'static str, TypeStats>,
    pub last_nack: Option<Nack>,
    pub version: Option<Value>,
}

impl Subscription {
    pub fn to_json(&self) -> Value {
        let mut status = Map::new();
        status.insert(
            "lastUpdateTime".into(),
            format_time(&self.last_update_time).into(),
        );
        status.insert("total".into(), self.total.to_json());
        for t in ["cds", "eds", "lds", "rds"] {
            let stats = self.by_type.get(t).cloned().unwrap_or_default();
            status.insert(t.into(), stats.to_json());
        }
        if let Some(sds) = self.by_type.get("sds") {
            status.insert("sds".into(), sds.to_json());
        }
        if let Some(n) = &self.last_nack {
            status.insert(
                "lastNack".into(),
                json!({
                    "typeUrl": n.type_url,
                    "version": n.version,
                    "errorDetail": n.error_detail,
                    "time": format_time(&n.time),
                }),
            );
        }
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert(
            "controlPlaneInstanceId".into(),
            self.control_plane_instance_id.clone().into(),
        );
        m.insert("connectTime".into(), format_time(&self.connect_time).into());
        if let Some(t) = &self.disconnect_time {
            m.insert("disconnectTime".into(), format_time(t).into());
        }
        m.insert("status".into(), Value::Object(status));
        if let Some(v) = &self.version {
            m.insert("version".into(), v.clone());
        }
        if let Some(p) = self.protocol {
            let name = match p {
                Protocol::Delta => "delta",
                Protocol::StateOfTheWorld => "sotw",
            };
            m.insert("xdsProtocol".into(), name.into());
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyInsight {
    pub subscriptions: VecDeque<Subscription>,
    /// Envoy's admin port, from the bootstrap request or the Dataplane.
    pub admin_port: Option<u16>,
    /// kuma-dp's and Envoy's versions, from the bootstrap request.
    pub version: Option<Value>,
}

impl ProxyInsight {
    /// Online when the newest stream has not ended.
    pub fn is_online(&self) -> bool {
        self.subscriptions
            .back()
            .is_some_and(|s| s.disconnect_time.is_none())
    }

    /// Kuma's DataplaneInsight JSON.
    pub fn to_json(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(Subscription::to_json)
            .collect();
        json!({ "subscriptions": subs })
    }
}

/// Every proxy's insight, by proxy.
pub struct Insights {
    instance_id: String,
    proxies: Mutex<HashMap<ProxyId, ProxyInsight>>,
}

impl Insights {
    pub fn new(instance_id: impl Into<String>) -> Self {
        Self {
            instance_id: instance_id.into(),
            proxies: Mutex::default(),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<ProxyId, ProxyInsight>) -> R) -> R {
        let mut map = self
            .proxies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    pub fn get(&self, proxy: &ProxyId) -> Option<ProxyInsight> {
        self.with(|m| m.get(proxy).cloned())
    }

    /// Remembers what the bootstrap request told about the proxy.
    pub fn record_bootstrap(&self, proxy: &ProxyId, admin_port: u16, version: Option<Value>) {
        self.with(|m| {
            let p = m.entry(proxy.clone()).or_default();
            p.admin_port = Some(admin_port);
            if version.is_some() {
                p.version = version;
            }
        });
    }

    /// Applies one stream event.
    pub fn record(&self, proxy: &ProxyId, stream: StreamId, event: &StreamEvent) {
        let now = Utc::now();
        let id = stream.0.to_string();
        self.with(|m| {
            let p = m.entry(proxy.clone()).or_default();
            if let StreamEvent::Connected { protocol } = event {
                p.subscriptions.push_back(Subscription {
                    id: id.clone(),
                    control_plane_instance_id: self.instance_id.clone(),
                    connect_time: now,
                    disconnect_time: None,
                    protocol: Some(*protocol),
                    last_update_time: now,
                    total: TypeStats::default(),
                    by_type: BTreeMap::new(),
                    last_nack: None,
                    version: p.version.clone(),
                });
                while p.subscriptions.len() > MAX_SUBSCRIPTIONS {
                    p.subscriptions.pop_front();
                }
                return;
            }
            let Some(sub) = p.subscriptions.iter_mut().rev().find(|s| s.id == id) else {
                return;
            };
            sub.last_update_time = now;
            match event {
                StreamEvent::Connected { .. } => {}
                StreamEvent::Sent { type_url, version } => {
                    for s in [
                        &mut sub.total,
                        sub.by_type.entry(short_type(type_url)).or_default(),
                    ] {
                        s.responses_sent += 1;
                        s.last_sent_version = Some(version.clone());
                    }
                }
                StreamEvent::Acked { type_url, version } => {
                    for s in [
                        &mut sub.total,
                        sub.by_type.entry(short_type(type_url)).or_default(),
                    ] {
                        s.responses_acknowledged += 1;
                        s.last_acked_version = Some(version.clone());
                    }
                }
                StreamEvent::Nacked {
                    type_url,
                    version,
                    error_detail,
                } => {
                    sub.total.responses_rejected += 1;
                    sub.by_type
                        .entry(short_type(type_url))
                        .or_default()
                        .responses_rejected += 1;
                    sub.last_nack = Some(Nack {
                        type_url: type_url.clone(),
                        version: version.clone(),
                        error_detail: error_detail.clone(),
                        time: now,
                    });
                }
                StreamEvent::Disconnected => sub.disconnect_time = Some(now),
            }
        });
    }

    /// Forgets a proxy (its Dataplane was deleted).
    pub fn remove(&self, proxy: &ProxyId) {
        self.with(|m| m.remove(proxy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_versions_and_nacks_per_type() {
        let i = Insights::new("cp-1");
        let p = ProxyId::new("default", "web");
        let s = StreamId(7);
        i.record(
            &p,
            s,
            &StreamEvent::Connected {
                protocol: Protocol::Delta,
            },
        );
        assert!(i.get(&p).unwrap().is_online());
        let sent = |v: &str| StreamEvent::Sent {
            type_url: type_url::CLUSTER.into(),
            version: v.into(),
        };
        i.record(&p, s, &sent("a"));
        i.record(
            &p,
            s,
            &StreamEvent::Acked {
                type_url: type_url::CLUSTER.into(),
                version: "a".into(),
            },
        );
        i.record(&p, s, &sent("b"));
        i.record(
            &p,
            s,
            &StreamEvent::Nacked {
                type_url: type_url::CLUSTER.into(),
                version: "b".into(),
                error_detail: "bad".into(),
            },
        );
        let json = i.get(&p).unwrap().to_json();
        let sub = &json["subscriptions"][0];
        assert_eq!(sub["controlPlaneInstanceId"], "cp-1");
        assert_eq!(sub["status"]["cds"]["responsesSent"], "2");
        assert_eq!(sub["status"]["cds"]["responsesAcknowledged"], "1");
        assert_eq!(sub["status"]["cds"]["responsesRejected"], "1");
        assert_eq!(sub["status"]["cds"]["lastAckedVersion"], "a");
        assert_eq!(sub["status"]["eds"], json!({}));
        assert_eq!(sub["status"]["lastNack"]["errorDetail"], "bad");
        assert!(sub.get("disconnectTime").is_none());
        i.record(&p, s, &StreamEvent::Disconnected);
        let insight = i.get(&p).unwrap();
        assert!(!insight.is_online());
        assert!(insight.to_json()["subscriptions"][0]["disconnectTime"].is_string());
    }
}
