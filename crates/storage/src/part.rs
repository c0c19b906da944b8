//! Part files: the points of one flush, sorted by series, field and time
//! with overwrites applied, written once and never changed. Format:
//! `docs/format/part.md`. The compressed block format replaces this.

use crate::error::{Error, Result};
use crate::record::{self, FrameError, RecordPoint};
use crate::wal::sync_dir;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use sundial_model::{FieldValue, SeriesKey, Timestamp};

const MAGIC: &[u8; 8] = b"SDPART01";
const POINTS_PER_FRAME: usize = 8192;

pub(crate) fn part_path(dir: &Path, wal_below: u64) -> PathBuf {
    dir.join(format!("part-{wal_below:010}.sdp"))
}

/// Writes a part covering every WAL segment numbered below `wal_below`.
/// `points` must be sorted and free of duplicates. The file appears under
/// its final name only once complete and synced.
pub(crate) fn write(
    dir: &Path,
    wal_below: u64,
    points: &[(&SeriesKey, &str, Timestamp, &FieldValue)],
) -> Result<PathBuf> {
    let path = part_path(dir, wal_below);
    let tmp = path.with_extension("tmp");
    let mut bytes = Vec::with_capacity(points.len() * 16 + 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&wal_below.to_le_bytes());
    let mut payload = Vec::new();
    for chunk in points.chunks(POINTS_PER_FRAME) {
        payload.clear();
        record::encode_batch_into(chunk.iter().copied(), chunk.len(), &mut payload);
        record::frame_into(&payload, &mut bytes);
    }
    let mut file = File::create(&tmp).map_err(|e| Error::io("create part", &tmp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write part", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename part", &tmp, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Reads a whole part. Any damage is an error naming the file: parts are
/// written atomically, so damage means the disk lost data.
pub(crate) fn read(path: &Path) -> Result<(u64, Vec<RecordPoint>)> {
    let bytes = fs::read(path).map_err(|e| Error::io("read part", path, e))?;
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt(0, "not a part file (bad magic)".into()))?;
    let (below, mut rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(8, "header truncated".into()))?;
    let wal_below = u64::from_le_bytes(*below);
    let mut points = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (payload, tail) = record::read_frame(rest).map_err(|e| match e {
            FrameError::Truncated => corrupt(offset, "frame truncated".into()),
            FrameError::Checksum => corrupt(offset, "checksum mismatch".into()),
        })?;
        points.extend(record::decode_batch(payload).map_err(|r| corrupt(offset, r))?);
        rest = tail;
    }
    Ok((wal_below, points))
}
