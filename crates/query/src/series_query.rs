//! Runs a [`SeriesQuery`]: select series per branch, read the fields over
//! the range (plus the fill look-around), keep the rows a branch selects,
//! fill, group, run the aggregator pipeline, order and page.

pub(crate) mod buckets;
mod fast;
mod fill;
mod filter;
pub mod opentsdb;
pub(crate) mod parallel;
#[cfg(test)]
mod presampled_tests;
#[cfg(test)]
mod rollup_tests;
mod rows;
#[cfg(test)]
mod select_tests;
mod steps;
#[cfg(test)]
mod tests;

use crate::{Budget, Error, Result};
use rows::{RowKeys, merge_raw, page};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use sundial_model::series_query::{
    Branch, FillKind, GroupOutput, Order, QueryOutput, Row, RowValues, SeriesQuery,
};
use sundial_model::{FieldValue, Kind, SeriesKey, TagMatch, Timestamp};
use sundial_storage::{Db, SeriesId, Snapshot};

/// Bounds on one query's work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stored points read plus points made by fill.
    pub max_points: usize,
    pub max_groups: usize,
    pub timeout: Duration,
    /// Presampled buckets may stand for the points they summarise (a
    /// query a presampling rule answers; the answer is the same).
    pub presampled: bool,
    /// The database's rollup tiers may stand for the points they
    /// summarise (not with Baidu's `disablePresampling`).
    pub rollups: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_points: 20_000_000,
            max_groups: 100_000,
            timeout: Duration::from_secs(50),
            presampled: false,
            rollups: true,
        }
    }
}

/// Series read per storage read lock, so a long query never holds off
/// writers for long.
const SERIES_PER_READ: usize = 64;

/// One value row of one series.
pub type SeriesRow = (Timestamp, RowValues);
/// A group's `(key, value)` tags and its series.
type Group<T = SeriesData> = (Vec<(String, String)>, Vec<T>);

struct SeriesData {
    key: SeriesKey,
    /// `k1=v1,k2=v2`: the raw order's tie-breaker and the marker text.
    key_text: Arc<str>,
    /// Rows without tag columns: a raw read of one series hands them to
    /// the output as they are.
    rows: Vec<Row>,
}

/// A row of `timestamp` and `values`, its tag columns not yet set.
fn bare_row(timestamp: Timestamp, values: RowValues) -> Row {
    Row {
        timestamp,
        values,
        tags: Vec::new(),
    }
}

/// Field kinds of the queried metric (`None`: never written).
pub fn field_kinds(db: &Db, query: &SeriesQuery) -> Vec<Option<Kind>> {
    db.read(|view| {
        query
            .fields
            .iter()
            .map(|f| view.kind(&query.metric, f))
            .collect()
    })
}

/// A series after its own stages (select, read, value filters, fill):
/// its key and rows.
pub type StagedRows = (SeriesKey, Vec<SeriesRow>);

/// The per-series half of a query over one database, as a shard's owner
/// sends it to a querier: [`finish_series`] merges the halves of every
/// shard. A series lives in one shard, so no series is in two halves.
#[derive(Debug, Default)]
pub struct SeriesHalf {
    /// This database's kind of each queried field.
    pub kinds: Vec<Option<Kind>>,
    pub series: Vec<StagedRows>,
    pub consumed: u64,
    pub raw: u64,
}

pub use fast::FoldedGroup;

/// The per-series half of a query the streaming path answers ([`folds`]):
/// each group's buckets folded over this database's series, as a shard's
/// owner sends them; [`finish_folded`] merges the halves.
#[derive(Debug, Default)]
pub struct FoldedHalf {
    /// This database's kind of each queried field.
    pub kinds: Vec<Option<Kind>>,
    /// Stored points folded.
    pub points: u64,
    /// By group-by values; a group may come more than once (one per
    /// shard), and [`finish_folded`] merges them.
    pub groups: Vec<(Vec<Option<String>>, FoldedGroup)>,
}

