//! The checks a write passes before it is logged: each value against
//! its field's kind and the string limit, and the kinds the write fixes.

use super::Atomic;
use std::collections::HashMap;
use sundial_model::{FieldValue, Kind, PointError, ValueInput, WritePoint};

/// What [`check_points`] found: per point its result, the accepted points
/// with their values, and the (metric, field) kinds the write fixes.
type Checked = (
    Vec<std::result::Result<(), PointError>>,
    Vec<(usize, FieldValue)>,
    Vec<(String, String, Kind)>,
);

/// Checks values in order against their field's kind (`known_kind`, or
/// the kind an earlier point of the batch fixed) and the string limit;
/// in a failing group of `atomic`, every point is refused.
pub(super) fn check_points(
    points: &[WritePoint],
    inputs: &mut impl Iterator<Item = ValueInput>,
    atomic: Atomic<'_>,
    vetoed: &[bool],
    max_string: usize,
    known_kind: impl Fn(&str, &str) -> Option<Kind>,
) -> Checked {
    let n = points.len();
    let mut new_kinds: HashMap<(&str, &str), Kind> = HashMap::new();
    // Points of one metric come in runs: skips two hash lookups each.
    let mut last_fixed: Option<((&str, &str), Kind)> = None;
    let mut results = Vec::with_capacity(n);
    let mut accepted: Vec<(usize, FieldValue)> = Vec::with_capacity(n);
    let mut sizes = match atomic {
        Atomic::Each => None,
        Atomic::Groups(sizes) => Some(sizes.iter().copied()),
    };
    let mut from = 0;
    while from < n {
        let to = match sizes.as_mut() {
            None => from + 1,
            // Points past the listed sizes are one group each.
            Some(it) => from + it.next().unwrap_or(1).clamp(1, n - from),
        };
        let (accepted_before, mut fixed) = (accepted.len(), Vec::new());
        let mut failed = false;
        for (i, input) in (from..to).zip(inputs.by_ref()) {
            let Some(p) = points.get(i) else { break };
            let key = (p.series.metric.as_str(), p.field.as_str());
            let known = match last_fixed {
                Some((k, kind)) if k == key => Some(kind),
                _ => match new_kinds.get(&key) {
                    Some(kind) => Some(*kind),
                    None => {
                        let kind = known_kind(key.0, key.1);
                        // Kinds already fixed stay fixed for the batch.
                        last_fixed = kind.map(|k| (key, k)).or(last_fixed);
                        kind
                    }
                },
            };
            let checked = input.resolve(known).and_then(|v| match &v {
                FieldValue::String(s) if s.len() > max_string => Err(PointError::StringTooLong {
                    len: s.len(),
                    max: max_string,
                }),
                _ if vetoed.get(i).copied().unwrap_or(false) => Err(PointError::Rejected),
                _ => Ok(v),
            });
            match checked {
                Ok(v) => {
                    if known.is_none() {
                        new_kinds.insert(key, v.kind());
                        fixed.push(key);
                    }
                    accepted.push((i, v));
                    results.push(Ok(()));
                }
                Err(e) => {
                    failed = true;
                    results.push(Err(e));
                }
            }
        }
        if failed && to - from > 1 {
            // Undo the group: its points are not stored and the kinds it
            // would have fixed stay open.
            accepted.truncate(accepted_before);
            for key in fixed {
                new_kinds.remove(&key);
            }
            for r in results.iter_mut().skip(from) {
                if r.is_ok() {
                    *r = Err(PointError::Rejected);
                }
            }
        }
        from = to;
    }
    let kinds = new_kinds
        .into_iter()
        .map(|((m, f), k)| (m.to_owned(), f.to_owned(), k))
        .collect();
    (results, accepted, kinds)
}
