//! The byte form of one shard's points: what a router sends the shard's
//! owner and what the owner appends to the shard's write-ahead log. Like
//! a WAL record (docs/format/wal.md) it names each series and field once
//! and points refer to them by number, but the numbers are the frame's
//! own, so any node can read it. Values travel as the API adapter left
//! them: a text value is resolved only by the owner, which knows the
//! field's kind. Layout: docs/cluster.md, "Frames".

use std::collections::HashMap;
use std::sync::Arc;
use sundial_codec::value::{FIRST_FREE_TAG, get_tagged_value, put_value};
use sundial_codec::varint::{get, get_usize, put, take, unzigzag, zigzag};
use sundial_model::{NumberText, SeriesKey, ValueInput, WritePoint};

mod folded;
mod newer;
mod outcome;
mod rows;
mod staged;
mod stats;

pub use folded::FoldedAnswer;
pub(crate) use folded::{decode_folded, encode_folded};
pub(crate) use newer::{Newer, NewerAnswer, NewerRows};
pub(crate) use newer::{decode_newer, encode_newer};
pub use outcome::{decode_outcome, encode_outcome};
pub use rows::{ExportAnswer, RowsAnswer};
pub(crate) use rows::{decode_export, decode_rows, encode_export, encode_rows};
pub use staged::StagedAnswer;
pub(crate) use staged::{decode_staged, encode_staged};
pub use stats::StatsAnswer;
pub(crate) use stats::{decode_stats, encode_stats};

const MAGIC: &[u8; 4] = b"SDF2";

/// One shard's points of one write, with what the owner checks.
#[derive(Debug, Clone)]
pub struct ShardBatch {
    pub database: String,
    pub shard: u32,
    /// The owner's lease epoch the router saw: a different one means the
    /// router's view of the owners is stale, and it asks again.
    pub epoch: i64,
    /// Unique per batch and kept by retries, so the log stores a batch
    /// once however often it is sent.
    pub id: u128,
    pub points: Vec<WritePoint>,
    /// How the points stand together, as the adapter asked.
    pub rules: BatchRules,
}

impl ShardBatch {
    /// A frame without points, for the log alone: an owner's fence
    /// (claiming the log under `epoch`), or where a log starts again.
    pub fn marker(shard: u32, epoch: i64, id: u128) -> Self {
        Self {
            rules: Default::default(),
            database: String::new(),
            shard,
            epoch,
            id,
            points: Vec::new(),
        }
    }
}

/// The adapter's [`sundial_storage::Rules`] for one shard's points,
/// carried in the frame so a replay applies exactly what the first
/// owner applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRules {
    /// Sizes of consecutive all-or-nothing groups; points past them
    /// stand alone.
    pub groups: Vec<usize>,
    /// Points the adapter refused after the kind check (missing entries
    /// are `false`).
    pub vetoed: Vec<bool>,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a Sundial frame")]
    Magic,
    #[error("frame checksum mismatch")]
    Checksum,
    #[error("damaged frame: {0}")]
    Damaged(#[from] sundial_codec::Error),
}

/// Encodes `batch`: magic, body, CRC-32 of the body.
pub fn encode(batch: &ShardBatch) -> Vec<u8> {
    let mut series: HashMap<&SeriesKey, u64> = HashMap::new();
    let mut fields: HashMap<&str, u64> = HashMap::new();
    let (mut series_table, mut field_table, mut points) = (Vec::new(), Vec::new(), Vec::new());
    for p in &batch.points {
        let next = series.len() as u64;
        let s = *series.entry(&p.series).or_insert_with(|| {
            put_key(&mut series_table, &p.series);
            next
        });
        let next = fields.len() as u64;
        let f = *fields.entry(&p.field).or_insert_with(|| {
            put_str(&mut field_table, &p.field);
            next
        });
        put(&mut points, s);
        put(&mut points, f);
        put(&mut points, zigzag(p.timestamp));
        put_input(&mut points, &p.value);
    }
    let mut body = Vec::with_capacity(series_table.len() + field_table.len() + points.len() + 64);
    put_str(&mut body, &batch.database);
    put(&mut body, u64::from(batch.shard));
    put(&mut body, zigzag(batch.epoch));
    body.extend_from_slice(&batch.id.to_le_bytes());
    put(&mut body, series.len() as u64);
    body.extend_from_slice(&series_table);
    put(&mut body, fields.len() as u64);
    body.extend_from_slice(&field_table);
    put(&mut body, batch.points.len() as u64);
    body.extend_from_slice(&points);
    put_rules(&mut body, &batch.rules);
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out
}

/// Decodes a frame; any damage is an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<ShardBatch, FrameError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    let (body, crc) = rest
        .split_last_chunk::<4>()
        .ok_or(sundial_codec::Error::Truncated("checksum"))?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(FrameError::Checksum);
    }
    let mut input = body;
    let database = get_str(&mut input)?;
    let shard = u32::try_from(get(&mut input)?).map_err(|_| invalid("shard"))?;
    let epoch = unzigzag(get(&mut input)?);
    let id = take(&mut input, 16)?
        .try_into()
        .map(u128::from_le_bytes)
        .map_err(|_| invalid("batch id"))?;
    let series = (0..count(&mut input)?)
        .map(|_| get_key(&mut input).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let fields = (0..count(&mut input)?)
        .map(|_| get_str(&mut input))
        .collect::<Result<Vec<_>, _>>()?;
    let n = count(&mut input)?;
    let mut points = Vec::with_capacity(n);
    for _ in 0..n {
        let s = get_usize(&mut input)?;
        let f = get_usize(&mut input)?;
        points.push(WritePoint {
            series: series
                .get(s)
                .ok_or_else(|| invalid("series number"))?
                .clone(),
            field: fields
                .get(f)
                .ok_or_else(|| invalid("field number"))?
                .as_str()
                .into(),
            timestamp: unzigzag(get(&mut input)?),
            value: get_input(&mut input)?,
        });
    }
    let rules = get_rules(&mut input, n)?;
    if !input.is_empty() {
        return Err(invalid("bytes after the rules").into());
    }
    Ok(ShardBatch {
        database,
        shard,
        epoch,
        id,
        points,
        rules,
    })
}

