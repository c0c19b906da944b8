//! The read side of an ingester: the per-series half of a query over the
//! shards it serves, for a querier (docs/cluster.md, "The querier"). The
//! heads hold every acknowledged point, so a querier that gets an answer
//! for every shard reads its own writes.

use super::{Ingester, Shard, ShardDb};
use crate::frame::{ExportAnswer, FoldedAnswer, RowsAnswer, StagedAnswer, StatsAnswer};
use crate::halves::{counted_stats, newest_half};
use crate::transport::ListedAnswer;
use std::sync::Arc;
use std::time::Duration;
use sundial_model::series_query::SeriesQuery;
use sundial_model::{ExportPage, Listed, Listing, Query, StatsQuery};
use sundial_query::series_query::{FoldedHalf, SeriesHalf, stage_folded, stage_series_rows};
use sundial_query::stats::merge_grouped;
use sundial_query::{Budget, StagedSeries, stage_series};
use sundial_storage::Db;
use tracing::warn;

impl Ingester {
    /// [`stage_series`] of an OpenTSDB `query` over `database` in each of
    /// `shards` this node serves; the answer names the shards it covers
    /// (the others are not served here).
    pub async fn stage_opentsdb(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<Query>,
        allowance: (Duration, usize),
    ) -> sundial_query::Result<StagedAnswer> {
        let each = move |db: &Db, budget: &Budget| stage_series(db, &query, budget);
        let (shards, parts) = self.stage_each(database, shards, allowance, each).await?;
        let mut staged = StagedSeries::default();
        for part in parts {
            staged.series.extend(part.series);
            staged.raw_points += part.raw_points;
            staged.metric_known |= part.metric_known;
        }
        Ok(StagedAnswer { shards, staged })
    }

    /// [`stage_series_rows`] of a Baidu series `query`, as
    /// [`Ingester::stage_opentsdb`].
    pub async fn stage_series_query(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<SeriesQuery>,
        allowance: (Duration, usize),
    ) -> sundial_query::Result<RowsAnswer> {
        let mut half = SeriesHalf {
            kinds: vec![None; query.fields.len()],
            ..SeriesHalf::default()
        };
        let each = move |db: &Db, budget: &Budget| stage_series_rows(db, &query, budget);
        let (shards, parts) = self.stage_each(database, shards, allowance, each).await?;
        for part in parts {
            merge_kinds(&mut half.kinds, part.kinds);
            half.series.extend(part.series);
            half.consumed += part.consumed;
            half.raw += part.raw;
        }
        Ok(RowsAnswer { shards, half })
    }

    /// [`stage_folded`] of a Baidu series `query` that folds per bucket,
    /// as [`Ingester::stage_opentsdb`]; `max_groups` as the querier's.
    pub async fn stage_folded_query(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<SeriesQuery>,
        allowance: (Duration, usize),
        max_groups: usize,
    ) -> sundial_query::Result<FoldedAnswer> {
        let mut half = FoldedHalf {
            kinds: vec![None; query.fields.len()],
            ..FoldedHalf::default()
        };
        let each = move |db: &Db, budget: &Budget| stage_folded(db, &query, budget, max_groups);
        let (shards, parts) = self.stage_each(database, shards, allowance, each).await?;
        for part in parts {
            merge_kinds(&mut half.kinds, part.kinds);
            half.points += part.points;
            // The querier merges groups by their values.
            half.groups.extend(part.groups);
        }
        Ok(FoldedAnswer { shards, half })
    }

    /// SQL's statistics per group and bucket ([`grouped_by`]) over
    /// `database` in each of `shards` this node serves, merged, as
    /// [`Ingester::stage_opentsdb`].
    pub async fn sql_stats(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<StatsQuery>,
        allowance: (Duration, usize),
    ) -> sundial_query::Result<StatsAnswer> {
        let fields = query.fields.len();
        let each = move |db: &Db, budget: &Budget| counted_stats(db, &query, budget);
        let (shards, parts) = self.stage_each(database, shards, allowance, each).await?;
        let mut answer = StatsAnswer {
            shards,
            fields,
            ..StatsAnswer::default()
        };
        for (groups, points) in parts {
            merge_grouped(&mut answer.groups, groups);
            answer.points += points;
        }
        Ok(answer)
    }

    /// The newest point of each series an OpenTSDB `query` selects
    /// (`sundial_query::last`) over `database` in each of `shards` this
    /// node serves, as [`Ingester::stage_opentsdb`]: each series a
    /// one-row half of a single field.
    pub async fn last(
        &self,
        database: &str,
        shards: &[u32],
        query: Arc<Query>,
        allowance: (Duration, usize),
    ) -> sundial_query::Result<RowsAnswer> {
        let each = move |db: &Db, budget: &Budget| sundial_query::last(db, &query, budget);
        let (shards, parts) = self.stage_each(database, shards, allowance, each).await?;
        let half = newest_half(parts.into_iter().flatten());
        Ok(RowsAnswer { shards, half })
    }

