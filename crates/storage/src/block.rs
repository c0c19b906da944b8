//! Block files: the immutable, compressed, checksummed form of one flush.
//! One chunk per (series, field) holds that column's points, with its time
//! range and numeric statistics in the index at the end of the file, so a
//! read fetches only the chunks it needs. Format: `docs/format/block.md`.

pub(crate) mod cache;
mod reader;
pub(crate) mod writer;

pub(crate) use reader::Block;
#[cfg(test)]
pub(crate) use writer::write;

use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SDBLK002";
const FOOTER_MAGIC: &[u8; 8] = b"SDBLKEND";
/// `u64 LE index offset` + footer magic.
const FOOTER_LEN: usize = 16;

/// Value family of a chunk, as stored in the index.
const KIND_NUMERIC: u8 = 0;
const KIND_STRING: u8 = 1;
const KIND_BYTES: u8 = 2;
/// Numeric, every value a Long (index only; the chunk payload says
/// `KIND_NUMERIC`). Blocks written before this kind existed say
/// `KIND_NUMERIC` for all-Long chunks too, which only costs readers the
/// knowledge.
const KIND_NUMERIC_LONG: u8 = 3;

pub(crate) fn block_path(dir: &Path, wal_below: u64) -> PathBuf {
    dir.join(format!("block-{wal_below:010}.sdb"))
}

/// Per-chunk statistics of a numeric column (booleans count as 1/0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkStats {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

#[cfg(test)]
mod tests;
