//! The querier (docs/cluster.md, "The querier"): a query's per-series
//! half runs where a series' shard can be read whole, and the querier
//! merges the halves and runs the group half. On a node that reads the
//! blocks itself (`blocks.rs`) that is here, over copies of the owners'
//! checkpoints with their newer points laid over them; otherwise, and
//! for what the copies cannot answer, at the owners of the shards (a
//! series lives in one shard), each owner answering for all the shards
//! it holds, so only staged series (OpenTSDB), per-bucket statistics of
//! groups or selected rows (Baidu) cross the network: 24 values per
//! series for an hourly downsample of a day, not 1 440 points.
//!
//! Every shard must be answered for exactly once: a shard whose owner
//! no longer holds it is asked of the owner PostgreSQL names next; one
//! without an owner, or still unanswered after that, makes the query a
//! busy answer ("would be partial") rather than a silently short one.
use crate::halves::{counted_stats, newest_half};
use crate::owners::Peers;
use crate::replica::Replicas;
use crate::transport::{DELETE_PATH, DROP_PATH, RETENTION_PATH, StageRequest};
use crate::{Error, FrameClient, Result};
use blocks::{Local, Reads};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use sundial_api::deletes::RemoteDeletes;
use sundial_api::reads::{ReadFuture, RemoteReads};
use sundial_api::shared::ShardedData;
use sundial_model::series_query::{QueryOutput, SeriesQuery};
use sundial_model::{
    Deleted, Deletion, ErrorClass, ExportPage, Listed, Listing, Names, Query, SeriesResult,
    StatsQuery,
};
use sundial_query::series_query::{
    Limits, SeriesHalf, StagedRows, finish_folded, finish_series, folds, stage_folded,
    stage_series_rows,
};
use sundial_query::stats::{GroupedStats, merge_grouped};
use sundial_query::{Budget, Latest, StagedSeries, finish, stage_series};
use sundial_storage::Db;
use tracing::{debug, warn};

/// How long a listing waits for PostgreSQL's names before it asks the
/// owners instead.
const NAMES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs queries over the cluster's shards; clones share the owner cache
/// and the connections.
#[derive(Debug, Clone)]
pub struct Querier {
    pub(crate) inner: Arc<Peers>,
    /// Copies of the shard databases, when this node reads the blocks
    /// itself (`blocks.rs`); `None`: the owners run the per-series half.
    pub(crate) blocks: Option<Arc<Replicas>>,
}

mod blocks;

impl Querier {
    /// A querier over `shards` shards whose owners PostgreSQL at
    /// `postgres_url` lists, asking them with `client`.
    pub async fn new(postgres_url: &str, shards: u32, client: FrameClient) -> Result<Self> {
        Ok(Self {
            inner: Peers::connect(postgres_url, shards, client).await?,
            blocks: None,
        })
    }

    /// This querier reading the shards' blocks itself into `replicas`,
    /// and only what is newer than their checkpoints from the owners.
    pub fn reading_blocks(mut self, replicas: Arc<Replicas>) -> Self {
        self.blocks = Some(replicas);
        self
    }

    /// The shard copies this querier reads, when it reads the blocks.
    pub fn replicas(&self) -> Option<Arc<Replicas>> {
        self.blocks.clone()
    }

    /// One OpenTSDB query over `database` in every shard: what
    /// `sundial_query::execute` gives on a single node with the same
    /// points.
    pub async fn opentsdb(
        &self,
        database: &str,
        query: &Query,
        budget: &Budget,
    ) -> sundial_query::Result<Vec<SeriesResult>> {
        let halves = self
            .stage(database, query, budget)
            .await
            .map_err(query_error)?;
        finish(query, halves, budget)
    }

    /// One Baidu series query over `database` in every shard: what
    /// `execute_series` gives on a single node with the same points.
    pub async fn series(
        &self,
        database: &str,
        query: &SeriesQuery,
        limits: Limits,
    ) -> sundial_query::Result<QueryOutput> {
        let budget = Budget::new(limits.timeout, limits.max_points);
        if folds(query) {
            // Per group and bucket statistics, not rows.
            let local = local_half(Reads::baidu(query), {
                let (query, max_groups) = (query.clone(), limits.max_groups);
                move |db: &Db, budget: &Budget| stage_folded(db, &query, budget, max_groups)
            });
            let halves = self
                .gather_local(database, &budget, local, |address, shards| {
                    let mut request = request(database, shards, query.clone(), &budget);
                    request.max_groups = limits.max_groups;
                    async move {
                        let answer = self.inner.client.stage_folded(&address, &request).await?;
                        Ok((answer.shards, answer.half))
                    }
                })
                .await
                .map_err(query_error)?;
            return finish_folded(query, halves, limits);
        }
        let halves = self.rows(database, query, &budget).await?;
        finish_series(query, halves, limits)
    }

