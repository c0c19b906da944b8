//! A shard's way between owners: the checkpoint that records it in the
//! object store and PostgreSQL, and the restore a new owner starts from.

use super::{Ingester, Shard, ShardDb, ShardState, apply, blocking, shard_group, state_group};
use crate::manifest::{BlockRow, Flush};
use crate::{Error, Result};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, HashSet};
use sundial_storage::{Db, RemoteBlock, RemoteStore};
use tracing::warn;

impl Ingester {
    /// Opens `name` of `shard` in a fresh local directory, after writing
    /// the state files a checkpoint handed over (none for a new database).
    pub(super) async fn open_db(
        &self,
        shard: u32,
        name: &str,
        files: Vec<(String, Bytes)>,
    ) -> Result<Db> {
        let mut config = self.inner.config.storage.clone();
        config.data_dir = self.shard_dir(shard).join(name);
        config.remote = Some(self.inner.store.group(&shard_group(shard)).database(name));
        config.blocks_shared = true;
        // Acknowledgements wait for JetStream; the local WAL only orders
        // the head and is never read by another node.
        config.fsync = sundial_storage::FsyncPolicy::Buffered;
        blocking(move || {
            sundial_storage::restore_handover(&config.vfs, &config.data_dir, &files)?;
            Ok(Db::open(config)?)
        })
        .await
    }

