//! Where a statement's tables live: one database on this node, or the
//! shards of a cluster, read through the read seam
//! (`sundial_api::reads::RemoteReads`). A cluster table's columns come
//! from a listing of its metric merged over the shards' owners, its rows
//! from each owner's per-series half of a raw query over the pushed-down
//! time range and tags; DataFusion then runs the statement on those rows
//! at the querier, exactly as over a local scan. An aggregate the scan
//! folds (`aggregate.rs`) is folded at the owners instead, and only the
//! statistics per group and bucket cross (docs/cluster.md, "The querier").

use crate::Budget;
use crate::scan::{Pushdown, SeriesRows};
use datafusion::error::DataFusionError;
use std::sync::Arc;
use sundial_api::reads::RemoteReads;
use sundial_model::series_query::{Branch, Order, SeriesQuery};
use sundial_model::{Kind, Listing, Names, SeriesKey, StatsQuery};
use sundial_query::stats::GroupedStats;
use sundial_storage::Db;

#[derive(Debug, Clone)]
pub(crate) enum Store {
    Local(Db),
    Remote(Arc<Remote>),
}

/// A database whose series other nodes hold.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) reads: Arc<dyn RemoteReads>,
    pub(crate) database: String,
}

/// A table's columns: fields with their kinds and whether every value is
/// a Long, and tag keys; as `MetricTable` types them.
pub(crate) type Columns = (Vec<(String, Kind, bool)>, Vec<String>);

impl Remote {
    /// The columns of `metric`'s table; `None` if it was never written.
    pub(crate) async fn columns(
        &self,
        metric: &str,
        budget: &Budget,
    ) -> Result<Option<Columns>, DataFusionError> {
        let listing = Listing {
            names: Names::Columns {
                metric: metric.to_owned(),
            },
            prefix: String::new(),
            range: None,
            max: usize::MAX,
        };
        let listed = self
            .reads
            .listing(&self.database, &listing, &budget.for_remote())
            .await
            .map_err(external)?;
        if !listed.known {
            return Ok(None);
        }
        let fields = listed
            .fields
            .into_iter()
            .map(|(name, kind)| {
                let all_long = kind == Kind::Numeric && !listed.not_long.contains(&name);
                (name, kind, all_long)
            })
            .collect();
        Ok(Some((fields, listed.names.into_iter().collect())))
    }

    /// The selected series' rows of `fields` (values in that order) with
    /// the values of tag keys `tags`, sorted by series key. Waits on the
    /// runtime: the scan calls it from a blocking thread.
    pub(crate) fn rows(
        &self,
        metric: &str,
        fields: &[String],
        tags: &[&str],
        pushdown: &Pushdown,
        budget: &Budget,
    ) -> Result<Vec<SeriesRows>, DataFusionError> {
        if fields.is_empty() || pushdown.start > pushdown.end {
            return Ok(Vec::new());
        }
        let query = raw_query(metric, fields, pushdown);
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| DataFusionError::Internal("a remote scan outside the runtime".into()))?;
        let halves = runtime
            .block_on(
                self.reads
                    .rows(&self.database, &query, &budget.for_remote()),
            )
            .map_err(external)?;
        let mut series: Vec<(SeriesKey, SeriesRows)> = Vec::new();
        for half in halves {
            budget.take(usize::try_from(half.consumed).unwrap_or(usize::MAX))?;
            for (key, rows) in half.series {
                let rows = SeriesRows {
                    tags: tags.iter().map(|t| key.tag(t).map(str::to_owned)).collect(),
                    rows: rows.into_iter().map(|(t, v)| (t, v.into_vec())).collect(),
                };
                series.push((key, rows));
            }
        }
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(series.into_iter().map(|(_, rows)| rows).collect())
    }
}

impl Remote {
    /// SQL's statistics per group and bucket, folded at the owners and
    /// merged; and the points they read. Waits on the runtime, as
    /// [`Remote::rows`].
    pub(crate) fn stats(
        &self,
        query: &StatsQuery,
        budget: &sundial_query::Budget,
    ) -> sundial_query::Result<(GroupedStats, u64)> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| sundial_query::Error::Internal("a remote scan outside the runtime"))?;
        runtime.block_on(self.reads.sql_stats(&self.database, query, budget))
    }
}

/// Every stored row of `fields` in the pushed-down range and tags.
fn raw_query(metric: &str, fields: &[String], pushdown: &Pushdown) -> SeriesQuery {
    SeriesQuery {
        metric: metric.to_owned(),
        fields: fields.to_vec(),
        branches: vec![Branch {
            start: pushdown.start,
            end: pushdown.end,
            tags: pushdown.tags.clone(),
            values: Vec::new(),
        }],
        group_by: Vec::new(),
        grouped: false,
        aggregators: Vec::new(),
        fills: vec![None; fields.len()],
        tag_columns: Vec::new(),
        order: Order::Asc,
        limit: usize::MAX,
        offset: 0,
        marker: None,
        now: pushdown.end,
    }
}

fn external(e: sundial_query::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests;