    /// The per-series halves of a Baidu query over `database`, one per
    /// owner: every selected row of every series.
    pub async fn rows(
        &self,
        database: &str,
        query: &SeriesQuery,
        budget: &Budget,
    ) -> sundial_query::Result<Vec<SeriesHalf>> {
        let local = local_half(Reads::baidu(query), {
            let query = query.clone();
            move |db: &Db, budget: &Budget| stage_series_rows(db, &query, budget)
        });
        self.gather_local(database, budget, local, |address, shards| {
            let request = request(database, shards, query.clone(), budget);
            async move {
                let answer = self.inner.client.stage_rows(&address, &request).await?;
                Ok((answer.shards, answer.half))
            }
        })
        .await
        .map_err(query_error)
    }

    /// The newest point of each series an OpenTSDB `query` selects over
    /// `database` in every shard: what `sundial_query::last` gives on a
    /// single node (a series lives in one shard, so the owners' answers
    /// only interleave).
    pub async fn last(
        &self,
        database: &str,
        query: &Query,
        budget: &Budget,
    ) -> sundial_query::Result<Vec<Latest>> {
        let local = local_half(Reads::opentsdb(query, true), {
            let query = query.clone();
            move |db: &Db, budget: &Budget| {
                Ok(newest_half(sundial_query::last(db, &query, budget)?))
            }
        });
        let halves = self
            .gather_local(database, budget, local, |address, shards| {
                let request = request(database, shards, query.clone(), budget);
                async move {
                    let answer = self.inner.client.last(&address, &request).await?;
                    Ok((answer.shards, answer.half))
                }
            })
            .await
            .map_err(query_error)?;
        let mut found: Vec<Latest> = halves
            .into_iter()
            .flat_map(|half| half.series)
            .filter_map(|(key, mut rows)| {
                let (t, mut values) = rows.pop()?;
                Some((key, t, values.pop().flatten()?))
            })
            .collect();
        found.sort_by(|a, b| a.0.tags.cmp(&b.0.tags));
        Ok(found)
    }

    /// One listing over `database` in every shard, what
    /// `sundial_query::list` gives on a single node: from the listing
    /// names in PostgreSQL when they answer it (no time range), else (or
    /// while PostgreSQL cannot be read) the union of the owners'.
    pub async fn listing(
        &self,
        database: &str,
        listing: &Listing,
        budget: &Budget,
    ) -> sundial_query::Result<Listed> {
        let from_names = self.listing_from_names(database, listing);
        match tokio::time::timeout(NAMES_TIMEOUT, from_names).await {
            Ok(Ok(Some(listed))) => return Ok(listed),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => debug!(error = %e, "cannot read the listing names; asking the owners"),
            Err(_) => debug!("the listing names did not answer in time; asking the owners"),
        }
        self.listing_from_owners(database, listing, budget).await
    }

    async fn listing_from_names(
        &self,
        database: &str,
        listing: &Listing,
    ) -> Result<Option<Listed>> {
        let owners = &self.inner.owners;
        let meta = owners.meta().await?;
        owners
            .forget_on_error(meta.list_names(database, listing).await)
            .await
    }

    /// [`Querier::listing`] by the shards' owners, one request each.
    async fn listing_from_owners(
        &self,
        database: &str,
        listing: &Listing,
        budget: &Budget,
    ) -> sundial_query::Result<Listed> {
        let parts = self
            .gather(|address, shards| {
                let request = request(database, shards, listing.clone(), budget);
                async move {
                    let answer = self.inner.client.list(&address, &request).await?;
                    Ok((answer.shards, answer.listed))
                }
            })
            .await
            .map_err(query_error)?;
        let mut listed = Listed::default();
        for part in parts {
            listed.merge(part, listing.max);
        }
        Ok(listed)
    }

