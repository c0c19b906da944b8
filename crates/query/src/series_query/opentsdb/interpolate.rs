//! Cross-series aggregation with OpenTSDB's interpolation (spec
//! opentsdb.md 9.10, 9.11): at every timestamp any series of the group has,
//! each series contributes its value, an interpolated one between its
//! neighbours, or nothing before its first and after its last point.

use sundial_model::{Aggregator, Estimator, FieldValue, Timestamp};

/// How a series without a point at `t` contributes between neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interp {
    Lerp,
    Zero,
    Max,
    Min,
    Prev,
}

fn interpolation(a: Aggregator) -> Interp {
    match a {
        Aggregator::ZimSum
        | Aggregator::Count
        | Aggregator::First
        | Aggregator::Last
        | Aggregator::None
        | Aggregator::SquareSum => Interp::Zero,
        Aggregator::MimMin => Interp::Max,
        Aggregator::MimMax => Interp::Min,
        Aggregator::PfSum => Interp::Prev,
        _ => Interp::Lerp,
    }
}

/// One contribution: exact integers when every value involved is one.
#[derive(Debug, Clone, Copy)]
enum Val {
    Int(i64),
    Float(f64),
}

/// Aggregates the series (in series-key order) of one group.
pub(crate) fn aggregate(
    agg: Aggregator,
    series: &[&[(Timestamp, FieldValue)]],
    step: bool,
) -> Vec<(Timestamp, FieldValue)> {
    let interp = interpolation(agg);
    let times = union_of_times(series);
    let mut cursor = vec![0usize; series.len()];
    let mut out = Vec::with_capacity(times.len());
    let mut vals: Vec<Val> = Vec::with_capacity(series.len());
    let mut ints: Vec<i64> = Vec::with_capacity(series.len());
    let mut floats: Vec<f64> = Vec::with_capacity(series.len());
    for t in times {
        vals.clear();
        let mut all_int = true;
        for (s, pos) in series.iter().zip(cursor.iter_mut()) {
            while s.get(*pos).is_some_and(|p| p.0 < t) {
                *pos += 1;
            }
            let Some((t1, y1)) = s.get(*pos) else {
                continue;
            };
            if *t1 == t {
                if let Some(v) = val(y1) {
                    all_int &= matches!(v, Val::Int(_));
                    vals.push(v);
                }
                continue;
            }
            let Some((t0, y0)) = pos.checked_sub(1).and_then(|i| s.get(i)) else {
                // Under rate a series contributes its first value before it starts.
                if step && let Some(v) = val(y1) {
                    all_int &= matches!(v, Val::Int(_));
                    vals.push(v);
                }
                continue;
            };
            let (Some(a), Some(b)) = (val(y0), val(y1)) else {
                continue;
            };
            let v = match (interp, a, b) {
                (Interp::Lerp, Val::Int(i0), Val::Int(i1)) => {
                    // Java long arithmetic: multiply first, truncate.
                    let num = i128::from(t - t0) * (i128::from(i1) - i128::from(i0));
                    Val::Int((i128::from(i0) + num / i128::from(t1 - t0)) as i64)
                }
                (Interp::Lerp, _, _) => {
                    let (f0, f1) = (as_f64(a), as_f64(b));
                    Val::Float(f0 + (t - t0) as f64 * (f1 - f0) / (*t1 - t0) as f64)
                }
                (Interp::Zero, Val::Int(_), Val::Int(_)) => Val::Int(0),
                (Interp::Zero, _, _) => Val::Float(0.0),
                (Interp::Max, Val::Int(_), Val::Int(_)) => Val::Int(i64::MAX),
                (Interp::Max, _, _) => Val::Float(f64::MAX),
                (Interp::Min, Val::Int(_), Val::Int(_)) => Val::Int(i64::MIN),
                (Interp::Min, _, _) => Val::Float(-f64::MAX),
                (Interp::Prev, _, _) => a,
            };
            all_int &= matches!((a, b), (Val::Int(_), Val::Int(_)));
            vals.push(v);
        }
        if vals.is_empty() {
            continue;
        }
        let value = if all_int {
            ints.clear();
            ints.extend(vals.iter().map(|v| as_i64(*v)));
            FieldValue::Long(reduce_int(agg, &ints))
        } else {
            floats.clear();
            floats.extend(vals.iter().map(|v| as_f64(*v)));
            FieldValue::Double(reduce_float(agg, &floats))
        };
        out.push((t, value));
    }
    out
}

/// Every timestamp of the series, ascending, once. Downsampled series of
/// one query usually share their buckets: then the first one's times are
/// the union, found without sorting.
fn union_of_times(series: &[&[(Timestamp, FieldValue)]]) -> Vec<Timestamp> {
    let first = series.first().copied().unwrap_or_default();
    let aligned = series
        .iter()
        .all(|s| s.len() == first.len() && s.iter().zip(first).all(|(a, b)| a.0 == b.0));
    let ascending = first.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0));
    if aligned && ascending {
        return first.iter().map(|p| p.0).collect();
    }
    let mut times = Vec::with_capacity(series.iter().map(|s| s.len()).sum());
    times.extend(series.iter().flat_map(|s| s.iter().map(|p| p.0)));
    times.sort_unstable();
    times.dedup();
    times
}

