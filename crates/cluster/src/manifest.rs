//! The block manifest: which objects are the blocks of each database and
//! shard, written only under a shard's lease (its owner records flushes,
//! merged blocks and the blocks they replaced), read by queriers to prune;
//! and the retired objects the compactor deletes under its lease.

use crate::error::{Error, Result};
use crate::lease::{Lease, check_epoch};
use crate::meta::Meta;
use tokio_postgres::Row;

/// One block as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub object_key: String,
    pub database: String,
    pub shard: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    pub bytes: u64,
}

/// What a flush of one shard of one database made durable.
#[derive(Debug, Clone)]
pub struct Flush<'a> {
    pub database: &'a str,
    pub shard: u32,
    /// The blocks written (already in the object store), all of this
    /// database and shard.
    pub blocks: &'a [BlockRow],
    /// The write-ahead-log position the blocks cover: a new owner replays
    /// from here.
    pub wal_flushed: u64,
    /// The objects holding the database's state files (catalog, block
    /// list) as of this flush.
    pub checkpoint: &'a [String],
    /// Object keys of blocks the database no longer lists (compacted or
    /// expired): they leave the manifest and wait for the compactor.
    pub retired: &'a [String],
}

/// How far one database of a shard is flushed, and where its state is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPosition {
    pub database: String,
    pub flushed: u64,
    /// The objects holding its state files as of that flush.
    pub checkpoint: Vec<String>,
}

