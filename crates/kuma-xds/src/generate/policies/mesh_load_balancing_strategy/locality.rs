//! Locality-aware load balancing: which locality, priority and weight each
//! endpoint of a destination gets for one proxy, as Kuma 2.14 decides it.
//!
//! - An endpoint's zone is its `kuma.io/zone` tag; without one it is in
//!   this control plane's zone (Kuma labels every Dataplane of a zone with
//!   it).
//! - Endpoints in other zones go to priority 1 (used only when the local
//!   ones fail) while locality awareness is on: on by default once a
//!   MeshLoadBalancingStrategy applies to the destination
//!   (`localityAwareness.disabled` turns it off), else as the Mesh's
//!   `routing.localityAwareLoadBalancing` says.
//! - `localZone.affinityTags`: endpoints of this zone sharing the proxy's
//!   value of a tag form a sub-zone `key=value` with that tag's weight
//!   (without weights, 9·10^(n−i−1) for the i-th of n tags, so the first
//!   tag's sub-zone gets 90% of the traffic against the next one's 9%);
//!   other local endpoints share weight 1.
//! - `crossZone.failover`: the rules whose `from` includes this zone, in
//!   order, give other zones' endpoints the priority of their position + 1
//!   (`Any`, `AnyExcept`, `Only`; `None` matches nothing). With a `localZone`
//!   or `crossZone` section, endpoints of other zones no rule matches are
//!   left out.
//!
//! The plan of a proxy depends on its tags only through the affinity
//! tags' values, so proxies alike share one load assignment.

use std::collections::{BTreeMap, BTreeSet};

use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::tags::{SERVICE_TAG, ZONE_TAG};
use kuma_api::policies::mesh_load_balancing_strategy::{Conf, LocalityAwareness};

use crate::generate::snapshot::{Destination, Endpoint};

/// Kuma's overprovisioning factor where a conf regroups endpoints and sets
/// no failover threshold: 2.0 in Envoy's percent-of-100 units.
const DEFAULT_OVERPROVISIONING: u32 = 200;

/// How one proxy's load assignment of a destination groups its endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct LocalityPlan {
    /// This control plane's zone.
    local_zone: &'static str,
    /// Other zones' endpoints go to priority 1 (when not regrouped).
    aware: bool,
    /// Endpoints are regrouped by the affinity and failover groups below
    /// (a conf with a `localZone` or `crossZone` section).
    regroup: Option<Regroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Regroup {
    /// (tag, the proxy's value, weight), first match wins.
    affinity: Vec<(String, String, u32)>,
    failover: Vec<Failover>,
    overprovisioning: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Failover {
    to: ToZones,
    priority: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ToZones {
    Any,
    AnyExcept(BTreeSet<String>),
    Only(BTreeSet<String>),
    None,
}

/// One locality of a load assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locality<'a> {
    pub(crate) zone: &'a str,
    pub(crate) sub_zone: String,
    pub(crate) priority: u32,
    /// The locality's weight; 0 leaves it unset.
    pub(crate) weight: u32,
    pub(crate) endpoints: Vec<&'a Endpoint>,
}

/// A load assignment by localities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Localities<'a> {
    pub(crate) localities: Vec<Locality<'a>>,
    /// The assignment's overprovisioning factor, when set.
    pub(crate) overprovisioning: Option<u32>,
}

/// An endpoint's zone: its `kuma.io/zone` tag, else this zone.
fn zone_of<'a>(endpoint: &'a Endpoint, local_zone: &'static str) -> &'a str {
    endpoint
        .tags
        .get(ZONE_TAG)
        .map_or(local_zone, String::as_str)
}

/// The first of the proxy's values of `key` across its inbounds (in
/// sorted order, as Kuma picks one from a multi-valued tag).
fn proxy_value(proxy: &DataplaneSpec, key: &str) -> Option<String> {
    proxy
        .inbounds()
        .iter()
        .filter_map(|inbound| inbound.tags.get(key))
        .min()
        .cloned()
}

impl LocalityPlan {
    /// The plan for `proxy` under the destination's MeshLoadBalancingStrategy
    /// conf (`None`: no such policy applies), `mesh_aware` being the Mesh's
    /// `routing.localityAwareLoadBalancing`.
    pub(crate) fn new(
        conf: Option<&Conf>,
        proxy: &DataplaneSpec,
        local_zone: &'static str,
        mesh_aware: bool,
    ) -> LocalityPlan {
        let awareness = conf.and_then(|c| c.locality_awareness.as_ref());
        let aware = match conf {
            None => mesh_aware,
            Some(_) => !awareness.and_then(|a| a.disabled).unwrap_or(false),
        };
        let regroup = awareness
            .filter(|a| a.local_zone.is_some() || a.cross_zone.is_some())
            .map(|a| Regroup::new(a, proxy, local_zone));
        LocalityPlan {
            local_zone,
            aware,
            regroup,
        }
    }

    /// Whether the destination's load assignment differs from the shared
    /// one (a single locality-less group) in what Envoy does with it: the
    /// plan regroups, or puts some endpoint in another zone at a lower
    /// priority. (Kuma also names the zone of every endpoint's locality
    /// where nothing depends on it; those are left out.)
    pub(crate) fn applies_to(&self, destination: &Destination) -> bool {
        self.regroup.is_some()
            || (self.aware
                && destination
                    .endpoints
                    .iter()
                    .any(|e| zone_of(e, self.local_zone) != self.local_zone))
    }

