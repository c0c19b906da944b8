//! Per-bucket statistics of one series' points (count, sum, min, max,
//! with exact integer forms while every value is a Long), folded straight
//! from the storage scan: nothing is materialised per point, and for a
//! count, block chunks wholly inside one bucket answer from their
//! statistics undecoded. The JSON query's streaming path and SQL's
//! aggregate push-down ([`grouped`]) both fold with them.

mod grouped;

pub use grouped::{GroupedStats, StatsRequest, grouped, grouped_by, merge_grouped};

use crate::series_query::buckets::{Bucketer, count_before};
use crate::{Error, Result};
use std::collections::BTreeMap;
use sundial_model::series_query::{RangeFn, Sampling};
use sundial_model::{ExactSum, FieldValue, Timestamp};
use sundial_storage::{
    BucketStats, ChunkSummary, ExactStats, Grid, Num, NumSlice, NumericPart, SeriesId,
};

/// The statistics of the points of one bucket. Sums are exact until
/// read, so any split of the points into buckets, chunks, series, shards
/// or threads, merged in any order, gives the same answer as adding the
/// points row by row with [`ExactSum`].
#[derive(Debug, Clone)]
pub struct Stats {
    pub count: u64,
    /// The Long values' sum (i128: never overflows here).
    long_sum: i128,
    /// The other values' sum (Booleans as 1 and 0).
    double_sum: ExactSum,
    all_long: bool,
    min: f64,
    max: f64,
    long_min: i64,
    long_max: i64,
}

/// Equal when they stand for the same statistics: the typed extremes
/// count only while every value is a Long (chunks of other values do not
/// keep them).
impl PartialEq for Stats {
    fn eq(&self, o: &Self) -> bool {
        self.count == o.count
            && self.long_sum == o.long_sum
            && self.double_sum == o.double_sum
            && self.all_long == o.all_long
            && self.min == o.min
            && self.max == o.max
            && (!self.all_long || (self.long_min, self.long_max) == (o.long_min, o.long_max))
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            count: 0,
            long_sum: 0,
            double_sum: ExactSum::default(),
            all_long: true,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            long_min: i64::MAX,
            long_max: i64::MIN,
        }
    }
}

impl Stats {
    pub(crate) fn add(&mut self, v: &FieldValue) {
        match v {
            FieldValue::Long(i) => self.add_long(i),
            FieldValue::Double(d) => self.add_double(d),
            FieldValue::Bool(b) => self.add_double(&f64::from(u8::from(*b))),
            // Only Count reaches here with text (number-only steps are
            // refused on text fields before the scan).
            FieldValue::String(_) | FieldValue::Bytes(_) => self.count += 1,
        }
    }

    pub(crate) fn add_num(&mut self, v: Num) {
        match v {
            Num::Long(i) => self.add_long(&i),
            Num::Double(d) => self.add_double(&d),
            Num::Bool(b) => self.add_double(&f64::from(u8::from(b))),
        }
    }

    #[inline]
    pub(crate) fn add_long(&mut self, i: &i64) {
        let i = *i;
        self.count += 1;
        self.long_sum += i128::from(i);
        self.long_min = self.long_min.min(i);
        self.long_max = self.long_max.max(i);
        let f = i as f64;
        self.min = self.min.min(f);
        self.max = self.max.max(f);
    }

    #[inline]
    pub(crate) fn add_double(&mut self, d: &f64) {
        let d = *d;
        self.count += 1;
        self.all_long = false;
        self.double_sum.add(d);
        self.min = self.min.min(d);
        self.max = self.max.max(d);
    }

    /// Adds a run of Longs.
    fn add_longs(&mut self, v: &[i64]) {
        if v.is_empty() {
            return;
        }
        self.count = self.count.saturating_add(v.len() as u64);
        for i in v {
            self.long_sum = self.long_sum.saturating_add(i128::from(*i));
            self.long_min = self.long_min.min(*i);
            self.long_max = self.long_max.max(*i);
        }
        self.min = self.min.min(self.long_min as f64);
        self.max = self.max.max(self.long_max as f64);
    }

