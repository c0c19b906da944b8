//! A shard database read away from its owner (docs/cluster.md, "Queriers
//! read the blocks"). A cluster querier opens the database from its
//! owner's last checkpoint (`Config::replica`) and reads the blocks from
//! the object store itself; the owner hands it what came after the
//! checkpoint (its head, a flush in progress, blocks flushed since),
//! which the querier lays over its copy for one query as the newest
//! source. The owner reads that part with [`Db::read_newer`], the querier
//! registers the series defined since with [`Db::mirror`] and reads
//! through [`Db::with_overlay`].

use super::{Db, Layers, Snapshot};
use crate::head::{Frozen, SeriesId};
use std::collections::HashSet;
use std::sync::Arc;
use sundial_model::{FieldValue, Kind, SeriesKey, Timestamp};

/// Per series (any order), per field, its points (any order).
pub type OverlayRows = Vec<(SeriesId, Vec<(String, Vec<(Timestamp, FieldValue)>)>)>;

/// Points newer than every block of a database, from another node.
#[derive(Debug)]
pub struct Overlay {
    rows: Arc<Frozen>,
    /// The owner's retention cutoff.
    min_ts: Timestamp,
}

impl Overlay {
    /// Sorts the rows by series and time (they come over the network; the
    /// reads search them), the last of equal timestamps winning.
    pub fn new(mut rows: OverlayRows, min_ts: Timestamp) -> Self {
        rows.sort_by_key(|(id, _)| *id);
        rows.dedup_by_key(|(id, _)| *id);
        for (_, columns) in &mut rows {
            columns.sort_by(|a, b| a.0.cmp(&b.0));
            columns.dedup_by(|a, b| a.0 == b.0);
            for (_, points) in columns.iter_mut() {
                points.reverse();
                points.sort_by_key(|p| p.0);
                points.dedup_by_key(|p| p.0);
            }
        }
        let rows = rows
            .into_iter()
            .map(|(id, columns)| {
                let columns = columns
                    .into_iter()
                    .map(|(f, p)| (f.into(), crate::head::Points::from_sorted(p)))
                    .collect();
                (id, columns)
            })
            .collect();
        Self {
            rows: Arc::new(rows),
            min_ts,
        }
    }

    pub(crate) fn min_ts(&self) -> Timestamp {
        self.min_ts
    }
}

/// The layers a read sees: the database's own, with `overlay` as the
/// flush in progress (a replica never flushes, so the place is free).
pub(crate) fn layers_under(
    source: &parking_lot::RwLock<Arc<Layers>>,
    overlay: Option<&Overlay>,
) -> Arc<Layers> {
    let layers = source.read().clone();
    match overlay {
        None => layers,
        Some(o) => Arc::new(Layers {
            blocks: layers.blocks.clone(),
            frozen: Some(o.rows.clone()),
        }),
    }
}

impl Db {
    /// This database with `overlay` laid over it for reads.
    pub fn with_overlay(&self, overlay: Arc<Overlay>) -> Db {
        Db {
            inner: self.inner.clone(),
            overlay: Some(overlay),
        }
    }

    /// Runs `f` over what is newer than the blocks `base` names (keys as
    /// [`crate::RemoteBlock::key`]): the head, a flush in progress, and
    /// every other block. `None` when a block of `base` is gone (merged,
    /// expired or rewritten by a delete): a copy holding `base` would then
    /// show points that are no longer here.
    pub fn read_newer<R>(
        &self,
        base: &HashSet<String>,
        f: impl FnOnce(Snapshot<'_>) -> R,
    ) -> Option<R> {
        self.read(|snap| {
            let layers = snap.layers.clone();
            let present: HashSet<String> = layers
                .blocks
                .iter()
                .filter_map(|b| b.manifest_entry().map(|e| e.key))
                .collect();
            if !base.iter().all(|k| present.contains(k)) {
                return None;
            }
            let blocks = layers
                .blocks
                .iter()
                .filter(|b| b.manifest_entry().is_none_or(|e| !base.contains(&e.key)))
                .cloned()
                .collect();
            let newer = Arc::new(Layers {
                blocks,
                frozen: layers.frozen.clone(),
            });
            Some(f(Snapshot {
                layers: newer,
                pinned: true,
                ..snap
            }))
        })
    }

    /// Registers series another node defined (under the same ids) and the
    /// field kinds it knows. `false` when an id holds another key or a
    /// field another kind here: this copy is not the other's.
    pub fn mirror(
        &self,
        series: Vec<(SeriesId, SeriesKey)>,
        kinds: &[(String, String, Kind)],
    ) -> bool {
        let mut head = self.inner.head.write();
        for (id, key) in series {
            if !head.define(id, &key) {
                return false;
            }
        }
        for (metric, field, kind) in kinds {
            match head.kind(metric, field) {
                Some(k) if k != *kind => return false,
                Some(_) => {}
                None => head.set_kind(metric, field, *kind),
            }
        }
        true
    }

    /// The id the next new series gets.
    pub fn next_series_id(&self) -> u32 {
        self.inner.head.read().next_id()
    }
}
