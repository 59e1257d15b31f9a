//! Incremental (delta) xDS: per type, the names a proxy subscribed to and
//! what it holds, so each change sends only added or changed resources and
//! the names removed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::session::{
    MAX_IN_FLIGHT, MAX_NAMES, MAX_TYPES, Outbox, Session, WILDCARD, in_order, wildcard_capable,
};
use super::{NonceSource, Protocol, StreamError, StreamEvent};
use crate::{ProxyResources, XdsResource, type_url};

/// Removals go users-first: listeners before the routes they use, routes
/// before clusters, clusters before their endpoints, secrets last. Nothing
/// Envoy still uses disappears under it.
const REMOVAL_ORDER: &[&str] = &[
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::SECRET,
];

pub(crate) struct DeltaSession {
    nonces: NonceSource,
    types: BTreeMap<String, TypeState>,
}

/// One resource type on one stream.
#[derive(Debug, Default)]
struct TypeState {
    /// Subscribed to every resource of the type.
    wildcard: bool,
    /// Names subscribed explicitly.
    subscribed: BTreeSet<String>,
    /// What the proxy holds as far as the server knows: name → content hash.
    /// Updated when a response is sent, not when it is ACKed, so a NACKed
    /// version is not pushed again; the next change replaces it.
    held: BTreeMap<String, u64>,
    /// Responses awaiting ACK, oldest first.
    in_flight: VecDeque<InFlight>,
}

#[derive(Debug)]
struct InFlight {
    nonce: String,
    version: String,
}

/// What a type needs to be sent to match the desired config.
#[derive(Debug, Default)]
struct Changes {
    upserts: Vec<Arc<XdsResource>>,
    removals: Vec<String>,
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.subscribed.contains(name)
    }

    fn changes(&self, desired: Option<&BTreeMap<String, Arc<XdsResource>>>) -> Changes {
        let stale = |r: &&Arc<XdsResource>| self.held.get(&r.name) != Some(&r.hash);
        let upserts = match desired {
            None => Vec::new(),
            Some(desired) if self.wildcard => desired.values().filter(stale).cloned().collect(),
            Some(desired) => self
                .subscribed
                .iter()
                .filter_map(|name| desired.get(name))
                .filter(stale)
                .cloned()
                .collect(),
        };
        let removals = self
            .held
            .keys()
            .filter(|name| !self.wants(name) || desired.is_none_or(|d| !d.contains_key(*name)))
            .cloned()
            .collect();
        Changes { upserts, removals }
    }

    /// Adds to `upserts` the endpoints of the clusters in `rebuilt` that the
    /// proxy holds unchanged. Envoy rebuilds an updated cluster and keeps
    /// using the old one until the new one has its endpoints again; over
    /// delta xDS it does not ask for them, and its EDS cache stands in only
    /// once the initial fetch timeout (15 s) has passed: without the resend,
    /// a policy that changes a cluster would take effect 15 s late.
    fn resend_endpoints_of(
        &self,
        rebuilt: &BTreeSet<String>,
        config: &ProxyResources,
        upserts: &mut Vec<Arc<XdsResource>>,
    ) {
        let Some(desired) = config.by_type.get(type_url::ENDPOINT) else {
            return;
        };
        let again = rebuilt
            .iter()
            .filter(|name| self.wants(name))
            .filter_map(|name| desired.get(name))
            .filter(|r| self.held.get(&r.name) == Some(&r.hash))
            .cloned();
        upserts.extend(again);
    }

    /// Applies a request's subscription changes.
    fn subscribe(&mut self, request: &DeltaDiscoveryRequest, first: bool) {
        if first {
            // xDS "legacy wildcard": a first request naming nothing.
            if wildcard_capable(&request.type_url) && request.resource_names_subscribe.is_empty() {
                self.wildcard = true;
            }
            // A reconnecting proxy tells what it kept; versions it reports are
            // our content hashes, anything unparsable is simply resent.
            for (name, version) in &request.initial_resource_versions {
                if let Ok(hash) = u64::from_str_radix(version, 16) {
                    self.held.insert(name.clone(), hash);
                }
            }
        }
        let was_wildcard = self.wildcard;
        for name in &request.resource_names_subscribe {
            if name == WILDCARD {
                self.wildcard = true;
            } else if self.subscribed.insert(name.clone())
                && !was_wildcard
                && !request.initial_resource_versions.contains_key(name)
            {
                // A newly subscribed name may have been dropped by the proxy
                // earlier; send it again rather than trust our memory.
                self.held.remove(name);
            }
        }
        for name in &request.resource_names_unsubscribe {
            if name == WILDCARD {
                self.wildcard = false;
                let subscribed = &self.subscribed;
                self.held.retain(|held, _| subscribed.contains(held));
            } else {
                self.subscribed.remove(name);
                if !self.wildcard {
                    // The proxy forgets it; no removal notice is due.
                    self.held.remove(name);
                }
            }
        }
    }
}

impl DeltaSession {
    pub(crate) fn new(nonces: NonceSource) -> Self {
        Self {
            nonces,
            types: BTreeMap::new(),
        }
    }

