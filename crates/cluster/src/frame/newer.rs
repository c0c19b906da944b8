//! An owner's answer to a querier that reads the blocks itself: per
//! shard, what is newer than the checkpoint the querier holds
//! (docs/cluster.md, "Queriers read the blocks").
//!
//! ```text
//! "SDN1" | shard count (the shards covered), then each
//! part count, then each part: shard, then
//!   0: the shard holds no such database
//!   1: stale, then the checkpoint's object count and keys
//!   3: changed since the checkpoint in a way rows cannot carry
//!   2: newer, then the owner's epoch (zigzag), the database's
//!      incarnation there, min_ts (zigzag); series count, then each: id, key;
//!      field count, then each: name, kind byte; row count, then each:
//!      id, column count, then each: name, point count, then each: time
//!      gap (zigzag), value
//! ```

use super::outcome::{byte_kind, kind_byte};
use super::{
    FrameError, count, get_key, get_shards, get_str, invalid, put_key, put_shards, put_str,
};
use sundial_codec::value::{get_tagged_value, put_value};
use sundial_codec::varint::{get, put, take, unzigzag, zigzag};
use sundial_model::{Kind, SeriesKey, Timestamp};
use sundial_storage::{OverlayRows, SeriesId};

const MAGIC: &[u8; 4] = b"SDN1";

/// The shards an owner answered for, and a part for each that holds the
/// database or whose checkpoint the querier lacks.
#[derive(Debug, Default)]
pub(crate) struct NewerAnswer {
    pub shards: Vec<u32>,
    pub parts: Vec<(u32, Newer)>,
}

/// One shard's part.
#[derive(Debug)]
pub(crate) enum Newer {
    /// The shard holds nothing of the database.
    Absent,
    /// The querier's copy is not the owner's last checkpoint: these state
    /// objects are (empty: the database was never checkpointed).
    Stale { checkpoint: Vec<String> },
    /// The database changed since the checkpoint in a way points laid
    /// over it cannot express: the owner runs the query.
    Changed,
    /// What the checkpoint lacks.
    Rows(NewerRows),
}

/// What a shard database holds beyond its checkpoint, for one query.
#[derive(Debug, Default)]
pub(crate) struct NewerRows {
    /// The owner's lease epoch and the database's incarnation there: the
    /// series ids are this opening's.
    pub epoch: i64,
    pub incarnation: u64,
    /// The owner's retention cutoff.
    pub min_ts: Timestamp,
    /// Series defined from the querier's next id on.
    pub series: Vec<(SeriesId, SeriesKey)>,
    /// The metric's fields and their kinds.
    pub kinds: Vec<(String, Kind)>,
    /// The metric's points in the query's range outside the checkpoint's
    /// blocks.
    pub rows: OverlayRows,
}

pub(crate) fn encode_newer(answer: &NewerAnswer) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_shards(&mut out, &answer.shards);
    put(&mut out, answer.parts.len() as u64);
    for (shard, part) in &answer.parts {
        put(&mut out, u64::from(*shard));
        match part {
            Newer::Absent => out.push(0),
            Newer::Stale { checkpoint } => {
                out.push(1);
                put(&mut out, checkpoint.len() as u64);
                for key in checkpoint {
                    put_str(&mut out, key);
                }
            }
            Newer::Changed => out.push(3),
            Newer::Rows(rows) => {
                out.push(2);
                put_rows(&mut out, rows);
            }
        }
    }
    out
}

fn put_rows(out: &mut Vec<u8>, newer: &NewerRows) {
    put(out, zigzag(newer.epoch));
    put(out, newer.incarnation);
    put(out, zigzag(newer.min_ts));
    put(out, newer.series.len() as u64);
    for (id, key) in &newer.series {
        put(out, u64::from(id.0));
        put_key(out, key);
    }
    put(out, newer.kinds.len() as u64);
    for (field, kind) in &newer.kinds {
        put_str(out, field);
        out.push(kind_byte(*kind));
    }
    put(out, newer.rows.len() as u64);
    for (id, columns) in &newer.rows {
        put(out, u64::from(id.0));
        put(out, columns.len() as u64);
        for (field, points) in columns {
            put_str(out, field);
            put(out, points.len() as u64);
            let mut last = 0i64;
            for (t, v) in points {
                put(out, zigzag(t.wrapping_sub(last)));
                last = *t;
                put_value(out, v);
            }
        }
    }
}

/// Decodes an answer; damaged or hostile bytes are an error, never a
/// panic or an allocation beyond the bytes received.
pub(crate) fn decode_newer(bytes: &[u8]) -> Result<NewerAnswer, FrameError> {
    let mut input = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    let shards = get_shards(&mut input)?;
    let mut parts = Vec::new();
    for _ in 0..count(&mut input)? {
        let shard = get_id(&mut input)?;
        let part = match take(&mut input, 1)?[0] {
            0 => Newer::Absent,
            1 => Newer::Stale {
                checkpoint: (0..count(&mut input)?)
                    .map(|_| get_str(&mut input))
                    .collect::<Result<_, _>>()?,
            },
            2 => Newer::Rows(get_rows(&mut input)?),
            3 => Newer::Changed,
            _ => return Err(invalid("part").into()),
        };
        parts.push((shard, part));
    }
    if !input.is_empty() {
        return Err(invalid("bytes after the last part").into());
    }
    Ok(NewerAnswer { shards, parts })
}

fn get_rows(input: &mut &[u8]) -> Result<NewerRows, sundial_codec::Error> {
    let epoch = unzigzag(get(input)?);
    let incarnation = get(input)?;
    let min_ts = unzigzag(get(input)?);
    let series = (0..count(input)?)
        .map(|_| Ok((SeriesId(get_id(input)?), get_key(input)?)))
        .collect::<Result<Vec<_>, sundial_codec::Error>>()?;
    let kinds = (0..count(input)?)
        .map(|_| {
            let field = get_str(input)?;
            Ok((field, byte_kind(take(input, 1)?[0])?))
        })
        .collect::<Result<Vec<_>, sundial_codec::Error>>()?;
    let mut rows = Vec::new();
    for _ in 0..count(input)? {
        let id = SeriesId(get_id(input)?);
        let mut columns = Vec::new();
        for _ in 0..count(input)? {
            let field = get_str(input)?;
            let mut points = Vec::new();
            let mut last = 0i64;
            for _ in 0..count(input)? {
                last = last.wrapping_add(unzigzag(get(input)?));
                let tag = take(input, 1)?[0];
                points.push((last, get_tagged_value(tag, input)?));
            }
            columns.push((field, points));
        }
        rows.push((id, columns));
    }
    Ok(NewerRows {
        epoch,
        incarnation,
        min_ts,
        series,
        kinds,
        rows,
    })
}

fn get_id(input: &mut &[u8]) -> Result<u32, sundial_codec::Error> {
    u32::try_from(get(input)?).map_err(|_| invalid("id"))
}
