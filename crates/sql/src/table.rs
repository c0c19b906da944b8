//! Metrics as DataFusion tables (spec baidu-tsdb 10.2): the time column,
//! one column per field, one per tag key. Time ranges and tag equalities
//! in `WHERE` narrow the storage scan (inexactly: DataFusion applies every
//! filter again), and only projected fields are read.

use crate::remote::{Columns, Store};
use crate::scan::{Pushdown, SeriesScan};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use std::sync::Arc;
use sundial_model::{Kind, TagMatch, Timestamp};
use sundial_storage::Db;

/// The name of the time column (also reachable as `timestamp`).
pub(crate) const TIME: &str = "time";

/// Every metric of one database.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) store: Store,
    pub(crate) budget: Arc<crate::Budget>,
}

#[async_trait]
impl SchemaProvider for Metrics {
    /// Only planning's [`Metrics::table`] matters to a SELECT: a cluster's
    /// tables are not listed here.
    fn table_names(&self) -> Vec<String> {
        match &self.store {
            Store::Local(db) => db.read(|v| v.metrics().into_iter().map(str::to_owned).collect()),
            Store::Remote(_) => Vec::new(),
        }
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let columns = match &self.store {
            Store::Local(db) => local_columns(db, name),
            Store::Remote(remote) => remote.columns(name, &self.budget).await?,
        };
        Ok(columns.map(|columns| {
            Arc::new(MetricTable::new(
                self.store.clone(),
                name,
                columns,
                self.budget.clone(),
            )) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        match &self.store {
            Store::Local(db) => db.read(|v| v.has_metric(name)),
            Store::Remote(_) => false,
        }
    }
}

/// The columns of `metric`'s table in `db`; `None` if it was never written.
fn local_columns(db: &Db, metric: &str) -> Option<Columns> {
    db.read(|v| {
        if !v.has_metric(metric) {
            return None;
        }
        let fields = v
            .fields(metric)
            .into_iter()
            .map(|(f, k)| (f.to_owned(), k, k == Kind::Numeric && v.all_long(metric, f)))
            .collect();
        let tags = v
            .tag_keys_in(metric, Timestamp::MIN, Timestamp::MAX)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Some((fields, tags))
    })
}

/// A column of a metric table beyond the time column.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Field {
        name: String,
        kind: Kind,
        all_long: bool,
    },
    Tag(String),
}

#[derive(Debug)]
pub(crate) struct MetricTable {
    store: Store,
    metric: String,
    schema: SchemaRef,
    /// Column `i + 1` of the schema.
    sources: Vec<Source>,
    budget: Arc<crate::Budget>,
}

impl MetricTable {
    /// Where the table's series are (aggregates fold in their scan).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn metric(&self) -> &str {
        &self.metric
    }

    pub(crate) fn budget(&self) -> &Arc<crate::Budget> {
        &self.budget
    }

    /// The names of the field columns.
    pub(crate) fn field_names(&self) -> impl Iterator<Item = &str> {
        crate::scan::field_names(&self.sources)
    }

    /// The kind of field column `name`, if it is one.
    pub(crate) fn field_kind(&self, name: &str) -> Option<Kind> {
        self.sources.iter().find_map(|s| match s {
            Source::Field { name: n, kind, .. } if n == name => Some(*kind),
            _ => None,
        })
    }

    fn new(
        store: Store,
        metric: &str,
        (fields, tags): Columns,
        budget: Arc<crate::Budget>,
    ) -> Self {
        let mut columns = vec![Field::new(TIME, DataType::Int64, false)];
        let mut sources = Vec::new();
        // The time column wins over a field or tag of the same name.
        let taken = |n: &str, cols: &[Field]| {
            n == TIME || n == "timestamp" || cols.iter().any(|c| c.name() == n)
        };
        for (name, kind, all_long) in fields {
            if taken(&name, &columns) {
                continue;
            }
            let ty = match (kind, all_long) {
                (Kind::Numeric, true) => DataType::Int64,
                (Kind::Numeric, false) => DataType::Float64,
                (Kind::String, _) => DataType::Utf8,
                (Kind::Bytes, _) => DataType::Binary,
            };
            columns.push(Field::new(&name, ty, true));
            sources.push(Source::Field {
                name,
                kind,
                all_long,
            });
        }
        for tag in tags {
            if taken(&tag, &columns) {
                continue;
            }
            columns.push(Field::new(&tag, DataType::Utf8, true));
            sources.push(Source::Tag(tag));
        }
        Self {
            store,
            metric: metric.to_owned(),
            schema: Arc::new(Schema::new(columns)),
            sources,
            budget,
        }
    }

    /// A filter the scan can use: a time bound or a tag (in)equality.
    fn usable(&self, e: &Expr) -> bool {
        let mut p = Pushdown::default();
        self.narrow(e, &mut p)
    }

