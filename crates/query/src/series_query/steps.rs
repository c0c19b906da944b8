//! The aggregator pipeline on one ordered stream of values: range
//! aggregators over sampling buckets, and the point-wise steps.

use super::buckets::bucket_start;
use crate::Error;
use crate::stats::Stats;
use sundial_model::series_query::{Aggregation, RangeFn, Sampling};
use sundial_model::{FieldValue, Timestamp};

type Points = Vec<(Timestamp, FieldValue)>;

/// Applies one step. `start`/`end` are the query range (bucket anchor and
/// clipping).
pub(crate) fn apply(
    step: &Aggregation,
    input: Points,
    start: Timestamp,
    field: &str,
) -> Result<Points, Error> {
    if step.needs_numbers()
        && let Some((_, v)) = input.iter().find(|(_, v)| v.as_f64().is_none())
    {
        return Err(Error::NumberRequired {
            step: step_name(step).to_owned(),
            field: field.to_owned(),
            found: kind_name(v),
        });
    }
    Ok(match step {
        Aggregation::Range { func, sampling } => range(*func, *sampling, &input, start),
        Aggregation::Diff => pairs(&input, |(_, a), (t1, b)| {
            let v = match (a, b) {
                (FieldValue::Long(x), FieldValue::Long(y)) => y
                    .checked_sub(*x)
                    .map(FieldValue::Long)
                    .unwrap_or(FieldValue::Double(*y as f64 - *x as f64)),
                _ => FieldValue::Double(num(b) - num(a)),
            };
            Some((t1, v))
        }),
        Aggregation::Div(d) => map(input, |v| v / d),
        Aggregation::Scale(f) => map(input, |v| v * f),
        Aggregation::Rate { unit_ms } => {
            let unit = *unit_ms as f64;
            let mut out = Vec::with_capacity(input.len());
            let mut prev: Option<&(Timestamp, FieldValue)> = None;
            for p in &input {
                if let Some((t0, v0)) = prev
                    && *t0 != p.0
                {
                    let dt = (p.0 - t0) as f64;
                    out.push((p.0, FieldValue::Double((num(&p.1) - num(v0)) / dt * unit)));
                }
                prev = Some(p);
            }
            out
        }
        Aggregation::AdjacentUnique => {
            let mut out: Points = Vec::with_capacity(input.len());
            for (t, v) in input {
                if out.last().is_some_and(|(_, prev)| same(prev, &v)) {
                    continue;
                }
                out.push((t, v));
            }
            out
        }
    })
}

pub(crate) fn step_name(step: &Aggregation) -> &'static str {
    match step {
        Aggregation::Range { func, .. } => match func {
            RangeFn::Avg => "Avg",
            RangeFn::Dev => "Dev",
            RangeFn::Count => "Count",
            RangeFn::First => "First",
            RangeFn::Last => "Last",
            RangeFn::LeastSquares => "LeastSquares",
            RangeFn::Max => "Max",
            RangeFn::Min => "Min",
            RangeFn::Percentile(_) => "Percentile",
            RangeFn::Sum => "Sum",
        },
        Aggregation::Diff => "Diff",
        Aggregation::Div(_) => "Div",
        Aggregation::Scale(_) => "Scale",
        Aggregation::Rate { .. } => "Rate",
        Aggregation::AdjacentUnique => "AdjacentUnique",
    }
}

fn kind_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::String(_) => "String",
        FieldValue::Bytes(_) => "Bytes",
        _ => "Number",
    }
}

fn num(v: &FieldValue) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn same(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => match (a.as_i64(), b.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn map(input: Points, f: impl Fn(f64) -> f64) -> Points {
    input
        .into_iter()
        .map(|(t, v)| (t, FieldValue::Double(f(num(&v)))))
        .collect()
}

fn pairs(
    input: &[(Timestamp, FieldValue)],
    f: impl Fn(&(Timestamp, FieldValue), (Timestamp, &FieldValue)) -> Option<(Timestamp, FieldValue)>,
) -> Points {
    input
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => f(a, (b.0, &b.1)),
            _ => None,
        })
        .collect()
}

/// Buckets the (time-ordered) input and reduces each bucket.
fn range(
    func: RangeFn,
    sampling: Option<Sampling>,
    input: &[(Timestamp, FieldValue)],
    start: Timestamp,
) -> Points {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some((t, _)) = input.get(i) {
        let bucket = sampling.map(|s| bucket_start(s, start, *t));
        let mut j = i + 1;
        while let Some((u, _)) = input.get(j) {
            if sampling.map(|s| bucket_start(s, start, *u)) != bucket {
                break;
            }
            j += 1;
        }
        let at = bucket.unwrap_or(start).max(start);
        if let Some(values) = input.get(i..j) {
            reduce(func, at, values, &mut out);
        }
        i = j;
    }
    out
}

