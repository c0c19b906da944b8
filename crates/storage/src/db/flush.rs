//! Flushing: the head's points go to one block per time window, the
//! WAL segments they were logged in go, and the maintenance thread runs
//! retention and compaction after flushes and on a timer.

use super::{Commit, Inner, blocks};
use crate::block::{self, Block, BlockId};
use crate::compact;
use crate::delete;
use crate::error::{Error, Result};
use crate::head::{Frozen, Head, PointsRef, SeriesId};
use crate::partition::{self, Tiers, Window};
use crate::phase::Phase;
use crate::snapshot::Layers;
use crate::wal;
use std::fs;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak, mpsc};
use sundial_index::RoaringBitmap;
use sundial_model::{SeriesKey, Timestamp};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// Flushes when the WAL writer hints, then nudges the maintenance thread.
pub(super) fn run_flusher(
    inner: Weak<Inner>,
    hints: mpsc::Receiver<()>,
    flushed: mpsc::SyncSender<()>,
) {
    while hints.recv().is_ok() {
        let Some(inner) = inner.upgrade() else { return };
        let before = inner.activity.done().flushes;
        if let Err(e) = flush(&inner) {
            error!(error = %e, "background flush failed; will retry at the next threshold");
        }
        release_after_flush(&inner, before);
        let _ = flushed.try_send(());
    }
}

