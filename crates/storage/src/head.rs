//! The in-memory head: the series registry, field kinds, and every point,
//! ordered by time per (series, field). Also remembers which points arrived
//! since the last flush so a flush writes only those.

use std::collections::{BTreeMap, HashMap};
use sundial_model::{FieldValue, Kind, SeriesKey, Timestamp};

/// Dense id of a series in this process; not persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u32);

#[derive(Debug, Default)]
struct Column {
    field: String,
    points: BTreeMap<Timestamp, FieldValue>,
}

/// A point applied since the last flush: (series, column index, time, value).
pub(crate) type PendingPoint = (SeriesId, u32, Timestamp, FieldValue);

#[derive(Debug, Default)]
pub(crate) struct Head {
    ids: HashMap<SeriesKey, SeriesId>,
    keys: Vec<SeriesKey>,
    columns: Vec<Vec<Column>>,
    by_metric: HashMap<String, Vec<SeriesId>>,
    kinds: HashMap<String, HashMap<String, Kind>>,
    pub(crate) pending: Vec<PendingPoint>,
}

impl Head {
    pub(crate) fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.kinds.get(metric)?.get(field).copied()
    }

    /// Stores one point; the caller has checked the kind. Returns false if
    /// the value's kind conflicts with the field's (only possible on replay
    /// of damaged data), in which case nothing is stored.
    pub(crate) fn apply(
        &mut self,
        series: &SeriesKey,
        field: &str,
        ts: Timestamp,
        value: FieldValue,
    ) -> bool {
        let kind = value.kind();
        if !self.kinds.contains_key(&series.metric) {
            self.kinds.insert(series.metric.clone(), HashMap::new());
        }
        let Some(kinds) = self.kinds.get_mut(&series.metric) else {
            return false;
        };
        match kinds.get(field) {
            Some(k) if *k != kind => return false,
            Some(_) => {}
            None => {
                kinds.insert(field.to_owned(), kind);
            }
        }
        let id = self.series_id(series);
        let Some(cols) = self.columns.get_mut(id.0 as usize) else {
            return false;
        };
        let col = match cols.iter().position(|c| c.field == field) {
            Some(i) => i,
            None => {
                cols.push(Column {
                    field: field.to_owned(),
                    points: BTreeMap::new(),
                });
                cols.len() - 1
            }
        };
        if let Some(c) = cols.get_mut(col) {
            c.points.insert(ts, value.clone());
        }
        self.pending.push((id, col as u32, ts, value));
        true
    }

    fn series_id(&mut self, series: &SeriesKey) -> SeriesId {
        if let Some(id) = self.ids.get(series) {
            return *id;
        }
        let id = SeriesId(self.keys.len() as u32);
        self.ids.insert(series.clone(), id);
        self.keys.push(series.clone());
        self.columns.push(Vec::new());
        self.by_metric
            .entry(series.metric.clone())
            .or_default()
            .push(id);
        id
    }

    pub(crate) fn field_name(&self, id: SeriesId, col: u32) -> Option<&str> {
        self.columns
            .get(id.0 as usize)?
            .get(col as usize)
            .map(|c| c.field.as_str())
    }

    pub(crate) fn key(&self, id: SeriesId) -> Option<&SeriesKey> {
        self.keys.get(id.0 as usize)
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
        let col = self
            .head
            .columns
            .get(id.0 as usize)
            .and_then(|cols| cols.iter().find(|c| c.field == field));
        // BTreeMap::range panics on an inverted range.
        col.filter(|_| start <= end)
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
        self.head.keys.len()
    }
}
