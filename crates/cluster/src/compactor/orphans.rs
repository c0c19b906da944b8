//! Orphans: objects of a shard that no manifest row, retirement or
//! checkpoint names. An owner fenced after uploading a block or a
//! checkpoint's state, a merge whose owner died before its checkpoint, an
//! old checkpoint's state its owner failed to delete: nobody will record
//! or delete them.
//!
//! A block of a database is recorded by the first checkpoint of that
//! database in its shard that commits after the block joined the
//! database's list, which is right after its upload; a checkpoint's
//! state objects only by that checkpoint. So an object uploaded before
//! the database's last recorded checkpoint that is still named by
//! nothing never will be, and the compactor deletes it, once it is older
//! than that checkpoint by the grace period plus a margin: the store's
//! times are whole seconds from another clock (the grace covers larger
//! skews). Databases without a recorded checkpoint are left alone.
//!
//! The names are read after the objects are listed, the manifest before
//! the retirements: a block a checkpoint retires in between is in one or
//! the other.

use super::Compactor;
use crate::ingest::{shard_group, state_group};
use crate::manifest::Checkpointed;
use crate::{Error, Result};
use std::collections::HashSet;
use tracing::info;

/// How much older than the checkpoint an orphan must be besides the
/// grace period.
const CLOCK_MARGIN_SECS: f64 = 2.0;

impl Compactor {
    /// Deletes the orphans of every database of every shard with a
    /// recorded checkpoint, while this node holds the lease; how many.
    pub(super) async fn delete_orphans(&self) -> Result<usize> {
        let checkpoints = self.inner.meta.lock().await.checkpoints().await?;
        let mut deleted = 0;
        for checkpointed in checkpoints {
            if !self.is_leader() {
                break;
            }
            deleted += self.delete_orphans_of(&checkpointed).await?;
        }
        Ok(deleted)
    }

    async fn delete_orphans_of(&self, c: &Checkpointed) -> Result<usize> {
        let cutoff = c.at_secs - self.inner.config.grace.as_secs_f64() - CLOCK_MARGIN_SECS;
        let (blocks, state) = (shard_group(c.shard), state_group(c.shard));
        let stores = [
            self.inner.store.group(&blocks).database(&c.database),
            self.inner.store.group(&state).database(&c.database),
        ];
        let listing = stores.clone();
        let listed = tokio::task::spawn_blocking(move || {
            listing
                .iter()
                .map(|s| Ok(s.list_modified()?))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let (named, retired) = {
            let meta = self.inner.meta.lock().await;
            let rows = meta
                .blocks_overlapping(&c.database, Some(c.shard), i64::MIN, i64::MAX)
                .await?;
            let named: HashSet<String> = rows.into_iter().map(|b| b.object_key).collect();
            (named, meta.retired_keys().await?)
        };
        let state_named: HashSet<&String> = c.checkpoint.iter().collect();
        let mut orphans: Vec<(usize, String)> = Vec::new();
        for (i, (group, objects)) in [&blocks, &state].iter().zip(&listed).enumerate() {
            for (key, modified) in objects {
                let full = format!("{group}/{}/{key}", c.database);
                let named = match i {
                    0 => named.contains(&full),
                    _ => state_named.contains(key),
                };
                if !named && !retired.contains(&full) && (*modified as f64) < cutoff {
                    orphans.push((i, key.clone()));
                }
            }
        }
        if orphans.is_empty() {
            return Ok(0);
        }
        let count = orphans.len();
        info!(shard = c.shard, database = %c.database, count, "deleting orphaned objects");
        tokio::task::spawn_blocking(move || {
            for (i, key) in &orphans {
                stores[*i].delete(key)?;
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(count)
    }
}
