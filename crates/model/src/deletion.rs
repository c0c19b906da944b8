//! A delete over one database: OpenTSDB's `/api/delete_data` and
//! `/api/delete_meta` as the engine runs them, on one node or at every
//! shard owner of a cluster.

use crate::{TagMatch, Timestamp};

/// The series of `metric` whose tags satisfy `tags`, and what of them goes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deletion {
    pub metric: String,
    pub tags: Vec<TagMatch>,
    pub what: Deleted,
}

/// What a [`Deletion`] removes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Deleted {
    /// Points in `[start, end]` of the named fields (every field: `None`).
    Points {
        fields: Option<Vec<String>>,
        start: Timestamp,
        end: Timestamp,
    },
    /// The series themselves: every point, and their place in listings
    /// and selections until they are written again.
    Series,
}
