//! OpenTSDB's per-series steps (spec opentsdb.md 9.7–9.9): downsampling
//! into epoch-aligned or calendar buckets with fill policies, then rate.

use super::interpolate::reduce_float;
use crate::{Error, Result};
use sundial_model::{Buckets, Downsample, FieldValue, FillPolicy, RateOptions, Timestamp};

/// Buckets a series; values become Doubles. `max_points` bounds the
/// buckets a fill policy can make.
pub(crate) fn downsample(
    points: &[(Timestamp, FieldValue)],
    ds: &Downsample,
    start: Timestamp,
    end: Timestamp,
    max_points: usize,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    let numbers: Vec<(Timestamp, f64)> = points
        .iter()
        .filter_map(|(t, v)| v.as_f64().map(|f| (*t, f)))
        .collect();
    downsample_numbers(&numbers, ds, start, end, max_points)
}

/// [`downsample`] over plain numbers (what the numeric column reader gives
/// without a `FieldValue` per point).
pub(crate) fn downsample_numbers(
    points: &[(Timestamp, f64)],
    ds: &Downsample,
    start: Timestamp,
    end: Timestamp,
    max_points: usize,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    let Some(grid) = Grid::of(&ds.buckets) else {
        // One bucket at the query start.
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        if values.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec![(
            start,
            FieldValue::Double(reduce_float(ds.function, &values)),
        )]);
    };
    let mut out: Vec<(Timestamp, FieldValue)> = Vec::new();
    let mut values = Vec::new();
    let mut i = 0;
    while let Some((t, _)) = points.get(i) {
        let Some((b, next)) = grid.bucket(*t) else {
            i += 1;
            continue;
        };
        values.clear();
        while let Some((u, v)) = points.get(i) {
            if *u >= next {
                break;
            }
            values.push(*v);
            i += 1;
        }
        // A leading partial bucket before the start is dropped (OpenTSDB).
        if (start..=end).contains(&b) && !values.is_empty() {
            out.push((b, FieldValue::Double(reduce_float(ds.function, &values))));
        }
    }
    fill(
        out,
        &grid,
        ds.fill,
        (start, end),
        !points.is_empty(),
        max_points,
    )
}

/// Applies the fill policy to reduced buckets: once a series has any
/// point, every bucket of the range gets one.
pub(super) fn fill(
    out: Vec<(Timestamp, FieldValue)>,
    grid: &Grid<'_>,
    policy: FillPolicy,
    (start, end): (Timestamp, Timestamp),
    any_points: bool,
    max_points: usize,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    let filler = match policy {
        FillPolicy::None => return Ok(out),
        FillPolicy::NaN | FillPolicy::Null => f64::NAN,
        FillPolicy::Zero => 0.0,
    };
    if out.is_empty() && !any_points {
        return Ok(out);
    }
    let mut filled = Vec::new();
    let mut have = out.into_iter().peekable();
    let mut b = grid.first_at_or_after(start);
    while let Some(at) = b.filter(|b| *b <= end) {
        if filled.len() >= max_points {
            return Err(Error::TooManyPoints { limit: max_points });
        }
        match have.peek() {
            Some((t, _)) if *t == at => {
                if let Some(p) = have.next() {
                    filled.push(p);
                }
            }
            _ => filled.push((at, FieldValue::Double(filler))),
        }
        b = grid.bucket(at).map(|(_, next)| next);
    }
    Ok(filled)
}

/// Bucket boundaries: epoch-aligned widths or explicit calendar edges.
#[derive(Debug, Clone, Copy)]
pub(super) enum Grid<'a> {
    Fixed(i64),
    Edges(&'a [Timestamp]),
}

impl<'a> Grid<'a> {
    /// The grid of a downsampling; `None` for one bucket over all.
    pub(super) fn of(buckets: &'a Buckets) -> Option<Self> {
        match buckets {
            Buckets::All => None,
            Buckets::Fixed(width) => Some(Grid::Fixed((*width).max(1))),
            Buckets::Edges(edges) => Some(Grid::Edges(edges)),
        }
    }

