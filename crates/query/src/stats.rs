//! Per-bucket statistics of one series' points (count, sum, min, max,
//! with exact integer forms while every value is a Long), folded straight
//! from the storage scan: nothing is materialised per point, and for a
//! count, block chunks wholly inside one bucket answer from their
//! statistics undecoded. The JSON query's streaming path and SQL's
//! aggregate push-down ([`grouped`]) both fold with them.

mod grouped;

pub use grouped::{GroupedStats, StatsRequest, grouped, grouped_by, merge_grouped};

use crate::series_query::buckets::Bucketer;
use crate::{Error, Result};
use std::collections::BTreeMap;
use sundial_model::series_query::{RangeFn, Sampling};
use sundial_model::{FieldValue, Timestamp};
use sundial_storage::{Num, NumSlice, SeriesId};

/// The statistics of the points of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub count: u64,
    /// Exact sum while every value is a Long (i128: never overflows here).
    long_sum: Option<i128>,
    all_long: bool,
    sum: f64,
    min: f64,
    max: f64,
    long_min: i64,
    long_max: i64,
}

impl Default for Stats {
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

impl Stats {
    pub(crate) fn add(&mut self, v: &FieldValue) {
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
        self.long_sum = self.long_sum.map(|s| s + i128::from(i));
        self.long_min = self.long_min.min(i);
        self.long_max = self.long_max.max(i);
        let f = i as f64;
        self.sum += f;
        self.min = self.min.min(f);
        self.max = self.max.max(f);
    }

    #[inline]
    pub(crate) fn add_double(&mut self, d: &f64) {
        let d = *d;
        self.count += 1;
        self.all_long = false;
        self.long_sum = None;
        self.sum += d;
        self.min = self.min.min(d);
        self.max = self.max.max(d);
    }

    pub fn merge(&mut self, o: &Stats) {
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

    /// Its parts, to send to another node ([`Stats::from_parts`] makes it
    /// again).
    pub fn parts(&self) -> StatsParts {
        StatsParts {
            count: self.count,
            long_sum: self.long_sum,
            all_long: self.all_long,
            sum: self.sum,
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
            all_long: p.all_long,
            sum: p.sum,
            min: p.min,
            max: p.max,
            long_min: p.long_min,
            long_max: p.long_max,
        }
    }

    /// The exact sum while every value was a Long.
    pub fn long_sum(&self) -> Option<i128> {
        if self.all_long { self.long_sum } else { None }
    }

    /// The statistic `func` stands for (Count, Sum, Avg, Min, Max; Avg of
    /// no points is NaN).
    pub fn value(&self, func: RangeFn) -> FieldValue {
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

/// A [`Stats`] as plain values, for the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsParts {
    pub count: u64,
    pub long_sum: Option<i128>,
    pub all_long: bool,
    pub sum: f64,
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
    /// Only counts are wanted: text counts too, and whole chunks inside
    /// one bucket are counted from their statistics.
    pub(crate) count_only: bool,
}

/// Count over one series: it also takes text, and whole chunks inside one
/// bucket are counted from their statistics.
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

/// One series' buckets and the number of stored points they cover.
pub(crate) fn fold_series(
    scan: &Fold<'_>,
    view: &sundial_storage::Snapshot<'_>,
    id: SeriesId,
    start: Timestamp,
    end: Timestamp,
) -> Result<(BTreeMap<Timestamp, Stats>, usize)> {
    if scan.count_only {
        return count_series(scan, view, id, start, end);
    }
    let mut local: BTreeMap<Timestamp, Stats> = BTreeMap::new();
    let mut bucketer = Bucketer::new(scan.sampling, scan.anchor);
    let mut n = 0usize;
    let mut too_many = false;
    let numeric = view
        .visit_numeric(id, scan.field, start, end, &mut |ts, values| {
            if too_many {
                return;
            }
            n += ts.len();
            match values {
                NumSlice::Longs(v) => fold_run(&mut bucketer, &mut local, ts, v, Stats::add_long),
                NumSlice::Doubles(v) => {
                    fold_run(&mut bucketer, &mut local, ts, v, Stats::add_double)
                }
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
    local: &mut BTreeMap<Timestamp, Stats>,
    ts: &[Timestamp],
    values: &[T],
    add: impl Fn(&mut Stats, &T),
) {
    let mut current: Option<(Timestamp, Stats)> = None;
    for (t, v) in ts.iter().zip(values) {
        let b = bucketer.bucket(*t);
        match &mut current {
            Some((cb, acc)) if *cb == b => add(acc, v),
            _ => {
                if let Some((cb, acc)) = current.take() {
                    local.entry(cb).or_default().merge(&acc);
                }
                let mut acc = Stats::default();
                add(&mut acc, v);
                current = Some((b, acc));
            }
        }
    }
    if let Some((cb, acc)) = current {
        local.entry(cb).or_default().merge(&acc);
    }
}
