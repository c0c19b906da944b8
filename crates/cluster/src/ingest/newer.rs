//! What a shard's owner hands a querier that reads the shard's blocks
//! itself (docs/cluster.md, "The querier"): for one query, the metric's
//! points that its last checkpoint's blocks do not hold (the head, a
//! flush in progress, blocks flushed since), the series defined since the
//! querier's copy, and the metric's field kinds. When the querier's copy
//! is not that checkpoint, or the database changed in a way points laid
//! over the copy cannot express (a block merged, expired or rewritten by
//! a delete; a series hidden or shown again), the owner says so instead:
//! the querier loads the checkpoint, or has the owner run the query.

use super::{Ingester, ShardDb};
use crate::frame::{Newer, NewerAnswer, NewerRows};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use sundial_query::Budget;
use sundial_storage::{Db, Snapshot};

/// What a querier asks an owner for (JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct NewerQuery {
    pub(crate) metric: String,
    pub start: i64,
    pub end: i64,
    /// The querier's copy of each shard's database.
    pub held: Vec<Held>,
}

/// A querier's copy of one shard's database.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Held {
    pub shard: u32,
    /// The state objects it was opened from (empty: none, or an empty
    /// database).
    pub checkpoint: Vec<String>,
    /// The id its next series would get: series from there on are sent.
    pub next_id: u32,
    /// The lease epoch of the owner whose series it registered since its
    /// checkpoint (0: none). Ids given after a checkpoint are an owner's
    /// own: another owner replaying the log may give others.
    pub epoch: i64,
}

/// One shard database as the owner checks it, taken under the shard's
/// lock.
struct Checked {
    shard: u32,
    epoch: i64,
    db: Db,
    checkpoint: Vec<String>,
    recorded: HashSet<String>,
    changes: u64,
}

impl Ingester {
    /// [`NewerQuery`] over `database` in each of its shards this node
    /// serves, within `allowance` (points sent count against it).
    pub(crate) async fn newer(
        &self,
        database: &str,
        query: Arc<NewerQuery>,
        allowance: (Duration, usize),
    ) -> sundial_query::Result<NewerAnswer> {
        let shards: Vec<u32> = query.held.iter().map(|h| h.shard).collect();
        let (served, checked) = self
            .serving_with(database, &shards, |shard, d: &ShardDb| Checked {
                shard: shard.number,
                epoch: shard.lease.epoch,
                db: d.db.clone(),
                checkpoint: d.checkpoint.clone(),
                recorded: d.recorded.clone(),
                changes: d.changes,
            })
            .await;
        let task = tokio::task::spawn_blocking(move || {
            let budget = Budget::new(allowance.0, allowance.1);
            let mut parts = Vec::new();
            for shard in &served {
                let held = query.held.iter().find(|h| h.shard == *shard);
                let part = match checked.iter().find(|c| c.shard == *shard) {
                    None => Newer::Absent,
                    Some(c) => match held {
                        Some(h)
                            if h.checkpoint == c.checkpoint
                                && (h.epoch == 0 || h.epoch == c.epoch) =>
                        {
                            newer_rows(c, h, &query, &budget)?.map_or(Newer::Changed, Newer::Rows)
                        }
                        _ => Newer::Stale {
                            checkpoint: c.checkpoint.clone(),
                        },
                    },
                };
                parts.push((*shard, part));
            }
            Ok(NewerAnswer {
                shards: served,
                parts,
            })
        });
        task.await
            .map_err(|_| sundial_query::Error::Internal("a query task panicked"))?
    }
}

/// The part of `c` newer than its checkpoint for `query`; `None` when
/// points laid over the checkpoint cannot stand for the database now.
fn newer_rows(
    c: &Checked,
    held: &Held,
    query: &NewerQuery,
    budget: &Budget,
) -> sundial_query::Result<Option<NewerRows>> {
    let read = c.db.read_newer(&c.recorded, |snap| {
        if snap.index_changes() != c.changes {
            return Ok(None);
        }
        collect(&snap, c.epoch, held, query, budget).map(Some)
    });
    Ok(read.transpose()?.flatten())
}

fn collect(
    snap: &Snapshot<'_>,
    c_epoch: i64,
    held: &Held,
    query: &NewerQuery,
    budget: &Budget,
) -> sundial_query::Result<NewerRows> {
    budget.check_time()?;
    let fields: Vec<(String, sundial_model::Kind)> = snap
        .fields(&query.metric)
        .into_iter()
        .map(|(f, k)| (f.to_owned(), k))
        .collect();
    let mut rows = Vec::new();
    for id in snap.series_of(&query.metric) {
        let mut columns = Vec::new();
        for (field, _) in &fields {
            let points = snap.points(*id, field, query.start, query.end)?;
            if !points.is_empty() {
                budget.take(points.len())?;
                columns.push((field.clone(), points));
            }
        }
        if !columns.is_empty() {
            rows.push((*id, columns));
        }
    }
    Ok(NewerRows {
        epoch: c_epoch,
        min_ts: snap.min_ts(),
        series: snap.series_from(held.next_id),
        kinds: fields,
        rows,
    })
}