/// Whether the query's first step folds per bucket (count, sum, min,
/// max, avg of one field, no value filter, no fill): then shards send
/// [`FoldedHalf`]s, not rows.
pub fn folds(query: &SeriesQuery) -> bool {
    fast::eligible(query)
}

/// The per-series half of a [`folds`] query over one database.
pub fn stage_folded(
    db: &Db,
    query: &SeriesQuery,
    budget: &Budget,
    max_groups: usize,
) -> Result<FoldedHalf> {
    let kinds = field_kinds(db, query);
    if check_kinds(query, &kinds).is_err() {
        // The querier refuses it as one node would, before any scan.
        return Ok(FoldedHalf {
            kinds,
            ..FoldedHalf::default()
        });
    }
    let ids: Vec<SeriesId> = match_series(db, query)?.into_keys().collect();
    let (points, _, groups) = fast::fold(db, query, &ids, budget, max_groups, false)?;
    Ok(FoldedHalf {
        kinds,
        points,
        groups: groups.into_iter().collect(),
    })
}

/// The group half of a [`folds`] query: every shard's groups merged,
/// rendered and paged as one database's would be.
pub fn finish_folded(
    query: &SeriesQuery,
    halves: Vec<FoldedHalf>,
    limits: Limits,
) -> Result<QueryOutput> {
    let budget = Budget::new(limits.timeout, limits.max_points);
    check_kinds(query, &merged_kinds(query, halves.iter().map(|h| &h.kinds)))?;
    let mut points = 0;
    let mut groups = fast::GroupMap::new();
    for half in halves {
        points += half.points;
        fast::merge(&mut groups, half.groups);
    }
    let rendered = fast::render(query, groups, &budget, limits.max_groups)?;
    let out = QueryOutput {
        raw_count: points,
        consumed_count: points,
        ..QueryOutput::default()
    };
    page_folded(query, out, rendered)
}

/// Each field's kind in the first half that knows it.
fn merged_kinds<'a>(
    query: &SeriesQuery,
    halves: impl Iterator<Item = &'a Vec<Option<Kind>>>,
) -> Vec<Option<Kind>> {
    let mut kinds: Vec<Option<Kind>> = vec![None; query.fields.len()];
    for half in halves {
        for (kind, theirs) in kinds.iter_mut().zip(half) {
            *kind = kind.or(*theirs);
        }
    }
    kinds
}

/// Runs one query within `limits`.
pub fn execute_series(db: &Db, query: &SeriesQuery, limits: Limits) -> Result<QueryOutput> {
    let budget = Budget::new(limits.timeout, limits.max_points);
    check_kinds(query, &field_kinds(db, query))?;
    let start = query.range().0;
    let (read_start, read_end) = read_range(query);
    let matched = match_series(db, query)?;

    if fast::eligible(query) {
        return run_fast(db, query, matched, &budget, limits);
    }
    let mut out = QueryOutput::default();
    let series = read_series(
        db,
        query,
        matched,
        (read_start, read_end),
        &budget,
        &mut out,
    )?;
    let groups = group(&query.group_by, series, |s| &s.key, limits.max_groups)?;
    let raw = query.is_raw();
    let rendered = render_groups(query, groups, &budget, start)?;
    page(query, raw, rendered, &mut out)?;
    Ok(out)
}

/// The per-series half of [`execute_series`] over one database, without
/// the statistics shortcut: every selected row crosses to the querier.
pub fn stage_series_rows(db: &Db, query: &SeriesQuery, budget: &Budget) -> Result<SeriesHalf> {
    let kinds = field_kinds(db, query);
    let matched = match_series(db, query)?;
    let mut out = QueryOutput::default();
    let series = read_series(db, query, matched, read_range(query), budget, &mut out)?;
    Ok(SeriesHalf {
        kinds,
        series: series
            .into_iter()
            .map(|s| {
                let rows = s.rows.into_iter().map(|r| (r.timestamp, r.values));
                (s.key, rows.collect())
            })
            .collect(),
        consumed: out.consumed_count,
        raw: out.raw_count,
    })
}

