//! Timestamp columns: `varint n`, then the stream of the n values
//! ([`crate::stream`]: pco, or varints for a few), or, for a column at one
//! exact interval, `varint 0` (a stream never starts with it), `zigzag
//! varint first`, `zigzag varint step`: ten bytes instead of pco's ~56 for
//! a regular day.

use crate::{Effort, Result, stream, varint};

/// Appends the encoding of `ts` (any order; blocks pass ascending).
pub fn encode_timestamps_into(ts: &[i64], out: &mut Vec<u8>) -> crate::Result<()> {
    encode_timestamps_with(ts, Effort::Small, out)
}

/// [`encode_timestamps_into`] at a chosen effort.
pub fn encode_timestamps_with(ts: &[i64], effort: Effort, out: &mut Vec<u8>) -> crate::Result<()> {
    varint::put(out, ts.len() as u64);
    let Some(&first) = ts.first() else {
        return Ok(());
    };
    if let Some(step) = regular_step(ts) {
        varint::put(out, 0);
        varint::put(out, varint::zigzag(first));
        varint::put(out, varint::zigzag(step));
        return Ok(());
    }
    stream::encode(ts, effort, out)
}

/// The interval of a column whose every gap is the same (at least two
/// points; wrapping arithmetic never counts as regular).
fn regular_step(ts: &[i64]) -> Option<i64> {
    if ts.len() > MAX_REGULAR {
        return None;
    }
    let (a, b) = (*ts.first()?, *ts.get(1)?);
    let step = b.checked_sub(a)?;
    let mut prev = a;
    for t in ts.iter().skip(1) {
        if t.checked_sub(prev) != Some(step) {
            return None;
        }
        prev = *t;
    }
    Some(step)
}

/// Reads a timestamp column; `input` advances past it.
pub fn decode_timestamps(input: &mut &[u8]) -> Result<Vec<i64>> {
    let n = varint::get_usize(input)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut peek = *input;
    if varint::get(&mut peek)? != 0 {
        return stream::decode(input, n);
    }
    *input = peek;
    if n > MAX_REGULAR {
        return Err(crate::Error::Invalid(format!("{n} regular timestamps")));
    }
    let first = varint::unzigzag(varint::get(input)?);
    let step = varint::unzigzag(varint::get(input)?);
    // Every value fits if the last one does (the sequence is monotonic);
    // in i128, as `step * k` alone may not fit when the value does
    // (`[-MAX, 0, MAX]` steps by MAX).
    let at = |k: usize| i128::from(first) + i128::from(step) * k as i128;
    if i64::try_from(at(n - 1)).is_err() {
        return Err(crate::Error::Invalid("regular timestamps overflow".into()));
    }
    Ok((0..n).map(|k| at(k) as i64).collect())
}

/// Most points of a regular column: writers cut chunks far below it, and a
/// damaged count must not allocate without bound.
const MAX_REGULAR: usize = 1 << 20;
