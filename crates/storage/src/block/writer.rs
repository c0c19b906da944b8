//! Writes a block from a flushed head.

use super::{
    FLAG_FAST, FLAG_INDEX_ZSTD, FLAG_ROLLUPS_ONLY, FOOTER_MAGIC, KIND_BYTES, KIND_NUMERIC,
    KIND_NUMERIC_LONG, KIND_STRING, MAGIC, block_path,
};
use crate::error::{Error, Result};
use crate::head::{PointsRef, SeriesId};
use crate::record::{self, put_str, put_varint, zigzag};
use crate::vfs::{Vfs, VfsFile};
use crate::wal::sync_dir;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use sundial_codec::{Effort, Num};
use sundial_model::{Kind, Timestamp};

/// One column to write: series, field, points ascending by time.
pub(crate) struct Column<'a> {
    pub(crate) series: SeriesId,
    pub(crate) field: &'a str,
    /// Ascending by time, timestamps unique.
    pub(crate) points: PointsRef<'a>,
    /// Grids whose per-bucket statistics numeric chunks carry
    /// (`crate::rollup`).
    pub(crate) grids: &'a [crate::rollup::Grid],
}

/// A chunk holds at most this many points (45 h at 10 s): long runs are
/// where the codecs pay off (a TSBS day at 10 s in one chunk instead of two
/// cut at midnight was 2.7% smaller), and a narrow read still decodes little.
/// Chunks never span a week's edge (Monday 00:00 UTC), the largest
/// compaction window.
pub(crate) const MAX_CHUNK_POINTS: usize = 16_384;

