//! Writes a block from a flushed head.

use super::{FOOTER_MAGIC, KIND_BYTES, KIND_NUMERIC, KIND_STRING, MAGIC, block_path};
use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, put_str, put_varint, zigzag};
use crate::wal::sync_dir;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use sundial_codec::Num;
use sundial_model::{FieldValue, SeriesKey, Timestamp};

/// One column to write: series, its key, field, points ascending by time.
pub(crate) struct Column<'a> {
    pub(crate) series: SeriesId,
    pub(crate) key: &'a SeriesKey,
    pub(crate) field: &'a str,
    pub(crate) points: &'a BTreeMap<Timestamp, FieldValue>,
}

/// Writes `columns` (sorted by series) as the block covering WAL segments
/// below `wal_below`. The file appears under its final name only once
/// complete and synced.
pub(crate) fn write(dir: &Path, wal_below: u64, columns: &[Column<'_>]) -> Result<PathBuf> {
    let path = block_path(dir, wal_below);
    let tmp = path.with_extension("tmp");
    let io = |e| Error::io("write block", &tmp, e);
    let file = File::create(&tmp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC).map_err(io)?;
    let mut offset = MAGIC.len() as u64;
    let mut index = IndexBuilder::default();
    let (mut payload, mut framed) = (Vec::new(), Vec::new());
    for col in columns.iter().filter(|c| !c.points.is_empty()) {
        payload.clear();
        framed.clear();
        let meta = encode_chunk(col, &mut payload).map_err(|e| Error::Corrupt {
            path: tmp.clone(),
            offset,
            reason: format!("cannot encode chunk: {e}"),
        })?;
        record::frame_into(&payload, &mut framed);
        out.write_all(&framed).map_err(io)?;
        index.add(col, meta, offset, framed.len() as u64);
        offset += framed.len() as u64;
    }
    framed.clear();
    record::frame_into(&index.finish(), &mut framed);
    out.write_all(&framed).map_err(io)?;
    out.write_all(&offset.to_le_bytes()).map_err(io)?;
    out.write_all(FOOTER_MAGIC).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename block", &tmp, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// What the index records about a chunk besides its place.
struct ChunkMeta {
    kind: u8,
    count: u64,
    min_ts: Timestamp,
    max_ts: Timestamp,
    stats: Option<super::ChunkStats>,
}

fn encode_chunk(col: &Column<'_>, out: &mut Vec<u8>) -> sundial_codec::Result<ChunkMeta> {
    let ts: Vec<Timestamp> = col.points.keys().copied().collect();
    let kind = match col.points.values().next() {
        Some(FieldValue::String(_)) => KIND_STRING,
        Some(FieldValue::Bytes(_)) => KIND_BYTES,
        _ => KIND_NUMERIC,
    };
    out.push(kind);
    sundial_codec::encode_timestamps_into(&ts, out)?;
    let mut stats = None;
    match kind {
        KIND_NUMERIC => {
            let nums: Vec<Num> = col
                .points
                .values()
                .map(|v| match v {
                    FieldValue::Long(i) => Num::Long(*i),
                    FieldValue::Double(d) => Num::Double(*d),
                    FieldValue::Bool(b) => Num::Bool(*b),
                    // A numeric column never holds text (kinds are fixed).
                    FieldValue::String(_) | FieldValue::Bytes(_) => Num::Double(f64::NAN),
                })
                .collect();
            let mut s = super::ChunkStats {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                sum: 0.0,
            };
            for v in col.points.values().filter_map(FieldValue::as_f64) {
                s.min = s.min.min(v);
                s.max = s.max.max(v);
                s.sum += v;
            }
            stats = Some(s);
            sundial_codec::encode_numbers_into(&nums, out)?;
        }
        _ => {
            let texts: Vec<&[u8]> = col
                .points
                .values()
                .map(|v| match v {
                    FieldValue::String(s) => s.as_bytes(),
                    FieldValue::Bytes(b) => b.as_slice(),
                    _ => &[],
                })
                .collect();
            sundial_codec::encode_texts_into(&texts, out);
        }
    }
    Ok(ChunkMeta {
        kind,
        count: ts.len() as u64,
        min_ts: ts.first().copied().unwrap_or_default(),
        max_ts: ts.last().copied().unwrap_or_default(),
        stats,
    })
}

/// The index section: series definitions, field names, chunk directory.
#[derive(Default)]
struct IndexBuilder {
    series: Vec<u8>,
    n_series: u64,
    last_series: Option<SeriesId>,
    fields: Vec<String>,
    chunks: Vec<u8>,
    n_chunks: u64,
}

impl IndexBuilder {
    fn add(&mut self, col: &Column<'_>, meta: ChunkMeta, offset: u64, len: u64) {
        if self.last_series != Some(col.series) {
            self.last_series = Some(col.series);
            self.n_series += 1;
            put_varint(&mut self.series, u64::from(col.series.0));
            put_str(&mut self.series, &col.key.metric);
            put_varint(&mut self.series, col.key.tags.len() as u64);
            for (k, v) in &col.key.tags {
                put_str(&mut self.series, k);
                put_str(&mut self.series, v);
            }
        }
        let field = match self.fields.iter().position(|f| f == col.field) {
            Some(i) => i,
            None => {
                self.fields.push(col.field.to_owned());
                self.fields.len() - 1
            }
        };
        self.n_chunks += 1;
        let c = &mut self.chunks;
        put_varint(c, u64::from(col.series.0));
        put_varint(c, field as u64);
        c.push(meta.kind);
        put_varint(c, offset);
        put_varint(c, len);
        put_varint(c, meta.count);
        put_varint(c, zigzag(meta.min_ts));
        put_varint(c, zigzag(meta.max_ts));
        if let Some(s) = meta.stats {
            for v in [s.min, s.max, s.sum] {
                c.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.series.len() + self.chunks.len() + 64);
        put_varint(&mut out, self.n_series);
        out.extend_from_slice(&self.series);
        put_varint(&mut out, self.fields.len() as u64);
        for f in &self.fields {
            put_str(&mut out, f);
        }
        put_varint(&mut out, self.n_chunks);
        out.extend_from_slice(&self.chunks);
        out
    }
}
