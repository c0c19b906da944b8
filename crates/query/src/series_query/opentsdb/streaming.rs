//! Downsampling that folds the column's values straight into per-bucket
//! accumulators as they are decoded, for every function that needs no
//! more than running sums, extremes and ends: no point vector per series
//! and none per bucket. Each accumulator adds in the order the values
//! come, so the answers are those of reducing the bucket's values.

use super::downsample::{Grid, fill};
use crate::Result;
use sundial_model::{Aggregator, Downsample, FieldValue, Timestamp};
use sundial_storage::{Num, NumSlice, SeriesId, Snapshot};

/// Whether [`downsample_column`] answers `ds`.
pub(super) fn streams(ds: &Downsample) -> bool {
    !matches!(
        ds.function,
        Aggregator::Dev | Aggregator::Median | Aggregator::Percentile { .. }
    )
}

/// One bucket's running state over its non-NaN values.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    sum: f64,
    square_sum: f64,
    product: f64,
    min: f64,
    max: f64,
    first: f64,
    last: f64,
}

impl Acc {
    fn new() -> Self {
        // Whatever `Sum` for f64 starts from (-0.0 or 0.0), so that an
        // all -0.0 bucket sums as reducing its values does.
        let zero: f64 = std::iter::empty::<f64>().sum();
        Self {
            count: 0,
            sum: zero,
            square_sum: zero,
            product: 1.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: f64::NAN,
            last: f64::NAN,
        }
    }

    /// Counts a value; `false` for NaN, which the reductions skip.
    #[inline]
    fn count(&mut self, x: f64) -> bool {
        if x.is_nan() {
            return false;
        }
        self.count += 1;
        true
    }

    fn value(&self, function: Aggregator) -> f64 {
        if function == Aggregator::Count {
            return self.count as f64;
        }
        if self.count == 0 {
            return f64::NAN;
        }
        match function {
            Aggregator::Avg => self.sum / self.count as f64,
            Aggregator::Min | Aggregator::MimMin => self.min,
            Aggregator::Max | Aggregator::MimMax => self.max,
            Aggregator::First => self.first,
            Aggregator::Last => self.last,
            Aggregator::Mult => self.product,
            Aggregator::Diff if self.count > 1 => self.last - self.first,
            Aggregator::Diff => 0.0,
            Aggregator::SquareSum => self.square_sum,
            // Sum, ZimSum, PfSum, None; the rest never stream.
            _ => self.sum,
        }
    }
}

/// The buckets of one series as they fill, each value added by `add`
/// (only what the function needs: the fold runs once per stored point).
struct Folder<'a, F> {
    add: F,
    grid: Option<Grid<'a>>,
    start: Timestamp,
    buckets: Vec<(Timestamp, Acc)>,
    /// The bucket being filled: `[from, to)`.
    current: Option<(Timestamp, Timestamp)>,
    points: usize,
}

impl<F: Fn(&mut Acc, f64)> Folder<'_, F> {
    /// Folds one run of the column (times ascending) a bucket at a time:
    /// the points of one bucket are found first, then added to a copy of
    /// its state that the compiler keeps in registers.
    #[inline]
    fn push_run<T: Copy>(&mut self, ts: &[Timestamp], xs: &[T], to_f64: impl Fn(T) -> f64) {
        let n = ts.len().min(xs.len());
        let (mut ts, mut xs) = (ts.split_at(n).0, xs.split_at(n).0);
        self.points += n;
        while let Some(&t) = ts.first() {
            let current = match self.current {
                Some((from, to)) if from <= t && t < to => Some((from, to)),
                _ => self.open(t),
            };
            // A point outside the grid's edges is skipped.
            let run = match current {
                Some((from, to)) => ts
                    .iter()
                    .position(|t| !(from <= *t && *t < to))
                    .unwrap_or(ts.len()),
                None => 1,
            };
            let (values, rest) = xs.split_at(run);
            if current.is_some()
                && let Some((_, acc)) = self.buckets.last_mut()
            {
                let mut state = *acc;
                for x in values {
                    (self.add)(&mut state, to_f64(*x));
                }
                *acc = state;
            }
            ts = ts.split_at(run).1;
            xs = rest;
        }
    }

    /// Opens the bucket holding `t`; `None` when no bucket does.
    fn open(&mut self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        self.current = match &self.grid {
            Some(g) => g.bucket(t),
            // One bucket over everything, stamped at the start.
            None => Some((self.start, Timestamp::MAX)),
        };
        if let Some((from, _)) = self.current {
            self.buckets.push((from, Acc::new()));
        }
        self.current
    }
}

