//! A querier that reads the shards' blocks itself (docs/cluster.md, "The
//! querier"): for each owner it asks what the owner's shards hold beyond
//! the checkpoints this node holds copies of (`/internal/v1/newer`), lays
//! that over the copies and runs the per-series half here. A shard whose
//! checkpoint is newer than the copy gets a new copy and is asked again;
//! one that changed in a way the owner's rows cannot carry (a block merged
//! or rewritten, a series hidden) since its checkpoint, or whose copy
//! cannot be loaded, is run by its owner as before.

use super::{Querier, request};
use crate::frame::Newer;
use crate::ingest::{Held, NewerQuery};
use crate::replica::{Replica, Replicas};
use crate::{Error, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use sundial_model::ErrorClass;
use sundial_model::Timestamp;
use sundial_query::Budget;
use sundial_storage::{Db, Overlay};
use tracing::{debug, warn};

/// A per-series half over one shard database.
pub(super) type Half<T> = dyn Fn(&Db, &Budget) -> sundial_query::Result<T> + Send + Sync;

/// The per-series half of a query, to run over shard databases here.
pub(super) struct Local<T> {
    pub(super) metric: String,
    /// The range the half reads.
    pub(super) start: Timestamp,
    pub(super) end: Timestamp,
    pub(super) run: Arc<Half<T>>,
}

/// What one owner's shards gave here: the shards answered, a part per
/// shard database, and the shards left to the owner.
type OnCopies<T> = (Vec<u32>, Vec<T>, Vec<u32>);

impl Querier {
    /// Like `gather`, but with copies of the shard databases the half runs
    /// here (`local`), and only what copies cannot answer goes to `ask`.
    pub(super) async fn gather_local<T, F>(
        &self,
        database: &str,
        budget: &Budget,
        local: Local<T>,
        ask: impl Fn(String, Vec<u32>) -> F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Future<Output = Result<(Vec<u32>, T)>>,
    {
        let Some(replicas) = self.blocks.clone() else {
            return self.gather(ask).await;
        };
        let (local, ask) = (&local, &ask);
        let parts = self
            .gather_parts(|address, shards| {
                let replicas = replicas.clone();
                async move {
                    let found =
                        self.on_copies(&replicas, &address, database, shards, local, budget);
                    let (mut covered, mut parts, rest) = found.await?;
                    if !rest.is_empty() {
                        let (shards, part) = ask(address, rest).await?;
                        covered.extend(shards);
                        parts.push(part);
                    }
                    Ok((covered, parts))
                }
            })
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// One owner's `shards` through copies here.
    async fn on_copies<T: Send + 'static>(
        &self,
        replicas: &Replicas,
        address: &str,
        database: &str,
        shards: Vec<u32>,
        local: &Local<T>,
        budget: &Budget,
    ) -> Result<OnCopies<T>> {
        let (mut covered, mut owners) = (Vec::new(), Vec::new());
        let mut ready: Vec<(u32, Arc<Replica>, Db)> = Vec::new();
        let mut asking = shards;
        // A second round for the shards whose newer checkpoint was loaded.
        for round in 0..2 {
            if asking.is_empty() {
                break;
            }
            let mut copies: HashMap<u32, Option<Arc<Replica>>> = HashMap::new();
            let mut held = Vec::with_capacity(asking.len());
            for &shard in &asking {
                let copy = replicas.held(shard, database);
                held.push(Held {
                    shard,
                    checkpoint: copy
                        .as_ref()
                        .map(|c| c.checkpoint.clone())
                        .unwrap_or_default(),
                    next_id: copy.as_ref().map_or(0, |c| c.db.next_series_id()),
                    epoch: copy.as_ref().map_or(0, |c| c.epoch()),
                });
                copies.insert(shard, copy);
            }
            let query = NewerQuery {
                metric: local.metric.clone(),
                start: local.start,
                end: local.end,
                held,
            };
            let asked = request(database, std::mem::take(&mut asking), query, budget);
            let answer = self.inner.client.newer(address, &asked).await?;
            for (shard, part) in answer.parts {
                match part {
                    Newer::Absent => covered.push(shard),
                    Newer::Changed => owners.push(shard),
                    Newer::Stale { checkpoint } if round == 0 => {
                        // Not the copy refused: it may hold another
                        // owner's series. A checkpoint replaced while it
                        // is fetched is gone: the owner names the next one
                        // when asked again.
                        let unfit = copies.get(&shard).and_then(Option::as_ref);
                        let loaded = replicas.load(shard, database, &checkpoint, unfit);
                        if let Err(e) = loaded.await {
                            debug!(shard, database, error = %e, "cannot copy a shard's checkpoint");
                        }
                        asking.push(shard);
                    }
                    Newer::Stale { .. } => owners.push(shard),
                    Newer::Rows(rows) => {
                        let copy = match copies.remove(&shard).flatten() {
                            Some(copy) => copy,
                            // The owner's database was never checkpointed.
                            None => replicas.load(shard, database, &[], None).await?,
                        };
                        let kinds: Vec<_> = rows
                            .kinds
                            .into_iter()
                            .map(|(field, kind)| (local.metric.clone(), field, kind))
                            .collect();
                        if !copy.mirror(rows.epoch, rows.series, &kinds) {
                            warn!(
                                shard,
                                database, "a shard copy differs from its owner's; dropped"
                            );
                            replicas.forget(shard, database);
                            owners.push(shard);
                            continue;
                        }
                        let overlay = Arc::new(Overlay::new(rows.rows, rows.min_ts));
                        let db = copy.db.with_overlay(overlay);
                        ready.push((shard, copy, db));
                    }
                }
            }
        }
        let mut parts = Vec::with_capacity(ready.len());
        for (shard, part) in run_here(ready, local, budget).await? {
            match part {
                Ok(part) => {
                    covered.push(shard);
                    parts.push(part);
                }
                // A block of the copy unreadable (its object deleted
                // after a merge the owner made since answering, or the
                // store failing): the owner reads its own.
                Err(e) if e.class() == ErrorClass::Internal => {
                    debug!(shard, database, error = %e, "a shard copy cannot be read");
                    replicas.forget(shard, database);
                    owners.push(shard);
                }
                Err(e) => return Err(Error::Query(e)),
            }
        }
        replicas.count(parts.len(), owners.len());
        Ok((covered, parts, owners))
    }
}

/// `local`'s half over each copy (its shard and the result), off the
/// async workers, charged to `budget`.
async fn run_here<T: Send + 'static>(
    ready: Vec<(u32, Arc<Replica>, Db)>,
    local: &Local<T>,
    budget: &Budget,
) -> Result<Vec<(u32, sundial_query::Result<T>)>> {
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    let (run, left) = (local.run.clone(), budget.left());
    let here = Budget::new(budget.time_left(), left);
    let task = tokio::task::spawn_blocking(move || {
        // The copies stay open (held) while their overlays are read.
        let parts: Vec<_> = ready
            .iter()
            .map(|(shard, _, db)| (*shard, run(db, &here)))
            .collect();
        (parts, left.saturating_sub(here.left()))
    });
    let (parts, used) = task
        .await
        .map_err(|e| Error::Internal(format!("query task: {e}")))?;
    budget.take(used).map_err(Error::Query)?;
    Ok(parts)
}
