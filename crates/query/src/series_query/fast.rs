//! The streaming path for the common dashboard query: one field, no value
//! filters, no fill, and a first step that is Count, Sum, Min, Max or Avg.
//! Each series' points fold straight into per-bucket accumulators of its
//! group, so nothing is materialised per row and no cross-series merge
//! sort is needed (those reductions do not depend on the merge order).
//! Block chunks wholly inside one bucket answer Count from their
//! statistics without being decoded.

use super::{common_value_of, parallel, steps};
use crate::stats::{Fold, Stats, fold_series};
use crate::{Budget, Error, Result};
use std::collections::BTreeMap;
use sundial_model::series_query::{
    Aggregation, GroupOutput, QueryOutput, RangeFn, Row, Sampling, SeriesQuery,
};
use sundial_model::{FieldValue, SeriesKey, Timestamp};
use sundial_storage::{Db, Grid, SeriesId};

/// Whether [`run`] can answer the query.
pub(super) fn eligible(q: &SeriesQuery) -> bool {
    let simple_first = matches!(
        q.aggregators.first(),
        Some(Aggregation::Range {
            func: RangeFn::Count | RangeFn::Sum | RangeFn::Min | RangeFn::Max | RangeFn::Avg,
            ..
        })
    );
    simple_first
        && q.fields.len() == 1
        && q.branches.len() == 1
        && q.branches.iter().all(|b| b.values.is_empty())
        && q.fills.iter().all(Option::is_none)
}

/// One group's fold: its tags, its series, its buckets.
#[derive(Debug, Default)]
pub struct FoldedGroup {
    pub tags: Vec<(String, String)>,
    pub keys: Vec<SeriesKey>,
    pub buckets: BTreeMap<Timestamp, Stats>,
}

impl FoldedGroup {
    fn absorb(&mut self, other: FoldedGroup) {
        self.keys.extend(other.keys);
        for (b, acc) in other.buckets {
            self.buckets.entry(b).or_default().merge(&acc);
        }
    }
}

/// Groups by their group-by values.
pub(super) type GroupMap = BTreeMap<Vec<Option<String>>, FoldedGroup>;

/// What every scanning thread shares.
struct Scan<'a> {
    q: &'a SeriesQuery,
    fold: Fold<'a>,
    group_keys: Vec<&'a str>,
    max_groups: usize,
    /// Buckets the scan may hold (the query's points limit): a tiny
    /// sampling over a long range must not take the memory.
    max_buckets: usize,
}

/// One thread's share: points counted and partial groups.
#[derive(Default)]
struct Partial {
    points: u64,
    /// Points read, or presampled buckets read in their place.
    read: u64,
    groups: GroupMap,
    buckets: usize,
}

/// Runs an [`eligible`] query: [`fold`], then [`render`].
pub(super) fn run(
    db: &Db,
    q: &SeriesQuery,
    ids: &[SeriesId],
    budget: &Budget,
    max_groups: usize,
    (presampled, rollups): (bool, bool),
) -> Result<(QueryOutput, Vec<GroupOutput>)> {
    let (points, read, groups) = fold(db, q, ids, budget, max_groups, presampled || rollups)?;
    let out = QueryOutput {
        raw_count: points,
        // A rule's hit reports what it read; rollup tiers stand in for
        // the points unseen.
        consumed_count: if presampled { read } else { points },
        ..QueryOutput::default()
    };
    Ok((out, render(q, groups, budget, max_groups)?))
}

/// The first step of an [`eligible`] query over `ids`, per group and
/// bucket, the points it covers and the values it read for them (fewer
/// with `presampled`: chunks' presampled buckets on the sampling's grid
/// stand for their points); series are scanned by up to one thread per
/// core, each folding into its own partial groups.
pub(super) fn fold(
    db: &Db,
    q: &SeriesQuery,
    ids: &[SeriesId],
    budget: &Budget,
    max_groups: usize,
    presampled: bool,
) -> Result<(u64, u64, GroupMap)> {
    let (func, sampling) = first_step(q)?;
    let field = q.fields.first().cloned().unwrap_or_default();
    let mut group_keys: Vec<&str> = Vec::new();
    for k in &q.group_by {
        if !group_keys.contains(&k.as_str()) {
            group_keys.push(k);
        }
    }
    let (start, end) = q.range();
    let scan = Scan {
        q,
        fold: Fold {
            field: &field,
            sampling,
            anchor: start,
            max_buckets: budget.max_points(),
            count_only: func == RangeFn::Count,
            sums: matches!(func, RangeFn::Sum | RangeFn::Avg),
            grid: match sampling {
                Some(Sampling::Fixed(width)) if presampled => Grid::new(start, width),
                _ => None,
            },
        },
        group_keys,
        max_groups,
        max_buckets: budget.max_points(),
    };
    // Counts take whole chunks from their statistics, which a prefetch
    // would fetch for nothing; chunks over several buckets are read as
    // they are folded.
    let fields = [field.as_str()];
    let reach = (func != RangeFn::Count).then_some(parallel::Reach {
        fields: &fields,
        start,
        end,
    });
    let partials = parallel::read_in_parallel(db, ids, budget, reach, |view, batch, partial| {
        scan_batch(&scan, view, batch, partial)
    });
    let (mut points, mut read) = (0, 0);
    let mut groups: GroupMap = BTreeMap::new();
    for p in partials {
        let p = p?;
        points += p.points;
        read += p.read;
        merge(&mut groups, p.groups);
    }
    Ok((points, read, groups))
}

