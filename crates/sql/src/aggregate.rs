//! Aggregates in the scan. A statement of the shape
//!
//! ```sql
//! SELECT <tags>, time_bucket(time, '<width>'), count|sum|min|max|avg(<field>), ...
//! FROM <metric> [WHERE <time bounds and tag equalities>]
//! GROUP BY <tags>, time_bucket(time, '<width>')
//! ```
//!
//! is answered by folding each series' points into per-bucket statistics
//! (`sundial_query::stats`), not by making one row per point for
//! DataFusion to group: the rule below replaces such an `Aggregate` by a
//! scan of a table that holds exactly its output rows; `count(*)` too
//! when the metric has one field. Whatever it does not recognise (another
//! function, DISTINCT, FILTER, a `WHERE` it cannot apply exactly, a text
//! field under anything but count, `count(*)` over several fields, whose
//! rows are the times any of them has a point) stays with DataFusion, so
//! the answer never depends on the rule firing.

mod exec;

use crate::Budget;
use crate::functions::TimeBucket;
use crate::remote::Store;
use crate::scan::Pushdown;
use crate::table::{MetricTable, TIME};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::datasource::default_table_source::{provider_as_source, source_as_provider};
use datafusion::functions_aggregate::{average::Avg, count::Count, min_max, sum::Sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection, TableScan,
};
use datafusion::optimizer::{AnalyzerRule, ApplyOrder, OptimizerConfig, OptimizerRule};
use exec::FoldedTable;
use std::sync::Arc;
use sundial_model::Kind;
use sundial_model::series_query::RangeFn;

/// The rule, registered in every statement's session (in the analyser and
/// in the optimizer).
#[derive(Debug)]
pub(crate) struct AggregatePushdown;

impl OptimizerRule for AggregatePushdown {
    fn name(&self) -> &str {
        "sundial_aggregate_in_scan"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match in_scan(aggregate)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The same rule before the optimizer, on the plan as analysed: a
/// statement it takes leaves the optimizer and the physical planner a few
/// nodes to pass over instead of the aggregate, filter and scan, which
/// was most of a small statement's planning. It takes only the aggregate
/// under projections, sorts and limits: a filter or join above one (a
/// `HAVING` on a tag, a tag condition on a subquery) is pushed into it by
/// the optimizer, whose rule then folds it with that condition narrowing
/// the scan; so is an aggregate in a subquery. What only has the shape
/// once the optimizer has rewritten it (conditions it simplifies, casts
/// it unwraps) is the optimizer rule's too.
impl AnalyzerRule for AggregatePushdown {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        fold_outermost(plan)
    }

    fn name(&self) -> &str {
        "sundial_aggregate_in_scan"
    }
}

/// `plan` with the aggregate reached from it through projections, sorts
/// and limits folded in the scan, when it has the shape.
fn fold_outermost(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Aggregate(ref aggregate) => Ok(in_scan(aggregate)?.unwrap_or(plan)),
        LogicalPlan::Projection(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => plan
            .map_children(|child| fold_outermost(child).map(Transformed::yes))
            .map(|t| t.data),
        other => Ok(other),
    }
}

/// One `GROUP BY` expression.
#[derive(Debug, Clone)]
enum Group {
    Tag(String),
    /// `time_bucket(time, width)`, the width in milliseconds.
    Bucket,
}

/// One aggregate: its statistic of one field (an index into the fields).
#[derive(Debug, Clone, Copy)]
struct Agg {
    func: RangeFn,
    field: usize,
}

/// Everything the folded scan needs.
#[derive(Debug)]
struct Spec {
    store: Store,
    metric: String,
    budget: Arc<Budget>,
    pushdown: Pushdown,
    width_ms: Option<i64>,
    groups: Vec<Group>,
    aggs: Vec<Agg>,
    fields: Vec<String>,
    schema: SchemaRef,
}

/// The plan computing `aggregate` in the scan, when it has the shape.
fn in_scan(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    // A projection of bare columns (dropping the time column) may sit
    // between the aggregate and the filter.
    let input = match aggregate.input.as_ref() {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            p.input.as_ref()
        }
        other => other,
    };
    let (predicate, scan) = match input {
        LogicalPlan::TableScan(s) => (None, s),
        LogicalPlan::Filter(f) => match f.input.as_ref() {
            LogicalPlan::TableScan(s) => (Some(&f.predicate), s),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Some(spec) = spec(aggregate, predicate, scan)? else {
        return Ok(None);
    };
    let spec = Arc::new(spec);
    let table = "sundial_aggregate";
    let source = provider_as_source(Arc::new(FoldedTable { spec: spec.clone() }));
    let folded = LogicalPlanBuilder::scan(table, source, None)?.build()?;
    // The aggregate's own output names and qualifiers, so the plan above
    // it reads the same columns.
    let outputs = aggregate
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(table), format!("c{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        outputs,
        Arc::new(folded),
    )?)))
}

