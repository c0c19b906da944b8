//! Part files: the points of one flush, sorted by series, field and time
//! with overwrites applied, written once and never changed. Format:
//! `docs/format/part.md`. The compressed block format replaces this.

use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, Batch, BatchEncoder, FrameError};
use crate::wal::sync_dir;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use sundial_model::{FieldValue, SeriesKey, Timestamp};

const MAGIC: &[u8; 8] = b"SDPART02";
const POINTS_PER_FRAME: usize = 8192;

pub(crate) fn part_path(dir: &Path, wal_below: u64) -> PathBuf {
    dir.join(format!("part-{wal_below:010}.sdp"))
}

/// One row to write: series, its key, field name, time, value.
pub(crate) type Row<'a> = (SeriesId, &'a SeriesKey, &'a str, Timestamp, &'a FieldValue);

/// Writes a part covering every WAL segment numbered below `wal_below`.
/// `rows` must be sorted by series and free of duplicates. The file appears
/// under its final name only once complete and synced.
pub(crate) fn write(dir: &Path, wal_below: u64, rows: &[Row<'_>]) -> Result<PathBuf> {
    let path = part_path(dir, wal_below);
    let tmp = path.with_extension("tmp");
    let io = |e| Error::io("write part", &tmp, e);
    let file = File::create(&tmp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&wal_below.to_le_bytes()).map_err(io)?;
    let mut enc = BatchEncoder::default();
    let (mut payload, mut framed) = (Vec::new(), Vec::new());
    for chunk in rows.chunks(POINTS_PER_FRAME) {
        let mut last: Option<SeriesId> = None;
        // Each frame defines the series it uses, so frames decode alone.
        for (id, key, ..) in chunk {
            if last != Some(*id) {
                enc.define_series(*id, key);
                last = Some(*id);
            }
        }
        for (id, _, field, ts, value) in chunk {
            let f = enc.field(field);
            enc.point(*id, f, *ts, value);
        }
        payload.clear();
        framed.clear();
        enc.finish_into(&mut payload);
        record::frame_into(&payload, &mut framed);
        out.write_all(&framed).map_err(io)?;
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename part", &tmp, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Reads a whole part. Any damage is an error naming the file: parts are
/// written atomically, so damage means the disk lost data.
pub(crate) fn read(path: &Path) -> Result<(u64, Vec<Batch>)> {
    let bytes = fs::read(path).map_err(|e| Error::io("read part", path, e))?;
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt(0, "not a part file of this version (bad magic)".into()))?;
    let (below, mut rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(8, "header truncated".into()))?;
    let wal_below = u64::from_le_bytes(*below);
    let mut batches = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (payload, tail) = record::read_frame(rest).map_err(|e| match e {
            FrameError::Truncated => corrupt(offset, "frame truncated".into()),
            FrameError::Checksum => corrupt(offset, "checksum mismatch".into()),
        })?;
        batches.push(record::decode_batch(payload).map_err(|r| corrupt(offset, r))?);
        rest = tail;
    }
    Ok((wal_below, batches))
}
