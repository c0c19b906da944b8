//! The in-memory head: the series registry, field kinds, and every point,
//! ordered by time per (series, field). Also remembers which points arrived
//! since the last flush so a flush writes only those.

use std::collections::{BTreeMap, HashMap};
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

/// A point applied since the last flush: (series, column index, time, value).
pub(crate) type PendingPoint = (SeriesId, u32, Timestamp, FieldValue);

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
    pub(crate) pending: Vec<PendingPoint>,
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
        if let Some(c) = series.columns.get_mut(col) {
            c.points.insert(ts, value.clone());
        }
        self.pending.push((id, col as u32, ts, value));
        true
    }

    pub(crate) fn field_name(&self, id: SeriesId, col: u32) -> Option<&str> {
        let series = self.series.get(id.0 as usize)?.as_ref()?;
        series.columns.get(col as usize).map(|c| c.field.as_str())
    }

    pub(crate) fn key(&self, id: SeriesId) -> Option<&SeriesKey> {
        self.series.get(id.0 as usize)?.as_ref().map(|s| &s.key)
    }

    fn column(&self, id: SeriesId, field: &str) -> Option<&Column> {
        let series = self.series.get(id.0 as usize)?.as_ref()?;
        series.columns.iter().find(|c| c.field == field)
    }
}

/// Read access to the head, held for the duration of one query.
#[derive(Debug)]
pub struct HeadView<'a> {
    pub(crate) head: &'a Head,
}

impl HeadView<'_> {
    /// Whether the metric has ever been written.
    pub fn has_metric(&self, metric: &str) -> bool {
        self.head.by_metric.contains_key(metric)
    }

    /// The kind of a metric's field, if it has one.
    pub fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.head.kind(metric, field)
    }

    /// Every series of a metric, in creation order.
    pub fn series_of(&self, metric: &str) -> &[SeriesId] {
        self.head
            .by_metric
            .get(metric)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn key(&self, id: SeriesId) -> Option<&SeriesKey> {
        self.head.key(id)
    }

    /// Points of one field of one series in `[start, end]`, ascending.
    pub fn points(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, &FieldValue)> {
        // BTreeMap::range panics on an inverted range.
        self.head
            .column(id, field)
            .filter(|_| start <= end)
            .into_iter()
            .flat_map(move |c| c.points.range(start..=end))
            .map(|(t, v)| (*t, v))
    }

    /// Metric names, sorted.
    pub fn metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.head.by_metric.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.head.ids.len()
    }
}