/// Group sizes, then the vetoed points as gaps between their indices.
fn put_rules(out: &mut Vec<u8>, rules: &BatchRules) {
    put(out, rules.groups.len() as u64);
    for size in &rules.groups {
        put(out, *size as u64);
    }
    let vetoed: Vec<usize> = (rules.vetoed.iter().enumerate())
        .filter_map(|(i, v)| v.then_some(i))
        .collect();
    put(out, vetoed.len() as u64);
    let mut next = 0;
    for i in vetoed {
        put(out, (i - next) as u64);
        next = i + 1;
    }
}

fn get_rules(input: &mut &[u8], points: usize) -> Result<BatchRules, sundial_codec::Error> {
    let groups = (0..count(input)?)
        .map(|_| get_usize(input))
        .collect::<Result<Vec<_>, _>>()?;
    let n = count(input)?;
    let mut vetoed = Vec::new();
    let mut next = 0usize;
    for _ in 0..n {
        let i = next
            .checked_add(get_usize(input)?)
            .filter(|i| *i < points)
            .ok_or_else(|| invalid("vetoed point"))?;
        vetoed.resize(i, false);
        vetoed.push(true);
        next = i + 1;
    }
    Ok(BatchRules { groups, vetoed })
}

fn invalid(what: &str) -> sundial_codec::Error {
    sundial_codec::Error::Invalid(format!("bad {what}"))
}

/// A count of entries of at least one byte each: never more than the
/// bytes left, so a hostile count cannot make a huge allocation.
fn count(input: &mut &[u8]) -> Result<usize, sundial_codec::Error> {
    let n = get_usize(input)?;
    if n > input.len() {
        return Err(invalid("count"));
    }
    Ok(n)
}

/// The shards a read answer covers.
fn put_shards(out: &mut Vec<u8>, shards: &[u32]) {
    put(out, shards.len() as u64);
    for shard in shards {
        put(out, u64::from(*shard));
    }
}

fn get_shards(input: &mut &[u8]) -> Result<Vec<u32>, sundial_codec::Error> {
    (0..count(input)?)
        .map(|_| u32::try_from(get(input)?).map_err(|_| invalid("shard")))
        .collect()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(input: &mut &[u8]) -> Result<String, sundial_codec::Error> {
    get_text(input).map(str::to_owned)
}

fn get_text<'a>(input: &mut &'a [u8]) -> Result<&'a str, sundial_codec::Error> {
    let len = get_usize(input)?;
    let bytes = take(input, len)?;
    std::str::from_utf8(bytes).map_err(|_| invalid("UTF-8 text"))
}

fn put_key(out: &mut Vec<u8>, key: &SeriesKey) {
    put_str(out, &key.metric);
    put(out, key.tags.len() as u64);
    for (k, v) in key.tags.iter() {
        put_str(out, k);
        put_str(out, v);
    }
}

fn get_key(input: &mut &[u8]) -> Result<SeriesKey, sundial_codec::Error> {
    let metric = get_str(input)?;
    let tags = (0..count(input)?)
        .map(|_| Ok((get_text(input)?.into(), get_text(input)?.into())))
        .collect::<Result<Vec<_>, sundial_codec::Error>>()?;
    Ok(SeriesKey::from_names(metric, tags))
}

// A value is a stored value's tag and bytes (`sundial_codec::value`), or
// TEXT: an untyped text, then how it reads as a number.
const TEXT: u8 = FIRST_FREE_TAG;
const NOT_NUMERIC: u8 = 0;
const NUMBER: u8 = 1;
const INVALID: u8 = 2;

fn put_input(out: &mut Vec<u8>, v: &ValueInput) {
    match v {
        ValueInput::Typed(v) => put_value(out, v),
        ValueInput::Text { text, number } => {
            out.push(TEXT);
            put_str(out, text);
            match number {
                NumberText::NotNumeric => out.push(NOT_NUMERIC),
                NumberText::Invalid => out.push(INVALID),
                NumberText::Number(n) => {
                    out.push(NUMBER);
                    put_value(out, n);
                }
            }
        }
    }
}

fn get_input(input: &mut &[u8]) -> Result<ValueInput, sundial_codec::Error> {
    let tag = take(input, 1)?[0];
    if tag != TEXT {
        return get_tagged_value(tag, input).map(ValueInput::Typed);
    }
    let text = get_str(input)?;
    let number = match take(input, 1)?[0] {
        NOT_NUMERIC => NumberText::NotNumeric,
        INVALID => NumberText::Invalid,
        NUMBER => {
            let tag = take(input, 1)?[0];
            NumberText::Number(get_tagged_value(tag, input)?)
        }
        _ => return Err(invalid("text reading")),
    };
    Ok(ValueInput::Text { text, number })
}

#[cfg(test)]
pub(crate) mod tests;
