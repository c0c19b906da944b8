//! LEB128 varints, zigzag, and length-prefixed texts: the small pieces
//! every Sundial byte format is built from.

use crate::{Error, Result};

pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get(input: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take(input, 1)?[0];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::Invalid("varint longer than 10 bytes".into()))
}

pub fn get_usize(input: &mut &[u8]) -> Result<usize> {
    usize::try_from(get(input)?).map_err(|_| Error::Invalid("length overflow".into()))
}

pub fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    let (head, tail) = input.split_at_checked(n).ok_or(Error::Truncated("bytes"))?;
    *input = tail;
    Ok(head)
}

/// Appends `texts` as a count and length-prefixed byte strings.
pub fn encode_texts_into<T: AsRef<[u8]>>(texts: &[T], out: &mut Vec<u8>) {
    put(out, texts.len() as u64);
    for t in texts {
        put(out, t.as_ref().len() as u64);
        out.extend_from_slice(t.as_ref());
    }
}

/// Reads what `encode_texts_into` wrote; `input` advances past it.
pub fn decode_texts(input: &mut &[u8]) -> Result<Vec<Vec<u8>>> {
    let n = get_usize(input)?;
    if n > input.len() {
        return Err(Error::Invalid(format!("text count {n} exceeds the input")));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = get_usize(input)?;
        out.push(take(input, len)?.to_vec());
    }
    Ok(out)
}

/// Maps signed to unsigned so small magnitudes make short varints.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
