//! Deleting points and removing series (OpenTSDB's `delete_data` and
//! `delete_meta`).
//!
//! A delete first flushes the head, so every point written before it is in
//! a block and none is left in the WAL to come back at replay; then it
//! rewrites each block holding selected points without them, each rewrite
//! replacing its block by rename as compaction does. Blocks are immutable
//! for readers: a snapshot taken before keeps the old file open. Writes
//! arriving during a delete are ordered after it. A crash in the middle
//! leaves some blocks rewritten and others not; the caller was not
//! answered and deleting again finishes the job (deletes are idempotent).
//!
//! Removed series keep their id and key (names keep their UIDs and a key
//! written again gets its id back) but leave the index; the set is kept in
//! `series.hidden`, rewritten whole on change.

use crate::block::{Block, writer::BlockWriter, writer::Column};
use crate::db::{Inner, blocks, flush};
use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::snapshot::Layers;
use crate::vfs::Vfs;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use sundial_index::RoaringBitmap;
use sundial_model::Timestamp;
use tracing::info;

pub(crate) const HIDDEN_FILE: &str = "series.hidden";

/// What to delete: points of these series in `[start, end]`, of the named
/// fields or of every field.
#[derive(Debug)]
pub(crate) struct Selection<'a> {
    pub(crate) series: &'a RoaringBitmap,
    pub(crate) fields: Option<&'a [String]>,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

impl Selection<'_> {
    fn column(&self, id: SeriesId, field: &str) -> bool {
        self.series.contains(id.0) && self.fields.is_none_or(|f| f.iter().any(|n| n == field))
    }
}

/// Deletes the selected points; `remove` also takes the series out of the
/// index. Returns how many points were deleted.
pub(crate) fn delete(inner: &Inner, sel: &Selection<'_>, remove: bool) -> Result<usize> {
    let _no_compaction = inner.compact_lock.lock();
    flush(inner)?;
    let _no_flush = inner.flush_lock.lock();
    let blocks = inner.layers.read().blocks.clone();
    let mut deleted = 0;
    for block in blocks {
        let hit = block.columns().any(|(id, field)| {
            sel.column(id, field)
                && block
                    .chunks(id, field)
                    .iter()
                    .any(|c| c.min_ts <= sel.end && c.max_ts >= sel.start)
        });
        if hit {
            deleted += rewrite(inner, &block, sel)?;
        }
    }
    if remove {
        let hidden = {
            let mut head = inner.head.write();
            // A series written since the flush above was written after the
            // delete: it stays.
            let idle: Vec<SeriesId> = sel
                .series
                .iter()
                .filter(|id| !head.live.contains(*id))
                .map(SeriesId)
                .collect();
            for id in idle {
                head.hide(id);
            }
            head.hidden.clone()
        };
        // Written outside the head lock; a write that puts a series back
        // meanwhile marks the set dirty for the next flush (which waits
        // for us: we hold the flush lock).
        persist_hidden(&inner.config.vfs, &inner.config.data_dir, &hidden)?;
    }
    Ok(deleted)
}

/// Replaces `block` by a copy without the selected points, or drops it
/// when none are left (an empty block has no time range to record).
fn rewrite(inner: &Inner, block: &Arc<Block>, sel: &Selection<'_>) -> Result<usize> {
    let (replacement, deleted) = if block.rollups_only {
        (without_rollups(inner, block, sel)?, 0)
    } else {
        without_points(inner, block, sel)?
    };
    replace(inner, block, replacement)?;
    Ok(deleted)
}

/// A copy of a rollups-only block without the selected columns' chunks
/// reaching into the range (a chunk's buckets cannot be cut: the whole
/// chunk goes); `None` when none is left.
fn without_rollups(
    inner: &Inner,
    block: &Arc<Block>,
    sel: &Selection<'_>,
) -> Result<Option<Arc<Block>>> {
    let mut columns: Vec<(SeriesId, &str)> = block.columns().collect();
    columns.sort_unstable();
    let dir = &inner.config.data_dir;
    let effort = sundial_codec::Effort::Small;
    let mut writer = BlockWriter::create(&inner.config.vfs, dir, block.id, effort)?;
    writer.rollups_only();
    writer.presampled_under(block.presampling);
    for (id, field) in columns {
        let selected = sel.column(id, field);
        for c in block.chunks(id, field).iter() {
            if selected && c.min_ts <= sel.end && c.max_ts >= sel.start {
                continue;
            }
            let (Some(stats), Some(exact)) = (block.stats(c), block.exact_stats(c)) else {
                continue;
            };
            let payload = block.rollup_payload(c)?;
            writer.copy_rollups(id, field, c, (stats, exact), &payload)?;
        }
    }
    if writer.is_empty() {
        return Ok(None);
    }
    let path = writer.finish()?;
    let written = Block::open(&path, block.id)?;
    Ok(Some(Arc::new(blocks::place(&inner.config, written)?)))
}

