//! Sundial's embedded storage engine.
//!
//! Writes go through a checksummed write-ahead log with group commit into an
//! in-memory head; the head is periodically flushed into immutable part
//! files, after which the covered WAL segments are deleted. Reads see the
//! head, which holds every point (parts are loaded at open). The compressed
//! block format, the on-disk index and compaction replace the part files in
//! a later step behind the same `Db` API.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod db;
mod engine;
mod error;
mod head;
mod part;
mod record;
mod wal;

pub use config::{Config, FsyncPolicy};
pub use db::{Commit, Db, Written};
pub use engine::{DEFAULT_DATABASE, Engine, is_valid_name};
pub use error::{Error, ErrorClass, Result};
pub use head::{HeadView, SeriesId};
