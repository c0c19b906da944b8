//! Deletes at a shard's owner (OpenTSDB's `delete_data` and
//! `delete_meta` on a cluster). A delete is not in the shard's log: the
//! log holds the points it removes, and a new owner replaying it would
//! bring them back. So the owner deletes and checkpoints under the shard's
//! lock before it answers: the checkpoint's position covers every frame
//! before the delete, and no later owner replays them. A delete whose
//! checkpoint fails is answered with the error (the client retries; a
//! delete is idempotent) and the next checkpoint records it.

use super::Ingester;
use crate::Error;
use crate::transport::DeletedAnswer;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use sundial_model::{Deletion, ErrorClass};

impl Ingester {
    /// Runs `deletion` over `database` in each of `shards` this node
    /// serves, each checkpointed after: the shards covered (the others
    /// are not served here, or are moving) and the points deleted.
    pub async fn delete(
        &self,
        database: &str,
        shards: &[u32],
        deletion: Arc<Deletion>,
    ) -> sundial_query::Result<DeletedAnswer> {
        let mut answer = DeletedAnswer::default();
        for &number in shards {
            let Ok(shard) = self.shard(number) else {
                continue;
            };
            let mut state = shard.state.lock().await;
            // Recording the checkpoint needs the lease confirmed.
            if !shard.taking_writes.load(Ordering::Acquire) || !shard.confirmed() {
                continue;
            }
            if let Some(db) = state.databases.get(database).map(|d| d.db.clone()) {
                let deletion = deletion.clone();
                answer.points +=
                    tokio::task::spawn_blocking(move || sundial_query::delete(&db, &deletion))
                        .await
                        .map_err(|_| sundial_query::Error::Internal("a delete task panicked"))??;
                state.unlogged_change = true;
                self.checkpoint_locked(&shard, &mut state)
                    .await
                    .map_err(|e| unrecorded(number, &e))?;
            }
            answer.shards.push(number);
        }
        Ok(answer)
    }
}

/// A delete done but not checkpointed yet, in the query's terms.
fn unrecorded(shard: u32, e: &Error) -> sundial_query::Error {
    let class = match e {
        Error::Storage(s) => s.class(),
        Error::Internal(_) => ErrorClass::Internal,
        _ => ErrorClass::Busy,
    };
    let message = format!("the delete in shard {shard} is not recorded yet: {e}; retry");
    sundial_query::Error::Remote { message, class }
}