/// A copy of `block` without the selected points, and how many went;
/// `None` when no point is left.
fn without_points(
    inner: &Inner,
    block: &Arc<Block>,
    sel: &Selection<'_>,
) -> Result<(Option<Arc<Block>>, usize)> {
    let columns: BTreeSet<(SeriesId, String)> =
        block.columns().map(|(id, f)| (id, f.to_owned())).collect();
    let mut kept = Vec::with_capacity(columns.len());
    let mut deleted = 0;
    for (id, field) in &columns {
        let mut points = block.read_uncached(*id, field, Timestamp::MIN, Timestamp::MAX)?;
        if sel.column(*id, field) {
            let before = points.len();
            points.retain(|(t, _)| *t < sel.start || *t > sel.end);
            deleted += before - points.len();
        }
        if !points.is_empty() {
            kept.push((*id, field, points));
        }
    }
    let replacement = if kept.is_empty() {
        None
    } else {
        let mut writer = BlockWriter::create(
            &inner.config.vfs,
            &inner.config.data_dir,
            block.id,
            sundial_codec::Effort::Small,
        )?;
        let grids = inner.grids_for(kept.iter().map(|(id, _, _)| *id));
        writer.presampled_under(grids.fingerprint);
        for (series, field, points) in &kept {
            writer.add(&Column {
                series: *series,
                field,
                points: points.into(),
                grids: grids.of(*series),
            })?;
        }
        let path = writer.finish()?;
        Some(Arc::new(blocks::place(
            &inner.config,
            Block::open(&path, block.id)?,
        )?))
    };
    Ok((replacement, deleted))
}

/// Puts `replacement` in `block`'s place in the block list (or just
/// takes `block` out).
fn replace(inner: &Inner, block: &Arc<Block>, replacement: Option<Arc<Block>>) -> Result<()> {
    {
        let mut layers = inner.layers.write();
        let list: Vec<Arc<Block>> = layers
            .blocks
            .iter()
            .filter_map(|b| match Arc::ptr_eq(b, block) {
                true => replacement.clone(),
                false => Some(b.clone()),
            })
            .collect();
        if let Err(e) = blocks::record(inner, &list) {
            if let Some(r) = &replacement {
                r.retire();
            }
            return Err(e);
        }
        *layers = Arc::new(Layers {
            blocks: list,
            frozen: layers.frozen.clone(),
        });
    }
    // A local replacement took the old file's name; a remote one has a
    // key of its own, and the old object goes, as does a dropped block.
    if replacement.as_ref().is_none_or(|r| r.is_remote()) {
        blocks::discard(inner, block);
    }
    info!(block = %block.path().display(), "deleted from block");
    Ok(())
}

/// Writes the removed-series set atomically.
pub(crate) fn persist_hidden(vfs: &Vfs, dir: &Path, hidden: &RoaringBitmap) -> Result<()> {
    let path = dir.join(HIDDEN_FILE);
    let mut bytes = Vec::with_capacity(hidden.serialized_size() + 4);
    hidden
        .serialize_into(&mut bytes)
        .map_err(|e| Error::io("encode removed series", &path, e))?;
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    vfs.write_atomic(&path, &bytes)
        .map_err(|e| Error::io("write", &path, e))
}

/// The removed-series set, empty when never written.
pub(crate) fn load_hidden(dir: &Path) -> Result<RoaringBitmap> {
    let path = dir.join(HIDDEN_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RoaringBitmap::new()),
        Err(e) => return Err(Error::io("read removed series", &path, e)),
    };
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.into(),
    };
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or_else(|| corrupt("too short"))?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(corrupt("checksum mismatch"));
    }
    RoaringBitmap::deserialize_from(body).map_err(|_| corrupt("not a series bitmap"))
}
