//! Reads blocks: the index once at open, chunks on demand by positioned
//! reads, so a narrow query touches only its chunks.

use super::cache::{CACHE, NumericChunk, PRESAMPLED};
use super::index::{self, ChunkEntry, Decoded, Located, locate_index};
use super::source::{Opening, Source, read_file_at};
use super::table::Chunks;
use super::{KIND_BYTES, KIND_NUMERIC, KIND_STRING};
use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, take};
use crate::remote::{BlockRanges, RemoteStore, manifest};
use bytes::Bytes;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use sundial_model::{FieldValue, Kind, Timestamp};

/// An open block: a local file or an object in the store.
#[derive(Debug)]
pub(crate) struct Block {
    /// The file, or the object's URL (for messages).
    path: PathBuf,
    source: Source,
    fields: Vec<String>,
    /// Per column, ascending by time.
    chunks: super::table::ChunkTable,
    /// The numeric chunks' statistics, encoded ([`ChunkEntry::stats_at`]).
    stats: Vec<u8>,
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
    /// The fingerprint of the presampling rules it was written under
    /// (`crate::rollup::fingerprint`; 0: none).
    pub(crate) presampling: u64,
    /// Holds only statistics and presampled buckets: reads of points find
    /// none, compaction leaves it alone (`crate::compact`).
    pub(crate) rollups_only: bool,
    /// Never reused: the chunk cache key.
    uid: u64,
    /// Replaced or expired: a remote block's object is deleted once the
    /// last reader lets go of it.
    retired: AtomicBool,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Source::Remote { store, key } = &self.source
            && self.retired.load(Ordering::Relaxed)
        {
            store.delete_later(key);
        }
    }
}