/// The group half of [`execute_series`]: every shard's half merged,
/// grouped, aggregated and paged as one database's would be.
pub fn finish_series(
    query: &SeriesQuery,
    halves: Vec<SeriesHalf>,
    limits: Limits,
) -> Result<QueryOutput> {
    let budget = Budget::new(limits.timeout, limits.max_points);
    check_kinds(query, &merged_kinds(query, halves.iter().map(|h| &h.kinds)))?;
    let mut out = QueryOutput::default();
    let mut series = Vec::new();
    for half in halves {
        out.consumed_count += half.consumed;
        out.raw_count += half.raw;
        series.extend(half.series.into_iter().map(|(key, rows)| SeriesData {
            key_text: key_text(&key),
            key,
            rows: rows.into_iter().map(|(t, v)| bare_row(t, v)).collect(),
        }));
    }
    series.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let groups = group(&query.group_by, series, |s| &s.key, limits.max_groups)?;
    let rendered = render_groups(query, groups, &budget, query.range().0)?;
    page(query, query.is_raw(), rendered, &mut out)?;
    Ok(out)
}

/// The time a query's rows are read from: its range, widened as far as a
/// fill may look for neighbours.
pub fn read_range(query: &SeriesQuery) -> (Timestamp, Timestamp) {
    let (start, end) = query.range();
    let look = look_around(query);
    (start.saturating_sub(look), end.saturating_add(look))
}

/// How far before and after the range a fill may look for neighbours.
fn look_around(query: &SeriesQuery) -> i64 {
    query
        .fills
        .iter()
        .flatten()
        .filter(|f| !matches!(f.kind, FillKind::Fixed(_)))
        .map(|f| f.max_write_interval_ms)
        .max()
        .unwrap_or(0)
}

/// Series and the branches whose tag predicates they satisfy.
fn match_series(db: &Db, query: &SeriesQuery) -> Result<BTreeMap<SeriesId, Vec<usize>>> {
    let mut matched: BTreeMap<SeriesId, Vec<usize>> = BTreeMap::new();
    db.read(|view| -> Result<()> {
        for (i, branch) in query.branches.iter().enumerate() {
            for id in select(&view, &query.metric, &branch.tags)? {
                matched.entry(id).or_default().push(i);
            }
        }
        Ok(())
    })?;
    Ok(matched)
}

/// The ids of the metric's series whose tags satisfy `tags`.
fn select(view: &Snapshot<'_>, metric: &str, tags: &[TagMatch]) -> Result<Vec<SeriesId>> {
    view.select(metric, tags)
        .map_err(|e| Error::InvalidPredicate(e.to_string()))
}

/// What one read thread keeps: its series (by id, to restore the id
/// order) and the counts of [`QueryOutput`].
#[derive(Default)]
struct ReadPart {
    series: Vec<(SeriesId, SeriesData)>,
    consumed: u64,
    raw: u64,
}

/// Reads the matched series in parallel batches and keeps their selected
/// rows, in series id order.
fn read_series(
    db: &Db,
    query: &SeriesQuery,
    matched: BTreeMap<SeriesId, Vec<usize>>,
    (read_start, read_end): (Timestamp, Timestamp),
    budget: &Budget,
    out: &mut QueryOutput,
) -> Result<Vec<SeriesData>> {
    let ids: Vec<SeriesId> = matched.keys().copied().collect();
    let fields: Vec<&str> = query.fields.iter().map(String::as_str).collect();
    let reach = parallel::Reach {
        fields: &fields,
        start: read_start,
        end: read_end,
    };
    let parts = parallel::read_in_parallel(
        db,
        &ids,
        budget,
        Some(reach),
        |view, batch, part: &mut ReadPart| {
            for id in batch {
                // A series deleted since it matched is skipped.
                let Some(key) = view.key(*id) else { continue };
                let branches = matched.get(id).map_or(&[][..], Vec::as_slice);
                let mut cols = Vec::with_capacity(query.fields.len());
                for f in &query.fields {
                    cols.push(view.points(*id, f, read_start, read_end)?);
                }
                let read_points: usize = cols.iter().map(Vec::len).sum();
                budget.take(read_points)?;
                part.consumed += read_points as u64;
                if let Some(data) = select_rows(query, key, cols, branches, &mut part.raw, budget)?
                {
                    part.series.push((*id, data));
                }
            }
            Ok(())
        },
    );
    let mut series = Vec::new();
    for part in parts {
        let part = part?;
        out.consumed_count += part.consumed;
        out.raw_count += part.raw;
        series.extend(part.series);
    }
    series.sort_unstable_by_key(|(id, _)| *id);
    Ok(series.into_iter().map(|(_, s)| s).collect())
}

