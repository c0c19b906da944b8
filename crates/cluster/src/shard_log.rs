//! Where an ingester logs each shard's frames before applying them
//! (`cluster.wal`): a JetStream stream every node reaches, so a shard's
//! next owner replays it and no acknowledged point is lost, or a file on
//! the ingester's own disk, replayed only by the node that wrote it
//! (`local`).

pub(crate) mod local;

pub use local::LocalWal;

use crate::frame::ShardBatch;
use crate::{JetStreamWal, Result};

/// A shard log of either kind.
#[derive(Debug)]
pub enum ShardLog {
    JetStream(Box<JetStreamWal>),
    Local(LocalWal),
}

impl From<JetStreamWal> for ShardLog {
    fn from(wal: JetStreamWal) -> Self {
        Self::JetStream(Box::new(wal))
    }
}

impl From<LocalWal> for ShardLog {
    fn from(wal: LocalWal) -> Self {
        Self::Local(wal)
    }
}

impl ShardLog {
    /// Whether only this node can read the log: then nothing but the
    /// shard's lease keeps a stale owner from acknowledging writes.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }

    /// The position of the last frame of `shard`'s log (0 before any).
    pub async fn last_position(&self, shard: u32) -> Result<u64> {
        match self {
            Self::JetStream(wal) => wal.last_position(shard).await,
            Self::Local(wal) => wal.last_position(shard).await,
        }
    }

    /// Appends a frame only while the log ends at `after`; its position.
    pub async fn append_frame_after(&self, batch: &ShardBatch, after: u64) -> Result<u64> {
        match self {
            Self::JetStream(wal) => wal.append_frame_after(batch, after).await,
            Self::Local(wal) => wal.append_frame_after(batch, after).await,
        }
    }

    /// Claims `shard`'s log for the owner of lease `epoch`; its position.
    /// `floor`: the highest position PostgreSQL recorded for the shard (a
    /// local log that starts again starts after it).
    pub async fn fence(&self, shard: u32, epoch: i64, id: u128, floor: u64) -> Result<u64> {
        match self {
            Self::JetStream(wal) => wal.fence(shard, epoch, id).await,
            Self::Local(wal) => wal.fence(shard, epoch, id, floor).await,
        }
    }

    /// The last frame of `shard`'s log with its position.
    pub async fn last_frame(&self, shard: u32) -> Result<Option<(u64, ShardBatch)>> {
        match self {
            Self::JetStream(wal) => wal.last_frame(shard).await,
            Self::Local(wal) => wal.last_frame(shard).await,
        }
    }

    /// The frames of `shard` after position `after`, with positions.
    pub async fn replay_frames(&self, shard: u32, after: u64) -> Result<Vec<(u64, ShardBatch)>> {
        match self {
            Self::JetStream(wal) => wal.replay_frames(shard, after).await,
            Self::Local(wal) => wal.replay_frames(shard, after).await,
        }
    }

    /// Drops `shard`'s frames up to and including `upto`.
    pub async fn truncate(&self, shard: u32, upto: u64) -> Result<()> {
        match self {
            Self::JetStream(wal) => wal.truncate(shard, upto).await,
            Self::Local(wal) => wal.truncate(shard, upto).await,
        }
    }
}
