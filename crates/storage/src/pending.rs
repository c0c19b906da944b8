//! Writes between their check and their durability. A write is checked
//! and queued to the WAL under one lock; its points reach the head only
//! once its record is durable (`Apply`), so nothing a client was told
//! failed is ever visible. Until then the field kinds it fixes and the
//! series it defines live here, so later writes see them.

use crate::head::{FastMap, KeyHash, SeriesId};
use std::sync::Arc;
use sundial_model::{FieldValue, Kind, SeriesKey, Timestamp};

/// What one WAL record adds to the head once it is durable.
#[derive(Debug)]
pub(crate) struct Apply {
    /// Its place in the WAL order.
    pub(crate) seq: u64,
    pub(crate) new_series: Vec<NewSeries>,
    /// (metric, field) pairs whose kind this write fixes.
    pub(crate) new_kinds: Vec<(String, String)>,
    /// The field names [`Accepted::field`] indexes.
    pub(crate) fields: Vec<String>,
    pub(crate) accepted: Vec<Accepted>,
    /// Ids the head should remember by a point's key, which had another
    /// owner (an adapter's key cache).
    pub(crate) remember: Vec<(Arc<SeriesKey>, SeriesId)>,
}

/// A point of a WAL record as the head takes it: small, since the WAL
/// thread reads each from another core's cache. The write's own points
/// (and their keys) are freed by the writer.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) id: SeriesId,
    /// Index into [`Apply::fields`].
    pub(crate) field: u32,
    pub(crate) timestamp: Timestamp,
    /// Checked against the field's kind.
    pub(crate) value: FieldValue,
}

/// A series a record defines, with its key's [`KeyHash`].
#[derive(Debug, Clone)]
pub(crate) struct NewSeries {
    pub(crate) id: SeriesId,
    pub(crate) key: Arc<SeriesKey>,
    pub(crate) hash: KeyHash,
}

/// A series announced by the queued record `seq`.
#[derive(Debug)]
struct Announced {
    series: NewSeries,
    seq: u64,
}

impl Announced {
    fn is(&self, key: &SeriesKey, hash: KeyHash) -> bool {
        // Settling passes the very key announced: no need to compare names.
        self.series.hash == hash
            && (std::ptr::eq(&*self.series.key, key) || *self.series.key == *key)
    }
}

/// Kinds and series announced by queued records.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next_seq: u64,
    /// The lowest id a new series may get (ids of failed writes are not
    /// handed out again).
    next_id: u32,
    kinds: FastMap<String, FastMap<String, (Kind, u64)>>,
    series: hashbrown::HashTable<Announced>,
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

    pub(crate) fn series(&self, key: &SeriesKey, hash: KeyHash) -> Option<SeriesId> {
        self.series
            .find(hash.spread(), |a| a.is(key, hash))
            .map(|a| a.series.id)
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

    pub(crate) fn add_series(&mut self, series: NewSeries, seq: u64) {
        let (hash, key) = (series.hash, series.key.clone());
        self.series
            .entry(
                hash.spread(),
                |a| a.is(&key, hash),
                |a| a.series.hash.spread(),
            )
            .insert(Announced { series, seq });
    }

    /// Forgets what `apply` announced: it is in the head now, or it failed.
    pub(crate) fn settle(&mut self, apply: &Apply) {
        for new in &apply.new_series {
            if let Ok(e) = self
                .series
                .find_entry(new.hash.spread(), |a| a.is(&new.key, new.hash))
                && e.get().seq == apply.seq
            {
                e.remove();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Head;

    fn key(host: &str) -> Arc<SeriesKey> {
        Arc::new(SeriesKey::new("cpu", vec![("host".into(), host.into())]))
    }

    fn settled(seq: u64, new_series: Vec<NewSeries>) -> Apply {
        Apply {
            seq,
            new_series,
            new_kinds: Vec::new(),
            fields: Vec::new(),
            accepted: Vec::new(),
            remember: Vec::new(),
        }
    }

    #[test]
    fn announced_series_are_found_by_their_names_until_their_record_settles() {
        let head = Head::default();
        let mut pending = Pending::default();
        let a = key("a");
        let hash = head.key_hash(&a);
        let new = NewSeries {
            id: SeriesId(7),
            key: a,
            hash,
        };
        pending.add_series(new.clone(), 1);
        // The next write builds its own key: the names find the series.
        let again = key("a");
        assert_eq!(
            pending.series(&again, head.key_hash(&again)),
            Some(SeriesId(7))
        );
        let b = key("b");
        assert_eq!(pending.series(&b, head.key_hash(&b)), None);
        // A hash alone proves nothing: other names under it are not found.
        assert_eq!(pending.series(&b, hash), None);
        // Announced again by a later record: the earlier one's settling
        // leaves it, the later one's takes it.
        pending.add_series(new.clone(), 2);
        assert_eq!(pending.series_count(), 1);
        pending.settle(&settled(1, vec![new.clone()]));
        assert_eq!(pending.series(&again, hash), Some(SeriesId(7)));
        pending.settle(&settled(2, vec![new]));
        assert_eq!(pending.series_count(), 0);
    }
}
