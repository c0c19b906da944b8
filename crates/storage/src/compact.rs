//! Background maintenance of a database's blocks: retention drops blocks
//! whose newest point is older than the TTL (or keeps their rollups
//! longer, see `expire.rs`); compaction merges blocks by
//! time tier, applying last-write-wins, so series end up in day-long chunks
//! (which is where the codecs pay off) and old data in few files.
//!
//! Flushes write one block per partition (2 h). The blocks inside one UTC
//! day merge into a day block once the day has closed and its blocks have
//! settled, or earlier when it holds `compaction_min_blocks`; the blocks of
//! a closed week (Monday to Monday) merge into a week block. Each input
//! holds each write at most once and merged blocks never overlap blocks of
//! other windows, so the write amplification is one rewrite per tier (plus
//! the early merges of a day still being written).
//!
//! Flushes encode fast (pco level 2); the first compaction of a block
//! re-encodes it at pco's default level, also when it is alone in its
//! closed day.
//!
//! Blocks wider than a week (older directories, or a flush of points
//! scattered over more weeks than a flush writes blocks) merge with the
//! blocks between them, so they do not accumulate.
//!
//! The merged block takes the name of the newest input, replacing it by
//! rename, and its place in the overwrite order; the older inputs are
//! deleted afterwards. A crash in between leaves the older inputs beside a
//! merged block that already holds their points and wins every tie, so
//! recovery reads the same data.

use crate::block::{Block, writer::BlockWriter, writer::Column};
use crate::db::{Inner, blocks};
use crate::error::Result;
use crate::head::SeriesId;
use crate::partition::{self, Tiers, Window};
use crate::phase::Phase;
use crate::snapshot::Layers;
use std::collections::BTreeMap;

use std::sync::Arc;
use sundial_model::{FieldValue, Timestamp};
use tracing::{info, warn};

mod expire;

/// Runs retention, then every compaction that is due. `force` merges all
/// adjacent blocks up to the size limit, whatever their tiers.
pub(crate) fn maintain(inner: &Inner, force: bool) -> Result<()> {
    let _one = inner.compact_lock.lock();
    expire::expire(inner);
    while let Some(members) = pick_run(inner, force) {
        let merged = merge(inner, members);
        crate::memory::release();
        merged?;
    }
    Ok(())
}

/// The oldest timestamp still kept, or `None` without a TTL.
pub(crate) fn retention_cutoff(retention_secs: u64) -> Option<Timestamp> {
    if retention_secs == 0 {
        return None;
    }
    // A retention beyond i64 seconds keeps everything, like any other
    // retention longer than the data's age: never a negative span.
    let secs = i64::try_from(retention_secs).unwrap_or(i64::MAX);
    Some(sundial_model::now_ms().saturating_sub(secs.saturating_mul(1000)))
}

/// Indexes (ascending) into the current block list of the next blocks to
/// merge: all the blocks lying inside one day, or one week, window.
fn pick_run(inner: &Inner, force: bool) -> Option<Vec<usize>> {
    let blocks = inner.layers.read().blocks.clone();
    let config = &inner.config;
    let tiers = Tiers::new(config.partition_secs);
    let now = sundial_model::now_ms();
    let grace = i64::try_from(config.partition_grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let settle = std::time::Duration::from_secs(config.compaction_settle_secs);
    let presampling = inner.presampling_fingerprint();
    // Forced, go straight to weeks: merging days first would write twice.
    let levels: &[usize] = if force {
        &[partition::WEEK]
    } else {
        &[partition::DAY, partition::WEEK]
    };
    for &level in levels {
        let mut windows: BTreeMap<Window, Vec<usize>> = BTreeMap::new();
        for (i, b) in blocks.iter().enumerate() {
            if !b.rollups_only
                && tiers
                    .level_of(b.min_ts, b.max_ts)
                    .is_some_and(|(l, _)| l <= level)
            {
                windows
                    .entry(tiers.window(level, b.min_ts))
                    .or_default()
                    .push(i);
            }
        }
        for (w, members) in windows {
            let inputs: Vec<&Arc<Block>> = members.iter().filter_map(|i| blocks.get(*i)).collect();
            // A flush's block alone in its window is still rewritten once,
            // at the effort compaction spends.
            // So is one written under other presampling rules: that is
            // how a rule reaches data written before it.
            let lone_stale = matches!(inputs.as_slice(),
                [b] if b.fast || b.presampling != presampling);
            if inputs.len() < 2 && !lone_stale {
                continue;
            }
            let closed = now >= w.end.saturating_add(grace);
            let settled = inputs.iter().all(|b| b.opened.elapsed() >= settle);
            let crowded = level == partition::DAY && inputs.len() >= config.compaction_min_blocks;
            if !(force || (closed && settled) || crowded) {
                continue;
            }
            if inputs.iter().map(|b| b.file_bytes).sum::<u64>() > config.max_block_bytes {
                continue;
            }
            // A block reaching over the window's edge (written before
            // flushes were cut by window) must not lie between the inputs:
            // the merged block, in the newest input's place, would then
            // win over its points where it should lose.
            let (first, last) = (*members.first()?, *members.last()?);
            let straddled = blocks
                .iter()
                .enumerate()
                .skip(first)
                .take(last - first)
                .any(|(j, b)| {
                    !members.contains(&j) && !b.rollups_only && w.overlaps(b.min_ts, b.max_ts)
                });
            if !straddled {
                return Some(members);
            }
        }
    }
    straddlers(&tiers, &blocks, config.max_block_bytes)
}

/// Blocks wider than a week (a flush of points scattered over many weeks,
/// or blocks of older directories) never fit a window: two or more merge
/// with every block between them (a contiguous run keeps the overwrite
/// order), so there is at most one left after a pass.
fn straddlers(tiers: &Tiers, blocks: &[Arc<Block>], max_bytes: u64) -> Option<Vec<usize>> {
    let wide: Vec<usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.rollups_only && tiers.level_of(b.min_ts, b.max_ts).is_none())
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (*wide.first()?, *wide.last()?);
    // Rollups-only blocks hold no points to merge (nor any place in the
    // overwrite order): they stay.
    let run: Vec<usize> = (first..=last)
        .filter(|i| blocks.get(*i).is_some_and(|b| !b.rollups_only))
        .collect();
    let bytes: u64 = run
        .iter()
        .filter_map(|i| blocks.get(*i))
        .map(|b| b.file_bytes)
        .sum();
    (wide.len() >= 2 && bytes <= max_bytes).then_some(run)
}

