//! The read seam: where an API's queries read. On a single node that is
//! the addressed database itself; on a cluster node it is the cluster's
//! querier (`sundial_cluster::Querier`), which runs each query's
//! per-series half at the shards' owners. OpenTSDB's `/api/query`,
//! `/api/query/last` and Alibaba's `mquery` and `mlast`, Baidu's JSON
//! query, the listings (`/api/suggest`, Baidu's metric, field and tag
//! listings) and SQL's scans (`sundial_sql::run_remote`) read through it
//! so far (docs/cluster.md, "The querier").

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use sundial_model::series_query::{QueryOutput, SeriesQuery};
use sundial_model::{ExportPage, Listed, Listing, Query, SeriesResult, StatsQuery};
use sundial_query::series_query::{Limits, SeriesHalf, StagedRows, execute_series};
use sundial_query::stats::GroupedStats;
use sundial_query::{Budget, Latest};
use sundial_storage::Db;

/// What [`RemoteReads`] calls return.
pub type ReadFuture<'a, T = Vec<SeriesResult>> =
    Pin<Box<dyn Future<Output = sundial_query::Result<T>> + Send + 'a>>;

/// Queries answered by other nodes.
pub trait RemoteReads: Send + Sync + Debug {
    /// One OpenTSDB query over `database`, as `sundial_query::execute`
    /// answers it on a single node with the same points.
    fn opentsdb<'a>(
        &'a self,
        database: &'a str,
        query: &'a Query,
        budget: &'a Budget,
    ) -> ReadFuture<'a>;

    /// One Baidu series query over `database`, as `execute_series`
    /// answers it on a single node with the same points.
    fn series<'a>(
        &'a self,
        database: &'a str,
        query: &'a SeriesQuery,
        limits: Limits,
    ) -> ReadFuture<'a, QueryOutput>;

    /// The newest point of each series `query` selects over `database`,
    /// as `sundial_query::last` answers it on a single node.
    fn last<'a>(
        &'a self,
        database: &'a str,
        query: &'a Query,
        budget: &'a Budget,
    ) -> ReadFuture<'a, Vec<Latest>>;

    /// One listing over `database`, as `sundial_query::list` answers it
    /// on a single node with the same series.
    fn listing<'a>(
        &'a self,
        database: &'a str,
        listing: &'a Listing,
        budget: &'a Budget,
    ) -> ReadFuture<'a, Listed>;

    /// The per-series halves of `query` over `database`, one per owner
    /// (`stage_series_rows` at each): every selected row of every series,
    /// which SQL's scans read on a cluster.
    fn rows<'a>(
        &'a self,
        database: &'a str,
        query: &'a SeriesQuery,
        budget: &'a Budget,
    ) -> ReadFuture<'a, Vec<SeriesHalf>>;

    /// SQL's statistics per group and bucket over `database`
    /// (`stats::grouped_by` at each owner), merged; and the points read.
    fn sql_stats<'a>(
        &'a self,
        database: &'a str,
        query: &'a StatsQuery,
        budget: &'a Budget,
    ) -> ReadFuture<'a, (GroupedStats, u64)>;

    /// How many shards an export walks, one after the other.
    fn shards(&self) -> u32;

    /// One page of `shard`'s part of `database`, read by its owner as
    /// `sundial_query::export_page` reads a single node's database.
    fn export_page<'a>(
        &'a self,
        database: &'a str,
        shard: u32,
        page: &'a ExportPage,
    ) -> ReadFuture<'a, (Vec<StagedRows>, bool)>;
}

/// A shared handle on the server's reads: local unless made remote.
#[derive(Debug, Clone, Default)]
pub struct Reads(Option<Arc<dyn RemoteReads>>);

impl Reads {
    pub fn remote(reads: impl RemoteReads + 'static) -> Self {
        Self(Some(Arc::new(reads)))
    }

    /// Whether queries go to other nodes (this node stores nothing).
    pub fn is_remote(&self) -> bool {
        self.0.is_some()
    }

    /// The other nodes queries go to, if they do.
    pub fn remote_reads(&self) -> Option<&Arc<dyn RemoteReads>> {
        self.0.as_ref()
    }

    /// One OpenTSDB query over `db`. Runs on a blocking thread of the
    /// runtime, where query work runs: a remote read waits there.
    pub fn opentsdb(
        &self,
        db: &Db,
        query: &Query,
        budget: &Budget,
    ) -> sundial_query::Result<Vec<SeriesResult>> {
        match &self.0 {
            None => sundial_query::execute(db, query, budget),
            Some(remote) => runtime()?.block_on(remote.opentsdb(db.name(), query, budget)),
        }
    }

    /// One Baidu series query over `db`, as [`Reads::opentsdb`].
    pub fn series(
        &self,
        db: &Db,
        query: &SeriesQuery,
        limits: Limits,
    ) -> sundial_query::Result<QueryOutput> {
        match &self.0 {
            None => execute_series(db, query, limits),
            Some(remote) => runtime()?.block_on(remote.series(db.name(), query, limits)),
        }
    }

    /// The newest point of each series `query` selects over `db`, as
    /// [`Reads::opentsdb`].
    pub fn last(
        &self,
        db: &Db,
        query: &Query,
        budget: &Budget,
    ) -> sundial_query::Result<Vec<Latest>> {
        match &self.0 {
            None => sundial_query::last(db, query, budget),
            Some(remote) => runtime()?.block_on(remote.last(db.name(), query, budget)),
        }
    }

    /// One listing over `db`, as [`Reads::opentsdb`].
    pub fn listing(
        &self,
        db: &Db,
        listing: &Listing,
        budget: &Budget,
    ) -> sundial_query::Result<Listed> {
        match &self.0 {
            None => sundial_query::list(db, listing, budget),
            Some(remote) => runtime()?.block_on(remote.listing(db.name(), listing, budget)),
        }
    }
}

impl Reads {
    /// How many parts an export walks: one database here, or each shard
    /// of a cluster.
    pub fn export_parts(&self) -> u32 {
        self.0.as_ref().map_or(1, |remote| remote.shards())
    }

    /// One page of part `part` of `db` (see [`Reads::export_parts`]), as
    /// [`Reads::opentsdb`].
    pub fn export_page(
        &self,
        db: &Db,
        part: u32,
        page: &ExportPage,
    ) -> sundial_query::Result<(Vec<StagedRows>, bool)> {
        match &self.0 {
            None => sundial_query::export_page(db, page),
            Some(remote) => runtime()?.block_on(remote.export_page(db.name(), part, page)),
        }
    }
}

/// The runtime a remote read waits on (reads run on its blocking threads).
fn runtime() -> sundial_query::Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current()
        .map_err(|_| sundial_query::Error::Internal("a remote read outside the runtime"))
}
