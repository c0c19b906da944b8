//! Downsampling from chunk statistics: for count, min and max a block
//! chunk wholly inside one bucket stands for its points undecoded, as
//! Baidu's fast path counts (a dashboard's `1d-count` or `0all-max` over
//! months then reads almost nothing).

use super::downsample::{Grid, fill};
use crate::Result;
use std::collections::BTreeMap;
use sundial_model::{Aggregator, Buckets, Downsample, FieldValue, Timestamp};
use sundial_storage::ColumnParts;

/// Buckets shorter than this rarely hold a whole chunk (up to 16 384
/// points within a week), and chunks that straddle buckets are decoded
/// point by point here, slower than streaming them.
const MIN_BUCKET_MS: i64 = 86_400_000;

/// Whether [`downsample_parts`] answers `ds`: the function must give from
/// a chunk's statistics exactly what it gives from the chunk's values, and
/// the buckets must be long enough to hold whole chunks.
pub(super) fn takes_statistics(ds: &Downsample) -> bool {
    let function = matches!(
        ds.function,
        Aggregator::Count
            | Aggregator::Min
            | Aggregator::Max
            | Aggregator::MimMin
            | Aggregator::MimMax
    );
    let long = match &ds.buckets {
        Buckets::All => true,
        Buckets::Fixed(width) => *width >= MIN_BUCKET_MS,
        Buckets::Edges(edges) => edges
            .windows(2)
            .all(|w| matches!(w, [a, b] if b.saturating_sub(*a) >= MIN_BUCKET_MS)),
    };
    function && long
}

/// One bucket's state.
#[derive(Debug, Clone, Copy)]
struct Partial {
    /// Non-NaN values (what the reduction over values counts).
    count: u64,
    min: f64,
    max: f64,
}

impl Partial {
    const EMPTY: Partial = Partial {
        count: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn value(&self, function: Aggregator) -> f64 {
        match function {
            Aggregator::Count => self.count as f64,
            // Only NaN values: NaN, as the reduction over values gives.
            _ if self.count == 0 => f64::NAN,
            Aggregator::Min | Aggregator::MimMin => self.min,
            _ => self.max,
        }
    }
}

/// Downsampling of a column given as chunk summaries and loose points
/// (`Snapshot::column_parts`) with a [`takes_statistics`] function; the
/// same answer as reducing every value. A chunk that straddles buckets or
/// holds a NaN is read through `decode(min_ts, max_ts)`. Also gives the
/// number of stored points the answer covers.
pub(super) fn downsample_parts(
    parts: ColumnParts,
    ds: &Downsample,
    (start, end): (Timestamp, Timestamp),
    max_points: usize,
    mut decode: impl FnMut(Timestamp, Timestamp) -> Result<Vec<(Timestamp, FieldValue)>>,
) -> Result<(Vec<(Timestamp, FieldValue)>, usize)> {
    let grid = Grid::of(&ds.buckets);
    // One bucket over everything is stamped at the start.
    let bucket = |t: Timestamp| match &grid {
        Some(g) => g.bucket(t),
        None => Some((start, Timestamp::MAX)),
    };
    let mut buckets: BTreeMap<Timestamp, Partial> = BTreeMap::new();
    let mut points = parts.points;
    let mut covered = points.len();
    let mut decoded = false;
    for s in &parts.summaries {
        covered += s.count as usize;
        let home = bucket(s.min_ts).filter(|(_, next)| s.max_ts < *next);
        match home {
            // A NaN value makes the sum NaN; such a chunk is read.
            Some((b, _)) if !s.stats.sum.is_nan() => {
                let p = buckets.entry(b).or_insert(Partial::EMPTY);
                p.count += s.count;
                p.min = p.min.min(s.stats.min);
                p.max = p.max.max(s.stats.max);
            }
            _ => {
                points.extend(decode(s.min_ts, s.max_ts)?);
                decoded = true;
            }
        }
    }
    if decoded {
        points.sort_by_key(|p| p.0);
    }
    for (t, v) in &points {
        let (Some((b, _)), Some(x)) = (bucket(*t), v.as_f64()) else {
            continue;
        };
        let p = buckets.entry(b).or_insert(Partial::EMPTY);
        if !x.is_nan() {
            p.count += 1;
            p.min = p.min.min(x);
            p.max = p.max.max(x);
        }
    }
    let out: Vec<(Timestamp, FieldValue)> = buckets
        .into_iter()
        // A leading partial bucket before the start is dropped (OpenTSDB).
        .filter(|(b, _)| (start..=end).contains(b))
        .map(|(b, p)| (b, FieldValue::Double(p.value(ds.function))))
        .collect();
    let Some(grid) = grid else {
        return Ok((out, covered));
    };
    let filled = fill(out, &grid, ds.fill, (start, end), covered > 0, max_points)?;
    Ok((filled, covered))
}
