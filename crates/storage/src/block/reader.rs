//! Reads blocks: the index once at open, chunks on demand by positioned
//! reads, so a narrow query touches only its chunks.

use super::cache::{CACHE, NumericChunk};
use super::{
    ChunkStats, FLAG_FAST, FLAG_INDEX_ZSTD, FOOTER_LEN, FOOTER_MAGIC, KIND_BYTES, KIND_NUMERIC,
    KIND_NUMERIC_LONG, KIND_STRING, MAGIC, MAGIC_V2,
};
use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, get_str, get_varint, take, unzigzag};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use sundial_codec::Num;
use sundial_model::{FieldValue, Kind, Timestamp};

/// Where one chunk lives and what it holds.
#[derive(Debug, Clone)]
pub(crate) struct ChunkEntry {
    kind: u8,
    /// Numeric with every value a Long (known for blocks written since the
    /// index recorded it).
    pub(crate) all_long: bool,
    offset: u64,
    len: u64,
    pub(crate) count: u64,
    pub(crate) min_ts: Timestamp,
    pub(crate) max_ts: Timestamp,
    pub(crate) stats: Option<ChunkStats>,
}

/// An open block file.
#[derive(Debug)]
pub(crate) struct Block {
    path: PathBuf,
    file: File,
    fields: Vec<String>,
    /// Per column, ascending by time.
    chunks: HashMap<(SeriesId, u32), Vec<ChunkEntry>>,
    /// Its name and place in the overwrite order.
    pub(crate) id: super::BlockId,
    /// Bytes on disk.
    pub(crate) file_bytes: u64,
    /// Oldest timestamp in the block (compaction groups blocks by time
    /// window).
    pub(crate) min_ts: Timestamp,
    /// Newest timestamp in the block (retention drops whole blocks by it).
    pub(crate) max_ts: Timestamp,
    /// When this process opened or wrote it: compaction lets a window's
    /// blocks settle before merging them.
    pub(crate) opened: std::time::Instant,
    /// Encoded fast by a flush: compaction rewrites it smaller.
    pub(crate) fast: bool,
    /// Never reused: the chunk cache key.
    uid: u64,
}

impl Block {
    /// Opens a block and reads its index.
    pub(crate) fn open(path: &Path, id: super::BlockId) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open block", path, e))?;
        let corrupt = |offset: u64, reason: String| Error::Corrupt {
            path: path.to_owned(),
            offset,
            reason,
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat block", path, e))?
            .len();
        let Located {
            has_flags,
            index_at,
            framed,
        } = locate_index(&file, path, len)?;
        let (payload, _) = record::read_frame(&framed)
            .map_err(|e| corrupt(index_at, format!("index frame: {e:?}")))?;
        let (flags, payload) = match (has_flags, payload.split_first()) {
            (false, _) => (0, payload),
            (true, Some((flags, rest))) => (*flags, rest),
            (true, None) => return Err(corrupt(index_at, "index: no flags byte".into())),
        };
        let inflated;
        let payload = if flags & FLAG_INDEX_ZSTD != 0 {
            inflated = record::inflate(payload, MAX_INDEX_BYTES)
                .map_err(|r| corrupt(index_at, format!("index: {r}")))?;
            inflated.as_slice()
        } else {
            payload
        };
        let (fields, mut chunks) =
            decode_index(payload).map_err(|r| corrupt(index_at, format!("index: {r}")))?;
        let (min_ts, max_ts) = sort_chunks(&mut chunks);
        Ok(Self {
            uid: super::cache::next_block_id(),
            path: path.to_owned(),
            file,
            id,
            file_bytes: len,
            min_ts,
            max_ts,
            opened: std::time::Instant::now(),
            fast: flags & FLAG_FAST != 0,
            fields,
            chunks,
        })
    }

    /// (series, field, kind) of every chunk, for rebuilding the catalog.
    pub(crate) fn column_kinds(&self) -> impl Iterator<Item = (SeriesId, &str, Kind)> {
        self.chunks.iter().filter_map(|((id, f), entries)| {
            let kind = match entries.first()?.kind {
                KIND_STRING => Kind::String,
                KIND_BYTES => Kind::Bytes,
                _ => Kind::Numeric,
            };
            Some((*id, self.fields.get(*f as usize)?.as_str(), kind))
        })
    }

