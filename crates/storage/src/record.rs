//! The byte form of a batch of points in WAL records (`docs/format/wal.md`),
//! and the CRC framing shared by WAL records and block chunks.
//!
//! A batch first defines the series it introduces (persistent id → key),
//! then its field names, then the points, which refer to both by number:
//! a point costs a few bytes instead of its whole series key.

use crate::head::SeriesId;
use sundial_model::{FieldValue, Name, SeriesKey, Timestamp};

/// One decoded batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Batch {
    /// Series first seen in this batch's log (or part).
    pub(crate) new_series: Vec<(SeriesId, SeriesKey)>,
    /// Field names the points refer to by index.
    pub(crate) fields: Vec<String>,
    pub(crate) points: Vec<BatchPoint>,
}

/// A point of a batch: series id, index into `fields`, time, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchPoint {
    pub(crate) series: SeriesId,
    pub(crate) field: u32,
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
        .split_first_chunk::<FRAME_HEADER>()
        .ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let (payload, tail) = rest.split_at_checked(len).ok_or(FrameError::Truncated)?;
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Checksum);
    }
    Ok((payload, tail))
}

/// Builds a batch payload incrementally: series definitions, fields and
/// points may come in any order, each kept in its own section.
#[derive(Debug, Default)]
pub(crate) struct BatchEncoder {
    head: Vec<u8>,
    body: Vec<u8>,
    new_series: u64,
    fields: Vec<String>,
    points: u64,
}

impl BatchEncoder {
    pub(crate) fn define_series(&mut self, id: SeriesId, key: &SeriesKey) {
        self.new_series += 1;
        put_varint(&mut self.head, u64::from(id.0));
        put_str(&mut self.head, &key.metric);
        put_varint(&mut self.head, key.tags.len() as u64);
        for (k, v) in &key.tags {
            put_str(&mut self.head, k);
            put_str(&mut self.head, v);
        }
    }

    /// The field names of the batch, by the index [`BatchEncoder::field`]
    /// gave.
    pub(crate) fn fields(&self) -> &[String] {
        &self.fields
    }

    /// About the bytes [`BatchEncoder::define_series`] takes for `key`.
    pub(crate) fn key_bytes(key: &SeriesKey) -> usize {
        let tags: usize = key.tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        key.metric.len() + tags + 8
    }

    /// Index of `field` in this batch's field list.
    pub(crate) fn field(&mut self, field: &str) -> u32 {
        match self.fields.iter().position(|f| f == field) {
            Some(i) => i as u32,
            None => {
                self.fields.push(field.to_owned());
                (self.fields.len() - 1) as u32
            }
        }
    }

    pub(crate) fn point(
        &mut self,
        series: SeriesId,
        field: u32,
        ts: Timestamp,
        value: &FieldValue,
    ) {
        self.points += 1;
        let out = &mut self.body;
        put_varint(out, u64::from(series.0));
        put_varint(out, u64::from(field));
        put_varint(out, zigzag(ts));
        sundial_codec::value::put_value(out, value);
    }

    /// Room for `series` new series whose keys take about `key_bytes`
    /// each and for `points` points, reserved at once: a write of
    /// thousands of series otherwise grows its record a dozen times, each
    /// copy landing on fresh pages.
    pub(crate) fn reserve(&mut self, series: usize, key_bytes: usize, points: usize) {
        self.head.reserve(series.saturating_mul(key_bytes));
        // Series id, field, timestamp delta and a value: 16 bytes is ample.
        self.body.reserve(points.saturating_mul(16));
    }

    /// The payload; the encoder is reset for reuse.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<u8>) {
        let fields: usize = self.fields.iter().map(|f| f.len() + 10).sum();
        out.reserve(self.head.len() + self.body.len() + fields + 30);
        put_varint(out, self.new_series);
        out.extend_from_slice(&self.head);
        put_varint(out, self.fields.len() as u64);
        for f in &self.fields {
            put_str(out, f);
        }
        put_varint(out, self.points);
        out.extend_from_slice(&self.body);
        self.head.clear();
        self.body.clear();
        self.fields.clear();
        self.new_series = 0;
        self.points = 0;
    }
}

