//! The answer to a frame: which of its points the owner refused and why,
//! in the byte form the internal protocol carries (docs/cluster.md,
//! "Frames"). Accepted points cost nothing: most answers are six bytes.
//!
//! ```text
//! "SDO1" | point count | refused count, then each:
//!   point index, reason (0 kind mismatch + stored kind + written kind,
//!   1 not a number, 2 string too long + length + limit, 3 rejected)
//! ```

use super::{FrameError, count, invalid};
use sundial_codec::varint::{get_usize, put};
use sundial_model::{Kind, PointError, WriteOutcome};

const MAGIC: &[u8; 4] = b"SDO1";

pub fn encode_outcome(outcome: &WriteOutcome) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put(&mut out, outcome.results.len() as u64);
    let refused: Vec<(usize, &PointError)> = outcome
        .results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
        .collect();
    put(&mut out, refused.len() as u64);
    for (index, error) in refused {
        put(&mut out, index as u64);
        match error {
            PointError::KindMismatch { stored, written } => {
                out.extend([0, kind_byte(*stored), kind_byte(*written)]);
            }
            PointError::NotANumber => out.push(1),
            PointError::StringTooLong { len, max } => {
                out.push(2);
                put(&mut out, *len as u64);
                put(&mut out, *max as u64);
            }
            PointError::Rejected => out.push(3),
        }
    }
    out
}

/// Decodes the answer to a frame of `points` points; any damage, or an
/// answer for another number of points, is an error, never a panic.
pub fn decode_outcome(bytes: &[u8], points: usize) -> Result<WriteOutcome, FrameError> {
    let mut input = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    if get_usize(&mut input)? != points {
        return Err(invalid("point count").into());
    }
    let mut results = vec![Ok(()); points];
    for _ in 0..count(&mut input)? {
        let index = get_usize(&mut input)?;
        let error = match take_byte(&mut input)? {
            0 => PointError::KindMismatch {
                stored: byte_kind(take_byte(&mut input)?)?,
                written: byte_kind(take_byte(&mut input)?)?,
            },
            1 => PointError::NotANumber,
            2 => PointError::StringTooLong {
                len: get_usize(&mut input)?,
                max: get_usize(&mut input)?,
            },
            3 => PointError::Rejected,
            _ => return Err(invalid("refusal reason").into()),
        };
        *results
            .get_mut(index)
            .ok_or_else(|| invalid("point index"))? = Err(error);
    }
    if !input.is_empty() {
        return Err(invalid("bytes after the last refusal").into());
    }
    Ok(WriteOutcome { results })
}

fn take_byte(input: &mut &[u8]) -> Result<u8, sundial_codec::Error> {
    let (&b, rest) = input
        .split_first()
        .ok_or(sundial_codec::Error::Truncated("refusal"))?;
    *input = rest;
    Ok(b)
}

pub(super) fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Numeric => 0,
        Kind::String => 1,
        Kind::Bytes => 2,
    }
}

pub(super) fn byte_kind(b: u8) -> Result<Kind, sundial_codec::Error> {
    match b {
        0 => Ok(Kind::Numeric),
        1 => Ok(Kind::String),
        2 => Ok(Kind::Bytes),
        _ => Err(invalid("kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_comes_back_at_its_index() -> Result<(), FrameError> {
        let errors = [
            PointError::KindMismatch {
                stored: Kind::Numeric,
                written: Kind::String,
            },
            PointError::KindMismatch {
                stored: Kind::Bytes,
                written: Kind::Numeric,
            },
            PointError::NotANumber,
            PointError::StringTooLong {
                len: 300_000,
                max: 20_480,
            },
            PointError::Rejected,
        ];
        let mut results = vec![Ok(()); 40];
        for (i, e) in errors.iter().enumerate() {
            results[i * 7 + 1] = Err(e.clone());
        }
        let outcome = WriteOutcome { results };
        let bytes = encode_outcome(&outcome);
        assert_eq!(decode_outcome(&bytes, 40)?.results, outcome.results);
        assert!(
            decode_outcome(&bytes, 41).is_err(),
            "an answer for another frame"
        );
        let all_ok = encode_outcome(&WriteOutcome {
            results: vec![Ok(()); 100],
        });
        assert_eq!(all_ok.len(), 6, "magic, count, no refusals");
        Ok(())
    }

    #[test]
    fn damaged_answers_are_errors() {
        let mut results = vec![Ok(()); 5];
        results[4] = Err(PointError::StringTooLong { len: 9, max: 3 });
        let bytes = encode_outcome(&WriteOutcome { results });
        for cut in 0..bytes.len() {
            assert!(decode_outcome(&bytes[..cut], 5).is_err(), "cut at {cut}");
        }
        // An index past the points, a reason or kind that does not exist.
        let mut out = MAGIC.to_vec();
        out.extend([2, 1, 5, 3]);
        assert!(decode_outcome(&out, 2).is_err());
        let mut out = MAGIC.to_vec();
        out.extend([2, 1, 0, 9]);
        assert!(decode_outcome(&out, 2).is_err());
        let mut out = MAGIC.to_vec();
        out.extend([2, 1, 0, 0, 0, 7]);
        assert!(decode_outcome(&out, 2).is_err());
    }
}
