//! Turning PostgreSQL notifications into [`ChangeEvent`]s, exactly once per
//! process.
//!
//! Design: a write never publishes to the local broadcast directly. Every
//! change, this process's own included, reaches subscribers only through the
//! notification PostgreSQL delivers after commit. So each process sees each
//! committed change once, in commit order, whoever wrote it.
//!
//! Notifications sent while the listening connection is down are lost by
//! PostgreSQL, so every change is also a row in `resource_events`, numbered
//! by `seq`. The listener remembers the sequence numbers it has delivered;
//! after reconnecting (with exponential backoff) it first LISTENs again and
//! then reads the rows past its floor, delivering those it has not seen.
//! Notifications that arrive for rows the catch-up already delivered are
//! dropped by the same check. The remaining gap: a transaction that took its
//! sequence number before the floor but committed during the outage; with a
//! floor that trails by [`SEEN_WINDOW`] sequence numbers this needs a write
//! in flight across that many later writes.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;

use super::{CHANNEL, PostgresConfig};
use crate::row::key_from_columns;
use crate::{ChangeEvent, StoreError};

/// How many delivered sequence numbers are remembered.
const SEEN_WINDOW: usize = 100_000;
/// How long change-log rows are kept for catching up.
const EVENT_RETENTION_SECS: i64 = 3600;
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Sequence numbers already delivered, above a floor below which nothing is
/// delivered again.
struct Delivered {
    floor: i64,
    seen: BTreeSet<i64>,
}

impl Delivered {
    /// True the first time `seq` is offered.
    fn first_time(&mut self, seq: i64) -> bool {
        if seq <= self.floor && !self.seen.contains(&seq) && self.seen.len() >= SEEN_WINDOW {
            return false;
        }
        if !self.seen.insert(seq) {
            return false;
        }
        while self.seen.len() > SEEN_WINDOW {
            if let Some(oldest) = self.seen.pop_first() {
                self.floor = self.floor.max(oldest);
            }
        }
        true
    }
}

pub(crate) struct EventListener {
    pool: PgPool,
    listener: Option<PgListener>,
    delivered: Delivered,
    events: broadcast::Sender<ChangeEvent>,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl EventListener {
    /// Listens before returning, so every change committed after the store
    /// is connected is delivered.
    pub async fn start(
        cfg: &PostgresConfig,
        events: broadcast::Sender<ChangeEvent>,
    ) -> Result<Self, StoreError> {
        // Its own small pool, named so operators (and tests) can tell the
        // listening connection apart.
        let pool = cfg.pool("kuma-cp-events", 2).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let floor: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM resource_events")
            .fetch_one(&pool)
            .await?;
        Ok(Self {
            pool,
            listener: Some(listener),
            delivered: Delivered {
                floor,
                seen: BTreeSet::new(),
            },
            events,
            min_backoff: cfg.min_reconnect_interval,
            max_backoff: cfg.max_reconnect_interval.max(cfg.min_reconnect_interval),
        })
    }

    pub async fn run(mut self) {
        let mut backoff = self.min_backoff;
        loop {
            let Some(listener) = self.listener.as_mut() else {
                match self.reconnect().await {
                    Ok(()) => {
                        tracing::info!("event listener reconnected");
                        backoff = self.min_backoff;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "event listener cannot reconnect");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                    }
                }
                continue;
            };
            match listener.try_recv().await {
                Ok(Some(n)) => self.deliver_payload(n.payload()),
                Ok(None) => {
                    tracing::warn!("event listener lost its connection");
                    self.listener = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event listener failed");
                    self.listener = None;
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Listens again, then delivers what was committed meanwhile.
    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        let rows = sqlx::query(
            "SELECT seq, op, type, mesh, name FROM resource_events WHERE seq > $1 ORDER BY seq",
        )
        .bind(self.delivered.floor)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let seq: i64 = r.try_get(0)?;
            let op: String = r.try_get(1)?;
            let kind: String = r.try_get(2)?;
            let mesh: String = r.try_get(3)?;
            let name: String = r.try_get(4)?;
            self.deliver(seq, &op, &kind, &mesh, &name);
        }
        self.listener = Some(listener);
        Ok(())
    }

    fn deliver_payload(&mut self, payload: &str) {
        #[derive(serde::Deserialize)]
        struct Payload {
            seq: i64,
            op: String,
            #[serde(rename = "type")]
            kind: String,
            mesh: String,
            name: String,
        }
        match serde_json::from_str::<Payload>(payload) {
            Ok(p) => self.deliver(p.seq, &p.op, &p.kind, &p.mesh, &p.name),
            Err(e) => tracing::warn!(error = %e, payload, "ignoring malformed change notification"),
        }
    }

    fn deliver(&mut self, seq: i64, op: &str, kind: &str, mesh: &str, name: &str) {
        if !self.delivered.first_time(seq) {
            return;
        }
        let key = match key_from_columns(kind, mesh, name) {
            Ok(key) => key,
            Err(e) => {
                // Written by a newer control plane, perhaps: skip, don't stop.
                tracing::warn!(error = %e, "ignoring change of an unknown kind");
                return;
            }
        };
        let event = match op {
            "c" => ChangeEvent::Created(key),
            "u" => ChangeEvent::Updated(key),
            "d" => ChangeEvent::Deleted(key),
            other => {
                tracing::warn!(op = other, "ignoring change with unknown operation");
                return;
            }
        };
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}

/// Drops change-log rows too old to be needed for catching up.
pub(crate) async fn prune_events(pool: PgPool) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        let pruned = sqlx::query(
            "DELETE FROM resource_events WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(EVENT_RETENTION_SECS as f64)
        .execute(&pool)
        .await;
        if let Err(e) = pruned {
            tracing::debug!(error = %e, "pruning the change log failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sequence_number_is_delivered_once() {
        let mut d = Delivered {
            floor: 10,
            seen: BTreeSet::new(),
        };
        assert!(d.first_time(12));
        assert!(!d.first_time(12));
        // Committed late with an older number: still new.
        assert!(d.first_time(9));
        assert!(!d.first_time(9));
    }

    #[test]
    fn the_window_stays_bounded_and_raises_the_floor() {
        let mut d = Delivered {
            floor: 0,
            seen: BTreeSet::new(),
        };
        for seq in 1..=(SEEN_WINDOW as i64 + 5) {
            assert!(d.first_time(seq));
        }
        assert_eq!(d.seen.len(), SEEN_WINDOW);
        assert_eq!(d.floor, 5);
        assert!(!d.first_time(3), "below the floor counts as delivered");
    }
}