/// Adds `more` groups into `groups` (another thread's, another shard's;
/// a group may come more than once).
pub(super) fn merge(
    groups: &mut GroupMap,
    more: impl IntoIterator<Item = (Vec<Option<String>>, FoldedGroup)>,
) {
    for (k, g) in more {
        match groups.get_mut(&k) {
            Some(existing) => existing.absorb(g),
            None => {
                groups.insert(k, g);
            }
        }
    }
}

fn first_step(q: &SeriesQuery) -> Result<(RangeFn, Option<Sampling>)> {
    match q.aggregators.first() {
        Some(Aggregation::Range { func, sampling }) => Ok((*func, *sampling)),
        _ => Err(Error::Internal("fast path on an ineligible query")),
    }
}

/// Each group's buckets as rows, through the query's later steps.
pub(super) fn render(
    q: &SeriesQuery,
    groups: GroupMap,
    budget: &Budget,
    max_groups: usize,
) -> Result<Vec<GroupOutput>> {
    if groups.len() > max_groups {
        return Err(Error::TooManyGroups { limit: max_groups });
    }
    let (func, _) = first_step(q)?;
    let (start, _) = q.range();
    let field = q.fields.first().cloned().unwrap_or_default();
    let mut rendered = Vec::with_capacity(groups.len());
    for mut g in groups.into_values() {
        budget.check_time()?;
        let mut stream: Vec<(Timestamp, FieldValue)> = g
            .buckets
            .iter()
            .map(|(b, acc)| ((*b).max(start), acc.value(func)))
            .collect();
        for step in q.aggregators.iter().skip(1) {
            stream = steps::apply(step, stream, start, &field)?;
        }
        g.keys.sort();
        let tags: Vec<Option<String>> = q
            .tag_columns
            .iter()
            .map(|k| common_value_of(g.keys.iter(), k))
            .collect();
        let rows = stream
            .into_iter()
            .map(|(t, v)| Row {
                timestamp: t,
                values: smallvec::smallvec![Some(v)],
                tags: tags.clone(),
            })
            .collect();
        rendered.push(GroupOutput { tags: g.tags, rows });
    }
    Ok(rendered)
}

/// Folds one batch of series into a thread's partial groups.
fn scan_batch(
    scan: &Scan<'_>,
    view: &sundial_storage::Snapshot<'_>,
    batch: &[SeriesId],
    partial: &mut Partial,
) -> Result<()> {
    let (start, end) = scan.q.range();
    for id in batch {
        let Some(key) = view.key(*id) else { continue };
        let folded = fold_series(&scan.fold, view, *id, start, end)?;
        let local = folded.buckets;
        // Points are counted, not limited: this path keeps one
        // accumulator per bucket (limited below), never the points.
        partial.points += folded.points as u64;
        partial.read += folded.read as u64;
        if local.is_empty() {
            continue;
        }
        let gk: Vec<Option<String>> = scan
            .group_keys
            .iter()
            .map(|k| key.tag(k).map(str::to_owned))
            .collect();
        if !partial.groups.contains_key(&gk) && partial.groups.len() >= scan.max_groups {
            return Err(Error::TooManyGroups {
                limit: scan.max_groups,
            });
        }
        let g = partial
            .groups
            .entry(gk.clone())
            .or_insert_with(|| FoldedGroup {
                tags: scan
                    .group_keys
                    .iter()
                    .zip(&gk)
                    .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone())))
                    .collect(),
                ..FoldedGroup::default()
            });
        g.keys.push(key);
        let before = g.buckets.len();
        for (b, acc) in local {
            g.buckets.entry(b).or_default().merge(&acc);
        }
        partial.buckets += g.buckets.len() - before;
        if partial.buckets > scan.max_buckets {
            return Err(Error::TooManyPoints {
                limit: scan.max_buckets,
            });
        }
    }
    Ok(())
}