    /// Adds a run of Doubles; `sums`: their sum is wanted (a fold for
    /// minimum, maximum or count leaves it out).
    fn add_doubles(&mut self, v: &[f64], sums: bool) {
        if v.is_empty() {
            return;
        }
        self.count = self.count.saturating_add(v.len() as u64);
        self.all_long = false;
        let (lo, hi) = if sums {
            self.double_sum.add_slice(v)
        } else {
            v.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(*x), hi.max(*x))
                })
        };
        (self.min, self.max) = (self.min.min(lo), self.max.max(hi));
    }

    /// Adds a whole block chunk from its exact statistics.
    pub(crate) fn add_chunk(&mut self, s: &ChunkSummary, exact: &ExactStats) {
        self.add_summary(s.count, s.all_long, (s.stats.min, s.stats.max), exact);
    }

    /// Adds one presampled bucket of a chunk.
    pub(crate) fn add_bucket(&mut self, b: &BucketStats) {
        self.add_summary(b.count, b.all_long, (b.min, b.max), &b.exact);
    }

    fn add_summary(&mut self, count: u64, all_long: bool, (min, max): (f64, f64), e: &ExactStats) {
        // Saturating: the statistics come from files and peers.
        self.count = self.count.saturating_add(count);
        self.long_sum = self.long_sum.saturating_add(e.long_sum);
        if !e.double_sum.is_zero() {
            self.double_sum.merge(&e.double_sum);
        }
        self.all_long &= all_long;
        // Longs past 2^53 have inexact doubles: the typed extremes hold.
        if all_long {
            self.long_min = self.long_min.min(e.long_min);
            self.long_max = self.long_max.max(e.long_max);
            self.min = self.min.min(e.long_min as f64);
            self.max = self.max.max(e.long_max as f64);
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.count = self.count.saturating_add(o.count);
        self.long_sum = self.long_sum.saturating_add(o.long_sum);
        if !o.double_sum.is_zero() {
            self.double_sum.merge(&o.double_sum);
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.all_long &= o.all_long;
        self.long_min = self.long_min.min(o.long_min);
        self.long_max = self.long_max.max(o.long_max);
    }

    /// Its parts, to send to another node ([`Stats::from_parts`] makes it
    /// again).
    pub fn parts(&self) -> StatsParts {
        StatsParts {
            count: self.count,
            long_sum: self.long_sum,
            double_sum: self.double_sum.clone(),
            all_long: self.all_long,
            min: self.min,
            max: self.max,
            long_min: self.long_min,
            long_max: self.long_max,
        }
    }

    pub fn from_parts(p: StatsParts) -> Self {
        Self {
            count: p.count,
            long_sum: p.long_sum,
            double_sum: p.double_sum,
            all_long: p.all_long,
            min: p.min,
            max: p.max,
            long_min: p.long_min,
            long_max: p.long_max,
        }
    }

    /// The exact sum while every value was a Long.
    pub fn long_sum(&self) -> Option<i128> {
        self.all_long.then_some(self.long_sum)
    }

    /// Every value's sum, rounded once.
    fn total(&self) -> f64 {
        if self.double_sum.is_zero() {
            return self.long_sum as f64;
        }
        let mut sum = self.double_sum.clone();
        sum.add_integer(self.long_sum);
        sum.value()
    }

    /// The statistic `func` stands for (Count, Sum, Avg, Min, Max; Avg of
    /// no points is NaN).
    pub fn value(&self, func: RangeFn) -> FieldValue {
        match func {
            RangeFn::Count => FieldValue::Long(self.count as i64),
            RangeFn::Sum => match self.long_sum().map(i64::try_from) {
                Some(Ok(s)) => FieldValue::Long(s),
                _ => FieldValue::Double(self.total()),
            },
            RangeFn::Avg => FieldValue::Double(self.total() / self.count as f64),
            RangeFn::Max if self.all_long => FieldValue::Long(self.long_max),
            RangeFn::Min if self.all_long => FieldValue::Long(self.long_min),
            RangeFn::Max => FieldValue::Double(self.max),
            _ => FieldValue::Double(self.min),
        }
    }
}

/// A [`Stats`] as plain values, for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsParts {
    pub count: u64,
    pub long_sum: i128,
    pub double_sum: ExactSum,
    pub all_long: bool,
    pub min: f64,
    pub max: f64,
    pub long_min: i64,
    pub long_max: i64,
}

