//! A querier that reads the shards' blocks itself (docs/cluster.md, "The
//! querier"): for each owner it asks what the owner's shards hold beyond
//! the checkpoints this node holds copies of (`/internal/v1/newer`), lays
//! that over the copies and runs the per-series half here. A shard whose
//! checkpoint is newer than the copy gets a new copy and is asked again;
//! one that changed in a way the owner's rows cannot carry (a block merged
//! or rewritten, a series hidden) since its checkpoint, or whose copy
//! cannot be loaded, is run by its owner as before.

use super::{Querier, request};
use crate::frame::{Newer, NewerRows};
use crate::ingest::{Held, NewerQuery, OwnerTag};
use crate::replica::{Replica, Replicas};
use crate::{Error, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use sundial_model::series_query::SeriesQuery;
use sundial_model::{ErrorClass, Query, StatsQuery, TagMatch, Timestamp};
use sundial_query::Budget;
use sundial_query::series_query::read_range;
use sundial_storage::{Db, Overlay};
use tracing::{debug, warn};

/// A per-series half over one shard database.
pub(super) type Half<T> = dyn Fn(&Db, &Budget) -> sundial_query::Result<T> + Send + Sync;

/// The per-series half of a query, to run over shard databases here.
pub(super) struct Local<T> {
    pub(super) reads: Reads,
    pub(super) run: Arc<Half<T>>,
}

/// What a half reads: the owners send these of their newer points.
pub(super) struct Reads {
    metric: String,
    /// Series matching all of any of these (none: all the metric's).
    tags: Vec<Vec<TagMatch>>,
    /// The fields read (`None`: all).
    fields: Option<Vec<String>>,
    start: Timestamp,
    end: Timestamp,
    /// Each series' newest point only.
    newest: bool,
}

impl Reads {
    /// An OpenTSDB query's (`newest`: its newest points').
    pub(super) fn opentsdb(query: &Query, newest: bool) -> Self {
        Self {
            metric: query.metric.clone(),
            tags: vec![query.tags.clone()],
            fields: Some(vec![query.field.clone()]),
            start: query.start,
            end: query.end,
            newest,
        }
    }

    /// A Baidu query's: its branches' series, every field (value filters
    /// may name others), and as far around the range as a fill looks.
    pub(super) fn baidu(query: &SeriesQuery) -> Self {
        let (start, end) = read_range(query);
        Self {
            metric: query.metric.clone(),
            tags: query.branches.iter().map(|b| b.tags.clone()).collect(),
            fields: None,
            start,
            end,
            newest: false,
        }
    }

    /// SQL's statistics'.
    pub(super) fn stats(query: &StatsQuery) -> Self {
        Self {
            metric: query.metric.clone(),
            tags: vec![query.tags.clone()],
            fields: Some(query.fields.clone()),
            start: query.start,
            end: query.end,
            newest: false,
        }
    }
}

/// What one owner's shards gave here: the shards answered, a part per
/// shard database, and the shards left to the owner.
type OnCopies<T> = (Vec<u32>, Vec<T>, Vec<u32>);

/// A copy, the owner's part for it, and whose it is.
type Ready = (u32, Arc<Replica>, NewerRows);

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

    /// One owner's `shards` through copies here; those the copies cannot
    /// answer are left to the owner.
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
        let mut ready: Vec<Ready> = Vec::new();
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
                    owner: copy.as_ref().and_then(|c| c.owner()),
                });
                copies.insert(shard, copy);
            }
            let reads = &local.reads;
            let query = NewerQuery {
                metric: reads.metric.clone(),
                tags: reads.tags.clone(),
                fields: reads.fields.clone(),
                start: reads.start,
                end: reads.end,
                newest: reads.newest,
                held,
            };
            let asked = request(database, std::mem::take(&mut asking), query, budget);
            let answer = match self.inner.client.newer(address, &asked).await {
                Ok(answer) => answer,
                // An owner that cannot say (one that predates this
                // request, one failing) may still run the half.
                Err(e) => {
                    debug!(address, error = %e, "no newer points; the owner runs the half");
                    owners.extend(asked.shards);
                    continue;
                }
            };
            for (shard, part) in answer.parts {
                let copy = copies.remove(&shard).flatten();
                match part {
                    Newer::Absent => {
                        replicas.forget(shard, database, copy.as_ref());
                        covered.push(shard);
                    }
                    Newer::Changed => owners.push(shard),
                    Newer::Stale { checkpoint } if round == 0 => {
                        // Not the copy refused: it may hold another
                        // owner's series. A checkpoint replaced while it
                        // is fetched is gone: the owner names the next one
                        // when asked again.
                        let loaded = replicas.load(shard, database, &checkpoint, copy.as_ref());
                        if let Err(e) = loaded.await {
                            debug!(shard, database, error = %e, "cannot copy a shard's checkpoint");
                        }
                        asking.push(shard);
                    }
                    Newer::Stale { .. } => owners.push(shard),
                    Newer::Rows(rows) => {
                        let copy = match copy {
                            Some(copy) => copy,
                            // The owner's database was never checkpointed.
                            None => match replicas.load(shard, database, &[], None).await {
                                Ok(copy) => copy,
                                Err(e) => {
                                    debug!(shard, database, error = %e, "cannot make an empty copy");
                                    owners.push(shard);
                                    continue;
                                }
                            },
                        };
                        ready.push((shard, copy, rows));
                    }
                }
            }
        }
        let mut parts = Vec::with_capacity(ready.len());
        for (shard, copy, part) in run_here(ready, local, budget).await? {
            match part {
                Here::Done(part) => {
                    covered.push(shard);
                    parts.push(part);
                }
                Here::Unfit => {
                    warn!(
                        shard,
                        database, "a shard copy differs from its owner's; dropped"
                    );
                    replicas.forget(shard, database, Some(&copy));
                    owners.push(shard);
                }
                // A block of the copy unreadable (its object deleted
                // after a merge the owner made since answering, or the
                // store failing): the owner reads its own.
                Here::Failed(e) if e.class() == ErrorClass::Internal => {
                    debug!(shard, database, error = %e, "a shard copy cannot be read");
                    replicas.forget(shard, database, Some(&copy));
                    owners.push(shard);
                }
                Here::Failed(e) => return Err(Error::Query(e)),
            }
        }
        replicas.count(parts.len(), owners.len());
        Ok((covered, parts, owners))
    }
}

