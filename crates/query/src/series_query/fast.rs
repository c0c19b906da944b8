//! The streaming path for the common dashboard query: one field, no value
//! filters, no fill, and a first step that is Count, Sum, Min, Max or Avg.
//! Each series' points fold straight into per-bucket accumulators of its
//! group, so nothing is materialised per row and no cross-series merge
//! sort is needed (those reductions do not depend on the merge order).
//! Block chunks wholly inside one bucket answer Count from their
//! statistics without being decoded.

use super::buckets::Bucketer;
use super::{common_value_of, parallel, steps};
use crate::{Budget, Error, Result};
use std::collections::BTreeMap;
use sundial_model::series_query::{
    Aggregation, GroupOutput, QueryOutput, RangeFn, Row, SeriesQuery,
};
use sundial_model::{FieldValue, SeriesKey, Timestamp};
use sundial_storage::{Db, SeriesId};
use sundial_storage::{Num, NumSlice};

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

#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    /// Exact while every value is a Long and the sum fits.
    /// Exact sum while every value is a Long (i128: never overflows here).
    long_sum: Option<i128>,
    all_long: bool,
    sum: f64,
    min: f64,
    max: f64,
    long_min: i64,
    long_max: i64,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            count: 0,
            long_sum: Some(0),
            all_long: true,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            long_min: i64::MAX,
            long_max: i64::MIN,
        }
    }
}

impl Acc {
    fn add(&mut self, v: &FieldValue) {
        self.count += 1;
        // Only Count reaches here with text (number-only steps are refused
        // on text fields before the scan).
        let Some(f) = v.as_f64() else { return };
        self.sum += f;
        self.min = self.min.min(f);
        self.max = self.max.max(f);
        match v {
            FieldValue::Long(i) => {
                self.long_sum = self.long_sum.map(|s| s + i128::from(*i));
                self.long_min = self.long_min.min(*i);
                self.long_max = self.long_max.max(*i);
            }
            _ => {
                self.all_long = false;
                self.long_sum = None;
            }
        }
    }

    fn add_num(&mut self, v: Num) {
        match v {
            Num::Long(i) => self.add_long(&i),
            Num::Double(d) => self.add_double(&d),
            Num::Bool(b) => self.add_double(&f64::from(u8::from(b))),
        }
    }

    #[inline]
    fn add_long(&mut self, i: &i64) {
        let i = *i;
        self.count += 1;
        self.long_sum = self.long_sum.map(|s| s + i128::from(i));
        self.long_min = self.long_min.min(i);
        self.long_max = self.long_max.max(i);
        let f = i as f64;
        self.sum += f;
        self.min = self.min.min(f);
        self.max = self.max.max(f);
    }

    #[inline]
    fn add_double(&mut self, d: &f64) {
        let d = *d;
        self.count += 1;
        self.all_long = false;
        self.long_sum = None;
        self.sum += d;
        self.min = self.min.min(d);
        self.max = self.max.max(d);
    }

    fn merge(&mut self, o: &Acc) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.all_long &= o.all_long;
        self.long_sum = match (self.long_sum, o.long_sum) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.long_min = self.long_min.min(o.long_min);
        self.long_max = self.long_max.max(o.long_max);
    }

    fn value(&self, func: RangeFn) -> FieldValue {
        match func {
            RangeFn::Count => FieldValue::Long(self.count as i64),
            RangeFn::Sum => match (self.all_long, self.long_sum.map(i64::try_from)) {
                (true, Some(Ok(s))) => FieldValue::Long(s),
                _ => FieldValue::Double(self.sum),
            },
            RangeFn::Avg => FieldValue::Double(self.sum / self.count as f64),
            RangeFn::Max if self.all_long => FieldValue::Long(self.long_max),
            RangeFn::Min if self.all_long => FieldValue::Long(self.long_min),
            RangeFn::Max => FieldValue::Double(self.max),
            _ => FieldValue::Double(self.min),
        }
    }
}

#[derive(Default)]
struct GroupAcc {
    tags: Vec<(String, String)>,
    keys: Vec<SeriesKey>,
    buckets: BTreeMap<Timestamp, Acc>,
}

impl GroupAcc {
    fn absorb(&mut self, other: GroupAcc) {
        self.keys.extend(other.keys);
        for (b, acc) in other.buckets {
            self.buckets.entry(b).or_default().merge(&acc);
        }
    }
}

type GroupMap = BTreeMap<Vec<Option<String>>, GroupAcc>;

/// What every scanning thread shares.
struct Scan<'a> {
    q: &'a SeriesQuery,
    func: RangeFn,
    sampling: Option<sundial_model::series_query::Sampling>,
    field: &'a str,
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
    groups: GroupMap,
    buckets: usize,
}

/// Runs an [`eligible`] query; series are scanned by up to one thread per
/// core, each folding into its own partial groups.
pub(super) fn run(
    db: &Db,
    q: &SeriesQuery,
    ids: &[SeriesId],
    budget: &Budget,
    max_groups: usize,
) -> Result<(QueryOutput, Vec<GroupOutput>)> {
    let Some(Aggregation::Range { func, sampling }) = q.aggregators.first().cloned() else {
        return Err(Error::Internal("fast path on an ineligible query"));
    };
    let field = q.fields.first().cloned().unwrap_or_default();
    let mut group_keys: Vec<&str> = Vec::new();
    for k in &q.group_by {
        if !group_keys.contains(&k.as_str()) {
            group_keys.push(k);
        }
    }
    let scan = Scan {
        q,
        func,
        sampling,
        field: &field,
        group_keys,
        max_groups,
        max_buckets: budget.max_points(),
    };
    // Count answers whole chunks from their statistics: no prefetch.
    let fields = [field.as_str()];
    let (start, end) = q.range();
    let reach = (func != RangeFn::Count).then_some(parallel::Reach {
        fields: &fields,
        start,
        end,
    });
    let partials = parallel::read_in_parallel(db, ids, budget, reach, |view, batch, partial| {
        scan_batch(&scan, view, batch, partial)
    });
    let mut out = QueryOutput::default();
    let mut groups: GroupMap = BTreeMap::new();
    for p in partials {
        let p = p?;
        out.raw_count += p.points;
        out.consumed_count += p.points;
        for (k, g) in p.groups {
            match groups.get_mut(&k) {
                Some(existing) => existing.absorb(g),
                None => {
                    groups.insert(k, g);
                }
            }
        }
    }
    if groups.len() > max_groups {
        return Err(Error::TooManyGroups { limit: max_groups });
    }
    let rendered = render(q, groups, func, budget)?;
    Ok((out, rendered))
}

