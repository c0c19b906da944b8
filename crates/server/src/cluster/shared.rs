//! Metadata a cluster's nodes share and each applies to what it holds:
//! Baidu's databases (every node opens a handle on each), `/api/ttl`'s
//! values (every ingester applies them to its shards) and the access keys
//! made through `/admin/keys`, each read from PostgreSQL once a second
//! (docs/cluster.md, "Shared metadata").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_api::shared::{DatabaseDirectory, ShardedData, SharedDocument};
use sundial_cluster::{Ingester, PgDocument, Querier};
use tracing::{info, warn};

/// Where the keys made through `/admin/keys` live.
pub(crate) const KEYS_DOCUMENT: &str = "access-keys";

/// Where `/api/ttl`'s values live: database name to seconds, as JSON.
pub(super) const TTL_DOCUMENT: &str = "opentsdb-ttl";

/// Times a TTL's removal is tried against other nodes' changes.
const ATTEMPTS: usize = 16;

/// What a dropped database leaves on a cluster: its part in every shard
/// (the owners drop it) and its `/api/ttl` value, so a database created
/// later under the name starts empty and keeping everything, as on a
/// single node.
#[derive(Debug)]
pub(crate) struct ClusterData {
    pub(super) querier: Querier,
    pub(super) ttls: Arc<PgDocument>,
}

impl ShardedData for ClusterData {
    fn drop_database(&self, database: &str) -> std::io::Result<u64> {
        let retired = ShardedData::drop_database(&self.querier, database)?;
        for _ in 0..ATTEMPTS {
            let Some((version, body)) = self.ttls.load()? else {
                return Ok(retired);
            };
            let mut ttls: BTreeMap<String, u64> =
                serde_json::from_slice(&body).map_err(std::io::Error::other)?;
            if ttls.remove(database).is_none() {
                return Ok(retired);
            }
            let body = serde_json::to_vec(&ttls).map_err(std::io::Error::other)?;
            if self.ttls.store(version, &body)? {
                return Ok(retired);
            }
        }
        Err(std::io::Error::other("other nodes kept changing the TTLs"))
    }

    fn set_retention(&self, database: &str, secs: u64) -> std::io::Result<u64> {
        ShardedData::set_retention(&self.querier, database, secs)
    }
}

/// Applies the TTLs set through any node's `/api/ttl` to the shards this
/// ingester serves, once a second (a shard gained or a database opened
/// since gets them at the next pass).
pub(super) async fn keep_retention(ingester: Ingester, ttls: Arc<PgDocument>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failing = false;
    loop {
        tick.tick().await;
        let doc = ttls.clone();
        let loaded = tokio::task::spawn_blocking(move || doc.load()).await;
        let body = match loaded {
            Ok(Ok(stored)) => stored.map(|(_, body)| body),
            Ok(Err(e)) => {
                if !failing {
                    warn!(error = %e, "cannot read the cluster's TTLs; retrying");
                }
                failing = true;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "the TTL task failed");
                continue;
            }
        };
        failing = false;
        let ttls: BTreeMap<String, u64> = match body.map(|b| serde_json::from_slice(&b)) {
            None => BTreeMap::new(),
            Some(Ok(ttls)) => ttls,
            Some(Err(e)) => {
                warn!(error = %e, "the cluster's TTLs do not parse");
                continue;
            }
        };
        for (database, secs) in ttls {
            match ingester.set_retention(&database, secs).await {
                Ok(0) => {}
                Ok(changed) => info!(%database, secs, changed, "TTL applied to shards"),
                Err(e) => warn!(%database, error = %e, "cannot apply a TTL"),
            }
        }
    }
}

/// The databases every node shares, as Baidu's registry lists them: a
/// request naming a database this node has no handle on yet catches up
/// at once. Misses wait for each other: one that arrives while a
/// catch-up runs uses the next one, not one that began before it; and
/// catch-ups begin at most every [`CATCH_UP_EVERY`], so a flood of
/// requests naming unknown databases costs PostgreSQL a bounded rate of
/// reads (a database created in that moment is seen a few milliseconds
/// later, not at once).
#[derive(Debug)]
pub(crate) struct Directory {
    baidu: sundial_baidu::Api,
    /// When the last catch-up began.
    last: parking_lot::Mutex<Option<Instant>>,
}

impl Directory {
    pub(crate) fn new(baidu: sundial_baidu::Api) -> Self {
        Self {
            baidu,
            last: parking_lot::Mutex::new(None),
        }
    }
}

/// The least time between two catch-ups' starts.
const CATCH_UP_EVERY: Duration = Duration::from_millis(10);

impl DatabaseDirectory for Directory {
    fn catch_up(&self) -> std::io::Result<()> {
        let asked = Instant::now();
        let mut last = self.last.lock();
        if last.is_some_and(|began| began > asked || began.elapsed() < CATCH_UP_EVERY) {
            return Ok(());
        }
        let began = Instant::now();
        let (opened, closed) = self.baidu.sync_databases()?;
        if !opened.is_empty() || !closed.is_empty() {
            info!(?opened, ?closed, "caught up with the cluster's databases");
        }
        *last = Some(began);
        Ok(())
    }
}

/// Opens this node's handle on each database created through any node
/// (Baidu's `/v1/database`), and closes those dropped, once a second: a
/// request naming one is served here within a second of its creation,
/// and refused within a second of its drop.
pub(crate) async fn keep_databases(baidu: sundial_baidu::Api) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failing = false;
    loop {
        tick.tick().await;
        let api = baidu.clone();
        match tokio::task::spawn_blocking(move || api.sync_databases()).await {
            Ok(Ok((opened, closed))) => {
                failing = false;
                if !opened.is_empty() {
                    info!(?opened, "databases created on other nodes opened here");
                }
                if !closed.is_empty() {
                    info!(?closed, "databases dropped on other nodes closed here");
                }
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                warn!(error = %e, "cannot read the cluster's databases; retrying");
            }
            Ok(Err(_)) => {}
            Err(e) => warn!(error = %e, "the database sync task failed"),
        }
    }
}

/// Reads the access keys made through any node's `/admin/keys` again
/// once a second, so a key made or revoked elsewhere holds here too.
pub(crate) async fn keep_keys(store: Arc<sundial_api::access::Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failing = false;
    loop {
        tick.tick().await;
        let keys = store.clone();
        match tokio::task::spawn_blocking(move || keys.reload()).await {
            Ok(Ok(())) => failing = false,
            Ok(Err(e)) => {
                if !failing {
                    warn!(error = %e, "cannot read the cluster's access keys; retrying");
                }
                failing = true;
            }
            Err(e) => warn!(error = %e, "the access key task failed"),
        }
    }
}
