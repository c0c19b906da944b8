//! Block files: the immutable, compressed, checksummed form of one flush.
//! One chunk per (series, field) holds that column's points, with its time
//! range and numeric statistics in the index at the end of the file, so a
//! read fetches only the chunks it needs. Format: `docs/format/block.md`.

pub(crate) mod cache;
mod exact;
mod index;
mod reader;
mod source;
mod table;
pub(crate) mod writer;

pub(crate) use exact::{
    decode as decode_exact, encode as encode_exact, of_values as exact_of_values,
};
pub(crate) use index::ChunkEntry;
pub(crate) use reader::Block;
#[cfg(test)]
pub(crate) use writer::write;

use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SDBLK005";
/// Blocks written before chunks could hold a few numbers as varints
/// instead of a pco stream: read the same (a reader of this version tells
/// the two forms apart; an older one refuses the new magic instead of
/// failing on a chunk).
const MAGIC_V4: &[u8; 8] = b"SDBLK004";
/// Blocks written before numeric chunks carried [`ExactStats`]: read the
/// same, without them (compaction rewrites them as current blocks).
const MAGIC_V3: &[u8; 8] = b"SDBLK003";
/// Blocks written before the index carried flags: read the same, flags 0.
const MAGIC_V2: &[u8; 8] = b"SDBLK002";
/// Index flag: chunks were encoded fast (a flush's); compaction rewrites
/// such a block even alone in its window.
const FLAG_FAST: u8 = 1;
/// Index flag: the rest of the index payload is `varint len` and a zstd
/// frame of `len` bytes (offsets, counts and statistics compress to a
/// third).
const FLAG_INDEX_ZSTD: u8 = 2;
/// Index flag: the block keeps only its chunks' statistics and presampled
/// buckets, their points past the retention (`crate::compact`, "rollups
/// outliving the raw data"): every chunk is 0 bytes, its buckets follow.
const FLAG_ROLLUPS_ONLY: u8 = 4;
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

/// A block's name and its place in the overwrite order: blocks of later
/// flushes (higher `wal_below`) win over earlier ones; the blocks of one
/// flush (one per time window, `seq` counting them) never overlap in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BlockId {
    /// The block's points were logged in WAL segments below this number.
    pub(crate) wal_below: u64,
    pub(crate) seq: u32,
}

/// `block-<wal_below>.sdb` for the first block of a flush (the only name
/// before flushes were split by time window), `block-<wal_below>-<seq>.sdb`
/// for the others.
pub(crate) fn block_path(dir: &Path, id: BlockId) -> PathBuf {
    match id.seq {
        0 => dir.join(format!("block-{:010}.sdb", id.wal_below)),
        seq => dir.join(format!("block-{:010}-{seq:03}.sdb", id.wal_below)),
    }
}

/// The blocks in a data directory, oldest first.
pub(crate) fn list_blocks(dir: &Path) -> crate::error::Result<Vec<BlockId>> {
    let entries = std::fs::read_dir(dir).map_err(|e| crate::error::Error::io("list", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| crate::error::Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_prefix("block-"))
            .and_then(|n| n.strip_suffix(".sdb"))
        else {
            continue;
        };
        let (below, seq) = stem.split_once('-').unwrap_or((stem, "0"));
        if let (Ok(wal_below), Ok(seq)) = (below.parse(), seq.parse()) {
            out.push(BlockId { wal_below, seq });
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Per-chunk statistics of a numeric column (booleans count as 1/0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkStats {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

/// What a numeric chunk's points fold to, exactly (blocks since
/// `SDBLK004`): a chunk inside one bucket answers count, sum, average,
/// minimum, maximum, first and last without being decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactStats {
    /// The Long values' sum.
    pub long_sum: i128,
    /// The other values' sum (Booleans as 1 and 0).
    pub double_sum: sundial_model::ExactSum,
    /// The extremes when every value is a Long.
    pub long_min: i64,
    pub long_max: i64,
    pub first: sundial_codec::Num,
    pub last: sundial_codec::Num,
}

#[cfg(test)]
mod tests;