/// Runs retention and compaction after flushes and periodically, on its
/// own thread so a long merge never holds up flushes.
pub(super) fn run_maintenance(inner: Weak<Inner>, nudges: mpsc::Receiver<()>) {
    let interval = match inner.upgrade() {
        Some(i) => std::time::Duration::from_secs(i.config.maintenance_interval_secs),
        None => return,
    };
    loop {
        match nudges.recv_timeout(interval) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let age = inner.last_flush.lock().elapsed();
        let before = inner.activity.done().flushes;
        let flushed = if age.as_secs() >= inner.config.max_head_age_secs {
            flush(&inner)
        } else {
            // Closed partitions go to their blocks; the open one stays.
            let tiers = Tiers::new(inner.config.partition_secs);
            let grace = i64::try_from(inner.config.partition_grace_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            let before = tiers.closed_before(sundial_model::now_ms(), grace);
            if before > *inner.closed_up_to.lock() {
                flush_before(&inner, Some(before)).inspect(|()| *inner.closed_up_to.lock() = before)
            } else {
                Ok(())
            }
        };
        if let Err(e) = flushed {
            error!(error = %e, "periodic flush failed; will retry");
        }
        release_after_flush(&inner, before);
        if inner.config.blocks_shared {
            continue;
        }
        if let Err(e) = compact::maintain(&inner, false) {
            error!(error = %e, "compaction failed; blocks are unchanged");
        }
    }
}

/// Hands the flushed points' memory back if a flush ran since the count
/// of flushes was `before` (not on every quiet tick).
fn release_after_flush(inner: &Inner, before: u64) {
    if inner.activity.done().flushes != before {
        crate::memory::release();
    }
}

/// Flushes every point in the head.
pub(crate) fn flush(inner: &Inner) -> Result<()> {
    flush_before(inner, None)
}

/// Flushes the head's points older than `before` (all for `None`) into one
/// block per time window, then deletes the WAL segments they were logged
/// in. Points left in the head are logged again first, in the segment the
/// rotation starts, so those segments can go.
pub(crate) fn flush_before(inner: &Inner, before: Option<Timestamp>) -> Result<()> {
    let _one = inner.flush_lock.lock();
    if before.is_none() {
        *inner.last_flush.lock() = std::time::Instant::now();
    }
    {
        let head = inner.head.read();
        if head.point_count() == 0 || before.is_some_and(|t| !head.has_points_before(t)) {
            return Ok(());
        }
    }
    // The rotation answers once every record queued before it is durable
    // and in the head; the writer then writes nothing until the kept
    // points are logged again, first in the new segment, so replay keeps
    // last-write-wins.
    let rotation = inner.wal.rotate()?;
    let below = match rotation.rotated.blocking_recv() {
        Ok(Ok(n)) => n,
        Ok(Err(reason)) => return Err(Error::WalFailed { reason }),
        Err(_) => {
            return Err(Error::WalStopped {
                reason: "writer exited during rotation".into(),
            });
        }
    };
    let frozen = freeze(inner, before, &rotation.relog);
    // Logged outside the head lock; ends when this function returns.
    let _phase = Phase::start("flush", &inner.config.data_dir);
    let started = std::time::Instant::now();
    // Series definitions must be durable before the WAL holding them is
    // deleted; the block refers to series by id only.
    let result = catalog_series(inner, &frozen.new_series)
        // Before the block: once the block is in place, recovery deletes
        // the WAL that shows the writes which put these series back.
        .and_then(|()| match &frozen.hidden {
            Some(h) => delete::persist_hidden(&inner.config.vfs, &inner.config.data_dir, h),
            None => Ok(()),
        })
        .and_then(|()| write_blocks(inner, &frozen.points, below));
    match result.and_then(|written| install(inner, written)) {
        Ok(()) => {
            *inner.flush_failure.lock() = None;
            inner.activity.flushed(started.elapsed());
            publish(inner, frozen.relogged, below)
        }
        Err(e) => {
            thaw(inner, frozen);
            *inner.flush_failure.lock() = Some(e.to_string());
            Err(e)
        }
    }
}

/// What a flush took out of the head.
struct Flushing {
    points: Arc<Frozen>,
    /// Answers once the points kept in the head are logged again.
    relogged: oneshot::Receiver<wal::CommitResult>,
    /// Series not yet in the catalog.
    new_series: Vec<SeriesId>,
    /// The set of deleted series, when writes changed it.
    hidden: Option<RoaringBitmap>,
}

/// Freezes the head's points older than `before` (all for `None`) for
/// the blocks, readable meanwhile, and sends the rest to be logged again.
fn freeze(inner: &Inner, before: Option<Timestamp>, relog: &mpsc::Sender<wal::Relog>) -> Flushing {
    let mut head = inner.head.write();
    let payloads = match before {
        Some(t) => relog_payloads(&head, t),
        None => Vec::new(),
    };
    let (done, relogged) = oneshot::channel();
    // A dropped receiver means the writer stopped; the wait for
    // `relogged` says so.
    let _ = relog.send(wal::Relog { payloads, done });
    let points = Arc::new(head.freeze(before));
    let new_series = std::mem::take(&mut head.uncataloged);
    // Series written again since a delete removed them: the set must
    // be on disk before the WAL that shows the writes is deleted.
    let hidden = head.hidden_dirty.then(|| head.hidden.clone());
    head.hidden_dirty = false;
    let mut layers = inner.layers.write();
    *layers = Arc::new(Layers {
        blocks: layers.blocks.clone(),
        frozen: Some(points.clone()),
    });
    Flushing {
        points,
        relogged,
        new_series,
        hidden,
    }
}

/// Makes the written blocks visible in place of the frozen points (once
/// the manifest names them, when they live in the store).
fn install(inner: &Inner, written: Vec<Block>) -> Result<()> {
    let mut layers = inner.layers.write();
    let mut list = layers.blocks.clone();
    let before = list.len();
    list.extend(written.into_iter().map(Arc::new));
    if let Err(e) = blocks::record(inner, &list) {
        for b in &list[before..] {
            blocks::discard(inner, b);
        }
        return Err(e);
    }
    *layers = Arc::new(Layers {
        blocks: list,
        frozen: None,
    });
    Ok(())
}

/// Deletes the WAL segments the installed blocks cover once the points
/// kept in the head are logged again.
fn publish(
    inner: &Inner,
    relogged: oneshot::Receiver<wal::CommitResult>,
    below: u64,
) -> Result<()> {
    if let Err(e) = Commit(Some(relogged)).wait_blocking() {
        // The blocks hold the flushed points; the old segments stay and
        // replay them again, which is harmless.
        warn!(error = %e, "points kept in the head were not logged again; WAL segments kept");
        return Ok(());
    }
    let dir = &inner.config.data_dir;
    write_covered(&inner.config.vfs, dir, below)?;
    for n in wal::list_segments(dir)?.into_iter().filter(|n| *n < below) {
        let path = wal::segment_path(dir, n);
        if let Err(e) = inner.config.vfs.remove_file(&path) {
            warn!(path = %path.display(), error = %e, "cannot delete flushed WAL segment");
        }
    }
    Ok(())
}

/// Puts a failed flush's points back so reads keep seeing them and a
/// later flush covers them before their WAL segments are deleted.
fn thaw(inner: &Inner, frozen: Flushing) {
    let mut head = inner.head.write();
    let mut layers = inner.layers.write();
    *layers = Arc::new(Layers {
        blocks: layers.blocks.clone(),
        frozen: None,
    });
    // Readers holding an older snapshot may still share it.
    let points = Arc::try_unwrap(frozen.points).unwrap_or_else(|shared| (*shared).clone());
    head.restore(points);
    head.hidden_dirty |= frozen.hidden.is_some();
    // Appending twice is harmless (a re-definition is a no-op).
    let mut ids = frozen.new_series;
    ids.append(&mut head.uncataloged);
    head.uncataloged = ids;
}

/// Points per record when a partial flush logs the kept points again (a
/// WAL frame's length is a u32).
const RELOG_POINTS: usize = 1 << 20;

/// The head's points from `from` on as WAL record payloads, in order.
fn relog_payloads(head: &Head, from: Timestamp) -> Vec<Vec<u8>> {
    head.encode_points(from, RELOG_POINTS)
        .into_iter()
        .map(|mut enc| {
            let mut payload = Vec::new();
            enc.finish_into(&mut payload);
            payload
        })
        .collect()
}

/// Appends the definitions of `ids` to the catalog, a few thousand keys at
/// a time so a million new series never sit materialised at once.
fn catalog_series(inner: &Inner, ids: &[SeriesId]) -> Result<()> {
    let mut catalog = inner.catalog.lock();
    for chunk in ids.chunks(4096) {
        let defs: Vec<(SeriesId, SeriesKey)> = {
            let head = inner.head.read();
            chunk
                .iter()
                .filter_map(|id| Some((*id, head.key(*id)?)))
                .collect()
        };
        catalog.append(&defs)?;
    }
    Ok(())
}

/// Most blocks one flush writes: a head spanning more partitions (a
/// backfill of scattered old points) is cut by days, or weeks, instead.
const MAX_FLUSH_BLOCKS: usize = 36;

/// Writes the frozen points as one block per window, oldest window first.
/// On failure no block of this flush is left behind.
fn write_blocks(inner: &Inner, frozen: &Frozen, below: u64) -> Result<Vec<Block>> {
    let dir = &inner.config.data_dir;
    let tiers = Tiers::new(inner.config.partition_secs);
    let grids = inner.grids_for(frozen.iter().map(|(id, _)| *id));
    let mut written: Vec<Block> = Vec::new();
    let result = (|| {
        for (seq, w) in flush_windows(&tiers, frozen).into_iter().enumerate() {
            let id = BlockId {
                wal_below: below,
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
            };
            let mut writer = block::writer::BlockWriter::create(
                &inner.config.vfs,
                dir,
                id,
                sundial_codec::Effort::Fast,
            )?;
            writer.presampled_under(grids.fingerprint);
            let mut points = 0usize;
            for (series, cols) in frozen {
                for (field, pts) in cols {
                    let part = in_window(pts.as_ref(), w);
                    if part.is_empty() {
                        continue;
                    }
                    points += part.len();
                    writer.add(&block::writer::Column {
                        series: *series,
                        field,
                        points: part,
                        grids: grids.of(*series),
                    })?;
                }
            }
            let path = writer.finish()?;
            info!(path = %path.display(), points, "flushed head to block");
            written.push(blocks::place(&inner.config, Block::open(&path, id)?)?);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(written),
        Err(e) => {
            for b in &written {
                blocks::discard(inner, b);
            }
            Err(e)
        }
    }
}

/// The windows holding frozen points, of the smallest tier that needs at
/// most [`MAX_FLUSH_BLOCKS`] of them; points scattered over more weeks than
/// that go to one block spanning them all (compaction merges such blocks
/// with everything between them).
fn flush_windows(tiers: &Tiers, frozen: &Frozen) -> Vec<Window> {
    let mut windows = std::collections::BTreeSet::new();
    for level in 0..=partition::WEEK {
        windows.clear();
        'columns: for (_, cols) in frozen {
            for (_, pts) in cols {
                let mut rest = pts.as_ref();
                while let Some(ts) = rest.first_ts() {
                    let w = tiers.window(level, ts);
                    windows.insert(w);
                    let taken = in_window(rest, w).len();
                    if windows.len() > MAX_FLUSH_BLOCKS || taken == 0 {
                        break 'columns;
                    }
                    rest = rest.slice(taken, rest.len());
                }
            }
        }
        if windows.len() <= MAX_FLUSH_BLOCKS {
            return windows.into_iter().collect();
        }
    }
    vec![Window {
        start: Timestamp::MIN,
        end: Timestamp::MAX,
    }]
}

/// The part of an ascending column inside `w`.
fn in_window(points: PointsRef<'_>, w: Window) -> PointsRef<'_> {
    let lo = points.count_before(w.start);
    // A window reaching the end of time holds its last instant too.
    let hi = if w.end == Timestamp::MAX {
        points.len()
    } else {
        points.count_before(w.end)
    };
    points.slice(lo, hi)
}

/// Records that every WAL segment below `below` is in blocks. Recovery
/// replays from there: a flush that wrote some of its blocks and then
/// crashed leaves the mark where it was, and its WAL is replayed.
pub(super) fn write_covered(
    vfs: &crate::vfs::Vfs,
    dir: &std::path::Path,
    below: u64,
) -> Result<()> {
    let path = dir.join(COVERED_FILE);
    vfs.write_atomic(&path, format!("{below}\n").as_bytes())
        .map_err(|e| Error::io("write", &path, e))
}

/// The WAL segment recovery replays from, or `None` before the first
/// flush of this format.
pub(super) fn read_covered(dir: &std::path::Path) -> Result<Option<u64>> {
    let path = dir.join(COVERED_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: format!("not a segment number: {:?}", text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

const COVERED_FILE: &str = "wal.flushed";
