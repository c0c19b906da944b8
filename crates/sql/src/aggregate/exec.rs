//! The folded scan: the aggregate's output rows as a table, computed by
//! `sundial_query::stats::grouped` within the statement's budget.

use super::{Group, Spec};
use crate::remote::Store;
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use sundial_model::StatsQuery;
use sundial_model::series_query::RangeFn;
use sundial_query::stats::{GroupedStats, Stats};

/// The aggregate's output rows as a table.
#[derive(Debug)]
pub(super) struct FoldedTable {
    pub(super) spec: Arc<Spec>,
}

#[async_trait]
impl TableProvider for FoldedTable {
    fn schema(&self) -> SchemaRef {
        self.spec.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _: &dyn Session,
        projection: Option<&Vec<usize>>,
        _: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let stream: Arc<dyn PartitionStream> = Arc::new(Folded {
            spec: self.spec.clone(),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            self.spec.schema.clone(),
            vec![stream],
            projection,
            [],
            false,
            limit,
        )?))
    }
}

#[derive(Debug)]
struct Folded {
    spec: Arc<Spec>,
}

impl PartitionStream for Folded {
    fn schema(&self) -> &SchemaRef {
        &self.spec.schema
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let spec = self.spec.clone();
        let batch = async move {
            tokio::task::spawn_blocking(move || fold(&spec))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.spec.schema.clone(),
            futures::stream::once(batch),
        ))
    }
}

/// Runs the fold within the statement's budget and builds the rows.
fn fold(spec: &Spec) -> Result<RecordBatch> {
    let sql = &spec.budget;
    let left = sql
        .max_points
        .saturating_sub(sql.points.load(Ordering::Relaxed));
    let budget =
        sundial_query::Budget::new(sql.deadline.saturating_duration_since(Instant::now()), left);
    let count_only: Vec<bool> = (0..spec.fields.len())
        .map(|i| {
            spec.aggs
                .iter()
                .filter(|a| a.field == i)
                .all(|a| a.func == RangeFn::Count)
        })
        .collect();
    let group_tags: Vec<String> = spec
        .groups
        .iter()
        .filter_map(|g| match g {
            Group::Tag(t) => Some(t.clone()),
            Group::Bucket => None,
        })
        .collect();
    let query = StatsQuery {
        metric: spec.metric.clone(),
        tags: spec.pushdown.tags.clone(),
        fields: spec.fields.clone(),
        count_only,
        start: spec.pushdown.start,
        end: spec.pushdown.end,
        width_ms: spec.width_ms,
        group_tags,
    };
    // On a cluster each owner folds its shards and only the statistics
    // cross the network.
    let folded = match &spec.store {
        Store::Local(db) => sundial_query::stats::grouped_by(db, &query, &budget)
            .map(|groups| (groups, (left - budget.left()) as u64)),
        Store::Remote(remote) => remote.stats(&query, &budget),
    };
    let read = folded.as_ref().map_or(left - budget.left(), |(_, points)| {
        usize::try_from(*points).unwrap_or(usize::MAX)
    });
    sql.points.fetch_add(read, Ordering::Relaxed);
    let folded = folded.map(|(groups, _)| groups);
    let mut cells = folded.map_err(query_error)?;
    sql.check_time()?;
    // Aggregates without GROUP BY make exactly one row, points or none.
    if spec.groups.is_empty() && cells.is_empty() {
        cells.entry(Vec::new()).or_default().insert(
            spec.pushdown.start,
            vec![Stats::default(); spec.fields.len()],
        );
    }
    rows(spec, &cells)
}

/// The storage's errors stay engine errors; limits read as the scan's own.
fn query_error(e: sundial_query::Error) -> DataFusionError {
    match e {
        sundial_query::Error::Storage(s) => match Arc::try_unwrap(s) {
            Ok(s) => DataFusionError::External(Box::new(s)),
            Err(s) => DataFusionError::Internal(s.to_string()),
        },
        sundial_query::Error::Timeout { .. } => {
            DataFusionError::ResourcesExhausted(crate::DEADLINE.into())
        }
        sundial_query::Error::TooManyPoints { limit } => {
            DataFusionError::ResourcesExhausted(format!(
                "the statement reads more than {limit} stored points; narrow the time range or the tags"
            ))
        }
        // Another node's failure keeps its class (busy: retry).
        e @ sundial_query::Error::Remote { .. } => DataFusionError::External(Box::new(e)),
        other => DataFusionError::Plan(other.to_string()),
    }
}

/// One row per (group, bucket) cell, in the aggregate's column order.
fn rows(spec: &Spec, cells: &GroupedStats) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(spec.schema.fields().len());
    let mut tag = 0;
    for g in &spec.groups {
        let column: ArrayRef = match g {
            Group::Tag(_) => {
                let i = tag;
                tag += 1;
                Arc::new(
                    cells
                        .iter()
                        .flat_map(|(values, buckets)| {
                            let value = values.get(i).and_then(Option::as_deref);
                            std::iter::repeat_n(value, buckets.len())
                        })
                        .collect::<StringArray>(),
                )
            }
            Group::Bucket => Arc::new(
                cells
                    .values()
                    .flat_map(|buckets| buckets.keys().map(|b| Some(*b)))
                    .collect::<Int64Array>(),
            ),
        };
        columns.push(column);
    }
    for (a, field) in spec
        .aggs
        .iter()
        .zip(spec.schema.fields().iter().skip(spec.groups.len()))
    {
        let stats = cells
            .values()
            .flat_map(BTreeMap::values)
            .map(|per_field| per_field.get(a.field));
        columns.push(statistic_column(a.func, field.data_type(), stats)?);
    }
    // Each column as the aggregate declared it.
    let columns = columns
        .into_iter()
        .zip(spec.schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                datafusion::arrow::compute::cast(&c, f.data_type()).map_err(DataFusionError::from)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(spec.schema.clone(), columns)?)
}

/// One aggregate's column: NULL where its field has no point in the cell
/// (count: 0), as SQL aggregates over no values answer.
fn statistic_column<'a>(
    func: RangeFn,
    declared: &DataType,
    stats: impl Iterator<Item = Option<&'a Stats>>,
) -> Result<ArrayRef> {
    let present = |s: Option<&'a Stats>| s.filter(|s| s.count > 0);
    Ok(match func {
        RangeFn::Count => Arc::new(
            stats
                .map(|s| Some(s.map_or(0, |s| s.count as i64)))
                .collect::<Int64Array>(),
        ),
        // A long column sums, and wraps, as DataFusion's sum does.
        RangeFn::Sum if declared == &DataType::Int64 => Arc::new(
            stats
                .map(|s| present(s).and_then(Stats::long_sum).map(|v| v as i64))
                .collect::<Int64Array>(),
        ),
        RangeFn::Min | RangeFn::Max if declared == &DataType::Int64 => Arc::new(
            stats
                .map(|s| {
                    present(s).and_then(|s| match s.value(func) {
                        sundial_model::FieldValue::Long(v) => Some(v),
                        _ => None,
                    })
                })
                .collect::<Int64Array>(),
        ),
        _ => Arc::new(
            stats
                .map(|s| present(s).and_then(|s| s.value(func).as_f64()))
                .collect::<Float64Array>(),
        ),
    })
}