/// Merges the blocks at `members` (ascending indexes) into one that takes
/// the newest input's name and place.
fn merge(inner: &Inner, members: Vec<usize>) -> Result<()> {
    let _phase = Phase::start("compaction", &inner.config.data_dir);
    let started = std::time::Instant::now();
    let inputs: Vec<Arc<Block>> = {
        let layers = inner.layers.read();
        members
            .iter()
            .filter_map(|i| layers.blocks.get(*i).cloned())
            .collect()
    };
    let Some(newest) = inputs.last() else {
        return Ok(());
    };
    if inputs.iter().any(|b| b.rollups_only) {
        // Their points are gone: merging would drop their rollups (and
        // an `Ok` would have the caller pick the same run again).
        return Err(crate::error::Error::Corrupt {
            path: newest.path().to_owned(),
            offset: 0,
            reason: "compaction picked a rollups-only block".into(),
        });
    }
    let id = newest.id;
    // Points past the raw retention stay while rollups outlive them:
    // retention keeps their rollups when the whole block expires.
    let cutoff = inner.rollup_cutoff().unwrap_or(Timestamp::MIN);
    let grids = inner.grids_for(Columns::new(&inputs).map(|(id, _)| id));
    let dir = &inner.config.data_dir;
    let mut writer = BlockWriter::create(&inner.config.vfs, dir, id, sundial_codec::Effort::Small)?;
    writer.presampled_under(grids.fingerprint);
    let mut points_out = 0usize;
    // Each input's place in its index: columns come in ascending order.
    let mut places = vec![0usize; inputs.len()];
    for (series, field) in Columns::new(&inputs) {
        let points = merged_column(&inputs, &mut places, (series, field), cutoff)?;
        points_out += points.len();
        writer.add(&Column {
            series,
            field,
            points: (&points).into(),
            grids: grids.of(series),
        })?;
    }
    let path = writer.finish()?;
    let merged = Arc::new(blocks::place(&inner.config, Block::open(&path, id)?)?);
    {
        let mut layers = inner.layers.write();
        // Flushes only append, so the inputs are where they were.
        let still_there = members.len() == inputs.len()
            && members
                .iter()
                .zip(&inputs)
                .all(|(i, b)| layers.blocks.get(*i).is_some_and(|cur| Arc::ptr_eq(cur, b)));
        if !still_there {
            warn!("block list changed under compaction; keeping the merged block only on disk");
            if merged.is_remote() {
                // Named in no manifest: it would only be swept later.
                merged.retire();
            }
            return Ok(());
        }
        let last = members.last().copied();
        let list = layers
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match Some(i) == last {
                true => Some(merged.clone()),
                false if members.contains(&i) => None,
                false => Some(b.clone()),
            })
            .collect::<Vec<_>>();
        if let Err(e) = blocks::record(inner, &list) {
            merged.retire();
            return Err(e);
        }
        *layers = Arc::new(Layers {
            blocks: list,
            frozen: layers.frozen.clone(),
        });
    }
    // A local merged block took the newest input's file name; a remote
    // one has a key of its own, so every input goes.
    let replaced = if merged.is_remote() {
        &inputs[..]
    } else {
        &inputs[..inputs.len() - 1]
    };
    inner.activity.compacted(started.elapsed());
    for b in replaced {
        blocks::discard(inner, b);
    }
    info!(path = %path.display(), blocks = inputs.len(), points = points_out, "compacted blocks");
    Ok(())
}

