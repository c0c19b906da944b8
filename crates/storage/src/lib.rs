//! Sundial's embedded storage engine.
//!
//! Writes go through a checksummed write-ahead log with group commit into an
//! in-memory head; the head is flushed into immutable compressed block files
//! (one chunk per series and field, with statistics) once enough WAL has
//! accumulated, after which the covered WAL segments are deleted. Reads merge
//! the blocks, a flush in progress and the head, newest winning.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod block;
mod catalog;
pub mod check;
mod compact;
mod config;
mod db;
mod delete;
mod engine;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod head;
pub mod memory;
mod partition;
mod pending;
mod phase;
mod record;
pub mod remote;
mod rollup;
mod snapshot;
pub mod snapshots;
pub mod vfs;
mod wal;

pub use block::cache::CacheCounts;
pub use block::{ChunkStats, ExactStats};

/// Lookups of decoded chunks the process-wide chunk cache answered and
/// did not.
pub fn decoded_chunk_cache_counts() -> CacheCounts {
    block::cache::CACHE.counts()
}
pub use config::{Config, FsyncPolicy};
pub use db::{
    Commit, Db, LevelStatus, Overlay, OverlayRows, RemoteBlock, Rules, Status, WorkDone, Written,
    restore_handover,
};
pub use engine::{DEFAULT_DATABASE, Engine, is_valid_name};
pub use error::{Error, ErrorClass, Result};
pub use head::SeriesId;
pub use remote::RemoteStore;
pub use rollup::{BucketStats, Grid, GridBuckets, PresamplingRule};
pub use snapshot::{
    ChunkSummary, ColumnParts, NumSlice, NumericPart, NumericPoints, Snapshot, WholeChunk,
};
pub use sundial_codec::Num;
pub use sundial_index::RoaringBitmap;
