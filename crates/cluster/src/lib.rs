//! Sundial beyond one machine (docs/cluster.md): which shard a series
//! belongs to and which ingester owns it, and the metadata every node
//! shares through PostgreSQL: live nodes, leases with fencing epochs (a
//! shard's owner, the one compactor), the block manifest and the flushed
//! write-ahead-log positions; and the write-ahead log itself on NATS
//! JetStream. Every
//! fencing decision is one PostgreSQL transaction, so a holder that lost
//! its lease can no longer commit anything under it.

mod compactor;
mod document;
mod error;
mod frame;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
mod halves;
mod ingest;
mod kinds;
mod lease;
mod manifest;
mod membership;
mod meta;
mod names;
mod owners;
mod ownership;
mod querier;
mod replica;
mod route;
mod router;
mod shard;
mod shard_log;
mod transport;
mod uids;
mod wal;

pub use compactor::{Compactor, CompactorConfig, RoundReport};
pub use document::PgDocument;
pub use error::{Error, Result};
pub use frame::{
    BatchRules, ExportAnswer, FoldedAnswer, FrameError, RowsAnswer, ShardBatch, StagedAnswer,
    StatsAnswer, decode as decode_frame, decode_outcome, encode as encode_frame, encode_outcome,
};
pub use ingest::{Ingester, IngesterConfig};
pub use lease::{Lease, compactor_lease, shard_lease};
pub use manifest::{BlockRow, Flush, ShardPosition, StoredDatabase};
pub use membership::{Node, Role, ShardOwner};
pub use meta::Meta;
pub use ownership::{Keeper, ShardHandler, TickReport, owner_of};
pub use querier::Querier;
pub use replica::Replicas;
pub use route::{ShardPoints, split_by_shard};
pub use router::Router;
pub use shard::shard_of;
pub use shard_log::{LocalWal, ShardLog};
pub use transport::{
    COMPACT_PATH, ChangedAnswer, DELETE_PATH, DROP_PATH, EXPORT_PATH, FOLDED_PATH, FRAMES_PATH,
    FrameClient, LAST_PATH, LIST_PATH, ListedAnswer, MAX_FRAME_BYTES, NEWER_PATH, RETENTION_PATH,
    ROWS_PATH, STAGE_PATH, STATS_PATH, StageRequest, ingest_routes, serve_ingest,
};
pub use uids::PgUids;
pub use wal::{JetStreamWal, WalConfig, WalEntry};
