//! State-of-the-world xDS: every response carries the whole set the proxy
//! asked for under one version per type. A type is sent again only when its
//! version or the requested names change.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use super::session::{MAX_NAMES, MAX_TYPES, Outbox, Session, WILDCARD, in_order, wildcard_capable};
use super::{NonceSource, Protocol, StreamError, StreamEvent};
use crate::{ProxyResources, type_url};

pub(crate) struct SotwSession {
    nonces: NonceSource,
    types: BTreeMap<String, TypeState>,
}

/// What a proxy asked for of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Interest {
    All,
    Names(BTreeSet<String>),
}

/// One resource type on one stream.
#[derive(Debug)]
struct TypeState {
    /// From the proxy's latest (non-stale) request.
    interest: Interest,
    /// What the proxy has, or is about to have: the last response sent, or,
    /// right after a reconnect, the version the proxy says it kept.
    sent: Option<Sent>,
}

#[derive(Debug)]
struct Sent {
    version: String,
    /// `None` when adopted from a reconnecting proxy: nothing to ACK.
    nonce: Option<String>,
    interest: Interest,
}

impl Interest {
    fn of(request: &DiscoveryRequest) -> Self {
        let names = &request.resource_names;
        if names.iter().any(|n| n == WILDCARD)
            || (names.is_empty() && wildcard_capable(&request.type_url))
        {
            Interest::All
        } else {
            Interest::Names(names.iter().cloned().collect())
        }
    }
}

/// The resources a proxy gets for `interest`, and their version. For a
/// named subset the version covers only that subset, so changes elsewhere
/// in the type cause no response.
fn view(config: &ProxyResources, type_url: &str, interest: &Interest) -> (Vec<Any>, String) {
    match interest {
        Interest::All => (
            config.of_type(type_url).map(|r| r.body.clone()).collect(),
            config.type_version(type_url),
        ),
        Interest::Names(names) => {
            let mut subset = ProxyResources::default();
            if let Some(of_type) = config.by_type.get(type_url) {
                for name in names {
                    if let Some(r) = of_type.get(name) {
                        subset.insert(r.clone());
                    }
                }
            }
            (
                subset.of_type(type_url).map(|r| r.body.clone()).collect(),
                subset.type_version(type_url),
            )
        }
    }
}

impl SotwSession {
    pub(crate) fn new(nonces: NonceSource) -> Self {
        Self {
            nonces,
            types: BTreeMap::new(),
        }
    }

    /// Sends the type if the proxy's view of it is not current.
    fn answer(
        &mut self,
        type_url: &str,
        config: &ProxyResources,
        out: &mut Outbox<DiscoveryResponse>,
    ) {
        if self.send(type_url, config, false, out) && type_url == type_url::CLUSTER {
            // Envoy rebuilds an updated cluster and keeps it warming until
            // its endpoints arrive again, even unchanged ones (its EDS cache
            // stands in only after the initial fetch timeout); delta does
            // the same per cluster.
            self.send(type_url::ENDPOINT, config, true, out);
        }
    }

    /// Sends the type if the proxy's view of it is not current, or if
    /// `force`d. Returns whether a response was sent.
    fn send(
        &mut self,
        type_url: &str,
        config: &ProxyResources,
        force: bool,
        out: &mut Outbox<DiscoveryResponse>,
    ) -> bool {
        let Some(state) = self.types.get_mut(type_url) else {
            return false;
        };
        let (resources, version) = view(config, type_url, &state.interest);
        let current = state
            .sent
            .as_ref()
            .is_some_and(|s| s.version == version && s.interest == state.interest);
        if current && !force {
            return false;
        }
        let nonce = self.nonces.next();
        state.sent = Some(Sent {
            version: version.clone(),
            nonce: Some(nonce.clone()),
            interest: state.interest.clone(),
        });
        out.events.push(StreamEvent::Sent {
            type_url: type_url.to_string(),
            version: version.clone(),
        });
        out.responses.push(DiscoveryResponse {
            version_info: version,
            resources,
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        });
        true
    }
}

impl Session for SotwSession {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::StateOfTheWorld;

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
        request: DiscoveryRequest,
        config: &ProxyResources,
        out: &mut Outbox<DiscoveryResponse>,
    ) -> Result<(), StreamError> {
        let type_url = request.type_url.clone();
        if type_url.is_empty() {
            return Err(StreamError::MissingTypeUrl);
        }
        let nonce = request.response_nonce.as_str();
        if !nonce.is_empty() {
            // Only the answer to the latest response counts; an older one was
            // written before the proxy saw what followed it.
            let sent = self.types.get(&type_url).and_then(|s| s.sent.as_ref());
            match sent {
                Some(Sent {
                    nonce: Some(latest),
                    version,
                    ..
                }) if latest == nonce => out.events.push(match &request.error_detail {
                    None => StreamEvent::Acked {
                        type_url: type_url.clone(),
                        version: version.clone(),
                    },
                    Some(error) => StreamEvent::Nacked {
                        type_url: type_url.clone(),
                        version: version.clone(),
                        error_detail: error.message.clone(),
                    },
                }),
                _ => {
                    tracing::debug!(%nonce, %type_url, "ignoring a request with a stale nonce");
                    return Ok(());
                }
            }
        }

        let interest = Interest::of(&request);
        if let Interest::Names(names) = &interest
            && names.len() > MAX_NAMES
        {
            return Err(StreamError::TooManyNames {
                type_url,
                limit: MAX_NAMES,
            });
        }
        if !self.types.contains_key(&type_url) && self.types.len() >= MAX_TYPES {
            return Err(StreamError::TooManyTypes { limit: MAX_TYPES });
        }
        let state = self.types.entry(type_url.clone()).or_insert(TypeState {
            interest: interest.clone(),
            sent: None,
        });
        state.interest = interest;
        if nonce.is_empty() && state.sent.is_none() && !request.version_info.is_empty() {
            // A reconnecting proxy keeps what it last accepted; if that is
            // still current, it is sent nothing.
            state.sent = Some(Sent {
                version: request.version_info,
                nonce: None,
                interest: state.interest.clone(),
            });
        }
        self.answer(&type_url, config, out);
        Ok(())
    }

    fn on_config(&mut self, config: &ProxyResources, out: &mut Outbox<DiscoveryResponse>) {
        let types: Vec<String> = in_order(self.types.keys(), type_url::ORDER)
            .into_iter()
            .cloned()
            .collect();
        for type_url in &types {
            self.answer(type_url, config, out);
        }
    }
}

#[cfg(test)]
mod tests;
