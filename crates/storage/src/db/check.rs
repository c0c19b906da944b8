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
    let mut kinds = Kinds {
        known: known_kind,
        new: HashMap::new(),
        last_fixed: None,
    };
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
            let known = kinds.get(key);
            let vetoed = vetoed.get(i).copied().unwrap_or(false);
            match check_value(input, known, max_string, vetoed) {
                Ok(v) => {
                    if known.is_none() {
                        kinds.new.insert(key, v.kind());
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
                kinds.new.remove(&key);
            }
            for r in results.iter_mut().skip(from) {
                if r.is_ok() {
                    *r = Err(PointError::Rejected);
                }
            }
        }
        from = to;
    }
    let fixed = kinds
        .new
        .into_iter()
        .map(|((m, f), k)| (m.to_owned(), f.to_owned(), k))
        .collect();
    (results, accepted, fixed)
}

/// A value against its field's kind and the string limit; a vetoed
/// point that passes is still refused.
fn check_value(
    input: ValueInput,
    known: Option<Kind>,
    max_string: usize,
    vetoed: bool,
) -> Result<FieldValue, PointError> {
    input.resolve(known).and_then(|v| match &v {
        FieldValue::String(s) if s.len() > max_string => Err(PointError::StringTooLong {
            len: s.len(),
            max: max_string,
        }),
        _ if vetoed => Err(PointError::Rejected),
        _ => Ok(v),
    })
}

/// Field kinds as a batch sees them: fixed before it (`known`) or by an
/// earlier point of it (`new`).
struct Kinds<'p, F> {
    known: F,
    new: HashMap<(&'p str, &'p str), Kind>,
    /// Points of one metric come in runs: skips two hash lookups each.
    last_fixed: Option<((&'p str, &'p str), Kind)>,
}

impl<'p, F: Fn(&str, &str) -> Option<Kind>> Kinds<'p, F> {
    fn get(&mut self, key: (&'p str, &'p str)) -> Option<Kind> {
        match self.last_fixed {
            Some((k, kind)) if k == key => Some(kind),
            _ => match self.new.get(&key) {
                Some(kind) => Some(*kind),
                None => {
                    let kind = (self.known)(key.0, key.1);
                    // Kinds already fixed stay fixed for the batch.
                    self.last_fixed = kind.map(|k| (key, k)).or(self.last_fixed);
                    kind
                }
            },
        }
    }
}