    /// The chunks of one column, ascending by time.
    pub(crate) fn chunks(&self, id: SeriesId, field: &str) -> &[ChunkEntry] {
        self.fields
            .iter()
            .position(|x| x == field)
            .and_then(|f| self.chunks.get(&(id, f as u32)))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every (series, field) column in the block.
    pub(crate) fn columns(&self) -> impl Iterator<Item = (SeriesId, &str)> {
        self.chunks
            .keys()
            .filter_map(|(id, f)| Some((*id, self.fields.get(*f as usize)?.as_str())))
    }

    /// Series with a chunk overlapping `[start, end]`.
    pub(crate) fn series_in(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> sundial_index::RoaringBitmap {
        self.chunks
            .iter()
            .filter(|(_, entries)| {
                entries.iter().any(|e| {
                    let overlaps = e.max_ts >= start && e.min_ts <= end;
                    let inside = start <= e.min_ts && e.max_ts <= end;
                    // A chunk straddling an end may have no point inside.
                    overlaps && (inside || self.has_point_in(e, start, end))
                })
            })
            .map(|((id, _), _)| id.0)
            .collect()
    }

    /// Whether the chunk has a timestamp in `[start, end]` (decodes its
    /// timestamps; an unreadable chunk counts as having one, so a listing
    /// never hides data a read would then report as corrupt).
    fn has_point_in(&self, entry: &ChunkEntry, start: Timestamp, end: Timestamp) -> bool {
        let timestamps = || -> Option<Vec<Timestamp>> {
            let framed = self.chunk_payload(entry).ok()?;
            let (payload, _) = record::read_frame(&framed).ok()?;
            let mut input = payload;
            take(&mut input, 1).ok()?;
            sundial_codec::decode_timestamps(&mut input).ok()
        };
        timestamps().is_none_or(|ts| ts.iter().any(|t| (start..=end).contains(t)))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Points of one column in `[start, end]`, ascending; reads nothing
    /// when the chunk's time range does not overlap.
    pub(crate) fn read(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Timestamp, FieldValue)>> {
        let mut out = Vec::new();
        for entry in self.chunks(id, field) {
            if entry.max_ts < start || entry.min_ts > end {
                continue;
            }
            if entry.kind == KIND_NUMERIC
                && let Some(chunk) = self.numeric_chunk(entry)?
            {
                // Through the decoded-chunk cache, like aggregations.
                let lo = chunk.ts.partition_point(|t| *t < start);
                let hi = chunk.ts.partition_point(|t| *t <= end);
                out.reserve(hi.saturating_sub(lo));
                for i in lo..hi {
                    if let (Some(t), Some(v)) = (chunk.ts.get(i), chunk.values.get(i)) {
                        out.push((*t, num_value(v)));
                    }
                }
                continue;
            }
            self.read_chunk_into(entry, start, end, &mut out)?;
        }
        Ok(out)
    }

    /// Like [`Block::read`] without the chunk cache, for compaction, which
    /// reads everything once and would only evict what queries use.
    pub(crate) fn read_uncached(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Timestamp, FieldValue)>> {
        let mut out = Vec::new();
        for entry in self.chunks(id, field) {
            if entry.max_ts >= start && entry.min_ts <= end {
                self.read_chunk_into(entry, start, end, &mut out)?;
            }
        }
        Ok(out)
    }

    /// One numeric chunk, cached or decoded (and then cached); `None` if
    /// it holds text.
    fn numeric_chunk(&self, entry: &ChunkEntry) -> Result<Option<Arc<NumericChunk>>> {
        let key = (self.uid, entry.offset);
        if let Some(chunk) = CACHE.get(key) {
            return Ok(Some(chunk));
        }
        let Some(chunk) = self.decode_numeric(entry)? else {
            return Ok(None);
        };
        let chunk = Arc::new(chunk);
        CACHE.insert(key, chunk.clone());
        Ok(Some(chunk))
    }

    /// The decoded numeric chunks of a column overlapping `[start, end]`,
    /// ascending, from the cache when they are there; `None` when a chunk
    /// holds text.
    pub(crate) fn numeric_chunks(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Option<Vec<Arc<NumericChunk>>>> {
        let mut out = Vec::new();
        for entry in self.chunks(id, field) {
            if entry.max_ts < start || entry.min_ts > end {
                continue;
            }
            let Some(chunk) = self.numeric_chunk(entry)? else {
                return Ok(None);
            };
            out.push(chunk);
        }
        Ok(Some(out))
    }

    fn decode_numeric(&self, entry: &ChunkEntry) -> Result<Option<NumericChunk>> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            offset: entry.offset,
            reason,
        };
        let framed = self.chunk_payload(entry)?;
        let (payload, _) =
            record::read_frame(&framed).map_err(|e| corrupt(format!("chunk frame: {e:?}")))?;
        let mut input = payload;
        let kind = take(&mut input, 1).map_err(corrupt)?[0];
        if kind != KIND_NUMERIC {
            return Ok(None);
        }
        let ts = sundial_codec::decode_timestamps(&mut input)
            .map_err(|e| corrupt(format!("chunk: {e}")))?;
        let values = sundial_codec::decode_number_column(&mut input)
            .map_err(|e| corrupt(format!("chunk: {e}")))?;
        if ts.len() != values.len() || ts.len() as u64 != entry.count || !input.is_empty() {
            return Err(corrupt(format!(
                "chunk holds {} timestamps and {} values, index says {}",
                ts.len(),
                values.len(),
                entry.count
            )));
        }
        if !ts.windows(2).all(|w| w[0] < w[1]) {
            return Err(corrupt("chunk timestamps are not ascending".into()));
        }
        Ok(Some(NumericChunk { ts, values }))
    }

    fn chunk_payload(&self, entry: &ChunkEntry) -> Result<Vec<u8>> {
        // A damaged index must not make us allocate past the file.
        let inside = entry
            .offset
            .checked_add(entry.len)
            .is_some_and(|end| end <= self.file_bytes);
        let len = usize::try_from(entry.len)
            .ok()
            .filter(|_| inside)
            .ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                offset: entry.offset,
                reason: format!("chunk of {} bytes beyond the end of the block", entry.len),
            })?;
        let mut framed = vec![0u8; len];
        read_at(&self.file, &self.path, &mut framed, entry.offset)?;
        Ok(framed)
    }

