//! Storage errors.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use sundial_model::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt file {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("the write-ahead log is behind by more than {limit_bytes} bytes")]
    Busy { limit_bytes: u64 },
    #[error("the head holds {limit_points} points; flushes are behind")]
    HeadFull { limit_points: usize },
    #[error("the write-ahead log writer has stopped: {reason}")]
    WalStopped { reason: String },
    /// A write or sync of the log failed; writes are refused until it
    /// recovers by itself.
    #[error("{reason}")]
    WalFailed { reason: String },
    #[error(
        "WAL segment {path} is damaged at offset {offset} ({reason}) and has intact records \
         after it, which may hold acknowledged writes; set storage.wal_skip_damaged = true to \
         replay around the damage (a copy is kept as *.damaged)"
    )]
    DamagedWal {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("storage is closed")]
    Closed,
    #[error("data directory {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("invalid database name {name:?}")]
    InvalidName { name: String },
    #[error("one write may create at most {limit} new series (storage.max_new_series_per_write)")]
    TooManyNewSeries { limit: usize },
    #[error(
        "the database holds {limit} series, its limit (storage.max_series); the write would create more"
    )]
    SeriesLimit { limit: u64 },
    #[error("database {name} already exists")]
    Exists { name: String },
    #[error("no database {name}")]
    NoDatabase { name: String },
    #[error("object store: cannot {op} {key}: {source}")]
    ObjectStore {
        op: &'static str,
        key: String,
        source: Box<object_store::Error>,
    },
    #[error("{reason}")]
    ObjectStoreConfig { reason: String },
    #[error("snapshot {name} already exists")]
    SnapshotExists { name: String },
    #[error("no snapshot {name}")]
    NoSnapshot { name: String },
    /// Another node of a cluster did not take the write: `class` says how
    /// the API answers (busy while a shard moves or its owner does not
    /// answer; the owner's own refusal otherwise).
    #[error("{reason}")]
    Remote { reason: String, class: ErrorClass },
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Busy { .. } | Self::HeadFull { .. } | Self::WalFailed { .. } => ErrorClass::Busy,
            Self::InvalidName { .. } | Self::TooManyNewSeries { .. } => ErrorClass::InvalidInput,
            Self::SeriesLimit { .. } => ErrorClass::Quota,
            Self::Exists { .. } | Self::SnapshotExists { .. } => ErrorClass::Conflict,
            Self::NoDatabase { .. } | Self::NoSnapshot { .. } => ErrorClass::NotFound,
            Self::Io { .. }
            | Self::Corrupt { .. }
            | Self::DamagedWal { .. }
            | Self::WalStopped { .. }
            | Self::Closed
            | Self::Locked { .. }
            | Self::ObjectStore { .. }
            | Self::ObjectStoreConfig { .. } => ErrorClass::Internal,
            Self::Remote { class, .. } => *class,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
