//! Writes between their check and their durability. A write is checked
//! and queued to the WAL under one lock; its points reach the head only
//! once its record is durable (`Apply`), so nothing a client was told
//! failed is ever visible. Until then the field kinds it fixes and the
//! series it defines live here, so later writes see them.

use crate::head::{FastMap, SeriesId};
use std::collections::HashMap;
use std::sync::Arc;
use sundial_model::{FieldValue, Kind, SeriesKey, WritePoint};

/// What one WAL record adds to the head once it is durable.
#[derive(Debug)]
pub(crate) struct Apply {
    /// Its place in the WAL order.
    pub(crate) seq: u64,
    pub(crate) new_series: Vec<(SeriesId, Arc<SeriesKey>)>,
    /// (metric, field) pairs whose kind this write fixes.
    pub(crate) new_kinds: Vec<(String, String)>,
    pub(crate) points: Vec<WritePoint>,
    /// Index into `points`, its checked value, its series, and whether the
    /// head should remember the id by the point's shared key.
    pub(crate) accepted: Vec<(usize, FieldValue, SeriesId, bool)>,
}

/// Kinds and series announced by queued records.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next_seq: u64,
    /// The lowest id a new series may get (ids of failed writes are not
    /// handed out again).
    next_id: u32,
    kinds: FastMap<String, FastMap<String, (Kind, u64)>>,
    series: HashMap<Arc<SeriesKey>, (SeriesId, u64), foldhash::fast::RandomState>,
}

impl Pending {
    /// The sequence number of the next queued record.
    pub(crate) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(crate) fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.kinds.get(metric)?.get(field).map(|(k, _)| *k)
    }

    /// Series announced and not yet in the head.
    pub(crate) fn series_count(&self) -> usize {
        self.series.len()
    }

    pub(crate) fn series(&self, key: &SeriesKey) -> Option<SeriesId> {
        self.series.get(key).map(|(id, _)| *id)
    }

    /// A fresh series id, above every id the head knows.
    pub(crate) fn new_id(&mut self, head_next: u32) -> SeriesId {
        let id = self.next_id.max(head_next);
        self.next_id = id + 1;
        SeriesId(id)
    }

    pub(crate) fn add_kind(&mut self, metric: &str, field: &str, kind: Kind, seq: u64) {
        self.kinds
            .entry(metric.to_owned())
            .or_default()
            .insert(field.to_owned(), (kind, seq));
    }

    pub(crate) fn add_series(&mut self, key: Arc<SeriesKey>, id: SeriesId, seq: u64) {
        self.series.insert(key, (id, seq));
    }

    /// Forgets what `apply` announced: it is in the head now, or it failed.
    pub(crate) fn settle(&mut self, apply: &Apply) {
        for (_, key) in &apply.new_series {
            if self
                .series
                .get(&**key)
                .is_some_and(|(_, s)| *s == apply.seq)
            {
                self.series.remove(&**key);
            }
        }
        for (metric, field) in &apply.new_kinds {
            let Some(fields) = self.kinds.get_mut(metric) else {
                continue;
            };
            if fields.get(field).is_some_and(|(_, s)| *s == apply.seq) {
                fields.remove(field);
            }
            if fields.is_empty() {
                self.kinds.remove(metric);
            }
        }
    }

    /// Drops everything announced (the WAL failed: no queued record will
    /// be applied); returns the first sequence number still allowed.
    pub(crate) fn clear(&mut self) -> u64 {
        self.kinds.clear();
        self.series.clear();
        self.next_seq
    }
}