    /// SQL's statistics per group and bucket over `database` in every
    /// shard, merged as one database's would be; and the points the
    /// owners read.
    pub async fn sql_stats(
        &self,
        database: &str,
        query: &StatsQuery,
        budget: &Budget,
    ) -> sundial_query::Result<(GroupedStats, u64)> {
        let local = local_half(Reads::stats(query), {
            let query = query.clone();
            move |db: &Db, budget: &Budget| counted_stats(db, &query, budget)
        });
        let parts = self
            .gather_local(database, budget, local, |address, shards| {
                let request = request(database, shards, query.clone(), budget);
                async move {
                    let answer = self.inner.client.sql_stats(&address, &request).await?;
                    Ok((answer.shards, (answer.groups, answer.points)))
                }
            })
            .await
            .map_err(query_error)?;
        let mut groups = GroupedStats::new();
        let mut points = 0;
        for (part, read) in parts {
            merge_grouped(&mut groups, part);
            points += read;
        }
        Ok((groups, points))
    }

    /// One export page of `database` in `shard`, from the shard's owner
    /// (asked again, once, of the next owner when the shard moved): the
    /// series' rows, and whether series follow.
    pub async fn export_page(
        &self,
        database: &str,
        shard: u32,
        page: &ExportPage,
    ) -> sundial_query::Result<(Vec<StagedRows>, bool)> {
        let owners = &self.inner.owners;
        for attempt in 0..2 {
            let refreshed = match attempt {
                0 => owners.refresh_if_stale().await,
                _ => owners.refresh().await,
            };
            refreshed.map_err(query_error)?;
            let Some(owner) = owners.owner(shard) else {
                continue;
            };
            let request = unbudgeted(database, vec![shard], page.clone());
            let answer = self
                .inner
                .client
                .export_page(&owner.address, &request)
                .await;
            let answer = answer.map_err(|e| {
                owners.mark_stale();
                query_error(e)
            })?;
            if answer.rows.shards.contains(&shard) {
                return Ok((answer.rows.half.series, answer.more));
            }
        }
        Err(query_error(Error::Moving { shard }))
    }

    /// Runs `deletion` over `database` in every shard: each owner deletes
    /// in its shards and checkpoints them before it answers (see
    /// `Ingester::delete`). The points deleted.
    pub async fn delete(&self, database: &str, deletion: &Deletion) -> sundial_query::Result<u64> {
        let deleted = self.change_all(database, DELETE_PATH, deletion).await?;
        if deletion.what == Deleted::Series {
            self.forget_kinds_if_gone(database, &deletion.metric)
                .await?;
        }
        Ok(deleted)
    }

    /// Forgets `metric`'s field kinds once no shard holds a series of it,
    /// as a single node forgets them with the metric's last series.
    async fn forget_kinds_if_gone(
        &self,
        database: &str,
        metric: &str,
    ) -> sundial_query::Result<()> {
        let any = Listing {
            names: Names::Series {
                metric: Some(metric.to_owned()),
                tags: Vec::new(),
                any_values: Vec::new(),
            },
            prefix: String::new(),
            range: None,
            max: 0,
        };
        let budget = Budget::new(std::time::Duration::from_secs(60), usize::MAX);
        if self
            .listing_from_owners(database, &any, &budget)
            .await?
            .series
            .is_empty()
        {
            let forgot = self.inner.owners.forget_kinds(database, metric).await;
            forgot.map_err(query_error)?;
        }
        Ok(())
    }

    /// Has every shard's owner keep `secs` of `database`'s data (0: all)
    /// now (`/api/ttl`, which the owners would otherwise apply within a
    /// second): the shard databases changed.
    pub async fn set_retention(&self, database: &str, secs: u64) -> sundial_query::Result<u64> {
        self.change_all(database, RETENTION_PATH, &secs).await
    }

    /// Has every shard's owner checkpoint its shard and merge all of its
    /// adjacent blocks now (`/admin/compact` on a cluster node), one shard
    /// after the other: the blocks retired.
    pub async fn compact_all(&self) -> Result<usize> {
        let owners = &self.inner.owners;
        owners.refresh().await?;
        let mut retired = 0;
        for shard in 0..self.inner.shards {
            let owner = owners.owner(shard).ok_or(Error::NoOwner { shard })?;
            retired += self
                .inner
                .client
                .compact(&owner.address, shard, true)
                .await?;
        }
        Ok(retired)
    }

