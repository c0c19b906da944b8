//! Bounds every API shares (`[limits]`): how many writes and queries run at
//! once (the rest wait briefly, then get the API's busy answer with a
//! retry hint), how many data points one write may carry, and each
//! query's deadline, point budget and result size.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The `[limits]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Write requests processed at once (parsing, checking, committing).
    pub max_concurrent_writes: usize,
    /// Queries, listings and lookups run at once.
    pub max_concurrent_queries: usize,
    /// How long a request waits for one of those slots before it is
    /// answered busy.
    pub queue_timeout_ms: u64,
    /// Data points (elements) one write request may carry.
    pub max_write_points: usize,
    /// A query, listing or lookup running longer stops with an error.
    pub query_timeout_secs: u64,
    /// The same deadline in milliseconds, for sub-second bounds; wins
    /// over `query_timeout_secs` when set.
    pub query_timeout_ms: Option<u64>,
    /// Stored points one query may read (and points it may make).
    pub max_query_points: usize,
    /// Rows or series one answer may hold.
    pub max_result_rows: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_concurrent_writes: 16,
            max_concurrent_queries: 16,
            queue_timeout_ms: 2000,
            max_write_points: 500_000,
            query_timeout_secs: 50,
            query_timeout_ms: None,
            max_query_points: 20_000_000,
            max_result_rows: 1_000_000,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let zero = [
            ("max_concurrent_writes", self.max_concurrent_writes),
            ("max_concurrent_queries", self.max_concurrent_queries),
            ("max_write_points", self.max_write_points),
            ("max_query_points", self.max_query_points),
            ("max_result_rows", self.max_result_rows),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0);
        if let Some((name, _)) = zero {
            return Err(format!("limits.{name} must be positive"));
        }
        if self.query_timeout_secs == 0 || self.query_timeout_ms == Some(0) {
            return Err("limits.query_timeout_secs and query_timeout_ms must be positive".into());
        }
        Ok(())
    }

    pub fn query_timeout(&self) -> Duration {
        match self.query_timeout_ms {
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_secs(self.query_timeout_secs),
        }
    }
}

/// The server's slots for writes and queries.
#[derive(Debug, Clone)]
pub struct Limits {
    pub config: Arc<Config>,
    writes: Arc<Semaphore>,
    queries: Arc<Semaphore>,
}

/// No slot came free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy: {running} {what} are running already; retry shortly")]
pub struct Busy {
    pub what: &'static str,
    pub running: usize,
}

impl Limits {
    pub fn new(config: Config) -> Self {
        Self {
            writes: Arc::new(Semaphore::new(config.max_concurrent_writes)),
            queries: Arc::new(Semaphore::new(config.max_concurrent_queries)),
            config: Arc::new(config),
        }
    }

    /// A slot for one write request, held until the permit drops.
    pub async fn write_slot(&self) -> Result<OwnedSemaphorePermit, Busy> {
        self.slot(&self.writes, "writes", self.config.max_concurrent_writes)
            .await
    }

    /// A slot for one query, listing or lookup.
    pub async fn query_slot(&self) -> Result<OwnedSemaphorePermit, Busy> {
        self.slot(&self.queries, "queries", self.config.max_concurrent_queries)
            .await
    }

    async fn slot(
        &self,
        slots: &Arc<Semaphore>,
        what: &'static str,
        running: usize,
    ) -> Result<OwnedSemaphorePermit, Busy> {
        let wait = Duration::from_millis(self.config.queue_timeout_ms);
        match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy { what, running }),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(Config::default())
    }
}