/// How one series' points are folded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fold<'a> {
    pub(crate) field: &'a str,
    /// `None`: one bucket starting at `anchor`.
    pub(crate) sampling: Option<Sampling>,
    /// Fixed widths count from here (the JSON query's start; SQL's
    /// `time_bucket` counts from the epoch).
    pub(crate) anchor: Timestamp,
    /// Buckets one series may make before the fold fails.
    pub(crate) max_buckets: usize,
    /// Only counts are wanted: text counts too, whole chunks inside one
    /// bucket are counted from their statistics, and runs of points from
    /// their times (their buckets' other statistics stay unset).
    pub(crate) count_only: bool,
    /// Presampled buckets on this grid (the sampling's) may stand for the
    /// chunks that carry them.
    pub(crate) grid: Option<Grid>,
    /// Sums are wanted (Sum, Avg; SQL may ask anything): a fold for
    /// minimum, maximum or count skips adding the doubles exactly.
    pub(crate) sums: bool,
}

/// One series' buckets, the stored points they cover, and the values read
/// to make them (points, or presampled buckets standing for points).
#[derive(Debug, Default)]
pub(crate) struct Folded {
    pub(crate) buckets: BTreeMap<Timestamp, Stats>,
    pub(crate) points: usize,
    pub(crate) read: usize,
}

