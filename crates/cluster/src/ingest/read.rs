//! The read side of an ingester: the per-series half of a query over the
//! shards it serves, for a querier (docs/cluster.md, "The querier"). The
//! heads hold every acknowledged point, so a querier that gets an answer
//! for every shard reads its own writes.

use super::Ingester;
use crate::frame::StagedAnswer;
use std::sync::Arc;
use std::time::Duration;
use sundial_model::Query;
use sundial_query::{Budget, StagedSeries, stage_series};

impl Ingester {
    /// [`stage_series`] of `query` over `database` in each of `shards`
    /// this node serves, within `timeout` and `max_points`; the answer
    /// names the shards it covers (the others are not served here).
    pub async fn stage_opentsdb(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<Query>,
        (timeout, max_points): (Duration, usize),
    ) -> sundial_query::Result<StagedAnswer> {
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
        let staged = tokio::task::spawn_blocking(move || {
            let budget = Budget::new(timeout, max_points);
            let mut all = StagedSeries::default();
            for db in dbs {
                let part = stage_series(&db, &query, &budget)?;
                all.series.extend(part.series);
                all.raw_points += part.raw_points;
                all.metric_known |= part.metric_known;
            }
            Ok::<_, sundial_query::Error>(all)
        })
        .await
        .map_err(|_| sundial_query::Error::Internal("a query task panicked"))??;
        Ok(StagedAnswer {
            shards: served,
            staged,
        })
    }
}