    pub(crate) fn read_chunk(&self, entry: &ChunkEntry) -> Result<Vec<(Timestamp, FieldValue)>> {
        let mut out = Vec::new();
        self.read_chunk_into(entry, Timestamp::MIN, Timestamp::MAX, &mut out)?;
        Ok(out)
    }

    /// Appends the chunk's points within `[start, end]` to `out`.
    fn read_chunk_into(
        &self,
        entry: &ChunkEntry,
        start: Timestamp,
        end: Timestamp,
        out: &mut Vec<(Timestamp, FieldValue)>,
    ) -> Result<()> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            offset: entry.offset,
            reason,
        };
        let framed = self.chunk_payload(entry)?;
        let (payload, _) =
            record::read_frame(&framed).map_err(|e| corrupt(format!("chunk frame: {e:?}")))?;
        let before = out.len();
        let n = decode_chunk_into(payload, start, end, out)
            .map_err(|e| corrupt(format!("chunk: {e}")))?;
        if n as u64 != entry.count {
            out.truncate(before);
            return Err(corrupt(format!(
                "chunk holds {n} points, index says {}",
                entry.count
            )));
        }
        Ok(())
    }
}

/// Where a block's index is and its framed bytes.
struct Located {
    /// A current block: its index starts with a flags byte.
    has_flags: bool,
    index_at: u64,
    framed: Vec<u8>,
}

/// Checks a block's header and footer and reads its framed index.
fn locate_index(file: &File, path: &Path, len: u64) -> Result<Located> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        path: path.to_owned(),
        offset,
        reason,
    };
    if len < (MAGIC.len() + FOOTER_LEN) as u64 {
        return Err(corrupt(0, "shorter than header and footer".into()));
    }
    let mut head = [0u8; 8];
    read_at(file, path, &mut head, 0)?;
    let has_flags = &head == MAGIC;
    if !has_flags && &head != MAGIC_V2 {
        return Err(corrupt(
            0,
            "not a block file of this version (bad magic)".into(),
        ));
    }
    let mut footer = [0u8; FOOTER_LEN];
    let footer_at = len - FOOTER_LEN as u64;
    read_at(file, path, &mut footer, footer_at)?;
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
    read_at(file, path, &mut framed, index_at)?;
    Ok(Located {
        has_flags,
        index_at,
        framed,
    })
}

/// Sorts each column's chunks by time; the block's time range.
fn sort_chunks(chunks: &mut HashMap<(SeriesId, u32), Vec<ChunkEntry>>) -> (Timestamp, Timestamp) {
    let (mut min_ts, mut max_ts) = (Timestamp::MAX, Timestamp::MIN);
    for entries in chunks.values_mut() {
        entries.sort_by_key(|e| e.min_ts);
        // Most columns have one chunk; Vec's growth would keep room for
        // four, which at a million columns is hundreds of megabytes.
        entries.shrink_to_fit();
        for e in entries.iter() {
            max_ts = max_ts.max(e.max_ts);
            min_ts = min_ts.min(e.min_ts);
        }
    }
    (min_ts, max_ts)
}

