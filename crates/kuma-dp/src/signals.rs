//! SIGTERM and SIGINT as one stream, installed before anything slow so that
//! a stop request during bootstrap is honoured too.

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("could not listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("could not listen for SIGINT")?,
        })
    }

    /// Waits for the next signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