/// The whole query on chunk statistics where it is [`fast::eligible`].
fn run_fast(
    db: &Db,
    query: &SeriesQuery,
    matched: BTreeMap<SeriesId, Vec<usize>>,
    budget: &Budget,
    limits: Limits,
) -> Result<QueryOutput> {
    let ids: Vec<SeriesId> = matched.into_keys().collect();
    let (out, groups) = fast::run(
        db,
        query,
        &ids,
        budget,
        limits.max_groups,
        (limits.presampled, limits.rollups),
    )?;
    page_folded(query, out, groups)
}

/// The streaming path's groups in the query's order, paged.
fn page_folded(
    query: &SeriesQuery,
    mut out: QueryOutput,
    groups: Vec<GroupOutput>,
) -> Result<QueryOutput> {
    let mut rendered: Vec<(GroupOutput, RowKeys)> = groups
        .into_iter()
        .map(|mut g| {
            if query.order == Order::Desc {
                g.rows.reverse();
            }
            (g, RowKeys::default())
        })
        .collect();
    if rendered.is_empty() && !query.grouped {
        rendered.push((GroupOutput::default(), RowKeys::default()));
    }
    page(query, false, rendered, &mut out)?;
    Ok(out)
}

/// Each group's rows, merged or aggregated, in the query's order; one
/// empty group for an ungrouped query that matched nothing.
fn render_groups(
    query: &SeriesQuery,
    groups: Vec<Group>,
    budget: &Budget,
    start: Timestamp,
) -> Result<Vec<(GroupOutput, RowKeys)>> {
    let mut rendered: Vec<(GroupOutput, RowKeys)> = Vec::with_capacity(groups.len());
    for (tags, members) in groups {
        budget.check_time()?;
        let (mut rows, mut keys) = if query.aggregators.is_empty() {
            merge_raw(query, members)
        } else {
            (aggregate(query, &members, start)?, RowKeys::default())
        };
        if query.order == Order::Desc {
            rows.reverse();
            keys.reverse();
        }
        rendered.push((GroupOutput { tags, rows }, keys));
    }
    if rendered.is_empty() && !query.grouped {
        rendered.push((GroupOutput::default(), RowKeys::default()));
    }
    Ok(rendered)
}

/// Number-only steps on a text field fail even when the range is empty.
fn check_kinds(query: &SeriesQuery, kinds: &[Option<Kind>]) -> Result<()> {
    // Steps after a Count see numbers whatever the field holds.
    let on_field = query.aggregators.iter().take_while(|a| {
        !matches!(
            a,
            sundial_model::series_query::Aggregation::Range {
                func: sundial_model::series_query::RangeFn::Count,
                ..
            }
        )
    });
    let Some(step) = on_field.clone().find(|a| a.needs_numbers()) else {
        return Ok(());
    };
    for (field, kind) in query.fields.iter().zip(kinds.iter().copied()) {
        if let Some(k @ (Kind::String | Kind::Bytes)) = kind {
            return Err(Error::NumberRequired {
                step: steps::step_name(step).to_owned(),
                field: field.clone(),
                found: if k == Kind::String { "String" } else { "Bytes" },
            });
        }
    }
    Ok(())
}

