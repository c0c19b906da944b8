//! The query pipeline over the storage engine: select the series, read
//! them in parallel batches within a [`Budget`], run each series' stages,
//! group, run each group's stages. Baidu's JSON query
//! ([`series_query::execute_series`]) and OpenTSDB's ([`execute`]) are two
//! sets of stages on it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod delete;
mod export;
mod listing;
mod names;
pub mod series_query;
pub mod stats;

pub use delete::delete;
pub use export::export_page;
pub use listing::list;
pub use names::{aggregator_by_name, aggregator_name, aggregator_names};
pub use series_query::opentsdb::{
    Latest, Staged, StagedSeries, execute, finish, last, stage_series,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use sundial_model::{ErrorClass, Kind};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cores this process may use, asked once: on Linux the standard
/// library reads the cgroup quota files at each call, which cost a tiny
/// query a fifth of its time.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A tag predicate cannot be evaluated (a bad regular expression).
    #[error("{0}")]
    InvalidPredicate(String),
    /// Reading stored data failed (I/O or a corrupt block).
    #[error("storage: {0}")]
    Storage(#[source] Arc<sundial_storage::Error>),
    /// A broken invariant of the engine.
    #[error("internal: {0}")]
    Internal(&'static str),
    /// The metric was never written.
    #[error("unknown metric {metric}")]
    UnknownMetric { metric: String },
    /// A number-only pipeline step met a text or bytes value.
    #[error("aggregator {step} needs numbers, field {field} holds {found} values")]
    NumberRequired {
        step: String,
        field: String,
        found: &'static str,
    },
    /// The query ran past its time limit.
    #[error("query timed out after {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    /// The query would read or make more points than allowed.
    #[error("query touches more than {limit} data points; narrow the time range or the series")]
    TooManyPoints { limit: usize },
    /// The query would make more groups than allowed.
    #[error("query makes more than {limit} groups")]
    TooManyGroups { limit: usize },
    /// A computing aggregator over text values.
    #[error("aggregator {aggregator} cannot be applied to {kind:?} values of metric {metric}")]
    NotNumeric {
        aggregator: &'static str,
        kind: Kind,
        metric: String,
    },
    /// Another node of a cluster could not answer its part of the query
    /// (a shard moving or without an owner: `Busy`), or refused it.
    #[error("{message}")]
    Remote { message: String, class: ErrorClass },
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidPredicate(_)
            | Self::UnknownMetric { .. }
            | Self::NumberRequired { .. }
            | Self::NotNumeric { .. }
            | Self::TooManyPoints { .. }
            | Self::TooManyGroups { .. } => ErrorClass::InvalidInput,
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::Storage(e) => e.class(),
            Self::Internal(_) => ErrorClass::Internal,
            Self::Remote { class, .. } => *class,
        }
    }
}

impl From<sundial_storage::Error> for Error {
    fn from(e: sundial_storage::Error) -> Self {
        Self::Storage(Arc::new(e))
    }
}

/// A request's deadline and the points it may still read or make, shared
/// by its sub-queries and by the threads that scan its series.
#[derive(Debug)]
pub struct Budget {
    deadline: Instant,
    timeout: Duration,
    max_points: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(timeout: Duration, max_points: usize) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            timeout,
            max_points,
            used: AtomicUsize::new(0),
        }
    }

    /// Time until the deadline (zero once past it).
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// An error once the deadline has passed.
    pub fn check_time(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout {
                limit_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }

    /// Counts `n` points; an error past the budget.
    pub fn take(&self, n: usize) -> Result<()> {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.max_points {
            return Err(self.exceeded());
        }
        Ok(())
    }

    /// Points still allowed.
    pub fn left(&self) -> usize {
        self.max_points
            .saturating_sub(self.used.load(Ordering::Relaxed))
    }

    pub fn max_points(&self) -> usize {
        self.max_points
    }

    /// The error for a query past its points.
    pub fn exceeded(&self) -> Error {
        Error::TooManyPoints {
            limit: self.max_points,
        }
    }
}

/// A database in a fresh temporary directory, for tests; `points` written
/// and committed.
#[cfg(test)]
pub(crate) fn temp_db_with(
    points: Vec<sundial_model::WritePoint>,
) -> std::result::Result<(tempfile::TempDir, sundial_storage::Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = sundial_storage::Db::open(sundial_storage::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    })?;
    db.write(points, false)?.commit.wait_blocking()?;
    Ok((dir, db))
}
