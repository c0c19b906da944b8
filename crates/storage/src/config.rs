//! Storage settings.

use serde::Deserialize;
use std::path::PathBuf;

/// When the WAL is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// `fdatasync` every group commit before any write in it is answered:
    /// an acknowledged point survives power loss. Group commit makes this
    /// cheap: one sync serves every request queued behind it.
    #[default]
    Always,
    /// Hand records to the OS before answering and sync only on request
    /// (`?sync`), on flush and on shutdown: survives a process crash, not a
    /// power loss.
    Buffered,
}

/// Most rollup tiers a database keeps: each adds a record per bucket to
/// every numeric chunk.
pub(crate) const MAX_TIERS: usize = 4;
/// The widest tier: a week, the longest a chunk spans.
pub(crate) const MAX_TIER_SECS: u64 = 7 * 86_400;

/// Storage engine settings; `Default` gives the documented defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where WAL segments and block files live; set by the server from its
    /// top-level `data_dir`, not from the `[storage]` table.
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// Every file write goes through this (tests inject faults here).
    #[serde(skip)]
    pub vfs: crate::vfs::Vfs,
    /// Blocks in object storage, e.g. `s3://bucket/prefix` (`None`: in
    /// the data directory). The server opens [`Config::remote`] from it.
    pub object_store: Option<String>,
    /// Settings of the store, e.g. `aws_endpoint_url`, over the `AWS_*`
    /// variables.
    pub object_store_options: std::collections::BTreeMap<String, String>,
    /// Memory for chunk bytes fetched from object storage.
    pub cache_bytes: usize,
    /// The opened store (set by whoever opens the engine; tests pass a
    /// store that injects faults).
    #[serde(skip)]
    pub remote: Option<crate::remote::RemoteStore>,
    /// The data directory of the engine this database belongs to (set by
    /// the engine): where its snapshots live, whose objects stay.
    #[serde(skip)]
    pub engine_dir: Option<PathBuf>,
    /// The blocks are a cluster's (docs/cluster.md): this database
    /// compacts and drops expired blocks only when asked ([`Db::compact`],
    /// which its cluster's compactor has the shard's owner call; queries
    /// still hide expired points meanwhile), keeps the objects of the
    /// blocks it replaces (listed by `Db::replaced_blocks` for the owner
    /// to record; the compactor deletes them) and never sweeps its store's
    /// prefix (another owner's upload there may be about to be recorded).
    ///
    /// [`Db::compact`]: crate::Db::compact
    #[serde(skip)]
    pub blocks_shared: bool,
    /// Opened to be read elsewhere than at its owner (a cluster querier's
    /// copy of a shard database, docs/cluster.md "Queriers read the
    /// blocks"): no flush, compaction or retention thread (the WAL writer
    /// idles); it is never written.
    #[serde(skip)]
    pub replica: bool,
    pub fsync: FsyncPolicy,
    /// A WAL segment is closed and a new one started past this size.
    pub wal_segment_bytes: u64,
    /// The whole head is flushed once this many WAL bytes have accumulated
    /// since the last flush (about 15 bytes per point, so the default
    /// bounds the head near 2.2 M points).
    pub flush_wal_bytes: u64,
    /// Writes waiting for the WAL beyond this many bytes are refused as busy.
    pub max_wal_queue_bytes: u64,
    /// Longest text value in bytes.
    pub max_string_value_bytes: usize,
    /// Writes are refused as busy while the head holds more points than
    /// this (flushes cannot keep up).
    pub max_head_points: usize,
    /// Keep data this many seconds (by timestamp); 0 keeps it forever.
    /// Whole blocks are dropped once their newest point is older.
    pub retention_secs: u64,
    /// Per-database retention overriding `retention_secs` (0: forever).
    pub database_retention_secs: std::collections::BTreeMap<String, u64>,
    /// Rollup tiers: bucket widths in seconds (on the epoch's grid) whose
    /// count, sum, min, max, first and last every numeric chunk carries
    /// (`crate::rollup`), so downsampled queries on a multiple of a tier
    /// read one record per bucket. Empty: none.
    pub rollup_secs: Vec<u64>,
    /// Per-database `rollup_secs`.
    pub database_rollup_secs: std::collections::BTreeMap<String, Vec<u64>>,
    /// How long the tiers outlive the raw points: past the retention a
    /// block keeps only its chunks' rollups until they are this old.
    /// Unset: they go with the raw points; 0: kept forever.
    pub rollup_retention_secs: Option<u64>,
    /// Per-database `rollup_retention_secs`.
    pub database_rollup_retention_secs: std::collections::BTreeMap<String, u64>,
    /// Series one database may hold; writes creating more are refused.
    pub max_series: u64,
    /// Per-database `max_series`.
    pub database_max_series: std::collections::BTreeMap<String, u64>,
    /// New series one write may create (a million in one request would
    /// hold other writers up for seconds).
    pub max_new_series_per_write: usize,
    /// Width of a time partition: the head flushes each partition into its
    /// own block once the partition has closed. Must divide a day.
    pub partition_secs: u64,
    /// A partition counts as closed this long after its end, so points
    /// arriving a little late still land in the head before the flush.
    pub partition_grace_secs: u64,
    /// A day (or week) holding this many blocks merges them even before
    /// it has closed.
    pub compaction_min_blocks: usize,
    /// A closed day or week merges its blocks once none of them is younger
    /// than this (a backfill still writing into it is not rewritten over
    /// and over).
    pub compaction_settle_secs: u64,
    /// Compaction never writes a block larger than this.
    pub max_block_bytes: u64,
    /// How often the maintenance thread checks retention and compaction.
    pub maintenance_interval_secs: u64,
    /// Memory for decoded numeric chunks kept for repeated reads (one
    /// budget for the process; 0 turns the cache off).
    pub chunk_cache_bytes: usize,
    /// The whole head, open partition and future-dated points too, is
    /// flushed at least this often (closed partitions go at once), so
    /// points of a partition that is far from closing are not logged again
    /// at every partition flush forever.
    pub max_head_age_secs: u64,
    /// A WAL segment damaged in the middle (intact records after a bad
    /// one) stops the start with an error naming it; `true` replays the
    /// intact records around the damage instead and keeps a copy of the
    /// segment as `*.damaged`.
    pub wal_skip_damaged: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("sundial-data"),
            vfs: crate::vfs::Vfs::default(),
            object_store: None,
            object_store_options: std::collections::BTreeMap::new(),
            cache_bytes: 256 << 20,
            remote: None,
            engine_dir: None,
            blocks_shared: false,
            replica: false,
            fsync: FsyncPolicy::Always,
            wal_segment_bytes: 8 << 20,
            flush_wal_bytes: 32 << 20,
            max_wal_queue_bytes: 256 << 20,
            max_string_value_bytes: 20 * 1024,
            max_head_points: 8_000_000,
            retention_secs: 0,
            database_retention_secs: std::collections::BTreeMap::new(),
            rollup_secs: Vec::new(),
            database_rollup_secs: std::collections::BTreeMap::new(),
            rollup_retention_secs: None,
            database_rollup_retention_secs: std::collections::BTreeMap::new(),
            max_series: 10_000_000,
            database_max_series: std::collections::BTreeMap::new(),
            max_new_series_per_write: 100_000,
            partition_secs: 7200,
            partition_grace_secs: 300,
            compaction_min_blocks: 8,
            compaction_settle_secs: 300,
            max_block_bytes: 1 << 30,
            maintenance_interval_secs: 60,
            max_head_age_secs: 86_400,
            chunk_cache_bytes: 64 << 20,
            wal_skip_damaged: false,
        }
    }
}