/// Decodes a batch payload. Errors say what is wrong; they never panic.
pub(crate) fn decode_batch(mut input: &[u8]) -> Result<Batch, String> {
    let input = &mut input;
    let n_series = bounded_count(input, 3, "series")?;
    let mut new_series = Vec::with_capacity(n_series);
    for _ in 0..n_series {
        let id = u32::try_from(get_varint(input)?).map_err(|_| "series id overflow")?;
        let metric = get_str(input)?;
        let ntags = bounded_count(input, 2, "tag")?;
        let mut tags = Vec::with_capacity(ntags);
        for _ in 0..ntags {
            let k = get_name(input)?;
            let v = get_name(input)?;
            tags.push((k, v));
        }
        new_series.push((SeriesId(id), SeriesKey::from_names(metric, tags)));
    }
    let n_fields = bounded_count(input, 1, "field")?;
    let mut fields = Vec::with_capacity(n_fields);
    for _ in 0..n_fields {
        fields.push(get_str(input)?);
    }
    let n_points = bounded_count(input, 4, "point")?;
    let mut points = Vec::with_capacity(n_points);
    for _ in 0..n_points {
        let series = u32::try_from(get_varint(input)?).map_err(|_| "series id overflow")?;
        let field = u32::try_from(get_varint(input)?).map_err(|_| "field index overflow")?;
        if field as usize >= fields.len() {
            return Err(format!("field index {field} out of range"));
        }
        let timestamp = unzigzag(get_varint(input)?);
        let value = sundial_codec::value::get_value(input).map_err(|e| e.to_string())?;
        points.push(BatchPoint {
            series: SeriesId(series),
            field,
            timestamp,
            value,
        });
    }
    if !input.is_empty() {
        return Err(format!("{} trailing bytes after the batch", input.len()));
    }
    Ok(Batch {
        new_series,
        fields,
        points,
    })
}

/// Reads a count and rejects one that cannot fit in the remaining bytes
/// (each item takes at least `min_bytes`), before anything is allocated.
fn bounded_count(input: &mut &[u8], min_bytes: usize, what: &str) -> Result<usize, String> {
    let n = get_varint(input)?;
    if n > (input.len() / min_bytes) as u64 {
        return Err(format!("{what} count {n} exceeds the record size"));
    }
    Ok(n as usize)
}

pub(crate) use sundial_codec::varint::{put as put_varint, unzigzag, zigzag};

pub(crate) fn get_varint(input: &mut &[u8]) -> Result<u64, String> {
    sundial_codec::varint::get(input).map_err(|e| e.to_string())
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn get_str(input: &mut &[u8]) -> Result<String, String> {
    get_text(input).map(str::to_owned)
}

/// A tag name, without a heap string when it is short.
fn get_name(input: &mut &[u8]) -> Result<Name, String> {
    get_text(input).map(Name::from)
}

fn get_text<'a>(input: &mut &'a [u8]) -> Result<&'a str, String> {
    let len = usize::try_from(get_varint(input)?).map_err(|_| "string length overflow")?;
    let bytes = take(input, len)?;
    std::str::from_utf8(bytes).map_err(|_| "string is not UTF-8".to_string())
}

pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    sundial_codec::varint::take(input, n).map_err(|e| format!("needs {n} bytes: {e}"))
}

/// Appends `varint len(data)` and a zstd frame of `data`.
pub(crate) fn deflate_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<()> {
    put_varint(out, data.len() as u64);
    out.extend(zstd::bulk::compress(data, level)?);
    Ok(())
}

/// Reads what [`deflate_into`] wrote; a stated length above `max` is refused
/// (the decompressor allocates it).
pub(crate) fn inflate(mut input: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let len = usize::try_from(get_varint(&mut input)?)
        .ok()
        .filter(|n| *n <= max)
        .ok_or("compressed length out of range")?;
    // A context per thread: making one costs as much as inflating a
    // small payload, and folds inflate one per chunk.
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let out = CONTEXT
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            let context = match cell.as_mut() {
                Some(c) => c,
                None => cell.insert(zstd::bulk::Decompressor::new()?),
            };
            context.decompress(input, len)
        })
        .map_err(|e| format!("zstd: {e}"))?;
    if out.len() != len {
        return Err(format!("holds {} bytes, not {len}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