    /// Drops `database` from every shard (see `Ingester::drop_database`):
    /// the objects retired for the compactor.
    pub async fn drop_database(&self, database: &str) -> sundial_query::Result<u64> {
        self.change_all(database, DROP_PATH, &()).await
    }

    /// Asks every shard's owner for the change `query` at `path` (no query
    /// budget: owners rewrite blocks and checkpoint, as a single node
    /// does, within the client's own time): the sum of what they changed.
    async fn change_all<Q: serde::Serialize + Clone>(
        &self,
        database: &str,
        path: &str,
        query: &Q,
    ) -> sundial_query::Result<u64> {
        let parts = self
            .gather(|address, shards| {
                let request = unbudgeted(database, shards, query.clone());
                async move {
                    let answer = self.inner.client.change(&address, path, &request).await?;
                    Ok((answer.shards, answer.count))
                }
            })
            .await
            .map_err(query_error)?;
        Ok(parts.into_iter().sum())
    }

    async fn stage(
        &self,
        database: &str,
        query: &Query,
        budget: &Budget,
    ) -> Result<Vec<StagedSeries>> {
        let local = local_half(Reads::opentsdb(query, false), {
            let query = query.clone();
            move |db: &Db, budget: &Budget| stage_series(db, &query, budget)
        });
        self.gather_local(database, budget, local, |address, shards| {
            let request = request(database, shards, query.clone(), budget);
            async move {
                let answer = self.inner.client.stage(&address, &request).await?;
                Ok((answer.shards, answer.staged))
            }
        })
        .await
    }

    /// Asks each owner, all at once, for its shards' part (`ask` gives
    /// the shards an answer covers and the part), until every shard is
    /// answered for once.
    async fn gather<T, F>(&self, ask: impl Fn(String, Vec<u32>) -> F) -> Result<Vec<T>>
    where
        F: Future<Output = Result<(Vec<u32>, T)>>,
    {
        let parts = self
            .gather_parts(|address, shards| {
                let part = ask(address, shards);
                async move {
                    let (shards, part) = part.await?;
                    Ok((shards, vec![part]))
                }
            })
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// [`Querier::gather`] with answers of any number of parts.
    async fn gather_parts<T, F>(&self, ask: impl Fn(String, Vec<u32>) -> F) -> Result<Vec<T>>
    where
        F: Future<Output = Result<(Vec<u32>, T)>>,
    {
        let owners = &self.inner.owners;
        let mut wanted: BTreeSet<u32> = (0..self.inner.shards).collect();
        let mut parts = Vec::new();
        for attempt in 0..2 {
            if attempt > 0 {
                owners.refresh().await?;
            } else {
                owners.refresh_if_stale().await?;
            }
            if let Some(shard) = owners.missing(wanted.iter().copied()) {
                if attempt == 0 {
                    continue;
                }
                return Err(Error::NoOwner { shard });
            }
            let mut by_owner: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for shard in &wanted {
                if let Some(owner) = owners.owner(*shard) {
                    by_owner.entry(owner.address).or_default().push(*shard);
                }
            }
            let answers = futures::future::join_all(
                by_owner
                    .into_iter()
                    .map(|(address, shards)| ask(address, shards)),
            )
            .await;
            for answer in answers {
                match answer {
                    Ok((shards, part)) => {
                        for shard in &shards {
                            wanted.remove(shard);
                        }
                        parts.push(part);
                    }
                    Err(e @ (Error::Peer { .. } | Error::PeerBusy { .. })) => {
                        warn!(error = %e, "a shard owner did not answer a query");
                        owners.mark_stale();
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            if wanted.is_empty() {
                return Ok(parts);
            }
        }
        Err(Error::Moving {
            shard: wanted.first().copied().unwrap_or_default(),
        })
    }
}

/// A per-series half to run here over what `reads` names.
fn local_half<T>(
    reads: Reads,
    run: impl Fn(&Db, &Budget) -> sundial_query::Result<T> + Send + Sync + 'static,
) -> Local<T> {
    Local {
        reads,
        run: Arc::new(run),
    }
}

/// One owner's request for a change (or an export page): no deadline or
/// point budget of a query.
fn unbudgeted<Q>(database: &str, shards: Vec<u32>, query: Q) -> StageRequest<Q> {
    StageRequest {
        database: database.to_owned(),
        shards,
        query,
        timeout_ms: 0,
        max_points: 0,
        max_groups: 0,
    }
}

/// One owner's request: its shards, and what is left of the budget.
fn request<Q>(database: &str, shards: Vec<u32>, query: Q, budget: &Budget) -> StageRequest<Q> {
    StageRequest {
        database: database.to_owned(),
        shards,
        query,
        timeout_ms: u64::try_from(budget.time_left().as_millis()).unwrap_or(u64::MAX),
        max_points: budget.left(),
        max_groups: 0,
    }
}

impl RemoteReads for Querier {
    fn opentsdb<'a>(
        &'a self,
        database: &'a str,
        query: &'a Query,
        budget: &'a Budget,
    ) -> ReadFuture<'a> {
        Box::pin(Querier::opentsdb(self, database, query, budget))
    }

    fn series<'a>(
        &'a self,
        database: &'a str,
        query: &'a SeriesQuery,
        limits: Limits,
    ) -> ReadFuture<'a, QueryOutput> {
        Box::pin(Querier::series(self, database, query, limits))
    }

