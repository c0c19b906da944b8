//! Cross-series aggregation with OpenTSDB's linear interpolation.

use sundial_model::{FieldValue, Timestamp};

/// Sums the series at every timestamp any of them has. A series without a
/// point at `t` but with points on both sides contributes the linear
/// interpolation; before its first or after its last point it does not
/// take part. The sum stays an integer when every value involved is one.
pub(crate) fn sum(series: &[&[(Timestamp, FieldValue)]]) -> Vec<(Timestamp, FieldValue)> {
    let mut times: Vec<Timestamp> = series.iter().flat_map(|s| s.iter().map(|p| p.0)).collect();
    times.sort_unstable();
    times.dedup();
    // Per series: index of the first point at or after the current time.
    let mut cursor = vec![0usize; series.len()];
    let mut out = Vec::with_capacity(times.len());
    for t in times {
        let mut ints: Vec<i64> = Vec::with_capacity(series.len());
        let mut floats: Vec<f64> = Vec::with_capacity(series.len());
        let mut all_int = true;
        for (s, pos) in series.iter().zip(cursor.iter_mut()) {
            while s.get(*pos).is_some_and(|p| p.0 < t) {
                *pos += 1;
            }
            let Some((t1, y1)) = s.get(*pos) else {
                continue;
            };
            if *t1 == t {
                push(y1, None, &mut ints, &mut floats, &mut all_int);
                continue;
            }
            let Some((t0, y0)) = pos.checked_sub(1).and_then(|i| s.get(i)) else {
                continue;
            };
            push(
                y0,
                Some((*t0, t, *t1, y1)),
                &mut ints,
                &mut floats,
                &mut all_int,
            );
        }
        if floats.is_empty() {
            continue;
        }
        let value = if all_int {
            FieldValue::Long(ints.iter().fold(0i64, |a, b| a.wrapping_add(*b)))
        } else {
            FieldValue::Double(floats.iter().sum())
        };
        out.push((t, value));
    }
    out
}

/// Adds one contribution: the value itself, or the interpolation between
/// `y0` at `t0` and `y1` at `t1`, evaluated at `t`.
fn push(
    y0: &FieldValue,
    lerp: Option<(Timestamp, Timestamp, Timestamp, &FieldValue)>,
    ints: &mut Vec<i64>,
    floats: &mut Vec<f64>,
    all_int: &mut bool,
) {
    let Some(f0) = y0.as_f64() else { return };
    match lerp {
        None => {
            floats.push(f0);
            match y0.as_i64() {
                Some(i) => ints.push(i),
                None => *all_int = false,
            }
        }
        Some((t0, t, t1, y1)) => {
            let Some(f1) = y1.as_f64() else { return };
            let span = (t1 - t0) as f64;
            floats.push(f0 + (t - t0) as f64 * (f1 - f0) / span);
            match (y0.as_i64(), y1.as_i64()) {
                (Some(i0), Some(i1)) => {
                    // Java long semantics: multiply first, truncate toward zero.
                    let v = i128::from(i0)
                        + (i128::from(t - t0) * (i128::from(i1) - i128::from(i0)))
                            / i128::from(t1 - t0);
                    ints.push(v as i64);
                }
                _ => *all_int = false,
            }
        }
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
        assert_eq!(sum(&[&a, &b]), longs(&expected));
        assert_eq!(sum(&[&a, &b])[3].1, FieldValue::Long(30));
    }

    #[test]
    fn mixed_values_take_the_float_path() {
        let a = vec![(0, FieldValue::Double(1.5)), (10, FieldValue::Double(2.5))];
        let b = longs(&[(0, 1), (10, 3)]);
        assert_eq!(
            sum(&[&a, &b]),
            vec![(0, FieldValue::Double(2.5)), (10, FieldValue::Double(5.5))]
        );
    }
}