/// Every column of `inputs`, ascending, each once, walked series by
/// series through the inputs' indexes: listing them all up front took
/// compaction's peak 24 bytes per column of every input (200 MB for
/// eight flushes of a million series). Names borrowed from the inputs.
struct Columns<'a> {
    /// Each input's columns, ascending by series (its fields in the
    /// order the block lists them).
    inputs: Vec<std::iter::Peekable<BlockColumns<'a>>>,
    /// The current series' columns still to give, by name descending.
    series: Vec<(SeriesId, &'a str)>,
}

type BlockColumns<'a> = Box<dyn Iterator<Item = (SeriesId, &'a str)> + 'a>;

impl<'a> Columns<'a> {
    fn new(inputs: &'a [Arc<Block>]) -> Self {
        let inputs = inputs
            .iter()
            .map(|b| {
                let columns: BlockColumns<'a> = Box::new(b.columns());
                columns.peekable()
            })
            .collect();
        Self {
            inputs,
            series: Vec::new(),
        }
    }
}

impl<'a> Iterator for Columns<'a> {
    type Item = (SeriesId, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(column) = self.series.pop() {
            return Some(column);
        }
        let id = self
            .inputs
            .iter_mut()
            .filter_map(|i| i.peek().map(|(id, _)| *id))
            .min()?;
        for input in &mut self.inputs {
            while let Some(column) = input.next_if(|(at, _)| *at == id) {
                self.series.push(column);
            }
        }
        self.series.sort_unstable_by(|a, b| b.cmp(a));
        self.series.dedup();
        self.series.pop()
    }
}

/// One column's points from `from` on in `inputs` (oldest first), the
/// newest write of a timestamp winning; `places` holds each input's place
/// in its index (columns come in ascending order).
fn merged_column(
    inputs: &[Arc<Block>],
    places: &mut [usize],
    (series, field): (SeriesId, &str),
    from: Timestamp,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    let mut points = Vec::new();
    for (b, place) in inputs.iter().zip(places) {
        let newer = b.read_uncached_from(place, series, field, from, Timestamp::MAX)?;
        points = newest_wins(points, newer);
    }
    Ok(points)
}

/// Merges two ascending columns with unique timestamps, `newer` winning a
/// tie. Inputs of different windows follow each other and only append.
fn newest_wins(
    older: Vec<(Timestamp, FieldValue)>,
    newer: Vec<(Timestamp, FieldValue)>,
) -> Vec<(Timestamp, FieldValue)> {
    match (older.last(), newer.first()) {
        (None, _) => return newer,
        (_, None) => return older,
        (Some(a), Some(b)) if a.0 < b.0 => {
            let mut out = older;
            out.extend(newer);
            return out;
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    let mut newer = newer.into_iter().peekable();
    loop {
        let order = match (older.peek(), newer.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.0.cmp(&b.0),
        };
        let next = match order {
            std::cmp::Ordering::Less => older.next(),
            std::cmp::Ordering::Equal => {
                older.next();
                newer.next()
            }
            std::cmp::Ordering::Greater => newer.next(),
        };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::newest_wins;
    use sundial_model::FieldValue;

    #[test]
    fn a_huge_retention_keeps_everything() {
        assert_eq!(super::retention_cutoff(0), None);
        // Before any timestamp a client can write (year -146 million).
        for secs in [u64::MAX, i64::MAX as u64, i64::MAX as u64 / 1000 + 1] {
            let cutoff = super::retention_cutoff(secs).unwrap_or_default();
            assert!(cutoff < i64::MIN / 2, "{secs}: {cutoff}");
        }
        let hour = super::retention_cutoff(3600).unwrap_or_default();
        let now = sundial_model::now_ms();
        assert!(
            (now - 3_600_000 - 1000..=now - 3_600_000).contains(&hour),
            "{hour}"
        );
    }

    #[test]
    fn the_newer_column_wins_ties_and_order_is_kept() {
        let col = |pts: &[(i64, i64)]| -> Vec<(i64, FieldValue)> {
            pts.iter()
                .map(|(t, v)| (*t, FieldValue::Long(*v)))
                .collect()
        };
        let older = col(&[(1, 1), (3, 1), (5, 1), (7, 1)]);
        let newer = col(&[(2, 2), (3, 2), (7, 2), (9, 2)]);
        let want = col(&[(1, 1), (2, 2), (3, 2), (5, 1), (7, 2), (9, 2)]);
        assert_eq!(newest_wins(older.clone(), newer.clone()), want);
        // Disjoint runs append in either order.
        let later = col(&[(10, 3), (11, 3)]);
        let mut both = older.clone();
        both.extend(later.clone());
        assert_eq!(newest_wins(older.clone(), later.clone()), both);
        assert_eq!(newest_wins(later, older.clone()), both);
        assert_eq!(newest_wins(Vec::new(), older.clone()), older);
        assert_eq!(newest_wins(older.clone(), Vec::new()), older);
    }
}