    /// Tightens `p` by `e`; false if `e` says nothing the scan can use.
    /// A single comparison (not an `AND`) it takes is applied exactly.
    pub(crate) fn narrow(&self, e: &Expr, p: &mut Pushdown) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if *op == Operator::And => {
                let l = self.narrow(left, p);
                let r = self.narrow(right, p);
                l || r
            }
            Expr::BinaryExpr(BinaryExpr { op, .. }) if *op == Operator::Or => {
                // `tag IN (..)` as the simplifier writes a short list.
                match self.alternatives(e) {
                    Some((tag, values)) => {
                        p.tags.push(TagMatch::In { key: tag, values });
                        true
                    }
                    None => false,
                }
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col, lit, op) =
                    match (column(left), literal(right), column(right), literal(left)) {
                        (Some(c), Some(v), _, _) => (c, v, *op),
                        (_, _, Some(c), Some(v)) => match op.swap() {
                            Some(op) => (c, v, op),
                            None => return false,
                        },
                        _ => return false,
                    };
                if col.name == TIME {
                    return as_i64(&lit).is_some_and(|t| narrow_time(op, t, p));
                }
                match (self.tag(&col.name), op, text(lit)) {
                    (Some(tag), Operator::Eq, Some(value)) => {
                        p.tags.push(TagMatch::Eq {
                            key: tag.to_owned(),
                            value,
                        });
                        true
                    }
                    _ => false,
                }
            }
            Expr::InList(list) if !list.negated => self.narrow_in(list, p),
            Expr::Between(b) if !b.negated && column(&b.expr).is_some_and(|c| c.name == TIME) => {
                match (
                    literal(&b.low).as_ref().and_then(as_i64),
                    literal(&b.high).as_ref().and_then(as_i64),
                ) {
                    (Some(lo), Some(hi)) => {
                        p.start = p.start.max(lo);
                        p.end = p.end.min(hi);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// `tag = 'a' OR tag = 'b' OR ...` over one tag: the tag and values.
    fn alternatives(&self, e: &Expr) -> Option<(String, Vec<String>)> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return None;
        };
        match op {
            Operator::Or => {
                let (tag, mut values) = self.alternatives(left)?;
                let (other, more) = self.alternatives(right)?;
                (tag == other).then(|| {
                    values.extend(more);
                    (tag, values)
                })
            }
            Operator::Eq => {
                let (c, v) = match (column(left), literal(right), column(right), literal(left)) {
                    (Some(c), Some(v), _, _) | (_, _, Some(c), Some(v)) => (c, v),
                    _ => return None,
                };
                Some((self.tag(&c.name)?.to_owned(), vec![text(v)?]))
            }
            _ => None,
        }
    }

    /// `tag IN ('a', 'b')`.
    fn narrow_in(&self, list: &InList, p: &mut Pushdown) -> bool {
        let Some(tag) = column(&list.expr).and_then(|c| self.tag(&c.name)) else {
            return false;
        };
        let values: Option<Vec<String>> = list.list.iter().map(|v| text(literal(v)?)).collect();
        let Some(values) = values else {
            return false;
        };
        p.tags.push(TagMatch::In {
            key: tag.to_owned(),
            values,
        });
        true
    }

    pub(crate) fn tag(&self, name: &str) -> Option<&str> {
        self.sources.iter().find_map(|s| match s {
            Source::Tag(t) if t == name => Some(t.as_str()),
            _ => None,
        })
    }
}

/// `time <op> t`; false for operators the scan cannot use.
fn narrow_time(op: Operator, t: i64, p: &mut Pushdown) -> bool {
    match op {
        Operator::Eq => {
            p.start = p.start.max(t);
            p.end = p.end.min(t);
        }
        Operator::Gt => p.start = p.start.max(t.saturating_add(1)),
        Operator::GtEq => p.start = p.start.max(t),
        Operator::Lt => p.end = p.end.min(t.saturating_sub(1)),
        Operator::LtEq => p.end = p.end.min(t),
        _ => return false,
    }
    true
}

/// The text of a string literal.
fn text(v: ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// A bare column: a cast column compares something else (text, a
/// rounded float), which the scan must not narrow by.
fn column(e: &Expr) -> Option<&Column> {
    match e {
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        _ => None,
    }
}

/// An integer literal (a fractional bound is left to DataFusion).
fn as_i64(v: &ScalarValue) -> Option<i64> {
    if !v.data_type().is_integer() {
        return None;
    }
    match v.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(Some(t)) => Some(t),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for MetricTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.usable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let mut pushdown = Pushdown::default();
        for f in filters {
            self.narrow(f, &mut pushdown);
        }
        let wanted: Vec<bool> = (0..self.schema.fields().len())
            .map(|i| projection.is_none_or(|p| p.contains(&i)))
            .collect();
        // An unordered scan splits its series over the partitions, selected
        // once so every partition sees the same list. A cluster's series
        // come in one request, over one partition.
        let (parts, ids) = match &self.store {
            Store::Local(db) => {
                let ids: Vec<sundial_storage::SeriesId> = db.read(|view| {
                    view.select(&self.metric, &pushdown.tags)
                        .map(|ids| ids.into_iter().collect())
                        .map_err(|e| DataFusionError::Plan(e.to_string()))
                })?;
                let parts = if self.budget.ordered {
                    1
                } else {
                    self.budget.partitions.max(1)
                };
                (parts, Arc::new(ids))
            }
            Store::Remote(_) => (1, Arc::new(Vec::new())),
        };
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..parts)
            .map(|part| {
                Arc::new(SeriesScan {
                    store: self.store.clone(),
                    metric: self.metric.clone(),
                    schema: self.schema.clone(),
                    sources: self.sources.clone(),
                    wanted: wanted.clone(),
                    pushdown: pushdown.clone(),
                    budget: self.budget.clone(),
                    ids: ids.clone(),
                    part,
                    parts,
                    limit,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let exec = StreamingTableExec::try_new(
            self.schema.clone(),
            partitions,
            projection,
            [],
            false,
            limit,
        )?;
        Ok(Arc::new(exec))
    }
}
