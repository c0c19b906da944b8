//! Deletes at a shard's owner (OpenTSDB's `delete_data` and
//! `delete_meta` on a cluster). A delete is not in the shard's log: the
//! log holds the points it removes, and a new owner replaying it would
//! bring them back. So the owner deletes and checkpoints under the shard's
//! lock before it answers: the checkpoint's position covers every frame
//! before the delete, and no later owner replays them. A delete whose
//! checkpoint fails is answered with the error (the client retries; a
//! delete is idempotent) and the next checkpoint records it.

use super::names::{NameChange, metric_names};
use super::{Ingester, Shard, ShardState, blocking, state_group};
use crate::Error;
use crate::transport::ChangedAnswer;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use sundial_model::{Deleted, Deletion, ErrorClass};
use tracing::warn;

impl Ingester {
    /// Runs `deletion` over `database` in each of `shards` this node
    /// serves, each checkpointed after: the shards covered (the others
    /// are not served here, or are moving) and the points deleted.
    pub async fn delete(
        &self,
        database: &str,
        shards: &[u32],
        deletion: Arc<Deletion>,
    ) -> sundial_query::Result<ChangedAnswer> {
        let mut answer = ChangedAnswer::default();
        for shard in self.served(shards) {
            let (number, mut state) = (shard.number, shard.state.lock().await);
            if !shard.changeable() {
                continue;
            }
            if let Some(db) = state.databases.get(database).map(|d| d.db.clone()) {
                let names_before = match deletion.what {
                    Deleted::Series => {
                        db.read(|snap| metric_names(&snap, &deletion.metric).into_iter().collect())
                    }
                    Deleted::Points { .. } => Vec::new(),
                };
                let (deleting, on) = (deletion.clone(), db.clone());
                answer.count +=
                    tokio::task::spawn_blocking(move || sundial_query::delete(&on, &deleting))
                        .await
                        .map_err(|_| sundial_query::Error::Internal("a delete task panicked"))??;
                let at = (database, &db);
                self.record_names(number, &mut state, at, names_before, NameChange::Removed)
                    .await;
                self.record_change(&shard, &mut state).await?;
            }
            answer.shards.push(number);
        }
        Ok(answer)
    }

    /// Drops `database` from each of `shards` this node serves (Baidu's
    /// drop, and a create's purge of what a dropped name left): the shard
    /// is checkpointed first, so its log holds no frame of the database
    /// any more; then its blocks and state are retired in PostgreSQL
    /// under the lease, and its local files go. The answer counts the
    /// objects retired.
    pub async fn drop_database(
        &self,
        database: &str,
        shards: &[u32],
    ) -> sundial_query::Result<ChangedAnswer> {
        let mut answer = ChangedAnswer::default();
        for shard in self.served(shards) {
            let (number, mut state) = (shard.number, shard.state.lock().await);
            if !shard.changeable() {
                continue;
            }
            if state.databases.contains_key(database) {
                self.record_change(&shard, &mut state).await?;
                let keys: Vec<String> = state.databases[database]
                    .checkpoint
                    .iter()
                    .map(|key| format!("{}/{database}/{key}", state_group(number)))
                    .collect();
                let dropped = self.meta().await.map_err(|e| unrecorded(number, &e));
                answer.count += dropped?
                    .drop_shard_database(&shard.lease, database, number, &keys)
                    .await
                    .map_err(|e| unrecorded(number, &e))?;
                if let Some(gone) = state.databases.remove(database) {
                    let dir = self.shard_dir(number).join(database);
                    let removed = blocking(move || {
                        gone.db.discard();
                        match std::fs::remove_dir_all(&dir) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                warn!(dir = %dir.display(), error = %e, "cannot remove a dropped database's files");
                            }
                            _ => {}
                        }
                        Ok(())
                    });
                    removed.await.map_err(|e| unrecorded(number, &e))?;
                }
            }
            answer.shards.push(number);
        }
        Ok(answer)
    }

    /// Those of `shards` this node serves.
    pub(super) fn served(&self, shards: &[u32]) -> Vec<Arc<Shard>> {
        shards.iter().filter_map(|&n| self.shard(n).ok()).collect()
    }

    /// Makes a change the log does not hold durable: the shard is
    /// checkpointed now (and by the next checkpoint, if this one fails).
    async fn record_change(
        &self,
        shard: &Shard,
        state: &mut ShardState,
    ) -> sundial_query::Result<()> {
        state.unlogged_change = true;
        self.checkpoint_locked(shard, state)
            .await
            .map_err(|e| unrecorded(shard.number, &e))
    }
}

impl Shard {
    /// Whether a change outside the log may be made now: the shard takes
    /// writes, and PostgreSQL, which records its checkpoint, confirmed
    /// the lease lately.
    fn changeable(&self) -> bool {
        self.taking_writes.load(Ordering::Acquire) && self.confirmed()
    }
}

/// A change done but not checkpointed yet, in the query's terms.
fn unrecorded(shard: u32, e: &Error) -> sundial_query::Error {
    let class = match e {
        Error::Storage(s) => s.class(),
        Error::Internal(_) => ErrorClass::Internal,
        _ => ErrorClass::Busy,
    };
    let message = format!("the change in shard {shard} is not recorded yet: {e}; retry");
    sundial_query::Error::Remote { message, class }
}
