//! MeshLoadBalancingStrategy: load balancer choice, hashing and locality.

use serde::{Deserialize, Serialize};

use crate::policies::target_ref::{TargetRef, TargetRefKind as K, TargetRefRules, top_level};
use crate::policies::values::{
    GoDuration, IntOrString, TargetedConf, check_non_negative_duration, check_one_of,
    check_percentage,
};
use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshLoadBalancingStrategySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<TargetedConf<Conf>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_awareness: Option<LocalityAwareness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityAwareness {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_zone: Option<LocalZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_zone: Option<CrossZone>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalZone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_tags: Option<Vec<AffinityTag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AffinityTag {
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossZone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Vec<Failover>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_threshold: Option<FailoverThreshold>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromZone>,
    #[serde(default)]
    pub to: ToZone,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FromZone {
    #[serde(default)]
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToZone {
    /// `None`, `Only`, `Any` or `AnyExcept`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoverThreshold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// `RoundRobin`, `LeastRequest`, `RingHash`, `Random` or `Maglev`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_robin: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub least_request: Option<LeastRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeastRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_request_bias: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    /// `XXHash` or `MurmurHash2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ring_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ring_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Maglev {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashPolicy {
    /// `Header`, `Cookie`, `Connection`, `SourceIP`, `QueryParameter` or `FilterState`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<Cookie>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_state: Option<FilterState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cookie {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    #[serde(rename = "sourceIP", default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterState {
    #[serde(default)]
    pub key: String,
}

impl Validate for MeshLoadBalancingStrategySpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        let spec = FieldPath::of("spec");
        if let Some(top) = &self.target_ref {
            TargetRefRules::kinds(&[
                K::Mesh,
                K::MeshSubset,
                K::MeshGateway,
                K::MeshService,
                K::MeshServiceSubset,
                K::Dataplane,
            ])
            .gateway_listener_tags()
            .check(top, &spec.field("targetRef"), v);
        }
        let top = top_level(&self.target_ref).kind;
        for (i, to) in self.to.iter().flatten().enumerate() {
            let path = spec.field("to").index(i);
            let conf = to.default.clone().unwrap_or_default();
            let gateway_lb = format!(
                "value '{top}' is not supported, only Mesh is allowed if loadBalancer is set"
            );
            let rules = match (&top, conf.load_balancer.is_some()) {
                (K::MeshGateway, true) => TargetRefRules {
                    unsupported_message: Some(&gateway_lb),
                    ..TargetRefRules::kinds(&[K::Mesh])
                },
                (K::MeshGateway, false) => {
                    TargetRefRules::kinds(&[K::Mesh, K::MeshService, K::MeshMultiZoneService])
                }
                _ => TargetRefRules::kinds(&[
                    K::Mesh,
                    K::MeshService,
                    K::MeshMultiZoneService,
                    K::MeshHTTPRoute,
                ]),
            };
            rules.check(&to.target_ref, &path.field("targetRef"), v);
            if to.target_ref.kind == K::MeshExternalService && top != K::Mesh {
                v.add(
                    &path.field("targetRef").field("kind"),
                    "kind MeshExternalService is only allowed with targetRef.kind: Mesh as it is configured on the Zone Egress and shared by all clients in the mesh",
                );
            }
            check_conf(&conf, &to.target_ref, &path.field("default"), v);
        }
    }
}

fn check_conf(conf: &Conf, to: &TargetRef, path: &FieldPath, v: &mut Violations) {
    if to.kind == K::MeshHTTPRoute {
        check_hash_policies(
            conf.hash_policies.as_deref(),
            &path.field("hashPolicies"),
            v,
        );
        let msg = "field is not allowed when targetRef.kind is MeshHTTPRoute, only hashPolicies is supported";
        if conf.load_balancer.is_some() {
            v.add(&path.field("loadBalancer"), msg);
        }
        if conf.locality_awareness.is_some() {
            v.add(&path.field("localityAwareness"), msg);
        }
        return;
    }
    if let Some(lb) = &conf.load_balancer {
        let lp = path.field("loadBalancer");
        check_load_balancer(lb, &lp, v);
        match lb.kind.as_str() {
            "RingHash" => {
                let hp = lp.field("ringHash").field("hashPolicies");
                check_hash_policies(
                    lb.ring_hash
                        .as_ref()
                        .and_then(|r| r.hash_policies.as_deref()),
                    &hp,
                    v,
                )
            }
            "Maglev" => {
                let hp = lp.field("maglev").field("hashPolicies");
                check_hash_policies(
                    lb.maglev.as_ref().and_then(|m| m.hash_policies.as_deref()),
                    &hp,
                    v,
                )
            }
            "LeastRequest" => {
                let bias = lb
                    .least_request
                    .as_ref()
                    .and_then(|l| l.active_request_bias.as_ref());
                let bp = lp.field("leastRequest").field("activeRequestBias");
                match bias.map(IntOrString::as_f64) {
                    Some(None) => v.add(&bp, "string must be a valid number"),
                    Some(Some(f)) if f < 0.0 => v.add(&bp, "must be greater or equal then: 0"),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(la) = &conf.locality_awareness {
        check_locality(la, to, &path.field("localityAwareness"), v);
    }
    check_hash_policies(
        conf.hash_policies.as_deref(),
        &path.field("hashPolicies"),
        v,
    );
    if conf.hash_policies.is_some()
        && let Some(lb) = &conf.load_balancer
    {
        let msg = "hashPolicies already specified in the root level";
        if lb
            .ring_hash
            .as_ref()
            .is_some_and(|r| r.hash_policies.is_some())
        {
            v.add(
                &path
                    .field("loadBalancer")
                    .field("ringHash")
                    .field("hashPolicies"),
                msg,
            );
        }
        if lb
            .maglev
            .as_ref()
            .is_some_and(|m| m.hash_policies.is_some())
        {
            v.add(
                &path
                    .field("loadBalancer")
                    .field("maglev")
                    .field("hashPolicies"),
                msg,
            );
        }
    }
}

/// Envoy's bounds: a ring of at most 8M entries (minimum not above the
/// maximum), a prime Maglev table of at most 5000011 entries, at least two
/// choices for least request.
fn check_load_balancer(lb: &LoadBalancer, path: &FieldPath, v: &mut Violations) {
    check_one_of(
        &lb.kind,
        &["RoundRobin", "LeastRequest", "RingHash", "Random", "Maglev"],
        &path.field("type"),
        v,
    );
    if let Some(n) = lb.least_request.as_ref().and_then(|l| l.choice_count)
        && n < 2
    {
        v.add(
            &path.field("leastRequest").field("choiceCount"),
            "must be greater or equal then: 2",
        );
    }
    if let Some(rh) = &lb.ring_hash {
        let rp = path.field("ringHash");
        if let Some(f) = &rh.hash_function {
            check_one_of(f, &["XXHash", "MurmurHash2"], &rp.field("hashFunction"), v);
        }
        for (field, size) in [
            ("minRingSize", rh.min_ring_size),
            ("maxRingSize", rh.max_ring_size),
        ] {
            match size {
                Some(0) => v.add(&rp.field(field), "must be greater than 0"),
                Some(n) if n > MAX_RING_SIZE => v.add(
                    &rp.field(field),
                    format!("must be less or equal than: {MAX_RING_SIZE}"),
                ),
                _ => {}
            }
        }
        if let (Some(min), Some(max)) = (rh.min_ring_size, rh.max_ring_size)
            && min > max
        {
            v.add(
                &rp.field("minRingSize"),
                "must not be greater than maxRingSize",
            );
        }
    }
    if let Some(size) = lb.maglev.as_ref().and_then(|m| m.table_size) {
        let tp = path.field("maglev").field("tableSize");
        if size > MAX_MAGLEV_TABLE {
            v.add(
                &tp,
                format!("must be less or equal than: {MAX_MAGLEV_TABLE}"),
            );
        } else if !is_prime(size) {
            v.add(&tp, "must be a prime number");
        }
    }
}

const MAX_RING_SIZE: u32 = 8_388_608;
const MAX_MAGLEV_TABLE: u32 = 5_000_011;

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn check_locality(la: &LocalityAwareness, to: &TargetRef, path: &FieldPath, v: &mut Violations) {
    if let Some(lz) = &la.local_zone {
        let tags = lz.affinity_tags.as_deref().unwrap_or_default();
        let tp = path.field("localZone").field("affinityTags");
        let mut weighted = 0;
        for (i, t) in tags.iter().enumerate() {
            if t.key.is_empty() {
                v.add(&tp.index(i).field("key"), "must not be empty");
            }
            if let Some(w) = t.weight {
                if w == 0 {
                    v.add(&tp.index(i).field("weight"), "must be greater than 0");
                }
                weighted += 1;
            }
        }
        if weighted > 0 && weighted != tags.len() {
            v.add(&tp, "all or none affinity tags should have weight");
        }
    }
    let Some(cz) = &la.cross_zone else { return };
    let cp = path.field("crossZone");
    if to.kind == K::MeshService
        && (to.section_name.as_deref().is_some_and(|s| !s.is_empty())
            || to.labels.as_ref().is_some_and(|l| !l.is_empty()))
    {
        v.add(&cp, "must not be set: MeshService traffic is local");
    }
    for (i, f) in cz.failover.iter().flatten().enumerate() {
        let fp = cp.field("failover").index(i);
        if let Some(from) = &f.from {
            if from.zones.is_empty() {
                v.add(&fp.field("from").field("zones"), "must not be empty");
            }
            for (j, z) in from.zones.iter().enumerate() {
                if z.is_empty() {
                    v.add(
                        &fp.field("from").field("zones").index(j),
                        "must not be empty",
                    );
                }
            }
        }
        let has_zones = f.to.zones.as_ref().is_some_and(|z| !z.is_empty());
        let zp = fp.field("to").field("zones");
        match f.to.kind.as_str() {
            t @ ("Any" | "None") if has_zones => {
                v.add(&zp, format!("must be empty when type is {t}"))
            }
            t @ ("AnyExcept" | "Only") if !has_zones => {
                v.add(&zp, format!("must not be empty when type is {t}"))
            }
            "Any" | "None" | "AnyExcept" | "Only" => {}
            _ => v.add(&fp.field("to").field("type"), "unrecognized type"),
        }
    }
    if let Some(t) = &cz.failover_threshold {
        let pp = cp.field("failoverThreshold").field("percentage");
        check_percentage(t.percentage.as_ref(), &pp, true, false, v);
    }
}

fn check_hash_policies(policies: Option<&[HashPolicy]>, path: &FieldPath, v: &mut Violations) {
    for (i, p) in policies.into_iter().flatten().enumerate() {
        let pp = path.index(i);
        let missing = match p.kind.as_str() {
            "Header" => p.header.is_none().then_some("header"),
            "Cookie" => p.cookie.is_none().then_some("cookie"),
            "QueryParameter" => p.query_parameter.is_none().then_some("queryParameter"),
            "FilterState" => p.filter_state.is_none().then_some("filterState"),
            "Connection" | "SourceIP" => p.connection.is_none().then_some("connection"),
            _ => {
                v.add(&pp.field("type"), "unrecognized type");
                None
            }
        };
        if let Some(field) = missing {
            v.add(&pp.field(field), "must be defined");
        }
        // Envoy refuses empty names and keys.
        let names = [
            ("header", "name", p.header.as_ref().map(|h| &h.name)),
            ("cookie", "name", p.cookie.as_ref().map(|c| &c.name)),
            (
                "queryParameter",
                "name",
                p.query_parameter.as_ref().map(|q| &q.name),
            ),
            (
                "filterState",
                "key",
                p.filter_state.as_ref().map(|f| &f.key),
            ),
        ];
        for (section, field, value) in names {
            if value.is_some_and(|s| s.is_empty()) {
                v.add(&pp.field(section).field(field), "must not be empty");
            }
        }
        check_non_negative_duration(
            p.cookie.as_ref().and_then(|c| c.ttl.as_ref()),
            &pp.field("cookie").field("ttl"),
            v,
        );
        if let Some(path) = p.cookie.as_ref().and_then(|c| c.path.as_deref())
            && !path.starts_with('/')
        {
            v.add(
                &pp.field("cookie").field("path"),
                "must be an absolute path",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::testing::{assert_valid_round_trip, violations};

    #[test]
    fn docs_example_is_valid() {
        assert_valid_round_trip(
            r#"
type: MeshLoadBalancingStrategy
name: ring-hash
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        localityAwareness:
          localZone:
            affinityTags:
              - key: k8s.io/node
                weight: 9
              - key: k8s.io/az
                weight: 1
          crossZone:
            failover:
              - from:
                  zones: [zone-1]
                to:
                  type: Only
                  zones: [zone-2]
              - to:
                  type: Any
            failoverThreshold:
              percentage: 70
        loadBalancer:
          type: RingHash
          ringHash:
            hashFunction: MurmurHash2
            minRingSize: 64
            maxRingSize: 1024
            hashPolicies:
              - type: Header
                header:
                  name: x-header
              - type: Cookie
                cookie:
                  name: session
                  ttl: 1h
                  path: /
"#,
        );
    }

    #[test]
    fn reports_every_problem() {
        let got = violations(
            r#"
type: MeshLoadBalancingStrategy
name: bad
mesh: default
spec:
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        localityAwareness:
          localZone:
            affinityTags:
              - key: ""
                weight: 1
              - key: b
          crossZone:
            failover:
              - to:
                  type: Only
            failoverThreshold:
              percentage: 0
        hashPolicies:
          - type: Cookie
            cookie:
              name: s
              path: rel
        loadBalancer:
          type: Maglev
          maglev:
            hashPolicies:
              - type: Header
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].default.loadBalancer.maglev.hashPolicies[0].header",
                    "must be defined"
                ),
                (
                    "spec.to[0].default.localityAwareness.localZone.affinityTags[0].key",
                    "must not be empty"
                ),
                (
                    "spec.to[0].default.localityAwareness.localZone.affinityTags",
                    "all or none affinity tags should have weight"
                ),
                (
                    "spec.to[0].default.localityAwareness.crossZone.failover[0].to.zones",
                    "must not be empty when type is Only"
                ),
                (
                    "spec.to[0].default.localityAwareness.crossZone.failoverThreshold.percentage",
                    "must be greater than 0"
                ),
                (
                    "spec.to[0].default.hashPolicies[0].cookie.path",
                    "must be an absolute path"
                ),
                (
                    "spec.to[0].default.loadBalancer.maglev.hashPolicies",
                    "hashPolicies already specified in the root level"
                ),
            ]
        );
    }

    #[test]
    fn refuses_what_envoy_would_reject() {
        let got = violations(
            r#"
type: MeshLoadBalancingStrategy
name: bad
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        loadBalancer:
          type: RingHash
          ringHash:
            hashFunction: SHA1
            minRingSize: 2048
            maxRingSize: 1024
            hashPolicies:
              - type: Header
                header:
                  name: ""
              - type: Body
              - type: Cookie
                cookie:
                  name: session
                  ttl: -1h
    - targetRef:
        kind: Mesh
      default:
        loadBalancer:
          type: Maglev
          maglev:
            tableSize: 65536
    - targetRef:
        kind: Mesh
      default:
        loadBalancer:
          type: LeastRequest
          leastRequest:
            choiceCount: 1
    - targetRef:
        kind: Mesh
      default:
        loadBalancer:
          type: Fastest
"#,
        );
        assert_eq!(
            got,
            vec![
                (
                    "spec.to[0].default.loadBalancer.ringHash.hashFunction",
                    "hashFunction must be one of: XXHash, MurmurHash2"
                ),
                (
                    "spec.to[0].default.loadBalancer.ringHash.minRingSize",
                    "must not be greater than maxRingSize"
                ),
                (
                    "spec.to[0].default.loadBalancer.ringHash.hashPolicies[0].header.name",
                    "must not be empty"
                ),
                (
                    "spec.to[0].default.loadBalancer.ringHash.hashPolicies[1].type",
                    "unrecognized type"
                ),
                (
                    "spec.to[0].default.loadBalancer.ringHash.hashPolicies[2].cookie.ttl",
                    "must not be negative when defined"
                ),
                (
                    "spec.to[1].default.loadBalancer.maglev.tableSize",
                    "must be a prime number"
                ),
                (
                    "spec.to[2].default.loadBalancer.leastRequest.choiceCount",
                    "must be greater or equal then: 2"
                ),
                (
                    "spec.to[3].default.loadBalancer.type",
                    "type must be one of: RoundRobin, LeastRequest, RingHash, Random, Maglev"
                ),
            ]
        );
    }
}
