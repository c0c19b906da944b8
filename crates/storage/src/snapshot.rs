//! A consistent read view: the head plus the flush in progress plus the
//! blocks, merged by time with the newest source winning an equal timestamp.

use crate::block::Block;
use crate::error::Result;
use crate::head::{Frozen, Head, SeriesId};
use std::collections::BTreeMap;
use std::sync::Arc;
use sundial_model::{FieldValue, Kind, SeriesKey, Timestamp};

/// The immutable part of a database's data: blocks, oldest first, and the
/// points of a flush whose block is being written.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) frozen: Option<Arc<Frozen>>,
}

/// Read access held for one query.
#[derive(Debug)]
pub struct Snapshot<'a> {
    pub(crate) head: &'a Head,
    pub(crate) layers: Arc<Layers>,
    /// Retention: nothing older is returned, even before its block is dropped.
    pub(crate) min_ts: Timestamp,
}

impl Snapshot<'_> {
    /// Whether the metric has ever been written.
    pub fn has_metric(&self, metric: &str) -> bool {
        self.head.has_metric(metric)
    }

    /// The kind of a metric's field, if it has one.
    pub fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.head.kind(metric, field)
    }

    /// Every series of a metric, in creation order.
    pub fn series_of(&self, metric: &str) -> &[SeriesId] {
        self.head.series_of(metric)
    }

    pub fn key(&self, id: SeriesId) -> Option<&SeriesKey> {
        self.head.key(id)
    }

    /// Metric names, sorted.
    pub fn metrics(&self) -> Vec<&str> {
        self.head.metrics()
    }

    pub fn series_count(&self) -> usize {
        self.head.series_count()
    }

    /// Points of one field of one series in `[start, end]`, ascending, with
    /// later writes winning equal timestamps. Reads only the block chunks
    /// whose time range overlaps.
    pub fn points(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Timestamp, FieldValue)>> {
        let start = start.max(self.min_ts);
        let mut sources: Vec<Vec<(Timestamp, FieldValue)>> = Vec::new();
        for block in &self.layers.blocks {
            let pts = block.read(id, field, start, end)?;
            if !pts.is_empty() {
                sources.push(pts);
            }
        }
        if let Some(frozen) = &self.layers.frozen
            && let Ok(i) = frozen.binary_search_by_key(&id, |(sid, _)| *sid)
            && let Some((_, cols)) = frozen.get(i)
            && let Some((_, pts)) = cols.iter().find(|(f, _)| f == field)
            && start <= end
        {
            let pts: Vec<_> = pts
                .range(start..=end)
                .map(|(t, v)| (*t, v.clone()))
                .collect();
            if !pts.is_empty() {
                sources.push(pts);
            }
        }
        let head: Vec<_> = self
            .head
            .points(id, field, start, end)
            .map(|(t, v)| (t, v.clone()))
            .collect();
        if !head.is_empty() {
            sources.push(head);
        }
        Ok(merge(sources))
    }
}

/// Merges ascending sources, oldest first; a later source wins a tie.
fn merge(mut sources: Vec<Vec<(Timestamp, FieldValue)>>) -> Vec<(Timestamp, FieldValue)> {
    match sources.len() {
        0 => Vec::new(),
        1 => sources.pop().unwrap_or_default(),
        _ => {
            let disjoint = sources
                .windows(2)
                .all(|w| match (w[0].last(), w[1].first()) {
                    (Some(a), Some(b)) => a.0 < b.0,
                    _ => true,
                });
            if disjoint {
                return sources.into_iter().flatten().collect();
            }
            let mut merged = BTreeMap::new();
            for s in sources {
                merged.extend(s);
            }
            merged.into_iter().collect()
        }
    }
}
