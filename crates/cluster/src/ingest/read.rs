//! The read side of an ingester: the per-series half of a query over the
//! shards it serves, for a querier (docs/cluster.md, "The querier"). The
//! heads hold every acknowledged point, so a querier that gets an answer
//! for every shard reads its own writes.

use super::Ingester;
use crate::frame::{FoldedAnswer, RowsAnswer, StagedAnswer};
use std::sync::Arc;
use std::time::Duration;
use sundial_model::Query;
use sundial_model::series_query::SeriesQuery;
use sundial_query::series_query::{FoldedHalf, SeriesHalf, stage_folded, stage_series_rows};
use sundial_query::{Budget, StagedSeries, stage_series};
use sundial_storage::Db;

impl Ingester {
    /// [`stage_series`] of an OpenTSDB `query` over `database` in each of
    /// `shards` this node serves; the answer names the shards it covers
    /// (the others are not served here).
    pub async fn stage_opentsdb(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<Query>,
        (timeout, max_points): (Duration, usize),
    ) -> sundial_query::Result<StagedAnswer> {
        let (served, dbs) = self.serving(database, shards).await;
        let staged = off_workers(move || {
            let budget = Budget::new(timeout, max_points);
            let mut all = StagedSeries::default();
            for db in dbs {
                let part = stage_series(&db, &query, &budget)?;
                all.series.extend(part.series);
                all.raw_points += part.raw_points;
                all.metric_known |= part.metric_known;
            }
            Ok(all)
        })
        .await?;
        Ok(StagedAnswer {
            shards: served,
            staged,
        })
    }

    /// [`stage_series_rows`] of a Baidu series `query`, as
    /// [`Ingester::stage_opentsdb`].
    pub async fn stage_series_query(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<SeriesQuery>,
        (timeout, max_points): (Duration, usize),
    ) -> sundial_query::Result<RowsAnswer> {
        let (served, dbs) = self.serving(database, shards).await;
        let half = off_workers(move || {
            let budget = Budget::new(timeout, max_points);
            let mut all = SeriesHalf {
                kinds: vec![None; query.fields.len()],
                ..SeriesHalf::default()
            };
            for db in dbs {
                let part = stage_series_rows(&db, &query, &budget)?;
                for (kind, theirs) in all.kinds.iter_mut().zip(part.kinds) {
                    *kind = kind.or(theirs);
                }
                all.series.extend(part.series);
                all.consumed += part.consumed;
                all.raw += part.raw;
            }
            Ok(all)
        })
        .await?;
        Ok(RowsAnswer {
            shards: served,
            half,
        })
    }

    /// [`stage_folded`] of a Baidu series `query` that folds per bucket,
    /// as [`Ingester::stage_opentsdb`]; `max_groups` as the querier's.
    pub async fn stage_folded_query(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<SeriesQuery>,
        (timeout, max_points): (Duration, usize),
        max_groups: usize,
    ) -> sundial_query::Result<FoldedAnswer> {
        let (served, dbs) = self.serving(database, shards).await;
        let half = off_workers(move || {
            let budget = Budget::new(timeout, max_points);
            let mut all = FoldedHalf {
                kinds: vec![None; query.fields.len()],
                ..FoldedHalf::default()
            };
            for db in dbs {
                let part = stage_folded(&db, &query, &budget, max_groups)?;
                for (kind, theirs) in all.kinds.iter_mut().zip(part.kinds) {
                    *kind = kind.or(theirs);
                }
                all.points += part.points;
                // The querier merges groups by their values.
                all.groups.extend(part.groups);
            }
            Ok(all)
        })
        .await?;
        Ok(FoldedAnswer {
            shards: served,
            half,
        })
    }

    /// Which of `shards` this node serves, and `database` in those that
    /// have it.
    async fn serving(&self, database: &str, shards: &[u32]) -> (Vec<u32>, Vec<Db>) {
        let (mut served, mut dbs) = (Vec::new(), Vec::new());
        for &number in shards {
            let Ok(shard) = self.shard(number) else {
                continue;
            };
            let state = shard.state.lock().await;
            served.push(number);
            if let Some(d) = state.databases.get(database) {
                dbs.push(d.db.clone());
            }
        }
        (served, dbs)
    }
}

/// Query work runs off the async workers.
async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> sundial_query::Result<T> + Send + 'static,
) -> sundial_query::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| sundial_query::Error::Internal("a query task panicked"))?
}