/// How one shard's half went here.
enum Here<T> {
    Done(T),
    /// The owner's series do not fit the copy.
    Unfit,
    Failed(sundial_query::Error),
}

/// `local`'s half over each copy with its owner's newer points (series
/// registered, points laid over it), off the async workers, charged to
/// `budget`.
async fn run_here<T: Send + 'static>(
    ready: Vec<Ready>,
    local: &Local<T>,
    budget: &Budget,
) -> Result<Vec<(u32, Arc<Replica>, Here<T>)>> {
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    let (run, left) = (local.run.clone(), budget.left());
    let metric = local.reads.metric.clone();
    let here = Budget::new(budget.time_left(), left);
    let task = tokio::task::spawn_blocking(move || {
        let parts: Vec<_> = ready
            .into_iter()
            .map(|(shard, copy, rows)| {
                let owner = OwnerTag {
                    epoch: rows.epoch,
                    incarnation: rows.incarnation,
                };
                let kinds: Vec<_> = rows
                    .kinds
                    .into_iter()
                    .map(|(field, kind)| (metric.clone(), field, kind))
                    .collect();
                if !copy.mirror(owner, rows.series, &kinds) {
                    return (shard, copy, Here::Unfit);
                }
                let overlay = Arc::new(Overlay::new(rows.rows, rows.min_ts));
                // The copy stays open (held here) while it is read.
                let part = match run(&copy.db.with_overlay(overlay), &here) {
                    Ok(part) => Here::Done(part),
                    Err(e) => Here::Failed(e),
                };
                (shard, copy, part)
            })
            .collect();
        (parts, left.saturating_sub(here.left()))
    });
    let (parts, used) = task
        .await
        .map_err(|e| Error::Internal(format!("query task: {e}")))?;
    budget.take(used).map_err(Error::Query)?;
    Ok(parts)
}
