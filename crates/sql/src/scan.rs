//! The storage scan behind a metric table: the selected series' rows in
//! ascending (time, series key) order, as record batches sent while they
//! are built.

use crate::Budget;
use crate::remote::Store;
use crate::table::Source;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use sundial_model::{FieldValue, Kind, TagMatch, Timestamp};
use sundial_storage::{Db, Num, NumSlice};

const BATCH_ROWS: usize = 8192;

/// What `WHERE` lets the scan skip.
#[derive(Debug, Clone)]
pub(crate) struct Pushdown {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) tags: Vec<TagMatch>,
}

impl Default for Pushdown {
    fn default() -> Self {
        Self {
            start: Timestamp::MIN,
            end: Timestamp::MAX,
            tags: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct SeriesScan {
    pub(crate) store: Store,
    pub(crate) metric: String,
    pub(crate) schema: SchemaRef,
    pub(crate) sources: Vec<Source>,
    /// Per schema column, whether the query uses it.
    pub(crate) wanted: Vec<bool>,
    pub(crate) pushdown: Pushdown,
    pub(crate) budget: Arc<Budget>,
    /// The selected series; this partition takes `part`, `part + parts`,
    /// ... (series order only matters to an ordered scan, which has one).
    pub(crate) ids: Arc<Vec<sundial_storage::SeriesId>>,
    pub(crate) part: usize,
    pub(crate) parts: usize,
    /// Rows the statement needs at most (a LIMIT DataFusion pushed down):
    /// an ordered scan then keeps only each series' first `limit` rows.
    pub(crate) limit: Option<usize>,
}

/// One series' rows: tag values, then per timestamp one value per field.
pub(crate) struct SeriesRows {
    pub(crate) tags: Vec<Option<String>>,
    pub(crate) rows: Vec<(Timestamp, Vec<Option<FieldValue>>)>,
}

impl PartitionStream for SeriesScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
        let job = Job {
            store: self.store.clone(),
            metric: self.metric.clone(),
            schema: self.schema.clone(),
            sources: self.sources.clone(),
            wanted: self.wanted.clone(),
            pushdown: self.pushdown.clone(),
            budget: self.budget.clone(),
            ids: self.ids.clone(),
            part: self.part,
            parts: self.parts.max(1),
            limit: self.limit,
        };
        tokio::task::spawn_blocking(move || {
            // A panic must end the stream with an error, not a short result.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&tx)))
                .unwrap_or_else(|_| {
                    Err(DataFusionError::Internal("the storage scan failed".into()))
                });
            if let Err(e) = outcome {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

struct Job {
    store: Store,
    metric: String,
    schema: SchemaRef,
    sources: Vec<Source>,
    wanted: Vec<bool>,
    pushdown: Pushdown,
    budget: Arc<Budget>,
    ids: Arc<Vec<sundial_storage::SeriesId>>,
    part: usize,
    parts: usize,
    limit: Option<usize>,
}

type Sender = tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>;

impl Job {
    fn run(&self, tx: &Sender) -> Result<(), DataFusionError> {
        let db = match &self.store {
            Store::Local(db) => db,
            Store::Remote(remote) => {
                let fields: Vec<String> = field_names(&self.sources).map(str::to_owned).collect();
                let tags: Vec<&str> = self
                    .sources
                    .iter()
                    .filter_map(|s| match s {
                        Source::Tag(t) => Some(t.as_str()),
                        Source::Field { .. } => None,
                    })
                    .collect();
                let mut series =
                    remote.rows(&self.metric, &fields, &tags, &self.pushdown, &self.budget)?;
                if let Some(limit) = self.limit {
                    for s in &mut series {
                        s.rows.truncate(limit);
                    }
                }
                return if self.budget.ordered {
                    self.merge(&series, tx)
                } else {
                    self.send_each(&series, tx)
                };
            }
        };
        if self.budget.ordered {
            self.merge(&self.read(db)?, tx)
        } else {
            self.run_by_series(db, tx)
        }
    }

    /// One batch per series, in the order given.
    fn send_each(&self, series: &[SeriesRows], tx: &Sender) -> Result<(), DataFusionError> {
        for rows in series.iter().filter(|s| !s.rows.is_empty()) {
            let mut b = BatchBuilder::new(&self.schema, &self.sources, &self.wanted);
            for row in &rows.rows {
                b.push(row, &rows.tags);
            }
            if tx.blocking_send(b.finish(&self.schema)).is_err() {
                return Ok(());
            }
            self.budget.check_time()?;
        }
        Ok(())
    }

    /// Series after series, each read under its own short snapshot: the
    /// statement sorts or aggregates, so row order does not matter, and
    /// nothing but the batch in flight is held.
    fn run_by_series(&self, db: &Db, tx: &Sender) -> Result<(), DataFusionError> {
        let numeric_only = match self.sources.first() {
            Some(Source::Field {
                kind: Kind::Numeric,
                ..
            }) => self
                .sources
                .iter()
                .skip(1)
                .all(|s| matches!(s, Source::Tag(_))),
            _ => false,
        };
        for id in self.ids.iter().copied().skip(self.part).step_by(self.parts) {
            let batch = if numeric_only {
                self.numeric_series(db, id)?
            } else {
                let rows = db.read(|view| self.series_rows(&view, id))?;
                rows.map(|rows| {
                    let mut b = BatchBuilder::new(&self.schema, &self.sources, &self.wanted);
                    for row in &rows.rows {
                        b.push(row, &rows.tags);
                    }
                    b.finish(&self.schema)
                })
                .transpose()?
            };
            if let Some(batch) = batch.filter(|b| b.num_rows() > 0)
                && tx.blocking_send(Ok(batch)).is_err()
            {
                return Ok(());
            }
            self.budget.check_time()?;
        }
        Ok(())
    }

    /// One series of a single-field numeric metric, straight from the
    /// decoded columns into Arrow arrays.
    fn numeric_series(
        &self,
        db: &Db,
        id: sundial_storage::SeriesId,
    ) -> Result<Option<RecordBatch>, DataFusionError> {
        let Some(Source::Field { name, all_long, .. }) = self.sources.first() else {
            return Ok(None);
        };
        let p = &self.pushdown;
        db.read(|view| {
            let Some(key) = view.key(id) else {
                return Ok(None);
            };
            let mut time = Int64Builder::new();
            let mut longs = Int64Builder::new();
            let mut doubles = Float64Builder::new();
            let mut n = 0usize;
            let mut over = None;
            view.visit_numeric(id, name, p.start, p.end, &mut |ts, values| {
                // Charged run by run, so one long series stops early.
                if over.is_some() {
                    return;
                }
                if let Err(e) = self.budget.take(ts.len()) {
                    over = Some(e);
                    return;
                }
                n += ts.len();
                time.append_slice(ts);
                match (values, *all_long) {
                    (NumSlice::Longs(v), true) => longs.append_slice(v),
                    (NumSlice::Longs(v), false) => {
                        doubles.extend(v.iter().map(|x| Some(*x as f64)));
                    }
                    // A chunk flushed after the table was typed.
                    (NumSlice::Doubles(v), true) => {
                        longs.extend(v.iter().map(|x| Some(*x as i64)));
                    }
                    (NumSlice::Doubles(v), false) => doubles.append_slice(v),
                    (NumSlice::Mixed(v), _) => {
                        for x in v {
                            match (x, *all_long) {
                                (Num::Long(i), true) => longs.append_value(*i),
                                (other, true) => longs.append_value(other.as_f64() as i64),
                                (other, false) => doubles.append_value(other.as_f64()),
                            }
                        }
                    }
                }
            })
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
            if let Some(e) = over {
                return Err(e);
            }
            if n == 0 {
                return Ok(None);
            }
            let mut arrays: Vec<ArrayRef> = vec![Arc::new(time.finish())];
            for (i, source) in self.sources.iter().enumerate() {
                let ty = self.schema.field(i + 1).data_type();
                let wanted = self.wanted.get(i + 1).copied().unwrap_or(false);
                arrays.push(match source {
                    _ if !wanted => datafusion::arrow::array::new_null_array(ty, n),
                    Source::Field { .. } if *all_long => Arc::new(longs.finish()),
                    Source::Field { .. } => Arc::new(doubles.finish()),
                    Source::Tag(t) => match key.tag(t) {
                        Some(v) => {
                            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, n)))
                        }
                        None => datafusion::arrow::array::new_null_array(ty, n),
                    },
                });
            }
            Ok(Some(RecordBatch::try_new(self.schema.clone(), arrays)?))
        })
    }

    /// Rows in (time, series key) order across all `series` (sorted by
    /// key): the order a plain SELECT without ORDER BY promises (spec
    /// 10.3).
    fn merge(&self, series: &[SeriesRows], tx: &Sender) -> Result<(), DataFusionError> {
        // k-way merge by (time, series key); series come sorted by key.
        let mut heap: BinaryHeap<Reverse<(Timestamp, usize, usize)>> = series
            .iter()
            .enumerate()
            .filter_map(|(s, rows)| rows.rows.first().map(|(t, _)| Reverse((*t, s, 0))))
            .collect();
        let mut batch = BatchBuilder::new(&self.schema, &self.sources, &self.wanted);
        while let Some(Reverse((_, s, i))) = heap.pop() {
            let (Some(rows), Some(row)) =
                (series.get(s), series.get(s).and_then(|r| r.rows.get(i)))
            else {
                continue;
            };
            batch.push(row, &rows.tags);
            if let Some((t, _)) = rows.rows.get(i + 1) {
                heap.push(Reverse((*t, s, i + 1)));
            }
            if batch.len() >= BATCH_ROWS {
                let full = std::mem::replace(
                    &mut batch,
                    BatchBuilder::new(&self.schema, &self.sources, &self.wanted),
                );
                if tx.blocking_send(full.finish(&self.schema)).is_err() {
                    return Ok(());
                }
                self.budget.check_time()?;
            }
        }
        if batch.len() > 0 {
            let _ = tx.blocking_send(batch.finish(&self.schema));
        }
        Ok(())
    }

    /// The selected series' rows, sorted by series key.
    fn read(&self, db: &Db) -> Result<Vec<SeriesRows>, DataFusionError> {
        let mut out: Vec<(sundial_model::Tags, SeriesRows)> = Vec::new();
        for id in self.ids.iter().copied() {
            let found = db.read(|view| -> Result<_, DataFusionError> {
                let key = view.key(id);
                Ok(key.zip(self.series_rows(&view, id)?))
            })?;
            if let Some((key, rows)) = found {
                out.push((key.tags, rows));
            }
        }
        self.budget.check_time()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, rows)| rows).collect())
    }