/// Keeps the rows some branch selects, and fills. `None` when nothing of
/// the series remains.
fn select_rows(
    query: &SeriesQuery,
    key: SeriesKey,
    cols: Vec<Vec<(Timestamp, FieldValue)>>,
    branches: &[usize],
    raw_count: &mut u64,
    budget: &Budget,
) -> Result<Option<SeriesData>> {
    let Selected {
        mut kept,
        values,
        before,
        after,
    } = match plain_branch(query, &cols, branches) {
        Some(branch) => select_plain(query, branch, cols),
        None => select_joined(query, &key, cols, branches),
    };
    *raw_count += values;
    if kept.is_empty() {
        return Ok(None);
    }
    fill_fields(query, &mut kept, &before, &after, budget)?;
    let key_text = key_text(&key);
    Ok(Some(SeriesData {
        key,
        key_text,
        rows: kept,
    }))
}

/// The rows of a series that some branch selects, and each field's
/// look-around candidates for fill: the last point before the query's
/// range and the first after it.
#[derive(Debug, PartialEq)]
struct Selected {
    kept: Vec<Row>,
    /// Values in the kept rows.
    values: u64,
    before: Vec<Option<(Timestamp, FieldValue)>>,
    after: Vec<Option<(Timestamp, FieldValue)>>,
}

/// Joins the fields into rows and tests each against the branches.
fn select_joined(
    query: &SeriesQuery,
    key: &SeriesKey,
    cols: Vec<Vec<(Timestamp, FieldValue)>>,
    branches: &[usize],
) -> Selected {
    let (start, end) = query.range();
    // Most rows are kept: sized once rather than grown by copies.
    let mut kept: Vec<Row> = Vec::with_capacity(cols.iter().map(Vec::len).max().unwrap_or(0));
    let mut values_kept = 0;
    let rows = join_fields(cols);
    let mut before: Vec<Option<(Timestamp, FieldValue)>> = vec![None; query.fields.len()];
    let mut after: Vec<Option<(Timestamp, FieldValue)>> = vec![None; query.fields.len()];
    for (ts, values) in rows {
        let in_range = (start..=end).contains(&ts);
        let passes = branches.iter().any(|&b| {
            query.branches.get(b).is_some_and(|br| {
                (!in_range || (br.start..=br.end).contains(&ts))
                    && filter::row_passes(&br.values, &query.fields, &values, key)
            })
        });
        if !passes {
            continue;
        }
        if in_range {
            values_kept += values.iter().flatten().count() as u64;
            kept.push(bare_row(ts, values));
        } else {
            let slot = if ts < start { &mut before } else { &mut after };
            for (s, v) in slot.iter_mut().zip(values) {
                if let Some(v) = v
                    && (ts < start || s.is_none())
                {
                    *s = Some((ts, v));
                }
            }
        }
    }
    Selected {
        kept,
        values: values_kept,
        before,
        after,
    }
}

/// The branch of a one-field read that one branch without value
/// conditions selects (most raw reads): [`select_plain`] takes its rows.
fn plain_branch<'q>(
    query: &'q SeriesQuery,
    cols: &[Vec<(Timestamp, FieldValue)>],
    branches: &[usize],
) -> Option<&'q Branch> {
    let (start, end) = query.range();
    match (cols, branches) {
        ([_], [b]) if start <= end => query.branches.get(*b).filter(|br| br.values.is_empty()),
        _ => None,
    }
}

