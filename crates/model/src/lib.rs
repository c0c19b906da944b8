//! The data and query model every Sundial API translates into.
//!
//! Database → metric → field → series (metric plus sorted tags) → points.
//! Timestamps are milliseconds since the Unix epoch; every API converts its
//! own units at its edge.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod deletion;
pub mod error_class;
pub mod exact_sum;
pub mod export;
pub mod listing;
pub mod query;
pub mod search;
pub mod series;
pub mod series_query;
pub mod stats_query;
pub mod value;
pub mod write;

pub use deletion::{Deleted, Deletion};
pub use error_class::ErrorClass;
pub use exact_sum::ExactSum;
pub use export::ExportPage;
pub use listing::{Listed, Listing, MetricCardinality, Names};
pub use query::{
    Aggregator, Buckets, Downsample, Estimator, FillPolicy, Query, RateOptions, SeriesResult,
    TagMatch,
};
pub use series::{Name, SeriesKey, Tags};
pub use series_query::SeriesQuery;
pub use stats_query::StatsQuery;
pub use value::{FieldValue, Kind, NumberText, ValueInput};
pub use write::{PointError, WriteOutcome, WritePoint};

/// Milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The wall clock, in [`Timestamp`] units (0 before the epoch, the
/// maximum past year 292 million).
pub fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The field OpenTSDB single-value writes and reads use.
pub const DEFAULT_FIELD: &str = "value";