    /// One series' rows: per timestamp one value per field; `None` if it
    /// has none in range.
    fn series_rows(
        &self,
        view: &sundial_storage::Snapshot<'_>,
        id: sundial_storage::SeriesId,
    ) -> Result<Option<SeriesRows>, DataFusionError> {
        let fields: Vec<&str> = field_names(&self.sources).collect();
        let p = &self.pushdown;
        let Some(key) = view.key(id) else {
            return Ok(None);
        };
        let mut rows: BTreeMap<Timestamp, Vec<Option<FieldValue>>> = BTreeMap::new();
        for (f, name) in fields.iter().enumerate() {
            let points = view
                .points(id, name, p.start, p.end)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            // With a LIMIT only a series' first rows can reach the result;
            // one series at a time is decoded whole, the rest is dropped.
            self.budget
                .take(self.limit.map_or(points.len(), |l| points.len().min(l)))?;
            for (t, v) in points {
                let row = rows.entry(t).or_insert_with(|| vec![None; fields.len()]);
                if let Some(slot) = row.get_mut(f) {
                    *slot = Some(v);
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let rows: Vec<(Timestamp, Vec<Option<FieldValue>>)> = match self.limit {
            Some(l) => rows.into_iter().take(l).collect(),
            None => rows.into_iter().collect(),
        };
        let tags = self
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Tag(t) => Some(key.tag(t).map(str::to_owned)),
                Source::Field { .. } => None,
            })
            .collect();
        Ok(Some(SeriesRows { tags, rows }))
    }
}

/// The names of the field columns, in column order.
pub(crate) fn field_names(sources: &[Source]) -> impl Iterator<Item = &str> {
    sources.iter().filter_map(|s| match s {
        Source::Field { name, .. } => Some(name.as_str()),
        Source::Tag(_) => None,
    })
}

/// Builders of one batch; unwanted columns get nulls only.
struct BatchBuilder {
    time: Int64Builder,
    columns: Vec<Column>,
    rows: usize,
}

enum Column {
    Long(Int64Builder),
    Double(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    /// Not projected: only counted.
    Skip,
}

impl BatchBuilder {
    fn new(schema: &SchemaRef, sources: &[Source], wanted: &[bool]) -> Self {
        let _ = schema;
        let columns = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if !wanted.get(i + 1).copied().unwrap_or(false) {
                    return Column::Skip;
                }
                match s {
                    Source::Field {
                        kind: Kind::Numeric,
                        all_long: true,
                        ..
                    } => Column::Long(Int64Builder::new()),
                    Source::Field {
                        kind: Kind::Numeric,
                        ..
                    } => Column::Double(Float64Builder::new()),
                    Source::Field {
                        kind: Kind::String, ..
                    }
                    | Source::Tag(_) => Column::Text(StringBuilder::new()),
                    Source::Field {
                        kind: Kind::Bytes, ..
                    } => Column::Bytes(BinaryBuilder::new()),
                }
            })
            .collect();
        Self {
            time: Int64Builder::new(),
            columns,
            rows: 0,
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn push(&mut self, row: &(Timestamp, Vec<Option<FieldValue>>), tags: &[Option<String>]) {
        self.rows += 1;
        self.time.append_value(row.0);
        let mut fields = row.1.iter();
        let mut tag_values = tags.iter();
        for c in &mut self.columns {
            // Fields come first in the sources, then tags.
            let value: Cell<'_> = match fields.next() {
                Some(v) => Cell::Field(v.as_ref()),
                None => Cell::Tag(tag_values.next().and_then(Option::as_deref)),
            };
            match (c, value) {
                (Column::Skip, _) => {}
                (Column::Long(b), Cell::Field(v)) => b.append_option(v.and_then(|v| match v {
                    FieldValue::Long(i) => Some(*i),
                    other => other.as_f64().map(|f| f as i64),
                })),
                (Column::Double(b), Cell::Field(v)) => {
                    b.append_option(v.and_then(FieldValue::as_f64))
                }
                (Column::Text(b), Cell::Field(v)) => b.append_option(v.and_then(|v| match v {
                    FieldValue::String(s) => Some(s.as_str()),
                    _ => None,
                })),
                (Column::Text(b), Cell::Tag(t)) => b.append_option(t),
                (Column::Bytes(b), Cell::Field(v)) => b.append_option(v.and_then(|v| match v {
                    FieldValue::Bytes(x) => Some(x.as_slice()),
                    _ => None,
                })),
                (Column::Long(b), Cell::Tag(_)) => b.append_null(),
                (Column::Double(b), Cell::Tag(_)) => b.append_null(),
                (Column::Bytes(b), Cell::Tag(_)) => b.append_null(),
            }
        }
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch, DataFusionError> {
        let n = self.rows;
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.time.finish())];
        for (i, c) in self.columns.iter_mut().enumerate() {
            arrays.push(match c {
                Column::Long(b) => Arc::new(b.finish()),
                Column::Double(b) => Arc::new(b.finish()),
                Column::Text(b) => Arc::new(b.finish()),
                Column::Bytes(b) => Arc::new(b.finish()),
                Column::Skip => {
                    let ty = schema.field(i + 1).data_type();
                    datafusion::arrow::array::new_null_array(ty, n)
                }
            });
        }
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
    }
}

enum Cell<'a> {
    Field(Option<&'a FieldValue>),
    Tag(Option<&'a str>),
}
