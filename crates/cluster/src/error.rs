//! The cluster metadata's errors.

/// What a metadata call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL refused or could not be reached.
    #[error("metadata store: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// Another holder has the lease and it has not expired.
    #[error("lease {name} is held by {holder}")]
    Held { name: String, holder: String },
    /// The lease moved on since `epoch` was granted: the caller must stop
    /// acting under it.
    #[error("lease {name} epoch {epoch} is fenced off (now {current:?})")]
    Fenced {
        name: String,
        epoch: i64,
        /// The lease's epoch now; `None` when it was released.
        current: Option<i64>,
    },
    /// A flush named a block of another database or shard than its own.
    #[error("block {0} is not of the flushed database and shard")]
    Misplaced(String),
    /// JetStream refused or could not be reached.
    #[error("write-ahead log: {0}")]
    Wal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The shard's log no longer ends where its writer last saw it:
    /// another owner fenced it.
    #[error("write-ahead log of shard {shard} was taken by another owner")]
    LogMoved { shard: u32 },
    /// An entry of a shard's log is not a frame.
    #[error("write-ahead log of shard {shard} is damaged at position {position}: {error}")]
    DamagedWal {
        shard: u32,
        position: u64,
        #[source]
        error: crate::frame::FrameError,
    },
    /// The shard's storage failed (opening, writing, flushing, the
    /// object store).
    #[error(transparent)]
    Storage(#[from] sundial_storage::Error),
    /// A write for a shard this node does not own (the router's view of
    /// the owners is out of date).
    #[error("shard {shard} is not owned by this node")]
    NotOwner { shard: u32 },
    /// The shard is moving to another node: retry once the move is done.
    #[error("shard {shard} is moving to another node")]
    Moving { shard: u32 },
    /// No live node holds the shard's lease (its owner died and no other
    /// has taken it yet).
    #[error("shard {shard} has no owner now")]
    NoOwner { shard: u32 },
    /// A write routed under an earlier (or later) owner's lease epoch.
    #[error("shard {shard} write carries epoch {sent}, the owner's is {current}")]
    StaleEpoch { shard: u32, sent: i64, current: i64 },
    /// A frame named a database that cannot exist.
    #[error("invalid database name {0:?}")]
    BadDatabase(String),
    /// A peer is overloaded or its log or metadata store failed: retry.
    #[error("node {address} is busy: {message}")]
    PeerBusy { address: String, message: String },
    /// A peer refused the points for what they are (too many new series,
    /// a series limit): `class` is the owner's error class.
    #[error("node {address} refused the write: {message}")]
    PeerRefused {
        address: String,
        message: String,
        class: sundial_storage::ErrorClass,
    },
    /// A peer could not be reached, did not answer in time, or refused a
    /// request for another reason.
    #[error("node {address}: {message}")]
    Peer { address: String, message: String },
    /// A storage task ended without an answer (it panicked).
    #[error("internal: {0}")]
    Internal(String),

    /// A query half run on this node refused.
    #[error(transparent)]
    Query(sundial_query::Error),
    /// The database schema is newer than this binary knows.
    #[error("metadata schema version {found} is newer than this binary's {known}")]
    SchemaTooNew { found: i32, known: i32 },
}

pub type Result<T> = std::result::Result<T, Error>;