/// [`select_joined`] for a [`plain_branch`]. The column ascends by time,
/// so the kept rows are one slice of it, moved out in one pass (testing
/// and moving each row on its own took a fifth of a raw read's time), and
/// the look-around candidates are the slice's neighbours outside the
/// query's range.
fn select_plain(
    query: &SeriesQuery,
    branch: &Branch,
    cols: Vec<Vec<(Timestamp, FieldValue)>>,
) -> Selected {
    let (start, end) = query.range();
    let mut col = cols.into_iter().next().unwrap_or_default();
    let from_time =
        |col: &[(Timestamp, FieldValue)], t: Timestamp| col.partition_point(|(ts, _)| *ts < t);
    let past_time =
        |col: &[(Timestamp, FieldValue)], t: Timestamp| col.partition_point(|(ts, _)| *ts <= t);
    let before = from_time(&col, start)
        .checked_sub(1)
        .and_then(|i| col.get(i))
        .cloned();
    let after = col.get(past_time(&col, end)).cloned();
    let from = from_time(&col, start.max(branch.start));
    let to = past_time(&col, end.min(branch.end)).max(from);
    col.truncate(to);
    let kept: Vec<Row> = col
        .drain(from..)
        .map(|(t, v)| bare_row(t, smallvec::smallvec![Some(v)]))
        .collect();
    Selected {
        values: kept.len() as u64,
        kept,
        before: vec![before],
        after: vec![after],
    }
}

/// Fills each field with a fill policy over the kept rows, from its
/// look-around neighbours.
fn fill_fields(
    query: &SeriesQuery,
    kept: &mut Vec<Row>,
    before: &[Option<(Timestamp, FieldValue)>],
    after: &[Option<(Timestamp, FieldValue)>],
    budget: &Budget,
) -> Result<()> {
    let (start, end) = query.range();
    let fill_end = end.min(query.now);
    for (i, spec) in query.fills.iter().enumerate() {
        let Some(spec) = spec else { continue };
        let raw: Vec<(Timestamp, FieldValue)> = kept
            .iter()
            .filter_map(|r| r.values.get(i).cloned().flatten().map(|v| (r.timestamp, v)))
            .collect();
        // Each field looks around only as far as its own maxWriteInterval
        // (the read covered the widest of them).
        let reach = match spec.kind {
            FillKind::Fixed(_) => 0,
            _ => spec.max_write_interval_ms,
        };
        let before = before
            .get(i)
            .and_then(Option::as_ref)
            .filter(|(t, _)| start.saturating_sub(*t) <= reach);
        let after = after
            .get(i)
            .and_then(Option::as_ref)
            .filter(|(t, _)| t.saturating_sub(end) <= reach);
        let filled = fill::fill(spec, &raw, before, after, start, fill_end, budget.left())
            .ok_or_else(|| budget.exceeded())?;
        budget.take(filled.len())?;
        insert_filled(kept, i, query.fields.len(), filled);
    }
    Ok(())
}

/// The tags as `k=v,...`: `,` `=` `\` escaped so that two tag sets never
/// render alike.
fn key_text(key: &SeriesKey) -> Arc<str> {
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace('=', "\\=")
    };
    key.tags
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(",")
        .into()
}

/// Rows `(ts, one value per field)` from per-field ascending columns,
/// ascending by time: one field's point by point as they come (no copy of
/// the column first), several joined by time.
fn join_fields(mut cols: Vec<Vec<(Timestamp, FieldValue)>>) -> impl Iterator<Item = SeriesRow> {
    let width = cols.len();
    let (single, joined) = match width {
        1 => (cols.pop(), None),
        _ => (None, Some(join_by_time(cols))),
    };
    let single = single
        .into_iter()
        .flatten()
        .map(|(t, v)| (t, smallvec::smallvec![Some(v)]));
    single.chain(joined.into_iter().flatten())
}

/// Several fields' points joined by time, a slot per field.
fn join_by_time(cols: Vec<Vec<(Timestamp, FieldValue)>>) -> BTreeMap<Timestamp, RowValues> {
    let width = cols.len();
    let mut rows: BTreeMap<Timestamp, RowValues> = BTreeMap::new();
    for (i, col) in cols.into_iter().enumerate() {
        for (t, v) in col {
            let row = rows
                .entry(t)
                .or_insert_with(|| smallvec::smallvec![None; width]);
            if let Some(slot) = row.get_mut(i) {
                *slot = Some(v);
            }
        }
    }
    rows
}

