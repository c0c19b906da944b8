//! The in-memory head: the series registry, field kinds, and the points not
//! yet flushed to a block, ordered by time per (series, field).

use std::collections::{BTreeMap, HashMap};
use sundial_index::{Postings, RoaringBitmap};
use sundial_model::{FieldValue, Kind, SeriesKey, Timestamp};

/// Persistent id of a series within one database: assigned once, written
/// with the series' first record, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u32);

#[derive(Debug)]
struct Column {
    field: String,
    points: BTreeMap<Timestamp, FieldValue>,
}

#[derive(Debug)]
struct Series {
    key: SeriesKey,
    columns: Vec<Column>,
}

/// The points of one flush, taken out of the head: per series, per field.
pub(crate) type Frozen = Vec<(SeriesId, Vec<(String, BTreeMap<Timestamp, FieldValue>)>)>;

/// Series keys are hashed for every written point; foldhash is several
/// times faster than the default SipHash on these short strings, and the
/// keys come from clients that cannot choose the per-process seed.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub(crate) struct Head {
    ids: FastMap<SeriesKey, SeriesId>,
    /// Indexed by `SeriesId`; `None` for ids whose definition is not loaded.
    series: Vec<Option<Series>>,
    by_metric: FastMap<String, Vec<SeriesId>>,
    kinds: FastMap<String, HashMap<String, Kind>>,
    /// Points held, for the flush decision and memory accounting.
    points: usize,
    /// Series → postings per tag pair, over every series ever defined.
    pub(crate) postings: Postings,
    /// Series with points in the head.
    pub(crate) live: RoaringBitmap,
}

impl Head {
    pub(crate) fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.kinds.get(metric)?.get(field).copied()
    }

    pub(crate) fn lookup(&self, key: &SeriesKey) -> Option<SeriesId> {
        self.ids.get(key).copied()
    }

    /// The id the next new series gets.
    pub(crate) fn next_id(&self) -> u32 {
        self.series.len() as u32
    }

    /// Registers a series under its persistent id. Re-defining an id with
    /// the same key is a no-op (a part and the WAL may both carry it).
    pub(crate) fn define(&mut self, id: SeriesId, key: SeriesKey) -> bool {
        let slot = id.0 as usize;
        if self.series.len() <= slot {
            self.series.resize_with(slot + 1, || None);
        }
        match self.series.get_mut(slot) {
            Some(Some(s)) => s.key == key,
            Some(empty @ None) => {
                self.postings.add(id.0, &key);
                self.ids.insert(key.clone(), id);
                self.by_metric
                    .entry(key.metric.clone())
                    .or_default()
                    .push(id);
                *empty = Some(Series {
                    key,
                    columns: Vec::new(),
                });
                true
            }
            None => false,
        }
    }

    /// Stores one point of a defined series. Returns false, storing
    /// nothing, if the series is unknown or the value's kind conflicts with
    /// the field's (only possible when replaying damaged data).
    pub(crate) fn apply(
        &mut self,
        id: SeriesId,
        field: &str,
        ts: Timestamp,
        value: FieldValue,
    ) -> bool {
        let Some(Some(series)) = self.series.get_mut(id.0 as usize) else {
            return false;
        };
        let kind = value.kind();
        let kinds = match self.kinds.get_mut(&series.key.metric) {
            Some(k) => k,
            None => self.kinds.entry(series.key.metric.clone()).or_default(),
        };
        match kinds.get(field) {
            Some(k) if *k != kind => return false,
            Some(_) => {}
            None => {
                kinds.insert(field.to_owned(), kind);
            }
        }
        let col = match series.columns.iter().position(|c| c.field == field) {
            Some(i) => i,
            None => {
                series.columns.push(Column {
                    field: field.to_owned(),
                    points: BTreeMap::new(),
                });
                series.columns.len() - 1
            }
        };
        if let Some(c) = series.columns.get_mut(col)
            && c.points.insert(ts, value).is_none()
        {
            self.points += 1;
        }
        self.live.insert(id.0);
        true
    }

    /// Records the kind of a column whose data lives in blocks.
    pub(crate) fn set_kind(&mut self, metric: &str, field: &str, kind: Kind) {
        let kinds = match self.kinds.get_mut(metric) {
            Some(k) => k,
            None => self.kinds.entry(metric.to_owned()).or_default(),
        };
        kinds.entry(field.to_owned()).or_insert(kind);
    }

    pub(crate) fn point_count(&self) -> usize {
        self.points
    }

    /// Takes every point out of the head for a flush, sorted by series.
    /// The registry and kinds stay.
    pub(crate) fn freeze(&mut self) -> Frozen {
        self.points = 0;
        self.live.clear();
        let mut out = Vec::new();
        for (i, slot) in self.series.iter_mut().enumerate() {
            let Some(series) = slot else { continue };
            let cols: Vec<(String, BTreeMap<Timestamp, FieldValue>)> = series
                .columns
                .iter_mut()
                .filter(|c| !c.points.is_empty())
                .map(|c| (c.field.clone(), std::mem::take(&mut c.points)))
                .collect();
            if !cols.is_empty() {
                out.push((SeriesId(i as u32), cols));
            }
        }
        out
    }

    /// Puts frozen points back after a failed flush; points written since
    /// the freeze are newer and win.
    pub(crate) fn restore(&mut self, frozen: Frozen) {
        for (id, cols) in frozen {
            for (field, points) in cols {
                for (ts, v) in points {
                    if self
                        .column(id, &field)
                        .is_some_and(|c| c.points.contains_key(&ts))
                    {
                        continue;
                    }
                    self.apply(id, &field, ts, v);
                }
            }
        }
    }

    pub(crate) fn key(&self, id: SeriesId) -> Option<&SeriesKey> {
        self.series.get(id.0 as usize)?.as_ref().map(|s| &s.key)
    }

    fn column(&self, id: SeriesId, field: &str) -> Option<&Column> {
        let series = self.series.get(id.0 as usize)?.as_ref()?;
        series.columns.iter().find(|c| c.field == field)
    }
}

impl Head {
    pub(crate) fn has_metric(&self, metric: &str) -> bool {
        self.by_metric.contains_key(metric)
    }

    pub(crate) fn series_of(&self, metric: &str) -> &[SeriesId] {
        self.by_metric
            .get(metric)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Points of one column in `[start, end]`, ascending.
    pub(crate) fn points(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, &FieldValue)> {
        // BTreeMap::range panics on an inverted range.
        self.column(id, field)
            .filter(|_| start <= end)
            .into_iter()
            .flat_map(move |c| c.points.range(start..=end))
            .map(|(t, v)| (*t, v))
    }

    /// Whether any column of the series has a head point in `[start, end]`.
    pub(crate) fn has_points_in(&self, id: SeriesId, start: Timestamp, end: Timestamp) -> bool {
        start <= end
            && self
                .series
                .get(id.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| {
                    s.columns
                        .iter()
                        .any(|c| c.points.range(start..=end).next().is_some())
                })
    }

    pub(crate) fn metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_metric.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn series_count(&self) -> usize {
        self.ids.len()
    }
}
