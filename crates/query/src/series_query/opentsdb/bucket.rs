//! One downsampling bucket's running state, fed a slice of values at a
//! time, or a whole chunk's (or presampled bucket's) statistics. Sums are
//! exact (`ExactSum`), so a bucket's answer does not depend on how its
//! points were split into chunks, runs and buckets, nor on their order:
//! it is that of reducing its values (`interpolate::reduce_float`).

use sundial_model::{Aggregator, ExactSum, Timestamp};
use sundial_storage::{ExactStats, Num};

/// Longs of at most this magnitude are exact as doubles: a sum of their
/// integers is the sum of OpenTSDB's doubles.
const EXACT_LONG: i64 = 1 << 53;

/// What a function keeps per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    Count,
    Sum,
    Extremes,
    Ends,
    Product,
    SquareSum,
}

impl Keep {
    /// `None` for the functions that need every value (dev, median,
    /// percentiles).
    pub(super) fn of(function: Aggregator) -> Option<Self> {
        Some(match function {
            Aggregator::Count => Keep::Count,
            Aggregator::Sum
            | Aggregator::ZimSum
            | Aggregator::PfSum
            | Aggregator::None
            | Aggregator::Avg => Keep::Sum,
            Aggregator::Min | Aggregator::Max | Aggregator::MimMin | Aggregator::MimMax => {
                Keep::Extremes
            }
            Aggregator::First | Aggregator::Last | Aggregator::Diff => Keep::Ends,
            Aggregator::Mult => Keep::Product,
            Aggregator::SquareSum => Keep::SquareSum,
            Aggregator::Dev | Aggregator::Median | Aggregator::Percentile { .. } => return None,
        })
    }

    /// Whether statistics give it (a product or a sum of squares in
    /// doubles depends on the values' order).
    pub(super) fn statistics_give_it(self) -> bool {
        !matches!(self, Keep::Product | Keep::SquareSum)
    }
}

/// A chunk's or presampled bucket's statistics, as a bucket takes them.
pub(super) struct Summary<'a> {
    pub count: u64,
    pub all_long: bool,
    pub min: f64,
    pub max: f64,
    pub exact: &'a ExactStats,
    /// Times standing for the first and last points: any time in the
    /// chunk's range orders them against the other sources, which hold
    /// nothing there.
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

impl Summary<'_> {
    /// Whether it stands for its values under `keep`: NaN values are
    /// skipped by the reductions but counted by statistics, and a sum of
    /// Longs is the sum of their doubles only while those are exact.
    pub(super) fn usable(&self, keep: Keep) -> bool {
        if self.exact.double_sum.holds_nan() {
            return false;
        }
        let (lo, hi) = self.extremes();
        keep != Keep::Sum || (-(EXACT_LONG as f64) < lo && hi < EXACT_LONG as f64)
    }

    fn extremes(&self) -> (f64, f64) {
        if self.all_long {
            (self.exact.long_min as f64, self.exact.long_max as f64)
        } else {
            (self.min, self.max)
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Bucket {
    count: u64,
    sum: ExactSum,
    product: f64,
    square_sum: f64,
    min: f64,
    max: f64,
    /// The earliest and latest non-NaN values with their times.
    first: (Timestamp, f64),
    last: (Timestamp, f64),
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            count: 0,
            sum: ExactSum::default(),
            product: 1.0,
            square_sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: (Timestamp::MAX, f64::NAN),
            last: (Timestamp::MIN, f64::NAN),
        }
    }
}

impl Bucket {
    /// Adds ascending values at `ts` (as long as `xs`).
    pub(super) fn add_doubles(&mut self, keep: Keep, ts: &[Timestamp], xs: &[f64]) {
        let nans = match keep {
            Keep::Count => xs.iter().filter(|x| x.is_nan()).count(),
            Keep::Sum => self.sum.add_slice_skipping_nan(xs),
            Keep::Extremes => {
                let (mut lo, mut hi, mut nans) = (self.min, self.max, 0);
                for x in xs {
                    // min and max pass NaN over.
                    lo = lo.min(*x);
                    hi = hi.max(*x);
                    nans += usize::from(x.is_nan());
                }
                (self.min, self.max) = (lo, hi);
                nans
            }
            Keep::Ends => {
                let numbers = || ts.iter().zip(xs).filter(|(_, x)| !x.is_nan());
                if let Some((t, x)) = numbers().next() {
                    self.take_first(*t, *x);
                }
                if let Some((t, x)) = numbers().next_back() {
                    self.take_last(*t, *x);
                }
                xs.iter().filter(|x| x.is_nan()).count()
            }
            Keep::Product | Keep::SquareSum => {
                let mut nans = 0;
                for x in xs {
                    if x.is_nan() {
                        nans += 1;
                    } else if keep == Keep::Product {
                        self.product *= x;
                    } else {
                        self.square_sum += x * x;
                    }
                }
                nans
            }
        };
        self.count += (xs.len() - nans) as u64;
    }