    /// The bucket holding `t` as (start, start of the next); `None` outside
    /// the edges.
    pub(super) fn bucket(&self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match self {
            Grid::Fixed(width) => {
                let b = t - t.rem_euclid(*width);
                Some((b, b.saturating_add(*width)))
            }
            Grid::Edges(edges) => {
                let i = edges.partition_point(|e| *e <= t);
                Some((*edges.get(i.checked_sub(1)?)?, *edges.get(i)?))
            }
        }
    }

    fn first_at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Grid::Fixed(width) => {
                let b = t - t.rem_euclid(*width);
                Some(if b < t { b.saturating_add(*width) } else { b })
            }
            Grid::Edges(edges) => edges.get(edges.partition_point(|e| *e < t)).copied(),
        }
    }
}

/// Per-second rate between consecutive points (spec 9.9).
pub(crate) fn rate(
    points: &[(Timestamp, FieldValue)],
    opts: RateOptions,
) -> Vec<(Timestamp, FieldValue)> {
    let mut out = Vec::with_capacity(points.len());
    let mut prev: Option<&(Timestamp, FieldValue)> = None;
    for p in points {
        let Some((t0, v0)) = prev else {
            prev = Some(p);
            continue;
        };
        let (t1, v1) = (p.0, &p.1);
        // Exact for two integers (as OpenTSDB's long path), else in f64.
        let delta = match (v0.as_i64(), v1.as_i64()) {
            (Some(a), Some(b)) => b.checked_sub(a).map(|d| d as f64),
            _ => None,
        }
        .unwrap_or_else(|| v1.as_f64().unwrap_or(f64::NAN) - v0.as_f64().unwrap_or(f64::NAN));
        if opts.delta {
            // Alibaba's delta: the difference, Long when both are Long.
            let exact = match (v0.as_i64(), v1.as_i64()) {
                (Some(a), Some(b)) => b.checked_sub(a),
                _ => None,
            };
            if opts.counter && delta < 0.0 {
                if !opts.drop_resets {
                    let d = opts.counter_max as f64 - v0.as_f64().unwrap_or(f64::NAN)
                        + v1.as_f64().unwrap_or(f64::NAN);
                    out.push((t1, FieldValue::Double(d)));
                }
            } else {
                out.push((
                    t1,
                    exact.map_or(FieldValue::Double(delta), FieldValue::Long),
                ));
            }
            prev = Some(p);
            continue;
        }
        let secs = (t1 - t0) as f64 / 1000.0;
        let value = if opts.counter && delta < 0.0 {
            if opts.drop_resets {
                prev = Some(p);
                continue;
            }
            let d = opts.counter_max as f64 - v0.as_f64().unwrap_or(f64::NAN)
                + v1.as_f64().unwrap_or(f64::NAN);
            let r = d / secs;
            if opts.reset_value > 0 && r > opts.reset_value as f64 {
                0.0
            } else {
                r
            }
        } else {
            delta / secs
        };
        out.push((t1, FieldValue::Double(value)));
        prev = Some(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_model::Aggregator;

    #[test]
    fn buckets_fill_and_rate() -> Result<()> {
        let pts: Vec<(Timestamp, FieldValue)> = [(0, 1), (30, 3), (60, 5), (180, 8)]
            .iter()
            .map(|(t, v)| (*t * 1000, FieldValue::Long(*v)))
            .collect();
        let ds = Downsample {
            buckets: Buckets::Fixed(60_000),
            function: Aggregator::Avg,
            fill: FillPolicy::Zero,
        };
        let got = downsample(&pts, &ds, 0, 180_000, 100)?;
        let want: Vec<(Timestamp, FieldValue)> = [(0, 2.0), (60, 5.0), (120, 0.0), (180, 8.0)]
            .iter()
            .map(|(t, v)| (*t * 1000, FieldValue::Double(*v)))
            .collect();
        assert_eq!(got, want);
        let r = rate(&pts, RateOptions::default());
        assert_eq!(r[0], (30_000, FieldValue::Double(2.0 / 30.0)));
        let counter = RateOptions {
            counter: true,
            counter_max: 10,
            ..RateOptions::default()
        };
        let wrapped = [(0, FieldValue::Long(9)), (1000, FieldValue::Long(2))];
        assert_eq!(
            rate(&wrapped, counter),
            vec![(1000, FieldValue::Double(3.0))]
        );
        Ok(())
    }
}