/// Each group's buckets as rows, through the query's later steps.
fn render(
    q: &SeriesQuery,
    groups: GroupMap,
    func: RangeFn,
    budget: &Budget,
) -> Result<Vec<GroupOutput>> {
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
        let (local, n) = fold_series(scan, view, *id, start, end)?;
        // Points are counted, not limited: this path keeps one
        // accumulator per bucket (limited below), never the points.
        partial.points += n as u64;
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
            .or_insert_with(|| GroupAcc {
                tags: scan
                    .group_keys
                    .iter()
                    .zip(&gk)
                    .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone())))
                    .collect(),
                ..GroupAcc::default()
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

/// Count over one series: it also takes text, and whole chunks inside one
/// bucket are counted from their statistics.
fn count_series(
    scan: &Scan<'_>,
    view: &sundial_storage::Snapshot<'_>,
    id: SeriesId,
    start: Timestamp,
    end: Timestamp,
) -> Result<(BTreeMap<Timestamp, Acc>, usize)> {
    let mut local: BTreeMap<Timestamp, Acc> = BTreeMap::new();
    let mut bucketer = Bucketer::new(scan.sampling, start);
    let parts = view
        .column_parts(id, scan.field, start, end)
        .map_err(Error::from)?;
    let mut n = 0usize;
    let mut points = parts.points;
    let mut extended = false;
    for s in &parts.summaries {
        let b = bucketer.bucket(s.min_ts);
        if b == bucketer.bucket(s.max_ts) {
            local.entry(b).or_default().count += s.count;
            n += s.count as usize;
        } else {
            points.extend(
                view.points(id, scan.field, s.min_ts, s.max_ts)
                    .map_err(Error::from)?,
            );
            extended = true;
        }
    }
    if extended {
        points.sort_by_key(|p| p.0);
    }
    n += points.len();
    let mut current: Option<(Timestamp, Acc)> = None;
    for (t, v) in &points {
        let b = bucketer.bucket(*t);
        match &mut current {
            Some((cb, acc)) if *cb == b => acc.add(v),
            _ => {
                if let Some((b, acc)) = current.take() {
                    local.entry(b).or_default().merge(&acc);
                }
                let mut acc = Acc::default();
                acc.add(v);
                current = Some((b, acc));
            }
        }
    }
    if let Some((b, acc)) = current {
        local.entry(b).or_default().merge(&acc);
    }
    Ok((local, n))
}

/// One series' buckets and the number of stored points they cover.
fn fold_series(
    scan: &Scan<'_>,
    view: &sundial_storage::Snapshot<'_>,
    id: SeriesId,
    start: Timestamp,
    end: Timestamp,
) -> Result<(BTreeMap<Timestamp, Acc>, usize)> {
    if scan.func == RangeFn::Count {
        return count_series(scan, view, id, start, end);
    }
    let mut local: BTreeMap<Timestamp, Acc> = BTreeMap::new();
    let mut bucketer = Bucketer::new(scan.sampling, start);
    let mut n = 0usize;
    let mut too_many = false;
    let numeric = view
        .visit_numeric(id, scan.field, start, end, &mut |ts, values| {
            if too_many {
                return;
            }
            n += ts.len();
            match values {
                NumSlice::Longs(v) => fold_run(&mut bucketer, &mut local, ts, v, Acc::add_long),
                NumSlice::Doubles(v) => fold_run(&mut bucketer, &mut local, ts, v, Acc::add_double),
                NumSlice::Mixed(v) => {
                    fold_run(&mut bucketer, &mut local, ts, v, |a, x| a.add_num(*x));
                }
            }
            if local.len() > scan.max_buckets {
                too_many = true;
            }
        })
        .map_err(Error::from)?;
    if too_many {
        return Err(Error::TooManyPoints {
            limit: scan.max_buckets,
        });
    }
    if !numeric {
        return Ok((BTreeMap::new(), 0));
    }
    Ok((local, n))
}

/// Folds one ascending run into bucket accumulators, touching the map once
/// per bucket.
fn fold_run<T>(
    bucketer: &mut Bucketer,
    local: &mut BTreeMap<Timestamp, Acc>,
    ts: &[Timestamp],
    values: &[T],
    add: impl Fn(&mut Acc, &T),
) {
    let mut current: Option<(Timestamp, Acc)> = None;
    for (t, v) in ts.iter().zip(values) {
        let b = bucketer.bucket(*t);
        match &mut current {
            Some((cb, acc)) if *cb == b => add(acc, v),
            _ => {
                if let Some((cb, acc)) = current.take() {
                    local.entry(cb).or_default().merge(&acc);
                }
                let mut acc = Acc::default();
                add(&mut acc, v);
                current = Some((b, acc));
            }
        }
    }
    if let Some((cb, acc)) = current {
        local.entry(cb).or_default().merge(&acc);
    }
}
