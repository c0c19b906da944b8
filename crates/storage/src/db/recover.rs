//! Opening a data directory: the series catalog, the blocks, and the
//! head rebuilt from the WAL segments no block covers yet.

use super::flush::{read_covered, write_covered};
use crate::block::Block;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::delete;
use crate::error::{Error, Result};
use crate::head::{Head, SeriesId};
use crate::record::Batch;
use crate::wal::{self};
use std::fs;
use std::sync::Arc;
use tracing::{error, info, warn};

/// Rebuilds the series registry from the catalog, the field kinds from the
/// blocks and the head from the WAL; returns them with the number of the
/// WAL segment to write next.
pub(super) fn recover(config: &Config) -> Result<(Head, Catalog, Vec<Arc<Block>>, u64)> {
    let dir = &config.data_dir;
    for entry in fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "tmp") {
            warn!(path = %path.display(), "removing an unfinished block from an interrupted flush");
            let _ = config.vfs.remove_file(&path);
        }
    }
    let mut head = Head::default();
    let (catalog, defs) = Catalog::open(&config.vfs, dir)?;
    for (id, key) in defs {
        if !head.define(id, &key) {
            warn!(series = %key, id = id.0, "series id already names another series");
        }
    }
    let mut blocks = Vec::new();
    let mut newest_below = 0u64;
    for block in super::blocks::open_all(config)? {
        let id = block.id;
        newest_below = newest_below.max(id.wal_below);
        for (id, field, kind) in block.column_kinds() {
            if let Some(metric) = head.key(id).map(|k| k.metric.clone()) {
                head.set_kind(&metric, field, kind);
            }
        }
        blocks.push(Arc::new(block));
    }
    for id in delete::load_hidden(dir)? {
        head.hide(SeriesId(id));
    }
    // Directories from before the mark existed wrote one block per flush,
    // named by the segment it covers up to.
    let covered = match read_covered(dir)? {
        Some(n) => n,
        None => {
            write_covered(&config.vfs, dir, newest_below)?;
            newest_below
        }
    };
    let segments = wal::list_segments(dir)?;
    let mut replayed = 0usize;
    for &n in &segments {
        let path = wal::segment_path(dir, n);
        if n < covered {
            let _ = config.vfs.remove_file(&path);
            continue;
        }
        for batch in replay_segment(config, &path)? {
            replayed += batch.points.len();
            apply_batch(&mut head, batch);
        }
    }
    if replayed > 0 {
        info!(points = replayed, "replayed the write-ahead log");
    }
    // Never below a block's number: a flush that crashed between its
    // blocks must stay older than every later flush.
    let next = segments
        .last()
        .map_or(1, |n| n + 1)
        .max(covered.max(newest_below).max(1));
    Ok((head, catalog, blocks, next))
}

/// The records of one segment to replay. A torn tail (what a crash
/// leaves) is dropped with a warning; damage with intact records after it
/// stops the start, unless `wal_skip_damaged` says to replay around it.
fn replay_segment(config: &Config, path: &std::path::Path) -> Result<Vec<Batch>> {
    let bytes = fs::read(path).map_err(|e| Error::io("read WAL segment", path, e))?;
    let records = wal::parse_segment(&bytes, config.wal_skip_damaged);
    let Some(damage) = records.damage else {
        return Ok(records.batches);
    };
    let Some(resumes_at) = damage.resumes_at else {
        warn!(path = %path.display(), offset = damage.offset, reason = %damage.reason,
            "torn WAL tail dropped (writes a crash interrupted, never acknowledged)");
        return Ok(records.batches);
    };
    if !config.wal_skip_damaged {
        return Err(Error::DamagedWal {
            path: path.to_owned(),
            offset: damage.offset,
            reason: damage.reason,
        });
    }
    let mut kept = path.as_os_str().to_owned();
    kept.push(".damaged");
    if let Err(e) = fs::copy(path, &kept) {
        warn!(path = %path.display(), error = %e, "cannot keep a copy of the damaged WAL segment");
    }
    error!(path = %path.display(), offset = damage.offset, resumes_at, reason = %damage.reason,
        "damaged WAL segment: the records in the damaged bytes are lost; replaying the rest");
    Ok(records.batches)
}

fn apply_batch(head: &mut Head, batch: Batch) {
    for (id, key) in batch.new_series {
        let new = head.key(id).is_none();
        if !head.define(id, &key) {
            warn!(series = %key, id = id.0, "series id already names another series; skipped");
        } else if new {
            // Defined only in the WAL so far: the next flush catalogs it.
            head.uncataloged.push(id);
        }
    }
    for p in batch.points {
        let field = batch
            .fields
            .get(p.field as usize)
            .map_or("", String::as_str);
        if !head.apply(p.series, field, p.timestamp, p.value) {
            warn!(id = p.series.0, %field, "stored point has an unknown series or conflicts with the field kind; skipped");
        }
    }
}
