//! Verification keys remembered between token checks. Every ADS stream
//! checks a token, and a connect storm of thousands of proxies must not read
//! the same signing key from the store thousands of times (it exhausted the
//! store's connection pool). Store change events keep the cache honest: a
//! rotated or deleted key stops verifying on the next check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kuma_api::{Kind, ResourceKey};
use kuma_store::ChangeEvent;
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::signing::SigningKey;

/// Keys by the Secret they were parsed from.
pub(crate) struct KeyCache {
    /// Drained before every lookup; no task runs for it.
    events: Mutex<broadcast::Receiver<ChangeEvent>>,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    keys: HashMap<ResourceKey, Arc<SigningKey>>,
    /// Bumped on every Secret change: a key read from the store before a
    /// change must not be cached after the change was seen.
    generation: u64,
}

/// The cache's answer: the key, or the ticket to store the key under once
/// read.
pub(crate) enum Lookup {
    Hit(Arc<SigningKey>),
    Miss(Ticket),
}

/// Taken before reading the store; refuses a write once a change was seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

/// Whether a change to `key` can change a cached key.
fn relevant(key: &ResourceKey) -> bool {
    matches!(key.kind, Kind::Secret | Kind::GlobalSecret)
}

impl KeyCache {
    pub(crate) fn new(events: broadcast::Receiver<ChangeEvent>) -> Self {
        Self {
            events: Mutex::new(events),
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // Every update is a single map operation: a poisoned lock is consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every key whose Secret changed since the last call.
    fn catch_up(&self) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match events.try_recv() {
                Ok(event) if relevant(event.key()) => {
                    let mut entries = self.entries();
                    entries.generation += 1;
                    entries.keys.remove(event.key());
                }
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => {
                    let mut entries = self.entries();
                    entries.generation += 1;
                    entries.keys.clear();
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    pub(crate) fn lookup(&self, key: &ResourceKey) -> Lookup {
        self.catch_up();
        let entries = self.entries();
        match entries.keys.get(key) {
            Some(found) => Lookup::Hit(found.clone()),
            None => Lookup::Miss(Ticket(entries.generation)),
        }
    }

    /// Remembers a key read from the store after `lookup` gave `ticket`,
    /// unless a Secret changed since (the read may predate it).
    pub(crate) fn remember(&self, key: ResourceKey, value: Arc<SigningKey>, ticket: Ticket) {
        self.catch_up();
        let mut entries = self.entries();
        if entries.generation == ticket.0 {
            entries.keys.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests;
