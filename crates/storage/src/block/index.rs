//! A block's index: where it sits (header, footer) and what it says
//! (fields, and per column its chunks with their time ranges and
//! statistics). Format: `docs/format/block.md`.

use super::{
    FLAG_FAST, FLAG_INDEX_ZSTD, FLAG_ROLLUPS_ONLY, FOOTER_LEN, FOOTER_MAGIC, KIND_NUMERIC,
    KIND_NUMERIC_LONG, MAGIC, MAGIC_V2, MAGIC_V3, MAGIC_V4,
};
use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, get_str, get_varint, take, unzigzag};
use std::path::Path;
use sundial_model::Timestamp;

/// Where one chunk lives and what it holds. Kept small: a block flushed
/// from a head of a million series holds a million of them, and a day may
/// wait for compaction with several such blocks. The statistics live in
/// the block's [`Decoded::stats`] bytes.
#[derive(Debug, Clone)]
pub(crate) struct ChunkEntry {
    pub(crate) min_ts: Timestamp,
    pub(crate) max_ts: Timestamp,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(crate) count: u32,
    /// Where its statistics start in the block's [`Decoded::stats`]
    /// bytes: a [`super::ChunkStats`], then (if `exact`) its
    /// [`super::ExactStats`]; [`NO_STATS`] for none.
    pub(crate) stats_at: u32,
    /// Bytes of the framed presampled buckets right after the chunk
    /// (`crate::rollup`); 0 for none.
    pub(crate) rollup_len: u32,
    pub(super) kind: u8,
    /// Numeric with every value a Long (known for blocks written since the
    /// index recorded it).
    pub(crate) all_long: bool,
    /// Exact statistics follow the summary (blocks since `SDBLK004`).
    pub(crate) exact: bool,
}

// A million-column block holds a million entries: keep them this small.
const _: () = assert!(std::mem::size_of::<ChunkEntry>() <= 48);

/// Chunks of at most this many points keep no statistics in memory (the
/// index on disk has them). A flush of a million series' few points each
/// would otherwise hold ~50 bytes of statistics per column per block; the
/// price is that an aggregate over such a chunk reads and decodes it (a
/// positioned read, a CRC, a few points) where it took 24 bytes from
/// memory. Compaction gives settled data day-long chunks, which keep them.
const TINY_CHUNK: u32 = 4;

/// [`ChunkEntry::stats_at`] of a chunk without statistics (text, or
/// [`TINY_CHUNK`]).
pub(crate) const NO_STATS: u32 = u32::MAX;

/// Bytes of a [`super::ChunkStats`] in [`Decoded::stats`]: min, max and sum as
/// little-endian doubles, as the index stores them.
pub(crate) const SUMMARY_BYTES: usize = 24;

/// A block's decoded index.
pub(super) struct Decoded {
    pub(super) fields: Vec<String>,
    /// Per column, ascending by time.
    pub(super) chunks: super::table::ChunkTable,
    pub(super) min_ts: Timestamp,
    pub(super) max_ts: Timestamp,
    /// Encoded fast by a flush.
    pub(super) fast: bool,
    /// The numeric chunks' statistics, encoded one after another.
    pub(super) stats: Vec<u8>,
    /// The presampling rules it was written under (0: none).
    pub(super) presampling: u64,
    /// Statistics and presampled buckets only ([`FLAG_ROLLUPS_ONLY`]).
    pub(super) rollups_only: bool,
}

/// Decodes the framed index `located` found in the block at `path`.
pub(super) fn decode(path: &Path, located: Located) -> Result<Decoded> {
    let Located {
        version,
        index_at,
        framed,
    } = located;
    let has_flags = version >= 3;
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_owned(),
        offset: index_at,
        reason,
    };
    let (payload, _) =
        record::read_frame(&framed).map_err(|e| corrupt(format!("index frame: {e:?}")))?;
    let (flags, payload) = match (has_flags, payload.split_first()) {
        (false, _) => (0, payload),
        (true, Some((flags, rest))) => (*flags, rest),
        (true, None) => return Err(corrupt("index: no flags byte".into())),
    };
    let inflated;
    let payload = if flags & FLAG_INDEX_ZSTD != 0 {
        inflated = record::inflate(payload, MAX_INDEX_BYTES)
            .map_err(|r| corrupt(format!("index: {r}")))?;
        inflated.as_slice()
    } else {
        payload
    };
    let rollups_only = flags & FLAG_ROLLUPS_ONLY != 0;
    // A rollups-only chunk cannot be decoded instead: every chunk keeps
    // its statistics in memory.
    let tiny = if rollups_only { 0 } else { TINY_CHUNK };
    let (fields, chunks, stats, presampling) =
        decode_index(payload, version >= 4, tiny).map_err(|r| corrupt(format!("index: {r}")))?;
    let chunks =
        super::table::ChunkTable::new(chunks).map_err(|r| corrupt(format!("index: {r}")))?;
    let (min_ts, max_ts) = time_range(chunks.entries());
    Ok(Decoded {
        fields,
        chunks,
        min_ts,
        max_ts,
        fast: flags & FLAG_FAST != 0,
        stats,
        presampling,
        rollups_only,
    })
}

/// Where a block's index is and its framed bytes.
pub(super) struct Located {
    /// The format's version: since 3 the index starts with a flags byte,
    /// since 4 numeric chunks carry exact statistics (5 only tells older
    /// readers that chunks may hold varint streams).
    version: u8,
    index_at: u64,
    framed: Vec<u8>,
}