impl Block {
    /// Opens a block file and reads its index.
    pub(crate) fn open(path: &Path, id: super::BlockId) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open block", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat block", path, e))?
            .len();
        let located = locate_index(&mut |buf, at| read_file_at(&file, path, buf, at), path, len)?;
        Self::from_index(path.to_owned(), Source::Local(file), id, len, located)
    }

    /// Opens a block in the store: its tail (footer and index) in one
    /// request, chunks later as queries need them.
    pub(crate) fn open_remote(store: &RemoteStore, entry: &manifest::Entry) -> Result<Self> {
        let label = PathBuf::from(format!("{}/{}", store.location(), entry.key));
        let opening = Opening::start(store, &entry.key, entry.bytes)?;
        let located = locate_index(&mut |buf, at| opening.read_at(buf, at), &label, entry.bytes)?;
        let source = Source::Remote {
            store: store.clone(),
            key: entry.key.clone(),
        };
        Self::from_index(label, source, entry.id, entry.bytes, located)
    }

    /// This block, now read from its uploaded copy `key` (the index is the
    /// same; the local file may go).
    pub(crate) fn into_remote(mut self, store: &RemoteStore, key: String) -> Self {
        self.path = PathBuf::from(format!("{}/{key}", store.location()));
        self.source = Source::Remote {
            store: store.clone(),
            key,
        };
        self
    }

    /// Its manifest entry, if it lives in the store.
    pub(crate) fn manifest_entry(&self) -> Option<manifest::Entry> {
        match &self.source {
            Source::Remote { key, .. } => Some(manifest::Entry {
                id: self.id,
                bytes: self.file_bytes,
                key: key.clone(),
            }),
            Source::Local(_) => None,
        }
    }

    /// Marks the block replaced: a remote one's object goes once no
    /// reader holds the block any more.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote { .. })
    }

    fn from_index(
        path: PathBuf,
        source: Source,
        id: super::BlockId,
        len: u64,
        located: Located,
    ) -> Result<Self> {
        let Decoded {
            fields,
            chunks,
            min_ts,
            max_ts,
            fast,
            stats,
            presampling,
            rollups_only,
        } = index::decode(&path, located)?;
        Ok(Self {
            uid: super::cache::next_block_id(),
            path,
            source,
            id,
            file_bytes: len,
            min_ts,
            max_ts,
            opened: std::time::Instant::now(),
            fast,
            fields,
            chunks,
            stats,
            presampling,
            rollups_only,
            retired: AtomicBool::new(false),
        })
    }

    /// A numeric chunk's minimum, maximum and sum.
    pub(crate) fn stats(&self, entry: &ChunkEntry) -> Option<super::ChunkStats> {
        if entry.stats_at == index::NO_STATS {
            return None;
        }
        let at = usize::try_from(entry.stats_at).ok()?;
        let bytes = self.stats.get(at..at.checked_add(index::SUMMARY_BYTES)?)?;
        let mut values = bytes.chunks_exact(8).map(|b| {
            let mut v = [0u8; 8];
            v.copy_from_slice(b);
            f64::from_le_bytes(v)
        });
        Some(super::ChunkStats {
            min: values.next()?,
            max: values.next()?,
            sum: values.next()?,
        })
    }

    /// A numeric chunk's exact statistics, when its block has them.
    pub(crate) fn exact_stats(&self, entry: &ChunkEntry) -> Option<super::ExactStats> {
        if !entry.exact() || entry.stats_at == index::NO_STATS {
            return None;
        }
        let at = usize::try_from(entry.stats_at).ok()?;
        let mut input = self.stats.get(at.checked_add(index::SUMMARY_BYTES)?..)?;
        super::exact::decode(&mut input, entry.all_long()).ok()
    }

    /// (series, field, kind) of every chunk, for rebuilding the catalog.
    pub(crate) fn column_kinds(&self) -> impl Iterator<Item = (SeriesId, &str, Kind)> {
        self.chunks.iter().filter_map(|((id, f), entries)| {
            let kind = match entries.first()?.kind() {
                KIND_STRING => Kind::String,
                KIND_BYTES => Kind::Bytes,
                _ => Kind::Numeric,
            };
            Some((id, self.fields.get(f as usize)?.as_str(), kind))
        })
    }

    /// The chunks of one column, ascending by time.
    pub(crate) fn chunks(&self, id: SeriesId, field: &str) -> Chunks<'_> {
        self.fields
            .iter()
            .position(|x| x == field)
            .map(|f| self.chunks.get(id, f as u32))
            .unwrap_or_default()
    }

    /// The byte ranges a read of `ids` x `fields` in `[start, end]` would
    /// fetch from the store, skipping chunks already decoded in the cache;
    /// `None` for a local block.
    pub(crate) fn remote_ranges(
        &self,
        ids: &[SeriesId],
        fields: &[&str],
        start: Timestamp,
        end: Timestamp,
    ) -> Option<BlockRanges> {
        let Source::Remote { store, key } = &self.source else {
            return None;
        };
        if self.max_ts < start || self.min_ts > end {
            return None;
        }
        let mut ranges = Vec::new();
        for id in ids {
            for field in fields {
                for entry in self.chunks(*id, field).iter() {
                    let inside = entry
                        .offset()
                        .checked_add(u64::from(entry.len))
                        .is_some_and(|e| e <= self.file_bytes);
                    if entry.max_ts < start || entry.min_ts > end || !inside {
                        continue;
                    }
                    if entry.kind() == KIND_NUMERIC
                        && CACHE.peek((self.uid, entry.offset())).is_some()
                    {
                        continue;
                    }
                    if let Ok(len) = usize::try_from(entry.len)
                        && len > 0
                    {
                        ranges.push((entry.offset(), len));
                    }
                    // The presampled buckets right after it, when it has
                    // them: a presampled fold reads those instead.
                    let after = entry.offset().saturating_add(u64::from(entry.len));
                    let whole = after
                        .checked_add(u64::from(entry.rollup_len))
                        .is_some_and(|e| e <= self.file_bytes);
                    if entry.rollup_len > 0 && whole {
                        ranges.push((after, entry.rollup_len as usize));
                    }
                }
            }
        }
        Some(BlockRanges {
            store: store.clone(),
            key: key.clone(),
            uid: self.uid,
            ranges,
        })
        .filter(|b| !b.ranges.is_empty())
    }

    /// Every (series, field) column in the block.
    pub(crate) fn columns(&self) -> impl Iterator<Item = (SeriesId, &str)> {
        self.chunks
            .iter()
            .filter_map(|((id, f), _)| Some((id, self.fields.get(f as usize)?.as_str())))
    }

    /// Series with a chunk overlapping `[start, end]`.
    pub(crate) fn series_in(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> sundial_index::RoaringBitmap {
        self.chunks
            .iter()
            .filter(|(_, entries)| entries.iter().any(|e| self.holds_point_in(e, start, end)))
            .map(|((id, _), _)| id.0)
            .collect()
    }

    /// Which of `ids` have a chunk overlapping `[start, end]`: what
    /// [`Block::series_in`] says of them, looking at their columns only.
    pub(crate) fn series_among(
        &self,
        ids: &sundial_index::RoaringBitmap,
        start: Timestamp,
        end: Timestamp,
    ) -> sundial_index::RoaringBitmap {
        let mut from = 0;
        ids.iter()
            .filter(|id| {
                self.chunks
                    .columns_of(&mut from, SeriesId(*id))
                    .any(|entries| entries.iter().any(|e| self.holds_point_in(e, start, end)))
            })
            .collect()
    }

    /// Whether the chunk of `e` has a point in `[start, end]`.
    fn holds_point_in(&self, e: &ChunkEntry, start: Timestamp, end: Timestamp) -> bool {
        let overlaps = e.max_ts >= start && e.min_ts <= end;
        let inside = start <= e.min_ts && e.max_ts <= end;
        // A chunk straddling an end may have no point inside.
        overlaps && (inside || self.has_point_in(e, start, end))
    }

    /// Whether the chunk has a timestamp in `[start, end]` (decodes its
    /// timestamps; an unreadable chunk counts as having one, so a listing
    /// never hides data a read would then report as corrupt).
    fn has_point_in(&self, entry: &ChunkEntry, start: Timestamp, end: Timestamp) -> bool {
        if self.rollups_only {
            return true;
        }
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
        if self.rollups_only {
            return Ok(out);
        }
        for entry in self.chunks(id, field).iter() {
            if entry.max_ts < start || entry.min_ts > end {
                continue;
            }
            if entry.kind() == KIND_NUMERIC
                && let Some(chunk) = self.numeric_chunk(entry)?
            {
                // Through the decoded-chunk cache, like aggregations.
                let lo = chunk.ts.partition_point(|t| *t < start);
                let hi = chunk.ts.partition_point(|t| *t <= end);
                out.reserve(hi.saturating_sub(lo));
                for i in lo..hi {
                    if let (Some(t), Some(v)) = (chunk.ts.get(i), chunk.values.get(i)) {
                        out.push((*t, FieldValue::from(v)));
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
        self.read_entries(&self.chunks(id, field), start, end)
    }

    /// [`Block::read_uncached`] for a caller going through series in
    /// ascending order, `from` its position in this block (start at 0).
    pub(crate) fn read_uncached_from(
        &self,
        from: &mut usize,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Timestamp, FieldValue)>> {
        let Some(f) = self.fields.iter().position(|x| x == field) else {
            return Ok(Vec::new());
        };
        self.read_entries(&self.chunks.get_from(from, id, f as u32), start, end)
    }

    fn read_entries(
        &self,
        entries: &[ChunkEntry],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Timestamp, FieldValue)>> {
        let mut out = Vec::new();
        if self.rollups_only {
            return Ok(out);
        }
        for entry in entries {
            if entry.max_ts >= start && entry.min_ts <= end {
                self.read_chunk_into(entry, start, end, &mut out)?;
            }
        }
        Ok(out)
    }

    /// One numeric chunk, cached or decoded (and then cached); `None` if
    /// it holds text. A rollups-only block's chunks hold no points.
    pub(crate) fn numeric_chunk(&self, entry: &ChunkEntry) -> Result<Option<Arc<NumericChunk>>> {
        if self.rollups_only {
            return Ok((entry.kind() == KIND_NUMERIC).then(|| Arc::new(NumericChunk::empty())));
        }
        // Text is known from the index: not read to find out (a count of
        // a text column asks here first, then reads its points).
        if matches!(entry.kind(), KIND_STRING | KIND_BYTES) {
            return Ok(None);
        }
        let key = (self.uid, entry.offset());
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

    fn decode_numeric(&self, entry: &ChunkEntry) -> Result<Option<NumericChunk>> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            offset: entry.offset(),
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
        if ts.len() != values.len()
            || ts.len() as u64 != u64::from(entry.count)
            || !input.is_empty()
        {
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

    fn chunk_payload(&self, entry: &ChunkEntry) -> Result<Bytes> {
        // A damaged index must not make us allocate past the file.
        let inside = entry
            .offset()
            .checked_add(u64::from(entry.len))
            .is_some_and(|end| end <= self.file_bytes);
        let len = usize::try_from(entry.len)
            .ok()
            .filter(|_| inside)
            .ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                offset: entry.offset(),
                reason: format!("chunk of {} bytes beyond the end of the block", entry.len),
            })?;
        self.source.read(&self.path, self.uid, entry.offset(), len)
    }

    /// A numeric chunk's presampled buckets on the widest grid it has
    /// that refines `grid` (decoded once, then from the cache; only that
    /// grid's section is inflated); `None` without one.
    pub(crate) fn rollup_buckets(
        &self,
        entry: &ChunkEntry,
        grid: crate::rollup::Grid,
    ) -> Result<Option<crate::rollup::GridBuckets>> {
        if entry.rollup_len == 0 {
            return Ok(None);
        }
        let at = entry.offset().saturating_add(u64::from(entry.len));
        // Kept under the grid asked for, so a hit reads nothing; block
        // chunks end below 2^OFFSET_BITS (the index decoder refuses
        // others). Grids sharing the 16 bits above may find
        // each other's buckets: they are taken only if they refine it.
        let key = (self.uid, at | grid_bits(&grid) << index::OFFSET_BITS);
        if let Some(frame) = PRESAMPLED.get(key).map(crate::rollup::GridBuckets::new)
            && frame.refines(&grid)
        {
            return Ok(Some(frame));
        }
        let payload = self.rollup_payload(entry)?;
        let parsed =
            crate::rollup::Payload::parse(&payload).map_err(|r| self.bad_rollups(at, r))?;
        let Some(i) = parsed.refining(grid) else {
            return Ok(None);
        };
        let frame = parsed
            .decode(&payload, i)
            .map_err(|r| self.bad_rollups(at, r))?;
        let frame = Arc::new(frame);
        PRESAMPLED.insert(key, frame.clone());
        Ok(Some(crate::rollup::GridBuckets::new(frame)))
    }

    /// Decodes every grid's presampled buckets of a numeric chunk (the
    /// integrity check).
    pub(crate) fn check_rollups(&self, entry: &ChunkEntry) -> Result<()> {
        if entry.rollup_len == 0 {
            return Ok(());
        }
        let at = entry.offset().saturating_add(u64::from(entry.len));
        let payload = self.rollup_payload(entry)?;
        crate::rollup::Payload::parse(&payload)
            .and_then(|p| p.decode_all(&payload))
            .map_err(|r| self.bad_rollups(at, r))?;
        Ok(())
    }

    fn bad_rollups(&self, offset: u64, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            offset,
            reason: format!("presampled: {reason}"),
        }
    }

    /// A chunk's presampled buckets as written (unframed), for copying
    /// them into another block.
    pub(crate) fn rollup_payload(&self, entry: &ChunkEntry) -> Result<Vec<u8>> {
        let at = entry.offset().saturating_add(u64::from(entry.len));
        let len = u64::from(entry.rollup_len);
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            offset: at,
            reason,
        };
        if at.checked_add(len).is_none_or(|end| end > self.file_bytes) {
            return Err(corrupt(
                "presampled buckets beyond the end of the block".into(),
            ));
        }
        let framed = self.source.read(&self.path, self.uid, at, len as usize)?;
        let (payload, _) =
            record::read_frame(&framed).map_err(|e| corrupt(format!("presampled frame: {e:?}")))?;
        Ok(payload.to_vec())
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
        if self.rollups_only {
            return Ok(());
        }
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            offset: entry.offset(),
            reason,
        };
        let framed = self.chunk_payload(entry)?;
        let (payload, _) =
            record::read_frame(&framed).map_err(|e| corrupt(format!("chunk frame: {e:?}")))?;
        let before = out.len();
        let n = decode_chunk_into(payload, start, end, out)
            .map_err(|e| corrupt(format!("chunk: {e}")))?;
        if n as u64 != u64::from(entry.count) {
            out.truncate(before);
            return Err(corrupt(format!(
                "chunk holds {n} points, index says {}",
                entry.count
            )));
        }
        Ok(())
    }
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
                    out.push((*t, FieldValue::from(v)));
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

/// 16 bits of a grid, for the presampled cache's key.
fn grid_bits(grid: &crate::rollup::Grid) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    grid.hash(&mut h);
    h.finish() & 0xFFFF
}
