//! Background maintenance of a database's blocks: retention drops blocks
//! whose newest point is older than the TTL; compaction merges runs of
//! adjacent blocks of similar size into one, applying last-write-wins, so
//! series end up in day-long chunks (which is where the codecs pay off).
//!
//! Size tiers keep write amplification logarithmic: a block's tier is
//! `log4(size / 1 MiB)`, and `compaction_min_blocks` adjacent blocks of one
//! tier merge into one of the next. Only adjacent blocks merge, so the
//! oldest-first order that decides overwrites is preserved. The merged
//! block takes the name (number) of the newest input, replacing it by
//! rename; the older inputs are deleted afterwards. A crash in between
//! leaves the older inputs beside a merged block that already holds their
//! points and wins every tie, so recovery reads the same data.

use crate::block::{Block, writer::BlockWriter, writer::Column};
use crate::db::Inner;
use crate::error::Result;
use crate::head::SeriesId;
use crate::snapshot::Layers;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::Arc;
use sundial_model::{FieldValue, Timestamp};
use tracing::{info, warn};

/// Runs retention, then every compaction that is due. `force` merges all
/// adjacent blocks up to the size limit, whatever their tiers.
pub(crate) fn maintain(inner: &Inner, force: bool) -> Result<()> {
    let _one = inner.compact_lock.lock();
    drop_expired(inner);
    while let Some(run) = pick_run(inner, force) {
        merge(inner, run)?;
    }
    Ok(())
}

/// The oldest timestamp still kept, or `None` without a TTL.
pub(crate) fn retention_cutoff(retention_secs: u64) -> Option<Timestamp> {
    if retention_secs == 0 {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Some(now.saturating_sub((retention_secs as i64).saturating_mul(1000)))
}

fn drop_expired(inner: &Inner) {
    let Some(cutoff) = retention_cutoff(inner.config.retention_secs) else {
        return;
    };
    let expired: Vec<Arc<Block>> = {
        let mut layers = inner.layers.write();
        let (gone, kept): (Vec<_>, Vec<_>) = layers
            .blocks
            .iter()
            .cloned()
            .partition(|b| b.max_ts < cutoff);
        if gone.is_empty() {
            return;
        }
        *layers = Arc::new(Layers {
            blocks: kept,
            frozen: layers.frozen.clone(),
        });
        gone
    };
    for b in expired {
        info!(path = %b.path().display(), "retention: dropping expired block");
        if let Err(e) = fs::remove_file(b.path()) {
            warn!(path = %b.path().display(), error = %e, "cannot delete expired block");
        }
    }
}

fn tier(bytes: u64) -> u32 {
    let mut t = 0;
    let mut limit = 1u64 << 20;
    while bytes >= limit && t < 30 {
        t += 1;
        limit = limit.saturating_mul(4);
    }
    t
}

/// Indexes (into the current block list) of the next run to merge.
fn pick_run(inner: &Inner, force: bool) -> Option<std::ops::Range<usize>> {
    let blocks = inner.layers.read().blocks.clone();
    let max = inner.config.max_block_bytes;
    let min_blocks = inner.config.compaction_min_blocks.max(2);
    let mut start = 0;
    while start < blocks.len() {
        let mut end = start;
        let mut bytes = 0u64;
        let first_tier = blocks.get(start).map(|b| tier(b.file_bytes));
        while let Some(b) = blocks.get(end) {
            let same = force || Some(tier(b.file_bytes)) == first_tier;
            if !same || bytes + b.file_bytes > max {
                break;
            }
            bytes += b.file_bytes;
            end += 1;
        }
        let needed = if force { 2 } else { min_blocks };
        if end - start >= needed {
            return Some(start..end);
        }
        start = end.max(start + 1);
    }
    None
}

fn merge(inner: &Inner, run: std::ops::Range<usize>) -> Result<()> {
    let inputs: Vec<Arc<Block>> = inner.layers.read().blocks[run.clone()].to_vec();
    let (Some(newest), true) = (inputs.last(), inputs.len() >= 2) else {
        return Ok(());
    };
    let below = newest.wal_below;
    let columns: BTreeSet<(SeriesId, String)> = inputs
        .iter()
        .flat_map(|b| b.columns().map(|(id, f)| (id, f.to_owned())))
        .collect();
    let cutoff = retention_cutoff(inner.config.retention_secs).unwrap_or(Timestamp::MIN);
    let dir = &inner.config.data_dir;
    let mut writer = BlockWriter::create(dir, below)?;
    let mut points_out = 0usize;
    for (id, field) in &columns {
        let mut points: BTreeMap<Timestamp, FieldValue> = BTreeMap::new();
        for b in &inputs {
            points.extend(b.read_uncached(*id, field, cutoff, Timestamp::MAX)?);
        }
        points_out += points.len();
        let points: Vec<(Timestamp, FieldValue)> = points.into_iter().collect();
        writer.add(&Column {
            series: *id,
            field,
            points: &points,
        })?;
    }
    let path = writer.finish()?;
    let merged = Arc::new(Block::open(&path, below)?);
    {
        let mut layers = inner.layers.write();
        // Flushes only append, so the run is where it was.
        let still_there = layers
            .blocks
            .get(run.clone())
            .is_some_and(|cur| cur.iter().zip(&inputs).all(|(a, b)| Arc::ptr_eq(a, b)));
        if !still_there {
            warn!("block list changed under compaction; keeping the merged block only on disk");
            return Ok(());
        }
        let mut blocks = layers.blocks.clone();
        blocks.splice(run, [merged]);
        *layers = Arc::new(Layers {
            blocks,
            frozen: layers.frozen.clone(),
        });
    }
    for b in &inputs[..inputs.len() - 1] {
        if let Err(e) = fs::remove_file(b.path()) {
            warn!(path = %b.path().display(), error = %e, "cannot delete compacted block");
        }
    }
    info!(path = %path.display(), blocks = inputs.len(), points = points_out, "compacted blocks");
    Ok(())
}