/// Checks a block's header and footer and reads its framed index.
pub(super) fn locate_index(
    read_at: &mut dyn FnMut(&mut [u8], u64) -> Result<()>,
    path: &Path,
    len: u64,
) -> Result<Located> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        path: path.to_owned(),
        offset,
        reason,
    };
    if len < (MAGIC.len() + FOOTER_LEN) as u64 {
        return Err(corrupt(0, "shorter than header and footer".into()));
    }
    let mut head = [0u8; 8];
    read_at(&mut head, 0)?;
    let version = match &head {
        m if m == MAGIC => 5,
        m if m == MAGIC_V4 => 4,
        m if m == MAGIC_V3 => 3,
        m if m == MAGIC_V2 => 2,
        _ => {
            return Err(corrupt(
                0,
                "not a block file of this version (bad magic)".into(),
            ));
        }
    };
    let mut footer = [0u8; FOOTER_LEN];
    let footer_at = len - FOOTER_LEN as u64;
    read_at(&mut footer, footer_at)?;
    let (index_at, magic) = footer.split_at(8);
    if magic != FOOTER_MAGIC {
        return Err(corrupt(
            footer_at,
            "bad footer magic (truncated block?)".into(),
        ));
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(index_at);
    let index_at = u64::from_le_bytes(at);
    if index_at < MAGIC.len() as u64 || index_at > footer_at {
        return Err(corrupt(
            footer_at,
            format!("index offset {index_at} out of range"),
        ));
    }
    let mut framed = vec![0u8; (footer_at - index_at) as usize];
    read_at(&mut framed, index_at)?;
    Ok(Located {
        version,
        index_at,
        framed,
    })
}

/// The block's time range.
fn time_range(chunks: &[ChunkEntry]) -> (Timestamp, Timestamp) {
    chunks
        .iter()
        .fold((Timestamp::MAX, Timestamp::MIN), |(lo, hi), e| {
            (lo.min(e.min_ts), hi.max(e.max_ts))
        })
}

type Index = (Vec<String>, Vec<(SeriesId, u32, ChunkEntry)>, Vec<u8>, u64);

/// Largest index a block may state (a damaged length must not allocate
/// without bound; a million series' index is a few hundred megabytes).
const MAX_INDEX_BYTES: usize = 1 << 32;

fn decode_index(
    mut input: &[u8],
    with_exact: bool,
    tiny: u32,
) -> std::result::Result<Index, String> {
    let input = &mut input;
    let n_fields = get_varint(input)?;
    let mut fields = Vec::new();
    for _ in 0..n_fields {
        fields.push(get_str(input)?);
    }
    let n_chunks = get_varint(input)?;
    // Sized once (a doubling vector would hold up to twice a million
    // series' entries); a damaged count is bounded by the bytes left, as
    // every chunk takes at least eight.
    let mut chunks = Vec::with_capacity(
        usize::try_from(n_chunks)
            .unwrap_or(usize::MAX)
            .min(input.len() / 8),
    );
    let mut stats = Vec::new();
    for _ in 0..n_chunks {
        let id = u32::try_from(get_varint(input)?).map_err(|_| "series id overflow")?;
        let field = u32::try_from(get_varint(input)?).map_err(|_| "field overflow")?;
        if field as usize >= fields.len() {
            return Err(format!("field index {field} out of range"));
        }
        let (kind, all_long) = match take(input, 1)?[0] {
            KIND_NUMERIC_LONG => (KIND_NUMERIC, true),
            k => (k, false),
        };
        let offset = get_varint(input)?;
        let len = u32::try_from(get_varint(input)?).map_err(|_| "chunk length overflow")?;
        let count = u32::try_from(get_varint(input)?).map_err(|_| "chunk count overflow")?;
        let min_ts = unzigzag(get_varint(input)?);
        let max_ts = unzigzag(get_varint(input)?);
        let (mut stats_at, mut exact, mut rollup_len) = (NO_STATS, false, 0);
        if kind == KIND_NUMERIC {
            let before: &[u8] = input;
            take(input, SUMMARY_BYTES)?;
            if with_exact {
                super::exact::decode(input, all_long)?;
                exact = true;
            }
            if count > tiny {
                let used = before.len() - input.len();
                stats_at = u32::try_from(stats.len())
                    .ok()
                    .filter(|at| *at != NO_STATS)
                    .ok_or("chunk statistics past 4 GiB")?;
                stats.extend_from_slice(before.get(..used).unwrap_or_default());
            }
            if with_exact {
                rollup_len = u32::try_from(get_varint(input)?).map_err(|_| "presampled length")?;
            }
        }
        chunks.push((
            SeriesId(id),
            field,
            ChunkEntry {
                min_ts,
                max_ts,
                offset,
                len,
                count,
                stats_at,
                rollup_len,
                kind,
                all_long,
                exact,
            },
        ));
    }
    // Older blocks count as written under other rules: compaction
    // rewrites them as current ones.
    let presampling = if with_exact {
        get_varint(input)?
    } else {
        u64::MAX
    };
    if !input.is_empty() {
        return Err(format!("{} trailing bytes", input.len()));
    }
    stats.shrink_to_fit();
    Ok((fields, chunks, stats, presampling))
}