impl Config {
    /// Checks values that would make the engine misbehave.
    pub fn validate(&self) -> Result<(), String> {
        if self.wal_segment_bytes < 4096 {
            return Err("storage.wal_segment_bytes must be at least 4096".into());
        }
        if self.flush_wal_bytes < self.wal_segment_bytes {
            return Err("storage.flush_wal_bytes must be at least wal_segment_bytes".into());
        }
        if self.max_head_points < 10_000 {
            return Err("storage.max_head_points must be at least 10000".into());
        }
        if self.partition_secs < 60 || 86_400 % self.partition_secs != 0 {
            return Err("storage.partition_secs must be at least 60 and divide 86400".into());
        }
        if self.compaction_min_blocks < 2 {
            return Err("storage.compaction_min_blocks must be at least 2".into());
        }
        if self.max_head_age_secs == 0 {
            return Err("storage.max_head_age_secs must be positive".into());
        }
        if self.maintenance_interval_secs == 0 {
            return Err("storage.maintenance_interval_secs must be positive".into());
        }
        if self.max_series == 0 || self.max_new_series_per_write == 0 {
            return Err("storage.max_series and max_new_series_per_write must be positive".into());
        }
        let tiers = std::iter::once(&self.rollup_secs).chain(self.database_rollup_secs.values());
        for widths in tiers {
            if widths.len() > MAX_TIERS {
                return Err(format!(
                    "storage.rollup_secs lists at most {MAX_TIERS} tiers"
                ));
            }
            if let Some(w) = widths.iter().find(|w| !(1..=MAX_TIER_SECS).contains(*w)) {
                return Err(format!(
                    "storage.rollup_secs: {w} is not a width from 1 to {MAX_TIER_SECS} seconds"
                ));
            }
        }
        if self.max_wal_queue_bytes < 1 << 20 {
            return Err("storage.max_wal_queue_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }
}