/// Writes `columns` (sorted by series) as the block covering WAL segments
/// below `wal_below`.
#[cfg(test)]
pub(crate) fn write(dir: &Path, wal_below: u64, columns: &[Column<'_>]) -> Result<PathBuf> {
    let id = super::BlockId { wal_below, seq: 0 };
    let mut w = BlockWriter::create(&Vfs::default(), dir, id, Effort::Small)?;
    for col in columns {
        w.add(col)?;
    }
    w.finish()
}

/// [`write`] in the format before exact statistics (`SDBLK003`).
#[cfg(test)]
pub(crate) fn write_version_3(
    dir: &Path,
    wal_below: u64,
    columns: &[Column<'_>],
) -> Result<PathBuf> {
    let id = super::BlockId { wal_below, seq: 0 };
    let mut w = BlockWriter::create(&Vfs::default(), dir, id, Effort::Small)?;
    w.index.version_3 = true;
    for col in columns {
        w.add(col)?;
    }
    let path = w.finish()?;
    let mut bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    bytes[..8].copy_from_slice(super::MAGIC_V3);
    std::fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

/// Streams columns into a new block. The file appears under its final name
/// (replacing any block of that name) only once complete and synced; a
/// writer dropped before that removes its unfinished file.
pub(crate) struct BlockWriter {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    vfs: Vfs,
    /// `None` once finished.
    out: Option<BufWriter<VfsFile>>,
    offset: u64,
    index: IndexBuilder,
    payload: Vec<u8>,
    framed: Vec<u8>,
    effort: Effort,
    /// Writes only numeric chunks' statistics and presampled buckets.
    rollups_only: bool,
}

impl BlockWriter {
    /// `Effort::Fast` for flushes: compaction rewrites their blocks.
    pub(crate) fn create(
        vfs: &Vfs,
        dir: &Path,
        id: super::BlockId,
        effort: Effort,
    ) -> Result<Self> {
        let path = block_path(dir, id);
        let tmp = path.with_extension("tmp");
        let file = vfs
            .create(&tmp)
            .map_err(|e| Error::io("create block", &tmp, e))?;
        let mut writer = Self {
            dir: dir.to_owned(),
            path,
            tmp: tmp.clone(),
            vfs: vfs.clone(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            offset: MAGIC.len() as u64,
            index: IndexBuilder::default(),
            payload: Vec::new(),
            framed: Vec::new(),
            effort,
            rollups_only: false,
        };
        writer
            .out()?
            .write_all(MAGIC)
            .map_err(|e| Error::io("write block", &tmp, e))?;
        Ok(writer)
    }

    /// Records the presampling rules' fingerprint the block is written
    /// under (`crate::rollup::fingerprint`).
    pub(crate) fn presampled_under(&mut self, fingerprint: u64) {
        self.index.presampling = fingerprint;
    }

    /// Makes this a rollups-only block (`FLAG_ROLLUPS_ONLY`): chunks keep
    /// their statistics and presampled buckets, not their points; chunks
    /// without buckets are left out.
    pub(crate) fn rollups_only(&mut self) {
        self.rollups_only = true;
    }

    /// Adds a chunk of a rollups-only block as it is, its buckets'
    /// `payload` read from there (a delete rewriting such a block).
    pub(crate) fn copy_rollups(
        &mut self,
        series: SeriesId,
        field: &str,
        entry: &super::ChunkEntry,
        stats: (super::ChunkStats, super::ExactStats),
        payload: &[u8],
    ) -> Result<()> {
        self.framed.clear();
        record::frame_into(payload, &mut self.framed);
        let meta = ChunkMeta {
            kind: KIND_NUMERIC,
            all_long: entry.all_long(),
            count: u64::from(entry.count),
            min_ts: entry.min_ts,
            max_ts: entry.max_ts,
            stats: Some(stats.0),
            exact: Some(stats.1),
            rollup: None,
            rollup_len: self.framed.len() as u64,
        };
        self.write_chunk(series, field, meta, 0)
    }

    /// No chunk added yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.index.n_chunks == 0
    }

    fn out(&mut self) -> Result<&mut BufWriter<VfsFile>> {
        self.out.as_mut().ok_or_else(|| Error::Corrupt {
            path: self.tmp.clone(),
            offset: self.offset,
            reason: "block writer used after finishing".into(),
        })
    }

    /// Adds one column (columns must come sorted by series) as chunks of at
    /// most [`MAX_CHUNK_POINTS`] within a week.
    pub(crate) fn add(&mut self, col: &Column<'_>) -> Result<()> {
        let points = col.points;
        let mut start = 0;
        while let Some(first) = points.time(start) {
            // The run ends at the week's edge or at the chunk size.
            let week_end =
                crate::partition::week_start(first).checked_add(crate::partition::WEEK_MS);
            let end = week_end
                .map_or(points.len(), |e| points.count_before(e))
                .min(start.saturating_add(MAX_CHUNK_POINTS))
                .max(start + 1);
            self.chunk(col, points.slice(start, end))?;
            start = end;
        }
        Ok(())
    }

    fn chunk(&mut self, col: &Column<'_>, run: PointsRef<'_>) -> Result<()> {
        self.payload.clear();
        self.framed.clear();
        let raw = !self.rollups_only;
        let mut meta =
            encode_chunk(run, col.grids, self.effort, raw, &mut self.payload).map_err(|e| {
                Error::Corrupt {
                    path: self.tmp.clone(),
                    offset: self.offset,
                    reason: format!("cannot encode chunk: {e}"),
                }
            })?;
        if !raw && meta.rollup.is_none() {
            return Ok(());
        }
        if raw {
            record::frame_into(&self.payload, &mut self.framed);
        }
        let chunk_len = self.framed.len() as u64;
        // The presampled buckets follow their chunk, framed apart: a read
        // of the chunk never fetches them.
        if let Some(rollup) = meta.rollup.take() {
            let before = self.framed.len();
            record::frame_into(&rollup, &mut self.framed);
            meta.rollup_len = (self.framed.len() - before) as u64;
        }
        self.write_chunk(col.series, col.field, meta, chunk_len)
    }

    /// Writes the framed chunk and buckets in `self.framed` and indexes
    /// them.
    fn write_chunk(
        &mut self,
        series: SeriesId,
        field: &str,
        meta: ChunkMeta,
        chunk_len: u64,
    ) -> Result<()> {
        let tmp = self.tmp.clone();
        let framed = std::mem::take(&mut self.framed);
        let written = self.out()?.write_all(&framed);
        self.framed = framed;
        written.map_err(|e| Error::io("write block", &tmp, e))?;
        let rollup_len = meta.rollup_len;
        let level = self.effort_level();
        self.index
            .add(series, field, meta, (self.offset, chunk_len), level)
            .map_err(|e| Error::io("compress block index", &tmp, e))?;
        self.offset += chunk_len + rollup_len;
        Ok(())
    }

    /// The zstd level of the index: a flush's block is rewritten by
    /// compaction soon. At level 3 rather than 9, a compacted block of a
    /// million series of 12 points is 3% larger, and compaction during a
    /// load of them takes a third less CPU.
    fn effort_level(&self) -> i32 {
        match self.effort {
            Effort::Fast => 1,
            Effort::Small => 3,
        }
    }

    pub(crate) fn finish(mut self) -> Result<PathBuf> {
        let tmp = self.tmp.clone();
        let io = |e| Error::io("write block", &tmp, e);
        self.framed.clear();
        let level = self.effort_level();
        let mut flags = match self.effort {
            Effort::Fast => FLAG_FAST,
            Effort::Small => 0,
        };
        if self.rollups_only {
            flags |= FLAG_ROLLUPS_ONLY;
        }
        let mut payload = vec![flags | FLAG_INDEX_ZSTD];
        std::mem::take(&mut self.index)
            .finish_into(level, &mut payload)
            .map_err(io)?;
        record::frame_into(&payload, &mut self.framed);
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io(std::io::ErrorKind::Other.into()))?;
        let written = out
            .write_all(&self.framed)
            .and_then(|()| out.write_all(&self.offset.to_le_bytes()))
            .and_then(|()| out.write_all(FOOTER_MAGIC));
        if let Err(e) = written {
            drop(out);
            let _ = self.vfs.remove_file(&tmp);
            return Err(io(e));
        }
        let file = match out.into_inner() {
            Ok(f) => f,
            Err(e) => {
                let _ = self.vfs.remove_file(&tmp);
                return Err(io(e.into_error()));
            }
        };
        let done = file
            .sync_all()
            .and_then(|()| self.vfs.rename(&tmp, &self.path));
        drop(file);
        if let Err(e) = done {
            let _ = self.vfs.remove_file(&tmp);
            return Err(io(e));
        }
        sync_dir(&self.vfs, &self.dir)?;
        Ok(self.path.clone())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // Not finished: an error stopped it; its file must not fill a disk.
        if let Some(out) = self.out.take() {
            drop(out);
            let _ = self.vfs.remove_file(&self.tmp);
        }
    }
}

/// What the index records about a chunk besides its place.
struct ChunkMeta {
    kind: u8,
    /// Numeric and every value a Long.
    all_long: bool,
    count: u64,
    min_ts: Timestamp,
    max_ts: Timestamp,
    stats: Option<super::ChunkStats>,
    exact: Option<super::ExactStats>,
    /// The presampled buckets' payload, then its framed length.
    rollup: Option<Vec<u8>>,
    rollup_len: u64,
}

/// Encodes a chunk's points into `out` (only its statistics and buckets
/// without `raw`).
fn encode_chunk(
    run: PointsRef<'_>,
    grids: &[crate::rollup::Grid],
    effort: Effort,
    raw: bool,
    out: &mut Vec<u8>,
) -> sundial_codec::Result<ChunkMeta> {
    let ts = run.timestamps();
    let kind = match run.first_kind() {
        Some(Kind::String) => KIND_STRING,
        Some(Kind::Bytes) => KIND_BYTES,
        _ => KIND_NUMERIC,
    };
    out.push(kind);
    if raw {
        sundial_codec::encode_timestamps_with(&ts, effort, out)?;
    }
    let mut stats = None;
    let mut exact = None;
    let mut rollup = None;
    match kind {
        KIND_NUMERIC => {
            // A numeric column never holds text (kinds are fixed).
            let nums: Vec<Num> = (0..run.len())
                .map(|i| run.num(i).unwrap_or(Num::Double(f64::NAN)))
                .collect();
            let mut s = super::ChunkStats {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                sum: 0.0,
            };
            for v in nums.iter().map(|n| n.as_f64()) {
                s.min = s.min.min(v);
                s.max = s.max.max(v);
                s.sum += v;
            }
            stats = Some(s);
            exact = super::exact::of_values(nums.iter().copied());
            if !grids.is_empty() {
                let mut payload = Vec::new();
                crate::rollup::encode(&ts, &nums, grids, &mut payload);
                rollup = Some(payload);
            }
            if raw {
                sundial_codec::encode_numbers_with(&nums, effort, out)?;
            }
        }
        _ => {
            let texts: Vec<&[u8]> = (0..run.len())
                .map(|i| run.text(i).unwrap_or_default())
                .collect();
            if raw {
                sundial_codec::encode_texts_into(&texts, out);
            }
        }
    }
    let all_long = kind == KIND_NUMERIC && run.all_long();
    Ok(ChunkMeta {
        kind,
        all_long,
        count: ts.len() as u64,
        min_ts: ts.first().copied().unwrap_or_default(),
        max_ts: ts.last().copied().unwrap_or_default(),
        stats,
        exact,
        rollup,
        rollup_len: 0,
    })
}

/// The index section: series definitions, field names, chunk directory.
/// The directory is compressed as it grows, a zstd frame of its own after
/// one of the fields (zstd reads concatenated frames as one): at a million
/// columns it is ~100 MB raw, which a flush held whole (twice, with the
/// vector's doubling) beside everything else.
#[derive(Default)]
struct IndexBuilder {
    fields: Vec<String>,
    /// Entries not yet compressed.
    chunks: Vec<u8>,
    /// The compressed directory so far (started by the first spill).
    directory: Option<zstd::stream::Encoder<'static, Vec<u8>>>,
    /// Bytes of directory compressed or waiting in `chunks`.
    directory_len: u64,
    n_chunks: u64,
    presampling: u64,
    /// Writes an `SDBLK003` index (tests of old blocks).
    #[cfg(test)]
    version_3: bool,
}

/// Entries gathered before they are compressed.
const SPILL_BYTES: usize = 1 << 20;

impl IndexBuilder {
    fn add(
        &mut self,
        series: SeriesId,
        field: &str,
        meta: ChunkMeta,
        (offset, len): (u64, u64),
        level: i32,
    ) -> std::io::Result<()> {
        let field = match self.fields.iter().position(|f| f == field) {
            Some(i) => i,
            None => {
                self.fields.push(field.to_owned());
                self.fields.len() - 1
            }
        };
        let before = self.chunks.len();
        self.encode(series, field, meta, offset, len);
        self.directory_len += (self.chunks.len() - before) as u64;
        if self.chunks.len() >= SPILL_BYTES {
            self.spill(level)?;
        }
        Ok(())
    }

    /// Compresses the entries gathered so far.
    fn spill(&mut self, level: i32) -> std::io::Result<()> {
        let encoder = match &mut self.directory {
            Some(e) => e,
            None => self
                .directory
                .insert(zstd::stream::Encoder::new(Vec::new(), level)?),
        };
        std::io::Write::write_all(encoder, &self.chunks)?;
        self.chunks.clear();
        Ok(())
    }

    fn encode(&mut self, series: SeriesId, field: usize, meta: ChunkMeta, offset: u64, len: u64) {
        self.n_chunks += 1;
        let c = &mut self.chunks;
        put_varint(c, u64::from(series.0));
        put_varint(c, field as u64);
        c.push(if meta.all_long {
            KIND_NUMERIC_LONG
        } else {
            meta.kind
        });
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
        #[cfg(test)]
        let meta = ChunkMeta {
            exact: meta.exact.filter(|_| !self.version_3),
            ..meta
        };
        if let Some(e) = &meta.exact {
            super::exact::encode(e, meta.all_long, &mut self.chunks);
            put_varint(&mut self.chunks, meta.rollup_len);
        }
    }

    /// Appends the index as [`record::deflate_into`] would: its length,
    /// then zstd frames of the fields, the directory and the fingerprint.
    fn finish_into(mut self, level: i32, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut head = Vec::new();
        put_varint(&mut head, self.fields.len() as u64);
        for f in &self.fields {
            put_str(&mut head, f);
        }
        put_varint(&mut head, self.n_chunks);
        let mut tail = Vec::new();
        #[cfg(test)]
        let old = self.version_3;
        #[cfg(not(test))]
        let old = false;
        if !old {
            put_varint(&mut tail, self.presampling);
        }
        let len = head.len() as u64 + self.directory_len + tail.len() as u64;
        put_varint(out, len);
        out.extend(zstd::bulk::compress(&head, level)?);
        if !self.chunks.is_empty() {
            self.spill(level)?;
        }
        if let Some(directory) = self.directory.take() {
            out.extend(directory.finish()?);
        }
        if !tail.is_empty() {
            out.extend(zstd::bulk::compress(&tail, level)?);
        }
        Ok(())
    }
}