fn spec(aggregate: &Aggregate, predicate: Option<&Expr>, scan: &TableScan) -> Result<Option<Spec>> {
    if scan.fetch.is_some() || aggregate.aggr_expr.is_empty() {
        return Ok(None);
    }
    let provider = source_as_provider(&scan.source)?;
    let Some(table) = provider.downcast_ref::<MetricTable>() else {
        return Ok(None);
    };
    // Every condition must narrow the scan exactly.
    let mut pushdown = Pushdown::default();
    let conditions = predicate
        .into_iter()
        .flat_map(|p| split_conjunction(p))
        .chain(scan.filters.iter());
    for condition in conditions {
        if !table.narrow(condition, &mut pushdown) {
            return Ok(None);
        }
    }
    let mut groups = Vec::new();
    let mut width_ms = None;
    for e in &aggregate.group_expr {
        match e {
            Expr::Column(c) if table.tag(&c.name).is_some() => {
                groups.push(Group::Tag(c.name.clone()));
            }
            Expr::ScalarFunction(f) if width_ms.is_none() => {
                let Some(bucket) = f.func.inner().downcast_ref::<TimeBucket>() else {
                    return Ok(None);
                };
                match f.args.as_slice() {
                    [Expr::Column(c), Expr::Literal(width, _)] if c.name == TIME => {
                        width_ms = Some(bucket.width_ms(Some(width))?);
                        groups.push(Group::Bucket);
                    }
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        }
    }
    let mut fields: Vec<String> = Vec::new();
    let mut aggs = Vec::new();
    for e in &aggregate.aggr_expr {
        let Expr::AggregateFunction(f) = e else {
            return Ok(None);
        };
        let Some((func, arg)) = statistic(f) else {
            return Ok(None);
        };
        let column = match arg {
            Arg::Field(column) => column,
            // A row is a time at which any field has a point: with one
            // field, one row per point, which its count counts.
            Arg::Rows => {
                let mut names = table.field_names();
                match (names.next(), names.next()) {
                    (Some(only), None) => only,
                    _ => return Ok(None),
                }
            }
        };
        match table.field_kind(column) {
            Some(Kind::Numeric) => {}
            Some(_) if func == RangeFn::Count => {}
            _ => return Ok(None),
        }
        let field = match fields.iter().position(|n| n == column) {
            Some(i) => i,
            None => {
                fields.push(column.to_owned());
                fields.len() - 1
            }
        };
        aggs.push(Agg { func, field });
    }
    // A row of the table is a time at which any field has a point: the
    // other fields are counted too, so a bucket where only they have
    // points still makes its row (with NULLs, and counts of 0).
    for name in table.field_names() {
        if !fields.iter().any(|f| f == name) {
            fields.push(name.to_owned());
        }
    }
    // The aggregate's output types, under names of the folded table.
    let columns: Vec<Field> = aggregate
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), f.is_nullable()))
        .collect();
    Ok(Some(Spec {
        store: table.store().clone(),
        metric: table.metric().to_owned(),
        budget: table.budget().clone(),
        pushdown,
        width_ms,
        groups,
        aggs,
        fields,
        schema: Arc::new(Schema::new(columns)),
    }))
}

/// What an aggregate reads.
enum Arg<'a> {
    Field(&'a str),
    /// Every row: `count(*)` (which DataFusion plans as `count(1)`) or the
    /// count of another non-null literal.
    Rows,
}

/// The statistic an aggregate call asks for and what it reads; `None` for
/// any other call (DISTINCT, FILTER, ORDER BY, an expression).
fn statistic(f: &AggregateFunction) -> Option<(RangeFn, Arg<'_>)> {
    let p = &f.params;
    if p.distinct || p.filter.is_some() || !p.order_by.is_empty() {
        return None;
    }
    let inner = f.func.inner();
    let func = if inner.is::<Count>() {
        RangeFn::Count
    } else if inner.is::<Sum>() {
        RangeFn::Sum
    } else if inner.is::<min_max::Min>() {
        RangeFn::Min
    } else if inner.is::<min_max::Max>() {
        RangeFn::Max
    } else if inner.is::<Avg>() {
        RangeFn::Avg
    } else {
        return None;
    };
    let column = match p.args.as_slice() {
        [Expr::Column(c)] => c,
        [Expr::Literal(v, _)] if func == RangeFn::Count && !v.is_null() => {
            return Some((func, Arg::Rows));
        }
        // avg(long) reads its argument as a double: the same values.
        [Expr::Cast(cast)]
            if func == RangeFn::Avg && cast.field.data_type() == &DataType::Float64 =>
        {
            match cast.expr.as_ref() {
                Expr::Column(c) => c,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((func, Arg::Field(column.name.as_str())))
}

#[cfg(test)]
mod tests;
