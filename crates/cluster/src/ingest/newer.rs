//! What a shard's owner hands a querier that reads the shard's blocks
//! itself (docs/cluster.md, "Queriers read the blocks"): for one query,
//! the selected series' points that its last checkpoint's blocks do not
//! hold (the head, a flush in progress, blocks flushed since), the series
//! defined since the querier's copy, and the metric's field kinds. When
//! the querier's copy is not that checkpoint (or holds another owner's
//! series), it is told to load the checkpoint; when the database changed
//! in a way points laid over the copy cannot express (a block merged,
//! expired or rewritten by a delete; a series hidden or shown again), or
//! the points would be more than running the query here costs, the
//! querier is told to have the owner run the query.

use super::{Ingester, ShardDb};
use crate::frame::{Newer, NewerAnswer, NewerRows};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_model::{Kind, TagMatch, Timestamp};
use sundial_storage::{Db, SeriesId, Snapshot};

/// Past this many points in one answer the owner runs the query itself
/// for the shards that would go beyond: a per-series half sends a few
/// values per series, and raw points cost more to send and merge than the
/// owner's reading them (`bench/cluster.sh`: 13 ms for 216 k unflushed
/// points sent raw, under 3 ms staged at the owners; 5 ms with 16 k sent
/// raw and the rest staged).
const MAX_POINTS: usize = 4096;

/// What a querier asks an owner for (JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct NewerQuery {
    pub(crate) metric: String,
    /// Series matching every predicate of any of these (none: every
    /// series of the metric): a superset of what the query selects.
    pub(crate) tags: Vec<Vec<TagMatch>>,
    /// The fields read (`None`: all of the metric's).
    pub(crate) fields: Option<Vec<String>>,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    /// Only each column's newest point in the range (newest-point queries).
    pub(crate) newest: bool,
    /// The querier's copy of each shard's database.
    pub(crate) held: Vec<Held>,
}

/// A querier's copy of one shard's database.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Held {
    pub(crate) shard: u32,
    /// The state objects it was opened from (empty: none, or an empty
    /// database).
    pub(crate) checkpoint: Vec<String>,
    /// The id its next series would get: series from there on are sent.
    pub(crate) next_id: u32,
    /// The owner whose series it registered since its checkpoint (`None`:
    /// none yet). Ids given after a checkpoint are that owner's: another
    /// owner replaying the log, or the database made again, may give
    /// others.
    pub(crate) owner: Option<OwnerTag>,
}

/// One owner's one opening of a shard database: its lease epoch and the
/// database's incarnation there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OwnerTag {
    pub(crate) epoch: i64,
    pub(crate) incarnation: u64,
}

/// One shard database as the owner checks it, taken under the shard's
/// lock.
struct Checked {
    shard: u32,
    owner: OwnerTag,
    db: Db,
    checkpoint: Vec<String>,
    recorded: HashSet<String>,
    changes: u64,
}

impl Ingester {
    /// [`NewerQuery`] over `database` in each of its shards this node
    /// serves, within `allowance`.
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
                owner: OwnerTag {
                    epoch: shard.lease.epoch,
                    incarnation: d.incarnation,
                },
                db: d.db.clone(),
                checkpoint: d.checkpoint.clone(),
                recorded: d.recorded.clone(),
                changes: d.changes,
            })
            .await;
        let deadline = Instant::now() + allowance.0;
        let task = tokio::task::spawn_blocking(move || {
            // What is left to send, over all the shards.
            let mut left = allowance.1.min(MAX_POINTS);
            let mut parts = Vec::new();
            for shard in &served {
                let held = query.held.iter().find(|h| h.shard == *shard);
                let part = match (checked.iter().find(|c| c.shard == *shard), held) {
                    (None, _) => Newer::Absent,
                    (Some(c), Some(h))
                        if h.checkpoint == c.checkpoint && h.owner.is_none_or(|o| o == c.owner) =>
                    {
                        match newer_rows(c, h, &query, (deadline, left))? {
                            Some((rows, sent)) => {
                                left -= sent;
                                Newer::Rows(rows)
                            }
                            None => Newer::Changed,
                        }
                    }
                    (Some(c), _) => Newer::Stale {
                        checkpoint: c.checkpoint.clone(),
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

/// The part of `c` newer than its checkpoint for `query`, and its
/// points; `None` when points laid over the checkpoint cannot stand for
/// the database now, or would be more than `most` or take past
/// `deadline`.
fn newer_rows(
    c: &Checked,
    held: &Held,
    query: &NewerQuery,
    limits: (Instant, usize),
) -> sundial_query::Result<Option<(NewerRows, usize)>> {
    let read = c.db.read_newer(&c.recorded, |snap| {
        if snap.index_changes() != c.changes {
            return Ok(None);
        }
        collect(&snap, c.owner, held, query, limits)
    });
    Ok(read.transpose()?.flatten())
}

fn collect(
    snap: &Snapshot<'_>,
    owner: OwnerTag,
    held: &Held,
    query: &NewerQuery,
    (deadline, most): (Instant, usize),
) -> sundial_query::Result<Option<(NewerRows, usize)>> {
    let kinds: Vec<(String, Kind)> = snap
        .fields(&query.metric)
        .into_iter()
        .map(|(f, k)| (f.to_owned(), k))
        .collect();
    let fields: Vec<&str> = kinds
        .iter()
        .map(|(f, _)| f.as_str())
        .filter(|f| {
            query
                .fields
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x == f))
        })
        .collect();
    let Some(ids) = selected(snap, query) else {
        // A predicate the index refuses: the owner answers with the
        // query's own error.
        return Ok(None);
    };
    let (mut rows, mut sent) = (Vec::new(), 0usize);
    for id in ids {
        let mut columns = Vec::new();
        for field in &fields {
            let mut points = snap.points(id, field, query.start, query.end)?;
            if query.newest && points.len() > 1 {
                points.drain(..points.len() - 1);
            }
            if !points.is_empty() {
                sent += points.len();
                columns.push(((*field).to_owned(), points));
            }
        }
        if sent > most || Instant::now() > deadline {
            return Ok(None);
        }
        if !columns.is_empty() {
            rows.push((id, columns));
        }
    }
    let newer = NewerRows {
        epoch: owner.epoch,
        incarnation: owner.incarnation,
        min_ts: snap.min_ts(),
        series: snap.series_from(held.next_id),
        kinds,
        rows,
    };
    Ok(Some((newer, sent)))
}

/// The metric's series any alternative of `query.tags` selects.
fn selected(snap: &Snapshot<'_>, query: &NewerQuery) -> Option<BTreeSet<SeriesId>> {
    if query.tags.is_empty() {
        return Some(snap.series_of(&query.metric).iter().copied().collect());
    }
    let mut ids = BTreeSet::new();
    for tags in &query.tags {
        ids.extend(snap.select(&query.metric, tags).ok()?);
    }
    Some(ids)
}