fn reduce(func: RangeFn, at: Timestamp, values: &[(Timestamp, FieldValue)], out: &mut Points) {
    let n = values.len();
    if n == 0 {
        return;
    }
    let nums = || values.iter().map(|(_, v)| num(v));
    let all_long = values.iter().all(|(_, v)| matches!(v, FieldValue::Long(_)));
    let longs = || {
        values.iter().filter_map(|(_, v)| match v {
            FieldValue::Long(i) => Some(*i),
            _ => None,
        })
    };
    let value = match func {
        RangeFn::Count => FieldValue::Long(n as i64),
        RangeFn::First | RangeFn::Last => {
            let pick = if func == RangeFn::First {
                values.first()
            } else {
                values.last()
            };
            match pick {
                Some((_, v)) => v.clone(),
                None => return,
            }
        }
        // One definition with the folding paths: exact sums, rounded once.
        RangeFn::Avg | RangeFn::Sum => {
            let mut stats = Stats::default();
            values.iter().for_each(|(_, v)| stats.add(v));
            stats.value(func)
        }
        RangeFn::Dev => {
            if n == 1 {
                FieldValue::Double(0.0)
            } else {
                let mean = nums().sum::<f64>() / n as f64;
                let sq: f64 = nums().map(|x| (x - mean) * (x - mean)).sum();
                FieldValue::Double((sq / (n - 1) as f64).sqrt())
            }
        }
        RangeFn::Max | RangeFn::Min => {
            let max = func == RangeFn::Max;
            if all_long {
                let it = longs();
                let v = if max { it.max() } else { it.min() };
                FieldValue::Long(v.unwrap_or_default())
            } else {
                let v = nums().fold(None, |acc: Option<f64>, x| match acc {
                    None => Some(x),
                    Some(a) if max => Some(a.max(x)),
                    Some(a) => Some(a.min(x)),
                });
                FieldValue::Double(v.unwrap_or(f64::NAN))
            }
        }
        RangeFn::Percentile(p) => {
            let mut xs: Vec<f64> = nums().collect();
            xs.sort_by(f64::total_cmp);
            FieldValue::Double(percentile(&xs, p))
        }
        RangeFn::LeastSquares => {
            least_squares(values, out);
            return;
        }
    };
    out.push((at, value));
}

/// Baidu's rule: `pos = p (n + 1)`, clamped to the ends, linear between
/// the neighbouring ranks.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let n = xs.len();
    let pos = p * (n as f64 + 1.0);
    let first = xs.first().copied().unwrap_or(f64::NAN);
    let last = xs.last().copied().unwrap_or(f64::NAN);
    if pos < 1.0 {
        return first;
    }
    if pos >= n as f64 {
        return last;
    }
    let k = pos.floor() as usize;
    match (xs.get(k - 1), xs.get(k)) {
        (Some(lo), Some(hi)) => lo + (pos - pos.floor()) * (hi - lo),
        _ => last,
    }
}

/// Fits `v = a + b t` (t relative to the bucket's first timestamp) and
/// emits the line at the first and last timestamps.
fn least_squares(values: &[(Timestamp, FieldValue)], out: &mut Points) {
    let (Some((t0, _)), Some((tn, _))) = (values.first(), values.last()) else {
        return;
    };
    if values.len() <= 2 {
        for (t, v) in values {
            out.push((*t, FieldValue::Double(num(v))));
        }
        return;
    }
    let n = values.len() as f64;
    let ts = || values.iter().map(|(t, _)| (t - t0) as f64);
    let mean_t = ts().sum::<f64>() / n;
    let mean_v = values.iter().map(|(_, v)| num(v)).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in values {
        let dt = (t - t0) as f64 - mean_t;
        sxy += dt * (num(v) - mean_v);
        sxx += dt * dt;
    }
    if sxx == 0.0 {
        out.push((*t0, FieldValue::Double(mean_v)));
        return;
    }
    let slope = sxy / sxx;
    let intercept = mean_v - slope * mean_t;
    out.push((*t0, FieldValue::Double(intercept)));
    out.push((
        *tn,
        FieldValue::Double(intercept + slope * (tn - t0) as f64),
    ));
}