    /// The destination's endpoints by locality, sorted as Kuma sorts them:
    /// localities by zone and sub-zone written together, endpoints by
    /// address and port.
    pub(crate) fn localities<'a>(&self, destination: &'a Destination) -> Localities<'a> {
        let mut groups: BTreeMap<(&str, String, u32), Locality<'a>> = BTreeMap::new();
        for endpoint in &destination.endpoints {
            let zone = zone_of(endpoint, self.local_zone);
            let Some((sub_zone, priority, weight)) = self.place(endpoint, zone) else {
                continue;
            };
            groups
                .entry((zone, sub_zone.clone(), priority))
                .or_insert_with(|| Locality {
                    zone,
                    sub_zone,
                    priority,
                    weight,
                    endpoints: Vec::new(),
                })
                .endpoints
                .push(endpoint);
        }
        let mut localities: Vec<Locality<'a>> = groups.into_values().collect();
        localities.sort_by_cached_key(|l| (format!("{}{}", l.zone, l.sub_zone), l.priority));
        for locality in &mut localities {
            locality
                .endpoints
                .sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
        }
        Localities {
            localities,
            overprovisioning: self.regroup.as_ref().map(|r| r.overprovisioning),
        }
    }

    /// An endpoint's (sub-zone, priority, locality weight), `None` when
    /// it is left out.
    fn place(&self, endpoint: &Endpoint, zone: &str) -> Option<(String, u32, u32)> {
        let local = zone == self.local_zone;
        let Some(regroup) = &self.regroup else {
            // The zone as locality; a remote one at priority 1 when aware.
            return Some((String::new(), u32::from(self.aware && !local), 0));
        };
        if local {
            let affinity = regroup
                .affinity
                .iter()
                .find(|(key, value, _)| endpoint.tags.get(key) == Some(value));
            return Some(match affinity {
                Some((key, value, weight)) => (format!("{key}={value}"), 0, *weight),
                None => (String::new(), 0, 1),
            });
        }
        regroup
            .failover
            .iter()
            .find(|f| match &f.to {
                ToZones::Any => true,
                ToZones::AnyExcept(zones) => !zones.contains(zone),
                ToZones::Only(zones) => zones.contains(zone),
                ToZones::None => false,
            })
            .map(|f| (String::new(), f.priority, 0))
    }

    /// Whether the cluster balances by locality weights: affinity tags are
    /// configured (whether or not the proxy has their values, as in Kuma).
    pub(crate) fn weighted(conf: &Conf) -> bool {
        conf.locality_awareness
            .as_ref()
            .and_then(|a| a.local_zone.as_ref())
            .and_then(|z| z.affinity_tags.as_ref())
            .is_some_and(|tags| !tags.is_empty())
    }
}

impl Regroup {
    fn new(awareness: &LocalityAwareness, proxy: &DataplaneSpec, local_zone: &str) -> Regroup {
        let tags = awareness
            .local_zone
            .as_ref()
            .and_then(|z| z.affinity_tags.as_deref())
            .unwrap_or_default();
        let affinity = tags
            .iter()
            .enumerate()
            // Endpoints are matched by the tags they carry in their
            // metadata, which leave `kuma.io/service` out: an affinity to it
            // never matches.
            .filter(|(_, tag)| tag.key != SERVICE_TAG)
            .filter_map(|(i, tag)| {
                let value = proxy_value(proxy, &tag.key)?;
                let weight = tag
                    .weight
                    .unwrap_or_else(|| default_weight(tags.len() - i - 1));
                Some((tag.key.clone(), value, weight))
            })
            .collect();
        let cross = awareness.cross_zone.as_ref();
        let failover = cross
            .and_then(|c| c.failover.as_deref())
            .unwrap_or_default()
            .iter()
            .enumerate()
            // The position counts rules that do not apply here too.
            .filter(|(_, rule)| {
                rule.from
                    .as_ref()
                    .is_none_or(|from| from.zones.iter().any(|z| z == local_zone))
            })
            .map(|(i, rule)| {
                let zones = || rule.to.zones.iter().flatten().cloned().collect();
                let to = match rule.to.kind.as_str() {
                    "Any" => ToZones::Any,
                    "AnyExcept" => ToZones::AnyExcept(zones()),
                    "Only" => ToZones::Only(zones()),
                    _ => ToZones::None,
                };
                let priority = u32::try_from(i + 1).unwrap_or(u32::MAX);
                Failover { to, priority }
            })
            .collect();
        let threshold = cross
            .and_then(|c| c.failover_threshold.as_ref())
            .and_then(|t| t.percentage.as_ref())
            .and_then(|p| p.as_f64());
        Regroup {
            affinity,
            failover,
            overprovisioning: overprovisioning(threshold),
        }
    }
}

/// 9·10^n, saturating.
fn default_weight(n: usize) -> u32 {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    10u32
        .checked_pow(n)
        .and_then(|p| p.checked_mul(9))
        .unwrap_or(u32::MAX)
}

/// Kuma's overprovisioning factor for a failover threshold percentage:
/// the whole number of times it fits in 100, times 100.
fn overprovisioning(percentage: Option<f64>) -> u32 {
    match percentage {
        Some(p) if p > 0.0 => ((100.0 / p).trunc() as u32).saturating_mul(100),
        _ => DEFAULT_OVERPROVISIONING,
    }
}

#[cfg(test)]
mod tests;
