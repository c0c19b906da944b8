//! One stream of numbers: `varint len` and a `pco` stream of that many
//! bytes, or, for at most [`SMALL`] numbers, `varint 1` and one zigzag
//! varint per number, the delta of its bits from the previous number's.
//! pco's fixed cost per stream (headers, choosing bins) is several
//! microseconds; a flush of a million series' few points each pays it a
//! million times, and on so few numbers the varints are as small or
//! smaller. A pco stream is never one byte long, so the two cannot be
//! confused, and blocks written before the varint form read as before.

use crate::{Effort, Error, Result, varint};

/// Streams of at most this many numbers are written as varints.
pub(crate) const SMALL: usize = 16;

/// Where a pco stream's length would be: a varint stream follows.
const VARINTS: usize = 1;

/// The numbers a stream can hold, as 64 bits for the varint form.
pub(crate) trait Number: pco::data_types::Number {
    fn to_bits(self) -> u64;
    /// `None` for bits that no value of the type has.
    fn from_bits(bits: u64) -> Option<Self>;
}

impl Number for i64 {
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bits as i64)
    }
}

impl Number for f64 {
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(f64::from_bits(bits))
    }
}

impl Number for u32 {
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> Option<Self> {
        u32::try_from(bits).ok()
    }
}

/// Appends the stream of `nums`.
pub(crate) fn encode<T: Number>(nums: &[T], effort: Effort, out: &mut Vec<u8>) -> Result<()> {
    if nums.len() <= SMALL {
        varint::put(out, VARINTS as u64);
        let mut prev = 0u64;
        for n in nums {
            let bits = n.to_bits();
            varint::put(out, varint::zigzag(bits.wrapping_sub(prev) as i64));
            prev = bits;
        }
        return Ok(());
    }
    let config = pco::ChunkConfig::default().with_compression_level(effort.level());
    let bytes =
        pco::standalone::simple_compress(nums, &config).map_err(|e| Error::Pco(e.to_string()))?;
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Reads a stream of `n` numbers; `input` advances past it.
pub(crate) fn decode<T: Number>(input: &mut &[u8], n: usize) -> Result<Vec<T>> {
    let len = varint::get_usize(input)?;
    if len == VARINTS {
        if n > SMALL {
            return Err(Error::Invalid(format!("{n} numbers as varints")));
        }
        let mut out = Vec::with_capacity(n);
        let mut prev = 0u64;
        for _ in 0..n {
            let bits = prev.wrapping_add(varint::unzigzag(varint::get(input)?) as u64);
            out.push(
                T::from_bits(bits).ok_or_else(|| Error::Invalid("number out of range".into()))?,
            );
            prev = bits;
        }
        return Ok(out);
    }
    let bytes = varint::take(input, len)?;
    let nums: Vec<T> =
        pco::standalone::simple_decompress(bytes).map_err(|e| Error::Pco(e.to_string()))?;
    if nums.len() != n {
        return Err(Error::Invalid(format!(
            "expected {n} numbers, found {}",
            nums.len()
        )));
    }
    Ok(nums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T: Number + std::fmt::Debug>(nums: &[T]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        encode(nums, Effort::Small, &mut out)?;
        let mut input = out.as_slice();
        let back = decode(&mut input, nums.len())?;
        assert!(input.is_empty(), "{} bytes left", input.len());
        Ok(back)
    }

    #[test]
    fn a_pco_stream_is_never_as_short_as_the_varint_marker() -> Result<()> {
        let config = pco::ChunkConfig::default();
        let one = pco::standalone::simple_compress(&[0i64], &config)
            .map_err(|e| Error::Pco(e.to_string()))?;
        assert!(one.len() > VARINTS);
        Ok(())
    }

    /// Blocks written before the varint form hold pco streams of a few
    /// numbers too.
    #[test]
    fn an_older_pco_stream_of_few_numbers_still_reads() -> Result<()> {
        let nums = [3i64, -7, 1 << 40];
        let config = pco::ChunkConfig::default();
        let bytes = pco::standalone::simple_compress(&nums, &config)
            .map_err(|e| Error::Pco(e.to_string()))?;
        let mut old = Vec::new();
        varint::put(&mut old, bytes.len() as u64);
        old.extend_from_slice(&bytes);
        let mut input = old.as_slice();
        assert_eq!(decode::<i64>(&mut input, nums.len())?, nums);
        let mut new = Vec::new();
        encode(&nums, Effort::Small, &mut new)?;
        assert!(
            new.len() < old.len(),
            "{} >= {} bytes",
            new.len(),
            old.len()
        );
        Ok(())
    }

    proptest! {
        /// Both forms round-trip every bit pattern, at and past the bound.
        #[test]
        fn streams_round_trip(
            longs in proptest::collection::vec(any::<i64>(), 0..40),
            doubles in proptest::collection::vec(any::<u64>(), 0..40),
            kinds in proptest::collection::vec(0u32..4, 0..40),
        ) {
            prop_assert_eq!(round_trip(&longs)?, longs);
            // Compared as bits: NaN payloads and -0.0 must survive.
            let doubles: Vec<f64> = doubles.into_iter().map(f64::from_bits).collect();
            let back: Vec<u64> = round_trip(&doubles)?.into_iter().map(f64::to_bits).collect();
            prop_assert_eq!(back, doubles.iter().map(|d| d.to_bits()).collect::<Vec<_>>());
            prop_assert_eq!(round_trip(&kinds)?, kinds);
        }

        /// Damaged varint streams are errors, never panics or wrong counts.
        #[test]
        fn damaged_varint_streams_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..40), n in 0usize..40) {
            let input = [&[VARINTS as u8][..], &bytes].concat();
            let mut slice = input.as_slice();
            if let Ok(nums) = decode::<u32>(&mut slice, n) {
                prop_assert_eq!(nums.len(), n);
            }
        }
    }
}