    fn emit(
        &mut self,
        type_url: &str,
        config: &ProxyResources,
        changes: Changes,
        out: &mut Outbox<DeltaDiscoveryResponse>,
    ) {
        let Some(state) = self.types.get_mut(type_url) else {
            return;
        };
        let version = config.type_version(type_url);
        let nonce = self.nonces.next();
        for r in &changes.upserts {
            state.held.insert(r.name.clone(), r.hash);
        }
        for name in &changes.removals {
            state.held.remove(name);
        }
        state.in_flight.push_back(InFlight {
            nonce: nonce.clone(),
            version: version.clone(),
        });
        if state.in_flight.len() > MAX_IN_FLIGHT {
            state.in_flight.pop_front();
        }
        out.events.push(StreamEvent::Sent {
            type_url: type_url.to_string(),
            version: version.clone(),
        });
        out.responses.push(DeltaDiscoveryResponse {
            system_version_info: version,
            resources: changes
                .upserts
                .iter()
                .map(|r| Resource {
                    name: r.name.clone(),
                    version: r.version(),
                    resource: Some(r.body.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: type_url.to_string(),
            removed_resources: changes.removals,
            nonce,
            ..Default::default()
        });
    }
}

impl Session for DeltaSession {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Delta;

    fn node(request: &Self::Request) -> Option<&Node> {
        request.node.as_ref()
    }

    fn answered_nonce(request: &Self::Request) -> &str {
        &request.response_nonce
    }

    fn pushed(response: &Self::Response) -> (&str, &str) {
        (&response.type_url, &response.nonce)
    }

    fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
        config: &ProxyResources,
        out: &mut Outbox<DeltaDiscoveryResponse>,
    ) -> Result<(), StreamError> {
        let type_url = request.type_url.clone();
        if type_url.is_empty() {
            return Err(StreamError::MissingTypeUrl);
        }
        let first = !self.types.contains_key(&type_url);
        if first && self.types.len() >= MAX_TYPES {
            return Err(StreamError::TooManyTypes { limit: MAX_TYPES });
        }
        let state = self.types.entry(type_url.clone()).or_default();

        if !request.response_nonce.is_empty() {
            match state
                .in_flight
                .iter()
                .position(|f| f.nonce == request.response_nonce)
            {
                Some(at) => {
                    // Envoy answers responses in order: older ones are settled too.
                    if let Some(answered) = state.in_flight.drain(..=at).next_back() {
                        out.events.push(match &request.error_detail {
                            None => StreamEvent::Acked {
                                type_url: type_url.clone(),
                                version: answered.version,
                            },
                            Some(error) => StreamEvent::Nacked {
                                type_url: type_url.clone(),
                                version: answered.version,
                                error_detail: error.message.clone(),
                            },
                        });
                    }
                }
                None => tracing::debug!(
                    nonce = %request.response_nonce,
                    %type_url,
                    "ignoring the answer to a stale response"
                ),
            }
        }

        state.subscribe(&request, first);
        if state.subscribed.len() > MAX_NAMES || state.held.len() > MAX_NAMES {
            return Err(StreamError::TooManyNames {
                type_url,
                limit: MAX_NAMES,
            });
        }

        let changes = state.changes(config.by_type.get(&type_url));
        // The first request of a type is always answered, even with nothing:
        // Envoy's initialisation waits for it.
        if first || !changes.upserts.is_empty() || !changes.removals.is_empty() {
            self.emit(&type_url, config, changes, out);
        }
        Ok(())
    }

    fn on_config(&mut self, config: &ProxyResources, out: &mut Outbox<DeltaDiscoveryResponse>) {
        // Make before break: every addition first, in dependency order, then
        // every removal, users first.
        let types: Vec<String> = in_order(self.types.keys(), type_url::ORDER)
            .into_iter()
            .cloned()
            .collect();
        // Clusters sent again in this push, by name (a cluster's endpoints
        // are named after it).
        let mut rebuilt: BTreeSet<String> = BTreeSet::new();
        for type_url in &types {
            let state = &self.types[type_url];
            let mut changes = state.changes(config.by_type.get(type_url));
            if type_url == type_url::CLUSTER {
                rebuilt.extend(changes.upserts.iter().map(|r| r.name.clone()));
            } else if type_url == type_url::ENDPOINT {
                state.resend_endpoints_of(&rebuilt, config, &mut changes.upserts);
            }
            if !changes.upserts.is_empty() {
                let upserts = Changes {
                    upserts: changes.upserts,
                    removals: Vec::new(),
                };
                self.emit(type_url, config, upserts, out);
            }
        }
        let types: Vec<String> = in_order(self.types.keys(), REMOVAL_ORDER)
            .into_iter()
            .cloned()
            .collect();
        for type_url in &types {
            let changes = self.types[type_url].changes(config.by_type.get(type_url));
            if !changes.removals.is_empty() {
                let removals = Changes {
                    upserts: Vec::new(),
                    removals: changes.removals,
                };
                self.emit(type_url, config, removals, out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
