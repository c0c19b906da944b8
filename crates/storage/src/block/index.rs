//! A block's index: where it sits (header, footer) and what it says
//! (fields, and per column its chunks with their time ranges and
//! statistics). Format: `docs/format/block.md`.

use super::{
    FLAG_FAST, FLAG_INDEX_ZSTD, FLAG_ROLLUPS_ONLY, FOOTER_LEN, FOOTER_MAGIC, KIND_NUMERIC,
    KIND_NUMERIC_LONG, MAGIC, MAGIC_V2, MAGIC_V3, MAGIC_V4,
};
use crate::error::{Error, Result};
use crate::record::{self, get_str, get_varint, take, unzigzag};
use std::path::Path;
use sundial_model::Timestamp;

/// Where one chunk lives and what it holds. Kept small: a block flushed
/// from a head of a million series holds a million of them, and a day may
/// wait for compaction with several such blocks. The statistics live in
/// the block's [`Decoded::stats`] bytes; the chunk's offset, kind and
/// flags share one word ([`ChunkEntry::offset`]).
#[derive(Debug, Clone)]
pub(crate) struct ChunkEntry {
    pub(crate) min_ts: Timestamp,
    pub(crate) max_ts: Timestamp,
    /// The offset in the low [`OFFSET_BITS`], then the kind, then the
    /// flags ([`ALL_LONG`], [`EXACT`]).
    place: u64,
    pub(super) len: u32,
    pub(crate) count: u32,
    /// Where its statistics start in the block's [`Decoded::stats`]
    /// bytes: a [`super::ChunkStats`], then (if `exact`) its
    /// [`super::ExactStats`]; [`NO_STATS`] for none.
    pub(crate) stats_at: u32,
    /// Bytes of the framed presampled buckets right after the chunk
    /// (`crate::rollup`); 0 for none.
    pub(crate) rollup_len: u32,
}

// A million-column block holds a million entries: keep them this small.
const _: () = assert!(std::mem::size_of::<ChunkEntry>() <= 40);

/// A block's chunks end below 2^48 bytes (256 TiB; the decoder refuses
/// others).
pub(super) const OFFSET_BITS: u32 = 48;
const ALL_LONG: u64 = 1 << 56;
const EXACT: u64 = 1 << 57;

impl ChunkEntry {
    /// `offset` must be below 2^[`OFFSET_BITS`].
    pub(super) fn new(
        (min_ts, max_ts): (Timestamp, Timestamp),
        (offset, len): (u64, u32),
        (count, stats_at, rollup_len): (u32, u32, u32),
        (kind, all_long, exact): (u8, bool, bool),
    ) -> Self {
        let flags = if all_long { ALL_LONG } else { 0 } | if exact { EXACT } else { 0 };
        Self {
            min_ts,
            max_ts,
            place: (offset & ((1 << OFFSET_BITS) - 1)) | u64::from(kind) << OFFSET_BITS | flags,
            len,
            count,
            stats_at,
            rollup_len,
        }
    }

    /// Where the chunk starts in the block.
    pub(super) fn offset(&self) -> u64 {
        self.place & ((1 << OFFSET_BITS) - 1)
    }

    pub(super) fn kind(&self) -> u8 {
        (self.place >> OFFSET_BITS) as u8
    }

    /// Numeric with every value a Long (known for blocks written since the
    /// index recorded it).
    pub(crate) fn all_long(&self) -> bool {
        self.place & ALL_LONG != 0
    }

    /// Exact statistics follow the summary (blocks since `SDBLK004`).
    pub(crate) fn exact(&self) -> bool {
        self.place & EXACT != 0
    }
}

/// A [`ChunkEntry`] of a chunk without statistics or presampled buckets,
/// fewer than [`PACKED_MAX_COUNT`] points and at most `u32::MAX` ms long:
/// what a flush at high cardinality writes a million of per block (one
/// or two points per series). 24 bytes where the entry takes 40.
#[derive(Debug, Clone, Copy)]
pub(super) struct PackedEntry {
    min_ts: Timestamp,
    /// [`ChunkEntry::place`] with the point count in the bits above the
    /// flags.
    place: u64,
    len: u32,
    /// `max_ts - min_ts`.
    span: u32,
}

const _: () = assert!(std::mem::size_of::<PackedEntry>() <= 24);

/// Where a [`PackedEntry`] keeps its count: above the flags.
const COUNT_SHIFT: u32 = 58;
/// Counts a [`PackedEntry`] holds are below this.
const PACKED_MAX_COUNT: u32 = 1 << (64 - COUNT_SHIFT);