fn val(v: &FieldValue) -> Option<Val> {
    match v {
        FieldValue::Long(i) => Some(Val::Int(*i)),
        FieldValue::Bool(b) => Some(Val::Int(i64::from(*b))),
        FieldValue::Double(d) => Some(Val::Float(*d)),
        FieldValue::String(_) | FieldValue::Bytes(_) => None,
    }
}

fn as_f64(v: Val) -> f64 {
    match v {
        Val::Int(i) => i as f64,
        Val::Float(f) => f,
    }
}

fn as_i64(v: Val) -> i64 {
    match v {
        Val::Int(i) => i,
        Val::Float(f) => f as i64,
    }
}

fn reduce_int(agg: Aggregator, xs: &[i64]) -> i64 {
    let n = xs.len() as i64;
    let sum = || xs.iter().fold(0i64, |a, b| a.wrapping_add(*b));
    match agg {
        Aggregator::Sum | Aggregator::ZimSum | Aggregator::PfSum | Aggregator::None => sum(),
        Aggregator::Avg => {
            let s: i128 = xs.iter().map(|x| i128::from(*x)).sum();
            (s / i128::from(n.max(1))) as i64
        }
        Aggregator::Min | Aggregator::MimMin => xs.iter().copied().min().unwrap_or_default(),
        Aggregator::Max | Aggregator::MimMax => xs.iter().copied().max().unwrap_or_default(),
        Aggregator::Dev => {
            let floats: Vec<f64> = xs.iter().map(|x| *x as f64).collect();
            population_dev(&floats) as i64
        }
        Aggregator::Count => n,
        Aggregator::First => xs.first().copied().unwrap_or_default(),
        Aggregator::Last => xs.last().copied().unwrap_or_default(),
        Aggregator::Percentile { .. } | Aggregator::Median => {
            let floats: Vec<f64> = xs.iter().map(|x| *x as f64).collect();
            reduce_float(agg, &floats) as i64
        }
        Aggregator::Mult => xs.iter().fold(1i64, |a, b| a.wrapping_mul(*b)),
        Aggregator::Diff => match (xs.first(), xs.last()) {
            (Some(a), Some(b)) if xs.len() > 1 => b.wrapping_sub(*a),
            _ => 0,
        },
        Aggregator::SquareSum => xs
            .iter()
            .fold(0i64, |a, b| a.wrapping_add(b.wrapping_mul(*b))),
    }
}

/// NaN values are skipped; all NaN gives NaN.
pub(crate) fn reduce_float(agg: Aggregator, all: &[f64]) -> f64 {
    if !all.iter().any(|x| x.is_nan()) {
        return reduce_numbers(agg, all);
    }
    let xs: Vec<f64> = all.iter().copied().filter(|x| !x.is_nan()).collect();
    reduce_numbers(agg, &xs)
}

/// [`reduce_float`] over values none of which is NaN.
fn reduce_numbers(agg: Aggregator, xs: &[f64]) -> f64 {
    if agg == Aggregator::Count {
        return xs.len() as f64;
    }
    if xs.is_empty() {
        return f64::NAN;
    }
    let n = xs.len() as f64;
    match agg {
        Aggregator::Sum | Aggregator::ZimSum | Aggregator::PfSum | Aggregator::None => {
            exact_sum(xs)
        }
        Aggregator::Avg => exact_sum(xs) / n,
        Aggregator::Min | Aggregator::MimMin => xs.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregator::Max | Aggregator::MimMax => {
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }
        Aggregator::Dev => population_dev(xs),
        Aggregator::Count => n,
        Aggregator::First => xs.first().copied().unwrap_or(f64::NAN),
        Aggregator::Last => xs.last().copied().unwrap_or(f64::NAN),
        Aggregator::Percentile {
            per_mille,
            estimator,
        } => percentile(xs, f64::from(per_mille) / 1000.0, estimator),
        Aggregator::Median => {
            let mut s = xs.to_vec();
            s.sort_by(f64::total_cmp);
            s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
        }
        Aggregator::Mult => xs.iter().product(),
        Aggregator::Diff => match (xs.first(), xs.last()) {
            (Some(a), Some(b)) if xs.len() > 1 => b - a,
            _ => 0.0,
        },
        Aggregator::SquareSum => xs.iter().map(|x| x * x).sum(),
    }
}

/// The sum rounded once: the same whatever the order of the values or
/// how they were split (downsampling adds chunks' sums to runs' values).
fn exact_sum(xs: &[f64]) -> f64 {
    let mut sum = sundial_model::ExactSum::default();
    sum.add_slice(xs);
    sum.value()
}

fn population_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