fn num_value(n: Num) -> FieldValue {
    match n {
        Num::Long(v) => FieldValue::Long(v),
        Num::Double(v) => FieldValue::Double(v),
        Num::Bool(v) => FieldValue::Bool(v),
    }
}

fn read_at(file: &File, path: &Path, buf: &mut [u8], at: u64) -> Result<()> {
    file.read_exact_at(buf, at)
        .map_err(|e| Error::io("read block", path, e))
}

/// Decodes a chunk, appending its points within `[start, end]` to `out`
/// (one pass, no intermediate point vectors: reads are dominated by this).
/// Returns how many points the chunk holds.
fn decode_chunk_into(
    payload: &[u8],
    start: Timestamp,
    end: Timestamp,
    out: &mut Vec<(Timestamp, FieldValue)>,
) -> std::result::Result<usize, String> {
    let mut input = payload;
    let kind = take(&mut input, 1)?[0];
    let ts = sundial_codec::decode_timestamps(&mut input).map_err(|e| e.to_string())?;
    let n = ts.len();
    let mismatch = |values: usize| format!("{n} timestamps but {values} values");
    let wanted = |t: &Timestamp| (start..=end).contains(t);
    match kind {
        KIND_NUMERIC => {
            let nums = sundial_codec::decode_numbers(&mut input).map_err(|e| e.to_string())?;
            if nums.len() != n {
                return Err(mismatch(nums.len()));
            }
            out.reserve(n);
            for (t, v) in ts.iter().zip(nums) {
                if wanted(t) {
                    out.push((
                        *t,
                        match v {
                            Num::Long(v) => FieldValue::Long(v),
                            Num::Double(v) => FieldValue::Double(v),
                            Num::Bool(v) => FieldValue::Bool(v),
                        },
                    ));
                }
            }
        }
        KIND_STRING | KIND_BYTES => {
            let texts = sundial_codec::decode_texts(&mut input).map_err(|e| e.to_string())?;
            if texts.len() != n {
                return Err(mismatch(texts.len()));
            }
            for (t, b) in ts.iter().zip(texts) {
                if !wanted(t) {
                    continue;
                }
                let v = if kind == KIND_STRING {
                    String::from_utf8(b)
                        .map(FieldValue::String)
                        .map_err(|_| "text is not UTF-8".to_string())?
                } else {
                    FieldValue::Bytes(b)
                };
                out.push((*t, v));
            }
        }
        other => return Err(format!("unknown chunk kind {other}")),
    }
    if !input.is_empty() {
        return Err(format!("{} trailing bytes", input.len()));
    }
    Ok(n)
}

type Index = (Vec<String>, HashMap<(SeriesId, u32), Vec<ChunkEntry>>);

/// Largest index a block may state (a damaged length must not allocate
/// without bound; a million series' index is a few hundred megabytes).
const MAX_INDEX_BYTES: usize = 1 << 32;

fn decode_index(mut input: &[u8]) -> std::result::Result<Index, String> {
    let input = &mut input;
    let n_fields = get_varint(input)?;
    let mut fields = Vec::new();
    for _ in 0..n_fields {
        fields.push(get_str(input)?);
    }
    let n_chunks = get_varint(input)?;
    let mut chunks = HashMap::new();
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
        let len = get_varint(input)?;
        let count = get_varint(input)?;
        let min_ts = unzigzag(get_varint(input)?);
        let max_ts = unzigzag(get_varint(input)?);
        let stats = if kind == KIND_NUMERIC {
            let mut vals = [0f64; 3];
            for v in &mut vals {
                let mut b = [0u8; 8];
                b.copy_from_slice(take(input, 8)?);
                *v = f64::from_le_bytes(b);
            }
            Some(ChunkStats {
                min: vals[0],
                max: vals[1],
                sum: vals[2],
            })
        } else {
            None
        };
        chunks
            .entry((SeriesId(id), field))
            .or_insert_with(Vec::new)
            .push(ChunkEntry {
                kind,
                all_long,
                offset,
                len,
                count,
                min_ts,
                max_ts,
                stats,
            });
    }
    if !input.is_empty() {
        return Err(format!("{} trailing bytes", input.len()));
    }
    Ok((fields, chunks))
}