/// A series' buckets and the stored points they cover.
type Downsampled = (Vec<(Timestamp, FieldValue)>, usize);

/// Downsamples the numeric column of a series in `[start, end]` with a
/// [`streams`] function; `None` if the column holds text. Also gives the
/// number of stored points read.
pub(super) fn downsample_column(
    view: &Snapshot<'_>,
    id: SeriesId,
    field: &str,
    ds: &Downsample,
    range: (Timestamp, Timestamp),
    max_points: usize,
) -> Result<Option<Downsampled>> {
    let column = Column {
        view,
        id,
        field,
        ds,
        range,
        max_points,
    };
    match ds.function {
        Aggregator::Min | Aggregator::MimMin => column.fold(|a, x| {
            if a.count(x) {
                a.min = a.min.min(x);
            }
        }),
        Aggregator::Max | Aggregator::MimMax => column.fold(|a, x| {
            if a.count(x) {
                a.max = a.max.max(x);
            }
        }),
        Aggregator::First | Aggregator::Last | Aggregator::Diff => column.fold(|a, x| {
            if a.count(x) {
                if a.count == 1 {
                    a.first = x;
                }
                a.last = x;
            }
        }),
        Aggregator::Mult => column.fold(|a, x| {
            if a.count(x) {
                a.product *= x;
            }
        }),
        Aggregator::SquareSum => column.fold(|a, x| {
            if a.count(x) {
                a.square_sum += x * x;
            }
        }),
        // Sum, ZimSum, PfSum, None, Avg, Count.
        _ => column.fold(|a, x| {
            if a.count(x) {
                a.sum += x;
            }
        }),
    }
}

/// Buckets a series dense over `[start, end]` fills: the vector is sized
/// once instead of growing (and copying) as buckets open.
fn expected_buckets(grid: Option<&Grid<'_>>, (start, end): (Timestamp, Timestamp)) -> usize {
    /// Beyond this the vector grows as usual: a sparse series over a long
    /// range should not reserve for buckets it never opens.
    const MAX_RESERVED: usize = 4096;
    let n = match grid {
        None => 1,
        Some(Grid::Fixed(width)) => {
            usize::try_from(end.saturating_sub(start) / width.max(&1)).unwrap_or(0) + 2
        }
        Some(Grid::Edges(edges)) => edges.len(),
    };
    n.min(MAX_RESERVED)
}

/// One series' column and what to make of it.
struct Column<'a> {
    view: &'a Snapshot<'a>,
    id: SeriesId,
    field: &'a str,
    ds: &'a Downsample,
    range: (Timestamp, Timestamp),
    max_points: usize,
}

impl Column<'_> {
    /// Folds the column's values into buckets with `add`, then reduces
    /// and fills them.
    fn fold(&self, add: impl Fn(&mut Acc, f64)) -> Result<Option<Downsampled>> {
        let Column {
            view,
            id,
            field,
            ds,
            range: (start, end),
            max_points,
        } = *self;
        let grid = Grid::of(&ds.buckets);
        let mut folder = Folder {
            add,
            buckets: Vec::with_capacity(expected_buckets(grid.as_ref(), (start, end))),
            grid,
            start,
            current: None,
            points: 0,
        };
        let numeric =
            view.visit_numeric(id, field, start, end, &mut |ts, values| match values {
                NumSlice::Longs(v) => folder.push_run(ts, v, |x| x as f64),
                NumSlice::Doubles(v) => folder.push_run(ts, v, |x| x),
                NumSlice::Mixed(v) => folder.push_run(ts, v, |x| match x {
                    Num::Long(i) => i as f64,
                    Num::Double(d) => d,
                    Num::Bool(b) => f64::from(u8::from(b)),
                }),
            })?;
        if !numeric {
            return Ok(None);
        }
        let Folder {
            grid,
            buckets,
            points,
            ..
        } = folder;
        let out: Vec<(Timestamp, FieldValue)> = buckets
            .into_iter()
            // A leading partial bucket before the start is dropped (OpenTSDB).
            .filter(|(b, _)| (start..=end).contains(b))
            .map(|(b, acc)| (b, FieldValue::Double(acc.value(ds.function))))
            .collect();
        let Some(grid) = grid else {
            return Ok(Some((out, points)));
        };
        let filled = fill(out, &grid, ds.fill, (start, end), points > 0, max_points)?;
        Ok(Some((filled, points)))
    }
}
