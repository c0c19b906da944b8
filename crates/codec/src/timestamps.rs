//! Timestamp columns: `varint n`, then the pco stream of the n values.

use crate::{Effort, Result, pco_compress, pco_decompress, varint};

/// Appends the encoding of `ts` (any order; blocks pass ascending).
pub fn encode_timestamps_into(ts: &[i64], out: &mut Vec<u8>) -> crate::Result<()> {
    encode_timestamps_with(ts, Effort::Small, out)
}

/// [`encode_timestamps_into`] at a chosen effort.
pub fn encode_timestamps_with(ts: &[i64], effort: Effort, out: &mut Vec<u8>) -> crate::Result<()> {
    varint::put(out, ts.len() as u64);
    if ts.is_empty() {
        return Ok(());
    }
    pco_compress(ts, effort, out)
}

/// Reads a timestamp column; `input` advances past it.
pub fn decode_timestamps(input: &mut &[u8]) -> Result<Vec<i64>> {
    let n = varint::get_usize(input)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    pco_decompress(input, n)
}
