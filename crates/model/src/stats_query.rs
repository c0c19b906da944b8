//! Statistics per group and bucket over one metric's series, as SQL's
//! `GROUP BY <tags>, time_bucket(time, w)` with count, sum, min, max and
//! avg asks for them (`sundial_query::stats::grouped` folds them); owned,
//! so a cluster's querier can send it to the shards' owners.

use crate::{TagMatch, Timestamp};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsQuery {
    pub metric: String,
    /// The series whose tags match all of these.
    pub tags: Vec<TagMatch>,
    /// Each field's statistics are kept apart.
    pub fields: Vec<String>,
    /// Per field: only its count is wanted.
    pub count_only: Vec<bool>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Buckets this wide from the epoch; `None`: one bucket for the whole
    /// range, keyed by `start`.
    pub width_ms: Option<i64>,
    /// Groups are the values of these tags.
    pub group_tags: Vec<String>,
}
