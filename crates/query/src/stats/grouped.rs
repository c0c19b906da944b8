//! Statistics per group and bucket over the series of one metric: what
//! SQL's `GROUP BY <tags>, time_bucket(time, w)` with count, sum, min,
//! max and avg needs, computed in the storage scan instead of from one
//! row per point.

use super::{Fold, Stats, fold_series};
use crate::series_query::parallel::{self, Reach};
use crate::{Budget, Error, Result};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use sundial_model::series_query::Sampling;
use sundial_model::{StatsQuery, TagMatch, Timestamp};
use sundial_storage::{Db, Grid, SeriesId};

/// What to fold.
#[derive(Debug, Clone, Copy)]
pub struct StatsRequest<'a> {
    pub metric: &'a str,
    /// The series whose tags match all of these.
    pub tags: &'a [TagMatch],
    /// Each field's statistics are kept apart.
    pub fields: &'a [&'a str],
    /// Per field: only its count is wanted (text fields can be counted,
    /// and whole chunks are counted from their statistics).
    pub count_only: &'a [bool],
    pub start: Timestamp,
    pub end: Timestamp,
    /// Buckets this wide from the epoch (`time_bucket`); `None`: one
    /// bucket for the whole range, keyed by `start`.
    pub width_ms: Option<i64>,
    /// Groups are the values of these tags (`None` where a series lacks
    /// the tag).
    pub group_tags: &'a [&'a str],
}

/// Per group values, per bucket start: each field's statistics there (a
/// count of 0 where the field has no point in a bucket another field
/// has).
pub type GroupedStats = BTreeMap<Vec<Option<String>>, BTreeMap<Timestamp, Vec<Stats>>>;

/// [`grouped`] of an owned request (a querier's, sent to a shard owner).
pub fn grouped_by(db: &Db, query: &StatsQuery, budget: &Budget) -> Result<GroupedStats> {
    let fields: Vec<&str> = query.fields.iter().map(String::as_str).collect();
    let group_tags: Vec<&str> = query.group_tags.iter().map(String::as_str).collect();
    let request = StatsRequest {
        metric: &query.metric,
        tags: &query.tags,
        fields: &fields,
        count_only: &query.count_only,
        start: query.start,
        end: query.end,
        width_ms: query.width_ms,
        group_tags: &group_tags,
    };
    grouped(db, &request, budget)
}

/// Adds `other`'s cells to `into`: a cell both have merges field by
/// field (how a querier merges the shards' statistics).
pub fn merge_grouped(into: &mut GroupedStats, other: GroupedStats) {
    for (group, buckets) in other {
        // Threads and shards mostly hold different series, so different
        // groups: those move whole, not cell by cell.
        let cells = match into.entry(group) {
            Entry::Vacant(v) => {
                v.insert(buckets);
                continue;
            }
            Entry::Occupied(o) => o.into_mut(),
        };
        for (bucket, stats) in buckets {
            match cells.entry(bucket) {
                Entry::Occupied(mut o) => {
                    for (e, s) in o.get_mut().iter_mut().zip(&stats) {
                        e.merge(s);
                    }
                }
                Entry::Vacant(v) => {
                    v.insert(stats);
                }
            }
        }
    }
}

/// One thread's share.
#[derive(Default)]
struct Partial {
    groups: GroupedStats,
    cells: usize,
}

/// Folds the matching series' points into [`GroupedStats`], by up to one
/// thread per core; every point read (or presampled bucket read in the
/// place of points) is taken from `budget`, and the
/// (group, bucket) cells may not outnumber its points.
pub fn grouped(db: &Db, req: &StatsRequest<'_>, budget: &Budget) -> Result<GroupedStats> {
    let ids: Vec<SeriesId> = db.read(|view| {
        view.select(req.metric, req.tags)
            .map_err(|e| Error::InvalidPredicate(e.to_string()))
    })?;
    let max_cells = budget.max_points();
    let folds: Vec<Fold<'_>> = req
        .fields
        .iter()
        .zip(req.count_only)
        .map(|(field, &count_only)| Fold {
            field,
            sampling: req.width_ms.map(Sampling::Fixed),
            anchor: if req.width_ms.is_some() { 0 } else { req.start },
            max_buckets: max_cells,
            count_only,
            // A rule's presampled buckets on the epoch grid stand for
            // their points.
            grid: req.width_ms.and_then(|w| Grid::new(0, w)),
            sums: true,
        })
        .collect();
    // Counts take whole chunks from their statistics, which a prefetch
    // would fetch for nothing; chunks over several buckets are read as
    // they are folded.
    let reach = (!req.count_only.iter().all(|&c| c)).then_some(Reach {
        fields: req.fields,
        start: req.start,
        end: req.end,
    });
    let partials = parallel::read_in_parallel(
        db,
        &ids,
        budget,
        reach,
        |view, batch, part: &mut Partial| {
            for id in batch {
                let Some(key) = view.key(*id) else { continue };
                let group: Vec<Option<String>> = req
                    .group_tags
                    .iter()
                    .map(|k| key.tag(k).map(str::to_owned))
                    .collect();
                // The group is looked up once per series, not per bucket.
                let cells = part.groups.entry(group).or_default();
                let before = cells.len();
                for (i, fold) in folds.iter().enumerate() {
                    let crate::stats::Folded { buckets, read, .. } =
                        fold_series(fold, view, *id, req.start, req.end)?;
                    budget.take(read)?;
                    for (bucket, stats) in buckets {
                        match cells.entry(bucket) {
                            Entry::Occupied(mut o) => o.get_mut()[i].merge(&stats),
                            // A new cell takes the series' statistics as
                            // they are.
                            Entry::Vacant(v) => {
                                let mut cell = vec![Stats::default(); folds.len()];
                                cell[i] = stats;
                                v.insert(cell);
                            }
                        }
                    }
                }
                part.cells += cells.len() - before;
                if part.cells > max_cells {
                    return Err(budget.exceeded());
                }
            }
            Ok::<(), Error>(())
        },
    );
    let mut out = GroupedStats::new();
    for part in partials {
        merge_grouped(&mut out, part?.groups);
    }
    // A series without points in the range made an empty group.
    out.retain(|_, cells| !cells.is_empty());
    if out.values().map(BTreeMap::len).sum::<usize>() > max_cells {
        return Err(budget.exceeded());
    }
    Ok(out)
}
