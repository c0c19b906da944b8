//! Retention: blocks past the raw retention are dropped, or rewritten as
//! one rollups-only block while the database's rollup tiers outlive them
//! (docs/storage.md, "Rollup tiers").

use super::retention_cutoff;
use crate::block::{Block, writer::BlockWriter, writer::Column};
use crate::db::{Inner, blocks};
use crate::error::Error;
use crate::phase::Phase;
use crate::snapshot::Layers;
use std::sync::Arc;
use sundial_model::Timestamp;
use tracing::{info, warn};

/// Retention. A block whose newest point is past the raw retention is
/// dropped, unless the database's rollup tiers outlive the raw data
/// (`rollup_retention_secs`): then the expired blocks are rewritten
/// together as one rollups-only block, keeping each numeric chunk's
/// statistics and presampled buckets without its points, and such blocks
/// are dropped once past the rollups' retention. Reads of points never
/// see a rollups-only block; folds take its chunks whole (`Snapshot`).
pub(super) fn expire(inner: &Inner) {
    let Some(raw) = retention_cutoff(inner.retention_secs()) else {
        return;
    };
    let rollups = inner.rollup_cutoff();
    let past_rollups = |b: &Block| rollups.is_some_and(|c| b.max_ts < c);
    let blocks = inner.layers.read().blocks.clone();
    let expiring: Vec<Arc<Block>> = blocks
        .iter()
        .filter(|b| !b.rollups_only && b.max_ts < raw && !past_rollups(b))
        .cloned()
        .collect();
    let (summarised, replacement) = summarise_readable(inner, expiring, &blocks);
    let expired: Vec<Arc<Block>> = {
        let mut layers = inner.layers.write();
        let newest = summarised.last();
        let (mut gone, mut kept) = (Vec::new(), Vec::new());
        for b in &layers.blocks {
            if summarised.iter().any(|s| Arc::ptr_eq(s, b)) {
                if newest.is_some_and(|n| Arc::ptr_eq(n, b))
                    && let Some(r) = &replacement
                {
                    kept.push(r.clone());
                }
                gone.push(b.clone());
            } else if past_rollups(b) {
                gone.push(b.clone());
            } else {
                // Also an expired block flushed since: the next pass.
                kept.push(b.clone());
            }
        }
        if gone.is_empty() {
            return;
        }
        if let Err(e) = blocks::record(inner, &kept) {
            warn!(error = %e, "retention: cannot record the block list; expired blocks kept");
            if let Some(r) = &replacement {
                r.retire();
            }
            return;
        }
        *layers = Arc::new(Layers {
            blocks: kept,
            frozen: layers.frozen.clone(),
        });
        gone
    };
    // A local rollups-only block took the newest expired block's file
    // name; that file is not deleted.
    let renamed = replacement
        .as_ref()
        .filter(|r| !r.is_remote())
        .and(summarised.last());
    for b in expired {
        if renamed.is_some_and(|r| Arc::ptr_eq(r, &b)) {
            continue;
        }
        info!(path = %b.path().display(), "retention: dropping expired block");
        blocks::discard(inner, &b);
    }
}

/// Summarises the expired `inputs` (oldest first) that can be read: an
/// input that fails to read is left out and kept as it is, so one damaged
/// block does not hold back every other block's retention. Returns the
/// blocks summarised (none when it fails otherwise) and their summary.
fn summarise_readable(
    inner: &Inner,
    mut inputs: Vec<Arc<Block>>,
    all: &[Arc<Block>],
) -> (Vec<Arc<Block>>, Option<Arc<Block>>) {
    loop {
        match summarise(inner, &inputs, all) {
            Ok(replacement) => return (inputs, replacement),
            Err(Failed::Input(i, e)) if i < inputs.len() => {
                let bad = inputs.remove(i);
                warn!(path = %bad.path().display(), error = %e,
                    "retention: cannot read an expired block; it is kept, the others are summarised without it");
            }
            Err(Failed::Input(_, e) | Failed::Other(e)) => {
                // Kept for the next pass; what is past every retention still goes.
                warn!(error = %e, "retention: cannot keep the expired blocks' rollups; blocks kept");
                return (Vec::new(), None);
            }
        }
    }
}

/// Why a summary was not written.
enum Failed {
    /// Reading the input at this index failed.
    Input(usize, Error),
    Other(Error),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Failed::Other(e)
    }
}

/// The failure of a read of `inputs`: the input whose file the error
/// names, if one does.
fn read_failure(inputs: &[Arc<Block>], e: Error) -> Failed {
    let named = match &e {
        Error::Corrupt { path, .. } | Error::Io { path, .. } => {
            inputs.iter().position(|b| b.path() == path)
        }
        _ => None,
    };
    match named {
        Some(i) => Failed::Input(i, e),
        None => Failed::Other(e),
    }
}

/// Writes the rollups of the expired `inputs` (oldest first) as one
/// rollups-only block named as the newest of them; `None` with no inputs
/// or no chunk left to keep. A column's newest write wins, as in
/// compaction's merge; spans some rollups-only block already keeps for a
/// column stay as they are (points written that late add nothing there,
/// and no new chunk spans them).
fn summarise(
    inner: &Inner,
    inputs: &[Arc<Block>],
    all: &[Arc<Block>],
) -> Result<Option<Arc<Block>>, Failed> {
    let Some(newest) = inputs.last() else {
        return Ok(None);
    };
    let _phase = Phase::start("retention", &inner.config.data_dir);
    let kept: Vec<&Arc<Block>> = all.iter().filter(|b| b.rollups_only).collect();
    let grids = inner.grids_for(super::Columns::new(inputs).map(|(id, _)| id));
    let dir = &inner.config.data_dir;
    let effort = sundial_codec::Effort::Small;
    let mut writer = BlockWriter::create(&inner.config.vfs, dir, newest.id, effort)?;
    writer.rollups_only();
    writer.presampled_under(grids.fingerprint);
    let mut places = vec![0usize; inputs.len()];
    for (series, field) in super::Columns::new(inputs) {
        if grids.of(series).is_empty() {
            continue;
        }
        let mut points = super::merged_column(inputs, &mut places, (series, field), Timestamp::MIN)
            .map_err(|e| read_failure(inputs, e))?;
        let taken: Vec<(Timestamp, Timestamp)> = kept
            .iter()
            .flat_map(|b| b.chunks(series, field))
            .map(|c| (c.min_ts, c.max_ts))
            .collect();
        let within = |t: &Timestamp| taken.iter().any(|(lo, hi)| lo <= t && t <= hi);
        points.retain(|(t, _)| !within(t));
        // No new chunk may span a kept one either: runs end at each.
        let mut runs = points.as_slice();
        while !runs.is_empty() {
            let first = runs.first().map_or(Timestamp::MIN, |p| p.0);
            let next_taken = taken
                .iter()
                .map(|(lo, _)| *lo)
                .filter(|lo| *lo > first)
                .min()
                .unwrap_or(Timestamp::MAX);
            let (run, rest) = runs.split_at(runs.partition_point(|p| p.0 < next_taken));
            writer.add(&Column {
                series,
                field,
                points: run.into(),
                grids: grids.of(series),
            })?;
            runs = rest;
        }
    }
    if writer.is_empty() {
        return Ok(None);
    }
    let path = writer.finish()?;
    let block = blocks::place(&inner.config, Block::open(&path, newest.id)?)?;
    info!(path = %path.display(), blocks = inputs.len(), "retention: kept the rollups of expired blocks");
    Ok(Some(Arc::new(block)))
}