impl PackedEntry {
    /// `entry` packed, when it fits.
    pub(super) fn pack(entry: &ChunkEntry) -> Option<Self> {
        if entry.stats_at != NO_STATS || entry.rollup_len != 0 || entry.count >= PACKED_MAX_COUNT {
            return None;
        }
        let span = u32::try_from(entry.max_ts.checked_sub(entry.min_ts)?).ok()?;
        debug_assert_eq!(entry.place >> COUNT_SHIFT, 0);
        Some(Self {
            min_ts: entry.min_ts,
            place: entry.place | u64::from(entry.count) << COUNT_SHIFT,
            len: entry.len,
            span,
        })
    }

    pub(super) fn unpack(&self) -> ChunkEntry {
        ChunkEntry {
            min_ts: self.min_ts,
            max_ts: self.min_ts.saturating_add(i64::from(self.span)),
            place: self.place & ((1 << COUNT_SHIFT) - 1),
            len: self.len,
            count: (self.place >> COUNT_SHIFT) as u32,
            stats_at: NO_STATS,
            rollup_len: 0,
        }
    }
}

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
    let index_at = located.index_at;
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_owned(),
        offset: index_at,
        reason,
    };
    // The framed and inflated bytes are gone before the table is built
    // (the index is read through a window; the keys go once the table's
    // directory is made).
    let (flags, (fields, (keys, entries), stats, presampling)) =
        decode_payload(located).map_err(corrupt)?;
    let chunks = super::table::ChunkTable::from_columns(keys, entries)
        .map_err(|r| corrupt(format!("index: {r}")))?;
    let (min_ts, max_ts) = chunks.time_range();
    Ok(Decoded {
        fields,
        chunks,
        min_ts,
        max_ts,
        fast: flags & FLAG_FAST != 0,
        stats,
        presampling,
        rollups_only: flags & FLAG_ROLLUPS_ONLY != 0,
    })
}

/// The index's flags and contents, from its framed bytes.
fn decode_payload(located: Located) -> std::result::Result<(u8, Index), String> {
    let Located {
        version, framed, ..
    } = located;
    let (payload, _) = record::read_frame(&framed).map_err(|e| format!("index frame: {e:?}"))?;
    let (flags, payload) = match (version >= 3, payload.split_first()) {
        (false, _) => (0, payload),
        (true, Some((flags, rest))) => (*flags, rest),
        (true, None) => return Err("index: no flags byte".into()),
    };
    // A rollups-only chunk cannot be decoded instead: every chunk keeps
    // its statistics in memory.
    let tiny = if flags & FLAG_ROLLUPS_ONLY != 0 {
        0
    } else {
        TINY_CHUNK
    };
    let with_exact = version >= 4;
    let index = if flags & FLAG_INDEX_ZSTD != 0 {
        let mut compressed = payload;
        let len = get_varint(&mut compressed)
            .ok()
            .filter(|n| *n <= MAX_INDEX_BYTES)
            .ok_or("index: compressed length out of range")?;
        let inflating = zstd::stream::read::Decoder::with_buffer(compressed)
            .map_err(|e| format!("index: zstd: {e}"))?;
        // Real entries do not compress to less than a quarter byte each:
        // a damaged count or length cannot size the table past that.
        let most = compressed.len().saturating_mul(4);
        decode_index(&mut Window::new(inflating, len), most, (with_exact, tiny))
    } else {
        let most = payload.len() / 8;
        decode_index(
            &mut Window::new(payload, payload.len() as u64),
            most,
            (with_exact, tiny),
        )
    };
    Ok((flags, index.map_err(|r| format!("index: {r}"))?))
}

/// An index's bytes read through a window: a million columns' index
/// inflated whole is ~100 MB beside the table built from it.
struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    at: usize,
    /// Bytes the index states it has, and those read so far.
    len: u64,
    read: u64,
    ended: bool,
}

/// The window's size: half of it is ahead of each item decoded.
const WINDOW: usize = 1 << 20;

