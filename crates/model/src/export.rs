//! One page of an export (`GET /api/export`): a run of a metric's series
//! in one database (a shard's, on a cluster), read in the order the
//! database keeps them, so an export pages through millions of series
//! without sorting them.

use crate::Timestamp;

/// Series `first..first + count` of `metric`, with their points of
/// `fields` in `[start, end]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportPage {
    pub metric: String,
    pub fields: Vec<String>,
    pub first: usize,
    pub count: usize,
    pub start: Timestamp,
    pub end: Timestamp,
}