    fn last<'a>(
        &'a self,
        database: &'a str,
        query: &'a Query,
        budget: &'a Budget,
    ) -> ReadFuture<'a, Vec<Latest>> {
        Box::pin(Querier::last(self, database, query, budget))
    }

    fn listing<'a>(
        &'a self,
        database: &'a str,
        listing: &'a Listing,
        budget: &'a Budget,
    ) -> ReadFuture<'a, Listed> {
        Box::pin(Querier::listing(self, database, listing, budget))
    }

    fn rows<'a>(
        &'a self,
        database: &'a str,
        query: &'a SeriesQuery,
        budget: &'a Budget,
    ) -> ReadFuture<'a, Vec<SeriesHalf>> {
        Box::pin(Querier::rows(self, database, query, budget))
    }

    fn sql_stats<'a>(
        &'a self,
        database: &'a str,
        query: &'a StatsQuery,
        budget: &'a Budget,
    ) -> ReadFuture<'a, (GroupedStats, u64)> {
        Box::pin(Querier::sql_stats(self, database, query, budget))
    }

    fn shards(&self) -> u32 {
        self.inner.shards
    }

    fn export_page<'a>(
        &'a self,
        database: &'a str,
        shard: u32,
        page: &'a ExportPage,
    ) -> ReadFuture<'a, (Vec<StagedRows>, bool)> {
        Box::pin(Querier::export_page(self, database, shard, page))
    }
}

impl RemoteDeletes for Querier {
    fn delete<'a>(&'a self, database: &'a str, deletion: &'a Deletion) -> ReadFuture<'a, u64> {
        Box::pin(Querier::delete(self, database, deletion))
    }
}

/// Blocks: called off the async workers, inside the runtime.
impl ShardedData for Querier {
    fn drop_database(&self, database: &str) -> std::io::Result<u64> {
        blocking_on(Querier::drop_database(self, database))
    }

    fn set_retention(&self, database: &str, secs: u64) -> std::io::Result<u64> {
        blocking_on(Querier::set_retention(self, database, secs))
    }
}

fn blocking_on<T>(work: impl Future<Output = sundial_query::Result<T>>) -> std::io::Result<T> {
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    runtime
        .block_on(work)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// A cluster failure in the query's terms: anything a retry can fix is
/// busy, and says the answer would have been partial.
fn query_error(e: Error) -> sundial_query::Error {
    if let Error::Query(e) = e {
        return e;
    }
    let class = match &e {
        Error::PeerRefused { class, .. } => *class,
        Error::NotOwner { .. }
        | Error::Moving { .. }
        | Error::NoOwner { .. }
        | Error::PeerBusy { .. }
        | Error::Peer { .. }
        | Error::Postgres(_) => ErrorClass::Busy,
        _ => ErrorClass::Internal,
    };
    let message = match (&e, class) {
        (Error::PeerRefused { message, .. }, _) => message.clone(),
        (_, ErrorClass::Busy) => format!("the answer would be partial: {e}; retry"),
        _ => e.to_string(),
    };
    sundial_query::Error::Remote { message, class }
}