impl Meta {
    /// Records a flush: its blocks and WAL position in one transaction,
    /// only while `lease` is still its shard's.
    pub async fn commit_flush(&mut self, lease: &Lease, flush: &Flush<'_>) -> Result<()> {
        if let Some(b) = flush
            .blocks
            .iter()
            .find(|b| b.database != flush.database || b.shard != flush.shard)
        {
            return Err(Error::Misplaced(b.object_key.clone()));
        }
        let tx = self.client.transaction().await?;
        check_epoch(&tx, lease).await?;
        for b in flush.blocks {
            insert_block(&tx, b, lease.epoch).await?;
        }
        if !flush.retired.is_empty() {
            tx.execute(
                "DELETE FROM blocks WHERE database = $1 AND shard = $2 AND object_key = ANY($3)",
                &[&flush.database, &pg_int(flush.shard), &flush.retired],
            )
            .await?;
            tx.execute(
                "INSERT INTO retired_objects (object_key) SELECT unnest($1::text[])
                 ON CONFLICT (object_key) DO NOTHING",
                &[&flush.retired],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO wal_positions (database, shard, flushed, checkpoint)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (database, shard) DO UPDATE
               SET checkpointed_at = now(),
                   flushed = greatest(wal_positions.flushed, excluded.flushed),
                   checkpoint = CASE WHEN excluded.flushed >= wal_positions.flushed
                       THEN excluded.checkpoint ELSE wal_positions.checkpoint END",
            &[
                &flush.database,
                &pg_int(flush.shard),
                &pg_bigint(flush.wal_flushed),
                &flush.checkpoint,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets `database` in `shard` (Baidu's drop), only while `lease` is
    /// still the shard's: its blocks and `state_objects` (its last
    /// checkpoint's, as store keys) are retired for the compactor, and
    /// its position goes, so a next owner does not restore it. The
    /// objects retired.
    pub async fn drop_shard_database(
        &mut self,
        lease: &Lease,
        database: &str,
        shard: u32,
        state_objects: &[String],
    ) -> Result<u64> {
        let tx = self.client.transaction().await?;
        check_epoch(&tx, lease).await?;
        let blocks = tx
            .execute(
                "INSERT INTO retired_objects (object_key)
                 SELECT object_key FROM blocks WHERE database = $1 AND shard = $2
                 ON CONFLICT (object_key) DO NOTHING",
                &[&database, &pg_int(shard)],
            )
            .await?;
        tx.execute(
            "DELETE FROM blocks WHERE database = $1 AND shard = $2",
            &[&database, &pg_int(shard)],
        )
        .await?;
        let states = tx
            .execute(
                "INSERT INTO retired_objects (object_key) SELECT unnest($1::text[])
                 ON CONFLICT (object_key) DO NOTHING",
                &[&state_objects],
            )
            .await?;
        tx.execute(
            "DELETE FROM wal_positions WHERE database = $1 AND shard = $2",
            &[&database, &pg_int(shard)],
        )
        .await?;
        // A database made again under the name claims its kinds anew.
        tx.execute("DELETE FROM field_kinds WHERE database = $1", &[&database])
            .await?;
        tx.execute(
            "DELETE FROM series_names WHERE database = $1 AND shard = $2",
            &[&database, &pg_int(shard)],
        )
        .await?;
        tx.commit().await?;
        Ok(blocks + states)
    }

    /// The blocks of `database` (of one shard, or all) whose time range
    /// meets `[start, end]`, by shard and time.
    pub async fn blocks_overlapping(
        &self,
        database: &str,
        shard: Option<u32>,
        start: i64,
        end: i64,
    ) -> Result<Vec<BlockRow>> {
        let rows = self
            .client
            .query(
                "SELECT object_key, database, shard, min_ts, max_ts, bytes FROM blocks
                 WHERE database = $1 AND ($2::integer IS NULL OR shard = $2)
                   AND min_ts <= $4 AND max_ts >= $3
                 ORDER BY shard, min_ts, object_key",
                &[&database, &shard.map(pg_int), &start, &end],
            )
            .await?;
        Ok(rows.iter().map(block_row).collect())
    }

    /// How far a shard's WAL is flushed, once a flush was recorded.
    pub async fn wal_flushed(&self, database: &str, shard: u32) -> Result<Option<u64>> {
        Ok(self
            .client
            .query_opt(
                "SELECT flushed FROM wal_positions WHERE database = $1 AND shard = $2",
                &[&database, &pg_int(shard)],
            )
            .await?
            .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }
}

impl Meta {
    /// Every database of `shard` with a recorded flush, by name.
    pub async fn shard_positions(&self, shard: u32) -> Result<Vec<ShardPosition>> {
        let rows = self
            .client
            .query(
                "SELECT database, flushed, checkpoint FROM wal_positions
                 WHERE shard = $1 ORDER BY database",
                &[&pg_int(shard)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ShardPosition {
                database: r.get(0),
                flushed: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                checkpoint: r.get(2),
            })
            .collect())
    }
}

/// A database of a shard as its last checkpoint recorded it: when
/// (PostgreSQL's clock, seconds since the epoch) and its state objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpointed {
    pub database: String,
    pub shard: u32,
    pub at_secs: f64,
    pub checkpoint: Vec<String>,
}

/// What the manifest holds of one database (an operator's storage view).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredDatabase {
    pub database: String,
    /// Shards with blocks of it.
    pub shards: u32,
    pub blocks: u64,
    pub block_bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl Meta {
    /// Per database, what its blocks in the manifest hold; and how many
    /// objects wait for the compactor to delete them.
    pub async fn stored(&self) -> Result<(Vec<StoredDatabase>, u64)> {
        let rows = self
            .client
            .query(
                "SELECT database, count(DISTINCT shard), count(*), sum(bytes)::bigint,
                        min(min_ts), max(max_ts)
                 FROM blocks GROUP BY database ORDER BY database",
                &[],
            )
            .await?;
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        let databases = rows
            .iter()
            .map(|r| StoredDatabase {
                database: r.get(0),
                shards: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                blocks: count(r.get(2)),
                block_bytes: count(r.get(3)),
                min_ts: r.get(4),
                max_ts: r.get(5),
            })
            .collect();
        let retired = self
            .client
            .query_one("SELECT count(*) FROM retired_objects", &[])
            .await?;
        Ok((databases, count(retired.get(0))))
    }

    /// Every database of every shard with a recorded checkpoint.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpointed>> {
        let rows = self
            .client
            .query(
                "SELECT database, shard, extract(epoch FROM checkpointed_at)::float8, checkpoint
                 FROM wal_positions ORDER BY shard, database",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Checkpointed {
                database: r.get(0),
                shard: r.get::<_, i32>(1).unsigned_abs(),
                at_secs: r.get(2),
                checkpoint: r.get(3),
            })
            .collect())
    }

    /// The keys of every retired object not deleted yet.
    pub async fn retired_keys(&self) -> Result<std::collections::HashSet<String>> {
        let rows = self
            .client
            .query("SELECT object_key FROM retired_objects", &[])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Retired objects (see [`Flush::retired`]) retired more than `grace`
    /// ago, at most `max`, oldest first.
    pub async fn retired_before(
        &self,
        grace: std::time::Duration,
        max: i64,
    ) -> Result<Vec<String>> {
        let secs = grace.as_secs_f64();
        let rows = self
            .client
            .query(
                "SELECT object_key FROM retired_objects
                 WHERE retired_at < now() - make_interval(secs => $1)
                 ORDER BY retired_at, object_key LIMIT $2",
                &[&secs, &max],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Forgets retired objects once deleted, only while `lease` is still
    /// the compactor's.
    pub async fn forget_retired(&mut self, lease: &Lease, keys: &[String]) -> Result<()> {
        let tx = self.client.transaction().await?;
        check_epoch(&tx, lease).await?;
        tx.execute(
            "DELETE FROM retired_objects WHERE object_key = ANY($1)",
            &[&keys],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_block(
    tx: &tokio_postgres::Transaction<'_>,
    b: &BlockRow,
    epoch: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO blocks (object_key, database, shard, min_ts, max_ts, bytes, epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &b.object_key,
            &b.database,
            &pg_int(b.shard),
            &b.min_ts,
            &b.max_ts,
            &pg_bigint(b.bytes),
            &epoch,
        ],
    )
    .await?;
    Ok(())
}

fn block_row(r: &Row) -> BlockRow {
    BlockRow {
        object_key: r.get(0),
        database: r.get(1),
        shard: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
        min_ts: r.get(3),
        max_ts: r.get(4),
        bytes: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
    }
}

/// PostgreSQL has no unsigned types; shard numbers are far below 2^31.
pub(crate) fn pg_int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn pg_bigint(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