    /// Adds ascending Longs; `scratch` holds their doubles when those are
    /// needed.
    pub(super) fn add_longs(
        &mut self,
        keep: Keep,
        ts: &[Timestamp],
        xs: &[i64],
        scratch: &mut Vec<f64>,
    ) {
        match keep {
            Keep::Count => self.count += xs.len() as u64,
            Keep::Sum | Keep::Extremes => {
                let Some((lo, hi)) = xs.iter().fold(None, |m: Option<(i64, i64)>, x| {
                    let (lo, hi) = m.unwrap_or((*x, *x));
                    Some((lo.min(*x), hi.max(*x)))
                }) else {
                    return;
                };
                if keep == Keep::Sum {
                    // Exact as doubles: their integer sum is their sum.
                    if -EXACT_LONG < lo && hi < EXACT_LONG {
                        let total: i128 = xs.iter().map(|x| i128::from(*x)).sum();
                        self.sum.add_integer(total);
                    } else {
                        xs.iter().for_each(|x| self.sum.add(*x as f64));
                    }
                }
                self.min = self.min.min(lo as f64);
                self.max = self.max.max(hi as f64);
                self.count += xs.len() as u64;
            }
            Keep::Ends | Keep::Product | Keep::SquareSum => {
                scratch.clear();
                scratch.extend(xs.iter().map(|x| *x as f64));
                self.add_doubles(keep, ts, scratch);
            }
        }
    }

    /// Adds values of any kind, as doubles.
    pub(super) fn add_nums(
        &mut self,
        keep: Keep,
        ts: &[Timestamp],
        xs: &[Num],
        scratch: &mut Vec<f64>,
    ) {
        scratch.clear();
        scratch.extend(xs.iter().map(|x| x.as_f64()));
        self.add_doubles(keep, ts, scratch);
    }

    /// Adds statistics that are [`Summary::usable`] under `keep`.
    pub(super) fn add_summary(&mut self, keep: Keep, s: &Summary<'_>) {
        // Saturating: statistics come from files.
        self.count = self.count.saturating_add(s.count);
        match keep {
            Keep::Sum => {
                self.sum.add_integer(s.exact.long_sum);
                self.sum.merge(&s.exact.double_sum);
            }
            Keep::Extremes => {
                let (lo, hi) = s.extremes();
                (self.min, self.max) = (self.min.min(lo), self.max.max(hi));
            }
            Keep::Ends => {
                self.take_first(s.first_ts, s.exact.first.as_f64());
                self.take_last(s.last_ts, s.exact.last.as_f64());
            }
            Keep::Count | Keep::Product | Keep::SquareSum => {}
        }
    }

    fn take_first(&mut self, t: Timestamp, x: f64) {
        if t < self.first.0 {
            self.first = (t, x);
        }
    }

    fn take_last(&mut self, t: Timestamp, x: f64) {
        if t > self.last.0 {
            self.last = (t, x);
        }
    }

    /// Adds another part of the same bucket: one that holds later points
    /// when the function's state depends on their order (product, sum of
    /// squares).
    pub(super) fn merge(&mut self, o: &Bucket) {
        self.count = self.count.saturating_add(o.count);
        self.sum.merge(&o.sum);
        self.product *= o.product;
        self.square_sum += o.square_sum;
        (self.min, self.max) = (self.min.min(o.min), self.max.max(o.max));
        self.take_first(o.first.0, o.first.1);
        self.take_last(o.last.0, o.last.1);
    }

    pub(super) fn value(&self, function: Aggregator) -> f64 {
        if function == Aggregator::Count {
            return self.count as f64;
        }
        if self.count == 0 {
            return f64::NAN;
        }
        match function {
            Aggregator::Avg => self.sum.value() / self.count as f64,
            Aggregator::Min | Aggregator::MimMin => self.min,
            Aggregator::Max | Aggregator::MimMax => self.max,
            Aggregator::First => self.first.1,
            Aggregator::Last => self.last.1,
            Aggregator::Mult => self.product,
            Aggregator::Diff if self.count > 1 => self.last.1 - self.first.1,
            Aggregator::Diff => 0.0,
            Aggregator::SquareSum => self.square_sum,
            // Sum, ZimSum, PfSum, None; the rest never stream.
            _ => self.sum.value(),
        }
    }
}