    /// A listing over `database` in each of `shards` this node serves,
    /// merged, as [`Ingester::stage_opentsdb`].
    pub async fn list(
        &self,
        database: &str,
        shards: &[u32],
        listing: Arc<Listing>,
        allowance: (Duration, usize),
    ) -> sundial_query::Result<ListedAnswer> {
        let max = listing.max;
        let each = move |db: &Db, budget: &Budget| sundial_query::list(db, &listing, budget);
        let (shards, parts) = self.stage_each(database, shards, allowance, each).await?;
        let mut listed = Listed::default();
        for part in parts {
            listed.merge(part, max);
        }
        Ok(ListedAnswer { shards, listed })
    }

    /// One export page of `database` in `shard`, when this node serves
    /// it (the answer's shards are empty otherwise): the series' rows, a
    /// column per field of the page.
    pub async fn export_page(
        &self,
        database: &str,
        shard: u32,
        page: Arc<ExportPage>,
    ) -> sundial_query::Result<ExportAnswer> {
        let fields = page.fields.len();
        // Pages are small (a run of series); exports have no deadline.
        let allowance = (Duration::from_secs(3600), usize::MAX);
        let each = move |db: &Db, _: &Budget| sundial_query::export_page(db, &page);
        let (shards, parts) = self.stage_each(database, &[shard], allowance, each).await?;
        let mut answer = ExportAnswer::default();
        answer.rows.shards = shards;
        answer.rows.half.kinds = vec![None; fields];
        for (series, more) in parts {
            answer.rows.half.series.extend(series);
            answer.more |= more;
        }
        Ok(answer)
    }

    /// `each` over `database` in each of `shards` this node serves, off
    /// the async workers under one budget: the shards covered and a part
    /// per database.
    async fn stage_each<T: Send + 'static>(
        &self,
        database: &str,
        shards: &[u32],
        (timeout, max_points): (Duration, usize),
        each: impl Fn(&Db, &Budget) -> sundial_query::Result<T> + Send + 'static,
    ) -> sundial_query::Result<(Vec<u32>, Vec<T>)> {
        let (served, dbs) = self.serving(database, shards).await;
        let parts = tokio::task::spawn_blocking(move || {
            let budget = Budget::new(timeout, max_points);
            dbs.iter()
                .map(|db| each(db, &budget))
                .collect::<sundial_query::Result<Vec<T>>>()
        })
        .await
        .map_err(|_| sundial_query::Error::Internal("a query task panicked"))??;
        Ok((served, parts))
    }

    /// Which of `shards` this node serves, and `database` in those that
    /// have it.
    async fn serving(&self, database: &str, shards: &[u32]) -> (Vec<u32>, Vec<Db>) {
        self.serving_with(database, shards, |_, d| d.db.clone())
            .await
    }

    /// Which of `shards` this node serves, and `pick` of `database` in
    /// those that have it (under the shard's lock). A shard whose lease
    /// PostgreSQL has not confirmed lately is served only while its log
    /// still ends where this node left it: then no other owner has fenced
    /// it, and the heads hold every point.
    pub(super) async fn serving_with<T>(
        &self,
        database: &str,
        shards: &[u32],
        pick: impl Fn(&Shard, &ShardDb) -> T,
    ) -> (Vec<u32>, Vec<T>) {
        let (mut served, mut picked) = (Vec::new(), Vec::new());
        for &number in shards {
            let Ok(shard) = self.shard(number) else {
                continue;
            };
            // Held across the check, so no write of ours moves the end.
            let state = shard.state.lock().await;
            // A local log ends where this node left it whoever owns the
            // shard now: only the lease tells.
            if !shard.confirmed()
                && (self.inner.wal.is_local() || !self.log_ends_at(number, state.log_end).await)
            {
                continue;
            }
            served.push(number);
            if let Some(d) = state.databases.get(database) {
                picked.push(pick(&shard, d));
            }
        }
        (served, picked)
    }

    async fn log_ends_at(&self, shard: u32, end: u64) -> bool {
        match self.inner.wal.last_position(shard).await {
            Ok(last) => last == end,
            Err(e) => {
                warn!(shard, error = %e, "cannot read where the shard's log ends");
                false
            }
        }
    }
}

/// Each field's kind in the first part that knows it.
fn merge_kinds(
    kinds: &mut [Option<sundial_model::Kind>],
    theirs: Vec<Option<sundial_model::Kind>>,
) {
    for (kind, theirs) in kinds.iter_mut().zip(theirs) {
        *kind = kind.or(theirs);
    }
}
