//! Turns a mesh's targetRef policies into per-proxy rules, as Kuma does:
//! which policies select a proxy ([`matcher`]), the order they apply in
//! ([`policy::compare`]), how their confs fold ([`merge`]), and the rules
//! that result ([`ProxyRules`]): `from` rules per inbound and client subset,
//! inbound `rules`, `to` rules per destination and single-item rules.
//!
//! Pure: no I/O, no clock. Confs stay JSON ([`serde_json::Value`]) so one
//! engine serves every policy kind; callers read them back typed with
//! `conf_as`. Build a [`PolicyIndex`] once per mesh snapshot and kind, then
//! ask it for each proxy.

pub mod engine;
pub mod fingerprint;
pub mod inbound;
pub mod inspect;
pub mod matcher;
pub mod merge;
pub mod outbound;
pub mod policy;
pub mod rules;
pub mod subset;

#[cfg(test)]
mod testing;

pub use engine::{MeshContext, PolicyIndex, ProxyRules};
pub use fingerprint::Fingerprint;
pub use inbound::InboundRule;
pub use matcher::{InboundKey, MatchedBy, Proxy};
pub use merge::MergeStrategy;
pub use outbound::{Destination, ResourceId, ResourceRule, ResourceRules};
pub use policy::Policy;
pub use rules::{PolicyOrigin, Rule, compute};
pub use subset::{Element, Subset, Tag};

use kuma_api::Kind;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0} is not a targetRef policy")]
    NotAPolicy(Kind),
    #[error("{0} is not a Dataplane")]
    NotADataplane(Kind),
    #[error("policy {policy}: {field} does not read as a targetRef")]
    TargetRef {
        policy: String,
        field: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("can't represent {0} as tags")]
    NotTagBased(String),
}
