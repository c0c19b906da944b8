//! Interpolation of one single-field series onto an epoch-aligned grid
//! (Baidu's Linear / Previous / Fixed fill).

use sundial_model::series_query::{Fill, FillKind};
use sundial_model::{FieldValue, Timestamp};

/// The points to insert: one at every grid instant `g` in `[start, end]`
/// whose cell `[g, g + interval)` holds no raw point. `raw` is ascending
/// and non-empty; `before` / `after` are the neighbours found outside the
/// range. Stops with `None` once more than `max_points` would be made.
pub(crate) fn fill(
    spec: &Fill,
    raw: &[(Timestamp, FieldValue)],
    before: Option<&(Timestamp, FieldValue)>,
    after: Option<&(Timestamp, FieldValue)>,
    start: Timestamp,
    end: Timestamp,
    max_points: usize,
) -> Option<Vec<(Timestamp, FieldValue)>> {
    let (Some(first), Some(last)) = (raw.first(), raw.last()) else {
        return Some(Vec::new());
    };
    let step = spec.interval_ms.max(1);
    let mut g = start.div_euclid(step) * step;
    if g < start {
        let Some(next) = g.checked_add(step) else {
            return Some(Vec::new());
        };
        g = next;
    }
    // Every grid instant is either filled or holds a raw point: refuse up
    // front rather than after allocating.
    if g <= end {
        let cells = u64::try_from((end - g) / step)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if cells > (max_points as u64).saturating_add(raw.len() as u64) {
            return None;
        }
    }
    let mut out = Vec::new();
    // `next`: index of the first raw point at or after `g`.
    let mut next = 0;
    while g <= end {
        while raw.get(next).is_some_and(|p| p.0 < g) {
            next += 1;
        }
        let occupied = raw.get(next).is_some_and(|p| p.0 < g.saturating_add(step));
        if !occupied {
            if out.len() >= max_points {
                return None;
            }
            let a = next.checked_sub(1).and_then(|i| raw.get(i)).or(before);
            let b = raw.get(next).or(after);
            let value = match &spec.kind {
                FillKind::Fixed(v) => v.clone(),
                FillKind::Previous => a.unwrap_or(first).1.clone(),
                FillKind::Linear => match (a, b) {
                    (Some(a), Some(b)) => lerp(a, b, g),
                    (None, _) => numeric_or_self(&first.1),
                    (_, None) => numeric_or_self(&last.1),
                },
            };
            out.push((g, value));
        }
        let Some(n) = g.checked_add(step) else { break };
        g = n;
    }
    Some(out)
}

/// `(va (tb - g) + vb (g - ta)) / (tb - ta)`, the order of operations that
/// reproduces Baidu's published numbers to the last bit. Text values are
/// carried forward instead.
fn lerp(a: &(Timestamp, FieldValue), b: &(Timestamp, FieldValue), g: Timestamp) -> FieldValue {
    match (a.1.as_f64(), b.1.as_f64()) {
        (Some(va), Some(vb)) => {
            let span = (b.0 - a.0) as f64;
            let wa = (b.0 - g) as f64;
            let wb = (g - a.0) as f64;
            FieldValue::Double((va * wa + vb * wb) / span)
        }
        _ => a.1.clone(),
    }
}

/// Linear fill yields Doubles; text is carried as is.
fn numeric_or_self(v: &FieldValue) -> FieldValue {
    match v.as_f64() {
        Some(f) => FieldValue::Double(f),
        None => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ms_grid_fills_between_points() {
        let spec = Fill {
            kind: FillKind::Linear,
            interval_ms: 1,
            max_write_interval_ms: 0,
        };
        let raw = vec![(10, FieldValue::Double(1.0)), (12, FieldValue::Double(3.0))];
        let got = fill(&spec, &raw, None, None, 10, 12, 100);
        assert_eq!(got, Some(vec![(11, FieldValue::Double(2.0))]));
        assert_eq!(fill(&spec, &raw, None, None, 0, 1_000, 5), None);
    }
}