    /// A gained shard's databases as its last checkpoint left them, with
    /// every logged frame after it applied.
    pub(super) async fn restore(&self, shard: u32, lease: &crate::Lease) -> Result<ShardState> {
        let dir = self.shard_dir(shard);
        blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Internal(format!(
                "cannot clear {}: {e}",
                dir.display()
            ))),
            _ => Ok(()),
        })
        .await?;
        let positions = self.meta().await?.shard_positions(shard).await?;
        // The least position: a checkpoint that failed half-way recorded
        // some databases further than others, and the next must cover all.
        let mut state = ShardState {
            flushed: positions.iter().map(|p| p.flushed).min().unwrap_or(0),
            applied: positions.iter().map(|p| p.flushed).max().unwrap_or(0),
            ..ShardState::default()
        };
        // The log is claimed first: the previous owner, even one that does
        // not know yet that its lease is gone, can append nothing after
        // the fence, so everything it logged is replayed below. First of
        // all: a local log claimed by a restore that then fails is still
        // this node's at the next attempt. `floor`, every position
        // recorded: a local log that starts again goes on after it.
        let floor = state.applied;
        let fence = self
            .inner
            .wal
            .fence(shard, lease.epoch, fence_id(shard, lease.epoch), floor)
            .await?;
        state.log_end = fence;
        let mut flushed: HashMap<String, u64> = HashMap::new();
        for p in positions {
            let files = fetch_state(&self.inner.store, shard, &p.database, &p.checkpoint).await?;
            let db = self.open_db(shard, &p.database, files).await?;
            let recorded = db.remote_blocks().into_iter().map(|b| b.key).collect();
            let changes = db.read(|snap| snap.index_changes());
            flushed.insert(p.database.clone(), p.flushed);
            state.databases.insert(
                p.database,
                ShardDb {
                    db,
                    recorded,
                    checkpoint: p.checkpoint,
                    changes,
                    incarnation: super::next_incarnation(),
                },
            );
        }
        // From the log's start: a database whose first checkpoint never
        // committed has frames before the others' positions.
        for (position, batch) in self.inner.wal.replay_frames(shard, 0).await? {
            if position >= fence {
                break;
            }
            if batch.points.is_empty()
                || flushed.get(&batch.database).is_some_and(|&f| position <= f)
            {
                continue;
            }
            let db = self.database(shard, &mut state, &batch.database).await?;
            apply(&db, batch.points, &batch.rules).await?;
        }
        state.applied = state.applied.max(fence);
        // The last owner may have failed to record some listing names.
        state.names_unsettled = state.databases.keys().cloned().collect();
        Ok(state)
    }

    /// See [`Ingester::checkpoint`]; the caller holds the shard's state.
    pub(super) async fn checkpoint_locked(
        &self,
        shard: &Shard,
        state: &mut ShardState,
    ) -> Result<()> {
        let replaced = state
            .databases
            .values()
            .any(|d| !d.db.replaced_blocks().is_empty());
        if state.applied == state.flushed && !replaced && !state.unlogged_change {
            state.last_checkpoint = Some(std::time::Instant::now());
            return Ok(());
        }
        let position = state.applied;
        state.checkpoints += 1;
        let stem = format!("{}-{}", shard.lease.epoch, state.checkpoints);
        for (name, entry) in &mut state.databases {
            let db = entry.db.clone();
            let store = self
                .inner
                .store
                .group(&state_group(shard.number))
                .database(name);
            let stem = stem.clone();
            let (keys, blocks) = blocking(move || {
                let files = db.flush_for_handover()?;
                let mut keys = Vec::with_capacity(files.len());
                for (file, bytes) in files {
                    let key = format!("{stem}.{file}");
                    store.upload(&key, bytes)?;
                    keys.push(key);
                }
                Ok((keys, db.remote_blocks()))
            })
            .await?;
            // What the database replaced, and what the manifest lists that
            // the database no longer does (a merge that swapped its list
            // after the last checkpoint read it but before it recorded
            // the inputs as replaced).
            let replaced = entry.db.replaced_blocks();
            let current: HashSet<&str> = blocks.iter().map(|b| b.key.as_str()).collect();
            let gone: BTreeSet<String> = replaced
                .iter()
                .cloned()
                .chain(
                    entry
                        .recorded
                        .iter()
                        .filter(|k| !current.contains(k.as_str()))
                        .cloned(),
                )
                .collect();
            let retired: Vec<String> = gone
                .iter()
                .map(|key| format!("{}/{name}/{key}", shard_group(shard.number)))
                .collect();
            let new: Vec<RemoteBlock> = blocks
                .into_iter()
                .filter(|b| !entry.recorded.contains(&b.key))
                .collect();
            let rows: Vec<BlockRow> = new
                .iter()
                .map(|b| BlockRow {
                    object_key: format!("{}/{name}/{}", shard_group(shard.number), b.key),
                    database: name.clone(),
                    shard: shard.number,
                    min_ts: b.min_ts,
                    max_ts: b.max_ts,
                    bytes: b.bytes,
                })
                .collect();
            self.meta()
                .await?
                .commit_flush(
                    &shard.lease,
                    &Flush {
                        database: name,
                        shard: shard.number,
                        blocks: &rows,
                        wal_flushed: position,
                        checkpoint: &keys,
                        retired: &retired,
                    },
                )
                .await?;
            entry.db.forget_replaced(replaced.len());
            for key in &gone {
                entry.recorded.remove(key);
            }
            entry.recorded.extend(new.into_iter().map(|b| b.key));
            let old = std::mem::replace(&mut entry.checkpoint, keys);
            // Under the shard's lock: no write or delete since the flush.
            entry.changes = entry.db.read(|snap| snap.index_changes());
            self.delete_state(shard.number, name, old).await;
        }
        self.inner.wal.truncate(shard.number, position).await?;
        state.flushed = position;
        state.unlogged_change = false;
        state.unflushed_points = 0;
        state.last_checkpoint = Some(std::time::Instant::now());
        Ok(())
    }

    /// Deletes a replaced checkpoint's objects; one left behind is only
    /// wasted space.
    async fn delete_state(&self, shard: u32, database: &str, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let store = self
            .inner
            .store
            .group(&state_group(shard))
            .database(database);
        let deleted = blocking(move || {
            for key in &keys {
                store.delete(key)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = deleted {
            warn!(shard, database, error = %e, "cannot delete an old checkpoint");
        }
    }
}

/// A fence's batch id: one per (shard, epoch), so a retried fence is
/// logged once.
fn fence_id(shard: u32, epoch: i64) -> u128 {
    (u128::from(shard) << 64) | u128::from(epoch as u64)
}

/// Downloads a checkpoint's state objects from the cluster's store
/// `root` as (file name, bytes).
pub(crate) async fn fetch_state(
    root: &RemoteStore,
    shard: u32,
    database: &str,
    keys: &[String],
) -> Result<Vec<(String, Bytes)>> {
    let store = root.group(&state_group(shard)).database(database);
    let keys = keys.to_vec();
    blocking(move || {
        keys.iter()
            .map(|key| {
                let name = key.split_once('.').map_or(key.as_str(), |(_, n)| n);
                Ok((name.to_owned(), store.get(key)?))
            })
            .collect()
    })
    .await
}