/// Spec 9.11: sorted `x1..xn` (1-based), position by estimator, linear
/// between neighbours, clamped to the ends.
fn percentile(xs: &[f64], p: f64, estimator: Estimator) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let pos = match estimator {
        Estimator::Legacy => p * (n + 1.0),
        Estimator::R3 => {
            if p <= 0.5 / n {
                0.0
            } else {
                (n * p).round_ties_even()
            }
        }
        Estimator::R7 => 1.0 + (n - 1.0) * p,
    };
    let first = s.first().copied().unwrap_or(f64::NAN);
    let last = s.last().copied().unwrap_or(f64::NAN);
    if pos < 1.0 {
        return first;
    }
    if pos >= n {
        return last;
    }
    let k = pos.floor() as usize;
    match (s.get(k - 1), s.get(k)) {
        (Some(lo), Some(hi)) => lo + (pos - pos.floor()) * (hi - lo),
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longs(points: &[(i64, i64)]) -> Vec<(Timestamp, FieldValue)> {
        points
            .iter()
            .map(|(t, v)| (*t, FieldValue::Long(*v)))
            .collect()
    }

    #[test]
    fn opentsdb_interpolation_example_sums_to_30_at_t30() {
        // Spec 9.10: A at 10,30,50 = 5,15,5; B at 0,20,40,60 = 10,20,10,20.
        let a = longs(&[(10, 5), (30, 15), (50, 5)]);
        let b = longs(&[(0, 10), (20, 20), (40, 10), (60, 20)]);
        // Expected, computed by hand from the rule: at each t, B's or A's
        // missing value is the straight line between its neighbours.
        let lerp =
            |t0: i64, y0: i64, t1: i64, y1: i64, t: i64| y0 + (t - t0) * (y1 - y0) / (t1 - t0);
        let expected = vec![
            (0, 10),
            (10, 5 + lerp(0, 10, 20, 20, 10)),
            (20, lerp(10, 5, 30, 15, 20) + 20),
            (30, 15 + lerp(20, 20, 40, 10, 30)),
            (40, lerp(30, 15, 50, 5, 40) + 10),
            (50, 5 + lerp(40, 10, 60, 20, 50)),
            (60, 20),
        ];
        let got = aggregate(Aggregator::Sum, &[&a, &b], false);
        assert_eq!(got, longs(&expected));
        assert_eq!(got[3].1, FieldValue::Long(30));
    }

    #[test]
    fn mixed_values_take_the_float_path() {
        let a = vec![(0, FieldValue::Double(1.5)), (10, FieldValue::Double(2.5))];
        let b = longs(&[(0, 1), (10, 3)]);
        assert_eq!(
            aggregate(Aggregator::Sum, &[&a, &b], false),
            vec![(0, FieldValue::Double(2.5)), (10, FieldValue::Double(5.5))]
        );
    }

    #[test]
    fn interpolation_kinds_per_aggregator() {
        // B has no point at 10: LERP gives 15, ZIM 0, MAX/MIN the extremes.
        let a = longs(&[(0, 1), (10, 2), (20, 3)]);
        let b = longs(&[(0, 10), (20, 20)]);
        let at = |agg| aggregate(agg, &[&a, &b], false)[1].1.clone();
        assert_eq!(at(Aggregator::Sum), FieldValue::Long(2 + 15));
        assert_eq!(at(Aggregator::ZimSum), FieldValue::Long(2));
        assert_eq!(at(Aggregator::Count), FieldValue::Long(2));
        assert_eq!(at(Aggregator::MimMin), FieldValue::Long(2));
        assert_eq!(at(Aggregator::MimMax), FieldValue::Long(2));
        assert_eq!(at(Aggregator::Min), FieldValue::Long(2));
        assert_eq!(at(Aggregator::Max), FieldValue::Long(15));
        assert_eq!(at(Aggregator::PfSum), FieldValue::Long(2 + 10));
        assert_eq!(at(Aggregator::Avg), FieldValue::Long((2 + 15) / 2));
        assert_eq!(at(Aggregator::First), FieldValue::Long(2));
        assert_eq!(at(Aggregator::Last), FieldValue::Long(0));
        assert_eq!(at(Aggregator::Diff), FieldValue::Long(15 - 2));
        // Population deviation of {2, 15}: 6.5, truncated on the integer path.
        assert_eq!(at(Aggregator::Dev), FieldValue::Long(6));
    }

    #[test]
    fn percentile_estimators() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        // legacy: pos = 0.5 * 5 = 2.5 -> x2 + 0.5 (x3 - x2)
        assert_eq!(percentile(&xs, 0.5, Estimator::Legacy), 2.5);
        // pos = 1 + 3 * 0.5 = 2.5
        assert_eq!(percentile(&xs, 0.5, Estimator::R7), 2.5);
        // pos = round_half_even(2.0) = 2 -> x2
        assert_eq!(percentile(&xs, 0.5, Estimator::R3), 2.0);
        assert_eq!(percentile(&xs, 0.999, Estimator::Legacy), 4.0);
    }
}
