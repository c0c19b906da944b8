//! The byte form of a batch of resolved points, shared by WAL records and
//! part-file frames (`docs/format/wal.md`), and the CRC framing around it.
//!
//! Batch: `varint count`, then per point `str metric`, `varint ntags`,
//! `ntags × (str key, str value)`, `str field`, `zigzag-varint ts_ms`,
//! `u8 value tag` + value bytes. `str` is `varint len` + UTF-8 bytes.
//! Value tags: 0 Long (zigzag varint), 1 Double (8 bytes LE), 2 false,
//! 3 true, 4 String (str), 5 Bytes (varint len + bytes).

use sundial_model::{FieldValue, SeriesKey, Timestamp};

/// One decoded point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordPoint {
    pub(crate) series: SeriesKey,
    pub(crate) field: String,
    pub(crate) timestamp: Timestamp,
    pub(crate) value: FieldValue,
}

/// Bytes before each frame's payload: `u32 LE len`, `u32 LE crc32(payload)`.
pub(crate) const FRAME_HEADER: usize = 8;

/// Appends one frame holding `payload` to `out`.
pub(crate) fn frame_into(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The input ends inside the frame (a torn tail).
    Truncated,
    /// The checksum does not match.
    Checksum,
}

/// Reads the frame at the start of `input`: the payload and the unread tail.
pub(crate) fn read_frame(input: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let (header, rest) = input
        .split_at_checked(FRAME_HEADER)
        .ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let (payload, tail) = rest.split_at_checked(len).ok_or(FrameError::Truncated)?;
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Checksum);
    }
    Ok((payload, tail))
}

/// Encodes points into a batch payload, appending to `out`.
pub(crate) fn encode_batch_into<'a, I>(points: I, count: usize, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = (&'a SeriesKey, &'a str, Timestamp, &'a FieldValue)>,
{
    put_varint(out, count as u64);
    for (series, field, ts, value) in points {
        put_str(out, &series.metric);
        put_varint(out, series.tags.len() as u64);
        for (k, v) in &series.tags {
            put_str(out, k);
            put_str(out, v);
        }
        put_str(out, field);
        put_varint(out, zigzag(ts));
        match value {
            FieldValue::Long(v) => {
                out.push(0);
                put_varint(out, zigzag(*v));
            }
            FieldValue::Double(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            FieldValue::Bool(false) => out.push(2),
            FieldValue::Bool(true) => out.push(3),
            FieldValue::String(s) => {
                out.push(4);
                put_str(out, s);
            }
            FieldValue::Bytes(b) => {
                out.push(5);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
    }
}

/// Decodes a batch payload. Errors say what is wrong; they never panic.
pub(crate) fn decode_batch(mut input: &[u8]) -> Result<Vec<RecordPoint>, String> {
    let count = get_varint(&mut input)?;
    // Each point takes at least 6 bytes: reject absurd counts before allocating.
    if count > input.len() as u64 / 6 {
        return Err(format!("point count {count} exceeds the record size"));
    }
    let mut points = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let metric = get_str(&mut input)?;
        let ntags = get_varint(&mut input)?;
        if ntags > input.len() as u64 / 2 {
            return Err(format!("tag count {ntags} exceeds the record size"));
        }
        let mut tags = Vec::with_capacity(ntags as usize);
        for _ in 0..ntags {
            let k = get_str(&mut input)?;
            let v = get_str(&mut input)?;
            tags.push((k, v));
        }
        let field = get_str(&mut input)?;
        let timestamp = unzigzag(get_varint(&mut input)?);
        let value = match take(&mut input, 1)?[0] {
            0 => FieldValue::Long(unzigzag(get_varint(&mut input)?)),
            1 => {
                let b = take(&mut input, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                FieldValue::Double(f64::from_le_bytes(a))
            }
            2 => FieldValue::Bool(false),
            3 => FieldValue::Bool(true),
            4 => FieldValue::String(get_str(&mut input)?),
            5 => {
                let len = get_varint(&mut input)?;
                let len = usize::try_from(len).map_err(|_| "bytes length overflow")?;
                FieldValue::Bytes(take(&mut input, len)?.to_vec())
            }
            t => return Err(format!("unknown value tag {t}")),
        };
        points.push(RecordPoint {
            // Stored keys are already sorted; SeriesKey::new keeps that.
            series: SeriesKey::new(metric, tags),
            field,
            timestamp,
            value,
        });
    }
    if !input.is_empty() {
        return Err(format!("{} trailing bytes after the batch", input.len()));
    }
    Ok(points)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take(input, 1)?[0];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(input: &mut &[u8]) -> Result<String, String> {
    let len = usize::try_from(get_varint(input)?).map_err(|_| "string length overflow")?;
    let bytes = take(input, len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    let (head, tail) = input
        .split_at_checked(n)
        .ok_or_else(|| format!("needs {n} bytes, {} left", input.len()))?;
    *input = tail;
    Ok(head)
}

#[cfg(test)]
mod tests;