/// Count over one text column (numeric ones count in [`fold_series`]'s
/// runs, from the decoded times): its points are read whole.
fn count_series(
    scan: &Fold<'_>,
    view: &sundial_storage::Snapshot<'_>,
    id: SeriesId,
    start: Timestamp,
    end: Timestamp,
) -> Result<(BTreeMap<Timestamp, Stats>, usize)> {
    let mut local: BTreeMap<Timestamp, Stats> = BTreeMap::new();
    let mut bucketer = Bucketer::new(scan.sampling, scan.anchor);
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
    let mut current: Option<(Timestamp, Stats)> = None;
    for (t, v) in &points {
        let b = bucketer.bucket(*t);
        match &mut current {
            Some((cb, acc)) if *cb == b => acc.add(v),
            _ => {
                if let Some((b, acc)) = current.take() {
                    local.entry(b).or_default().merge(&acc);
                }
                let mut acc = Stats::default();
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

/// [`count_series`] as a [`Folded`].
fn counted(
    scan: &Fold<'_>,
    view: &sundial_storage::Snapshot<'_>,
    id: SeriesId,
    (start, end): (Timestamp, Timestamp),
) -> Result<Folded> {
    let (buckets, points) = count_series(scan, view, id, start, end)?;
    Ok(Folded {
        buckets,
        points,
        read: points,
    })
}

/// One series' buckets: whole chunks inside one bucket fold from their
/// statistics, whole chunks over several from their presampled buckets
/// when the fold's grid allows, the rest point by point.
pub(crate) fn fold_series(
    scan: &Fold<'_>,
    view: &sundial_storage::Snapshot<'_>,
    id: SeriesId,
    start: Timestamp,
    end: Timestamp,
) -> Result<Folded> {
    let mut local: BTreeMap<Timestamp, Stats> = BTreeMap::new();
    let mut bucketer = Bucketer::new(scan.sampling, scan.anchor);
    let (mut n, mut read) = (0usize, 0usize);
    let mut too_many = false;
    let mut gaps: Vec<(Timestamp, Timestamp)> = Vec::new();
    let numeric = view
        .visit_numeric_parts(id, scan.field, start, end, &mut |part| {
            if too_many {
                return true;
            }
            match part {
                NumericPart::Chunk(whole) => {
                    let (s, exact) = (&whole.summary, &whole.exact);
                    let b = bucketer.bucket(s.min_ts);
                    if b == bucketer.bucket(s.max_ts) {
                        n = n.saturating_add(s.count as usize);
                        read = read.saturating_add(s.count as usize);
                        local.entry(b).or_default().add_chunk(s, exact);
                    } else {
                        let Some(grid) = scan.grid else {
                            return false;
                        };
                        let Some(records) = whole.buckets(grid) else {
                            return false;
                        };
                        read += records.len();
                        n = n.saturating_add(s.count as usize);
                        for r in records.iter() {
                            local
                                .entry(bucketer.bucket(r.start))
                                .or_default()
                                .add_bucket(r);
                        }
                    }
                }
                NumericPart::Run(ts, values) => {
                    n += ts.len();
                    read += ts.len();
                    match values {
                        // A count needs the times only (the values are
                        // decoded with them, in the cache).
                        _ if scan.count_only => {
                            fold_run(&mut bucketer, &mut local, ts, ts, |a, x| {
                                a.count = a.count.saturating_add(x.len() as u64)
                            })
                        }
                        NumSlice::Longs(v) => {
                            fold_run(&mut bucketer, &mut local, ts, v, Stats::add_longs)
                        }
                        NumSlice::Doubles(v) => {
                            fold_run(&mut bucketer, &mut local, ts, v, |a, x| {
                                a.add_doubles(x, scan.sums)
                            })
                        }
                        NumSlice::Mixed(v) => fold_run(&mut bucketer, &mut local, ts, v, |a, x| {
                            x.iter().for_each(|n| a.add_num(*n))
                        }),
                    }
                }
                NumericPart::Gap(lo, hi) => gaps.push((lo, hi)),
            }
            if local.len() > scan.max_buckets {
                too_many = true;
            }
            true
        })
        .map_err(Error::from)?;
    if too_many {
        return Err(Error::TooManyPoints {
            limit: scan.max_buckets,
        });
    }
    if !numeric {
        // Text: counted from its points.
        return match scan.count_only {
            true => counted(scan, view, id, (start, end)),
            false => Ok(Folded::default()),
        };
    }
    // Buckets some rollups could not answer go whole, and so do the
    // points they held (each bucket counts every point folded into it).
    if !gaps.is_empty() {
        for (lo, hi) in gaps {
            let (first, last) = (bucketer.bucket(lo), bucketer.bucket(hi));
            local.retain(|b, _| !(first..=last).contains(b));
        }
        n = local
            .values()
            .map(|s| usize::try_from(s.count).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add);
    }
    Ok(Folded {
        buckets: local,
        points: n,
        read,
    })
}

/// Folds one ascending run into bucket accumulators, one slice per
/// bucket, touching the map once per bucket.
fn fold_run<T>(
    bucketer: &mut Bucketer,
    local: &mut BTreeMap<Timestamp, Stats>,
    ts: &[Timestamp],
    values: &[T],
    add: impl Fn(&mut Stats, &[T]),
) {
    let mut i = 0;
    while let Some(t) = ts.get(i) {
        let b = bucketer.bucket(*t);
        let end = bucketer.end();
        let j = match end {
            // The last bucket holds everything after.
            Timestamp::MAX => ts.len(),
            end => i + count_before(ts.get(i..).unwrap_or_default(), end),
        };
        if let Some(slice) = values.get(i..j) {
            add(local.entry(b).or_default(), slice);
        }
        i = j.max(i + 1);
    }
}