fn insert_filled(
    rows: &mut Vec<Row>,
    field: usize,
    width: usize,
    filled: Vec<(Timestamp, FieldValue)>,
) {
    if filled.is_empty() {
        return;
    }
    let mut map: BTreeMap<Timestamp, RowValues> = std::mem::take(rows)
        .into_iter()
        .map(|r| (r.timestamp, r.values))
        .collect();
    for (t, v) in filled {
        let row = map
            .entry(t)
            .or_insert_with(|| smallvec::smallvec![None; width]);
        if let Some(slot) = row.get_mut(field)
            && slot.is_none()
        {
            *slot = Some(v);
        }
    }
    *rows = map.into_iter().map(|(t, v)| bare_row(t, v)).collect();
}

/// Splits `items` by the values of the `group_by` tags in their series
/// keys, groups in key order, each keeping its items' order. A group is
/// the present `(key, value)`s and its items.
fn group<T>(
    group_by: &[String],
    items: Vec<T>,
    key_of: impl Fn(&T) -> &SeriesKey,
    max_groups: usize,
) -> Result<Vec<Group<T>>> {
    let mut keys: Vec<&str> = Vec::new();
    for k in group_by {
        if !keys.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    let mut groups: BTreeMap<Vec<Option<String>>, Group<T>> = BTreeMap::new();
    for item in items {
        let key = key_of(&item);
        let values: Vec<Option<String>> =
            keys.iter().map(|k| key.tag(k).map(str::to_owned)).collect();
        if !groups.contains_key(&values) && groups.len() >= max_groups {
            return Err(Error::TooManyGroups { limit: max_groups });
        }
        let tags = keys
            .iter()
            .zip(&values)
            .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        groups
            .entry(values)
            .or_insert_with(|| (tags, Vec::new()))
            .1
            .push(item);
    }
    Ok(groups.into_values().collect())
}

/// Each field's merged stream through the pipeline, outputs joined on
/// timestamp (the n-th row at a timestamp pairs with the n-th of another
/// field).
fn aggregate(query: &SeriesQuery, members: &[SeriesData], start: Timestamp) -> Result<Vec<Row>> {
    let width = query.fields.len();
    let mut joined: BTreeMap<(Timestamp, usize), RowValues> = BTreeMap::new();
    for (fi, field) in query.fields.iter().enumerate() {
        let mut stream: Vec<(Timestamp, &str, FieldValue)> = Vec::new();
        for s in members {
            for r in &s.rows {
                if let Some(Some(v)) = r.values.get(fi) {
                    stream.push((r.timestamp, &*s.key_text, v.clone()));
                }
            }
        }
        stream.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut points: Vec<(Timestamp, FieldValue)> =
            stream.into_iter().map(|(t, _, v)| (t, v)).collect();
        for step in &query.aggregators {
            points = steps::apply(step, points, start, field)?;
        }
        let mut seen: Option<(Timestamp, usize)> = None;
        for (t, v) in points {
            let n = match seen {
                Some((pt, n)) if pt == t => n + 1,
                _ => 0,
            };
            seen = Some((t, n));
            let row = joined
                .entry((t, n))
                .or_insert_with(|| smallvec::smallvec![None; width]);
            if let Some(slot) = row.get_mut(fi) {
                *slot = Some(v);
            }
        }
    }
    let tags: Vec<Option<String>> = query
        .tag_columns
        .iter()
        .map(|k| common_value_of(members.iter().map(|s| &s.key), k))
        .collect();
    Ok(joined
        .into_iter()
        .map(|((t, _), values)| Row {
            timestamp: t,
            values,
            tags: tags.clone(),
        })
        .collect())
}

/// The tag's value when every series of the group has that same value.
fn common_value_of<'a>(keys: impl Iterator<Item = &'a SeriesKey>, key: &str) -> Option<String> {
    let mut value: Option<&str> = None;
    for k in keys {
        let v = k.tag(key)?;
        match value {
            Some(prev) if prev != v => return None,
            _ => value = Some(v),
        }
    }
    value.map(str::to_owned)
}