impl<R: std::io::Read> Window<R> {
    fn new(reader: R, len: u64) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            at: 0,
            len,
            read: 0,
            ended: false,
        }
    }

    /// The unread bytes: at least `want` of them, unless the index ends
    /// sooner.
    fn ahead(&mut self, want: usize) -> std::result::Result<&[u8], String> {
        if self.buf.len() - self.at < want && !self.ended {
            self.buf.drain(..self.at);
            self.at = 0;
            let target = want.max(WINDOW);
            while self.buf.len() < target && !self.ended {
                let filled = self.buf.len();
                self.buf.resize(target, 0);
                let n = read_some(
                    &mut self.reader,
                    self.buf.get_mut(filled..).unwrap_or_default(),
                )?;
                self.buf.truncate(filled + n);
                self.read += n as u64;
                self.ended = n == 0;
                if self.read > self.len {
                    return Err(format!("holds more than the {} bytes it states", self.len));
                }
            }
        }
        Ok(self.buf.get(self.at..).unwrap_or_default())
    }

    /// Decodes one item from the bytes ahead with `decode`, which takes
    /// what it reads off the slice it gets. An item longer than half a
    /// window (a long field name) is tried again on more bytes, until
    /// the index ends.
    fn next<T>(
        &mut self,
        mut decode: impl FnMut(&mut &[u8]) -> std::result::Result<T, String>,
    ) -> std::result::Result<T, String> {
        let mut want = WINDOW / 2;
        loop {
            let mut input = self.ahead(want)?;
            let before = input.len();
            match decode(&mut input) {
                Ok(item) => {
                    self.at += before - input.len();
                    return Ok(item);
                }
                Err(_) if !self.ended => want = before.saturating_mul(2),
                Err(e) => return Err(e),
            }
        }
    }

    /// Bytes the index states it has left.
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.read) + (self.buf.len() - self.at) as u64
    }

    /// Checks that nothing follows what was decoded.
    fn end(&mut self) -> std::result::Result<(), String> {
        let trailing = self.ahead(1)?.len();
        if trailing > 0 {
            return Err(format!("{trailing} trailing bytes"));
        }
        if self.read != self.len {
            return Err(format!("holds {} bytes, not {}", self.read, self.len));
        }
        Ok(())
    }
}

fn read_some(
    reader: &mut impl std::io::Read,
    buf: &mut [u8],
) -> std::result::Result<usize, String> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("zstd: {e}")),
        }
    }
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

/// Fields, each chunk's column (series, field) beside its entry, the
/// statistics bytes, and the presampling fingerprint.
type Index = (
    Vec<String>,
    (Vec<(u32, u32)>, Vec<ChunkEntry>),
    Vec<u8>,
    u64,
);

/// Largest index a block may state (a million series' index is a few
/// hundred megabytes).
const MAX_INDEX_BYTES: u64 = 1 << 32;

/// Decodes an index of at most `most` chunks (a bound for sizing, not a
/// limit).
fn decode_index(
    window: &mut Window<impl std::io::Read>,
    most: usize,
    (with_exact, tiny): (bool, u32),
) -> std::result::Result<Index, String> {
    let n_fields = window.next(get_varint)?;
    let mut fields = Vec::new();
    for _ in 0..n_fields {
        fields.push(window.next(get_str)?);
    }
    let n_chunks = window.next(get_varint)?;
    // Sized once (a doubling vector would hold up to twice a million
    // series' entries); a damaged count is bounded by the bytes left, as
    // every chunk takes at least eight, and by what was read.
    let capacity = usize::try_from(n_chunks)
        .unwrap_or(usize::MAX)
        .min(usize::try_from(window.left() / 8).unwrap_or(usize::MAX))
        .min(most);
    let (mut keys, mut entries) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
    let mut stats = Vec::new();
    for _ in 0..n_chunks {
        let kept = stats.len();
        let (key, entry) = window.next(|input| {
            // A try that ran out of bytes may have added statistics.
            stats.truncate(kept);
            decode_entry(input, fields.len(), (with_exact, tiny), &mut stats)
        })?;
        keys.push(key);
        entries.push(entry);
    }
    // Older blocks count as written under other rules: compaction
    // rewrites them as current ones.
    let presampling = if with_exact {
        window.next(get_varint)?
    } else {
        u64::MAX
    };
    window.end()?;
    stats.shrink_to_fit();
    Ok((fields, (keys, entries), stats, presampling))
}

/// One chunk's entry: its column (series, field) and where it is; its
/// statistics go to `stats` unless it has at most `tiny` points.
fn decode_entry(
    input: &mut &[u8],
    n_fields: usize,
    (with_exact, tiny): (bool, u32),
    stats: &mut Vec<u8>,
) -> std::result::Result<((u32, u32), ChunkEntry), String> {
    let id = u32::try_from(get_varint(input)?).map_err(|_| "series id overflow")?;
    let field = u32::try_from(get_varint(input)?).map_err(|_| "field overflow")?;
    if field as usize >= n_fields {
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
    // The chunk and its buckets end below 2^48 (readers key caches by
    // offsets with bits above).
    let end = offset
        .checked_add(u64::from(len) + u64::from(rollup_len))
        .filter(|end| end >> OFFSET_BITS == 0);
    if end.is_none() {
        return Err("chunk offset overflow".into());
    }
    let entry = ChunkEntry::new(
        (min_ts, max_ts),
        (offset, len),
        (count, stats_at, rollup_len),
        (kind, all_long, exact),
    );
    Ok(((id, field), entry))
}
