//! The segment files on disk: their names, listing, and reading a
//! segment's records back with the damage found in it.

use super::MAGIC;
use crate::error::{Error, Result};
use crate::record::{self, Batch, FrameError};
use crate::vfs::Vfs;
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:010}.log"))
}

/// Segment numbers present in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    list_numbered(dir, "wal-", ".log")
}

pub(crate) fn list_numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// A segment's intact records, and where it is damaged.
#[derive(Debug, Default)]
pub(crate) struct SegmentRecords {
    pub(crate) batches: Vec<Batch>,
    pub(crate) damage: Option<Damage>,
}

/// A part of a segment that is not intact records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) offset: u64,
    pub(crate) reason: String,
    /// Where intact records start again (`None`: the damage is the torn
    /// tail a crash leaves, and holds nothing that was acknowledged).
    pub(crate) resumes_at: Option<u64>,
}

/// The records of segment bytes. At the first damaged record, the rest is
/// searched for intact records: none means a torn tail; some means damage
/// in the middle, whose records after it are returned only when
/// `skip_damage` says so.
pub(crate) fn parse_segment(bytes: &[u8], skip_damage: bool) -> SegmentRecords {
    let mut out = SegmentRecords::default();
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        out.damage = Some(Damage {
            offset: 0,
            reason: "no complete segment header".into(),
            resumes_at: None,
        });
        return out;
    };
    // Zeros after the last record are the segment's unwritten rest (the
    // writer zeroes ahead of its records); no record is all zeros.
    while !rest.iter().all(|&b| b == 0) {
        let offset = bytes.len() - rest.len();
        let reason = match record::read_frame(rest) {
            Ok((payload, tail)) => match record::decode_batch(payload) {
                Ok(batch) => {
                    out.batches.push(batch);
                    rest = tail;
                    continue;
                }
                Err(reason) => format!("undecodable record: {reason}"),
            },
            Err(FrameError::Truncated) => "record runs past the end of the file".into(),
            Err(FrameError::Checksum) => "record checksum mismatch".into(),
        };
        let resumes_at = next_intact(bytes, offset + 1);
        if out.damage.is_none() {
            out.damage = Some(Damage {
                offset: offset as u64,
                reason,
                resumes_at: resumes_at.map(|r| r as u64),
            });
        }
        match resumes_at {
            Some(at) if skip_damage => rest = bytes.get(at..).unwrap_or_default(),
            _ => break,
        }
    }
    out
}

/// The first offset from `from` on where an intact, non-empty record
/// starts.
fn next_intact(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&at| {
        let Some(candidate) = bytes.get(at..) else {
            return false;
        };
        match record::read_frame(candidate) {
            Ok((payload, _)) if !payload.is_empty() => record::decode_batch(payload)
                .is_ok_and(|b| !b.points.is_empty() || !b.new_series.is_empty()),
            _ => false,
        }
    })
}

/// Makes a rename or file creation in `dir` durable.
pub(crate) fn sync_dir(vfs: &Vfs, dir: &Path) -> Result<()> {
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("sync directory", dir, e))
}
