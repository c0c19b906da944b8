//! A cluster node (docs/cluster.md, "Roles"): what `[cluster]` and
//! `--role` start beside the client listener. Every role serves the
//! client APIs with writes sent to the shards' owners (the router) and
//! JSON queries answered by them (the querier); an ingester also owns
//! shards, takes frames and queries on its own peer listener, and
//! checkpoints its shards to the object store; a compactor has the owners
//! compact while it holds the compactor lease.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use sundial_cluster::{
    Compactor, CompactorConfig, FrameClient, Ingester, IngesterConfig, JetStreamWal, Keeper,
    LocalWal, Meta, PgDocument, PgUids, Querier, Replicas, Role, Router, ShardLog, WalConfig,
};
use tracing::{info, warn};

mod shared;

pub(crate) use shared::{Directory, keep_databases};
pub(crate) use shared::{KEYS_DOCUMENT, keep_keys};
use shared::{TTL_DOCUMENT, keep_retention};

/// `[cluster]`: absent, the server is one node (the embedded default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// all, router, ingester, querier or compactor (`--role` wins).
    pub(crate) role: String,
    pub(crate) postgres_url: String,
    /// NATS servers, comma-separated.
    pub(crate) nats_url: String,
    /// Fixed for the cluster's life: a series' shard depends on it.
    pub(crate) shards: u32,
    /// Unique per node; default: the advertised address.
    pub(crate) node_id: String,
    /// Where this node takes frames and queries from its peers.
    pub(crate) listen: SocketAddr,
    /// The address peers use; default: the bound `listen` address.
    pub(crate) advertise: String,
    /// Where an ingester logs frames before applying them: "jetstream"
    /// (replicated; a shard's next owner replays it) or "local" (the
    /// node's disk; only the node itself replays it).
    pub(crate) wal: String,
    /// JetStream replicas of each shard's log (3 on an R3 cluster).
    pub(crate) wal_replicas: usize,
    /// Shared by every node; requests between nodes carry it.
    pub(crate) secret: String,
    /// The shards' blocks and state, e.g. `s3://bucket/cluster`.
    pub(crate) object_store: String,
    pub(crate) object_store_options: BTreeMap<String, String>,
    /// A shard's lease lasts this long past each renewal.
    pub(crate) lease_secs: u64,
    pub(crate) checkpoint_secs: u64,
    pub(crate) checkpoint_points: usize,
    /// How long a node waits for a peer's answer.
    pub(crate) request_timeout_secs: u64,
    /// The compactor starts a round this often.
    pub(crate) compaction_secs: u64,
    /// The compactor deletes a replaced block's object this long after
    /// its owner retired it (longer than any query runs).
    pub(crate) compaction_grace_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            role: "all".into(),
            postgres_url: String::new(),
            nats_url: String::new(),
            shards: 64,
            node_id: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4243)),
            advertise: String::new(),
            wal: "jetstream".into(),
            wal_replicas: 1,
            secret: String::new(),
            object_store: String::new(),
            object_store_options: BTreeMap::new(),
            lease_secs: 15,
            checkpoint_secs: 300,
            checkpoint_points: 1_000_000,
            request_timeout_secs: 30,
            compaction_secs: 600,
            compaction_grace_secs: 600,
        }
    }
}

impl ClusterConfig {
    pub(crate) fn role(&self) -> anyhow::Result<Role> {
        self.role.parse().map_err(anyhow::Error::msg)
    }

    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let role = self.role()?;
        if !matches!(self.wal.as_str(), "jetstream" | "local") {
            anyhow::bail!(
                "cluster: wal = {:?}: \"jetstream\" or \"local\" (docs/cluster.md)",
                self.wal
            );
        }
        let jetstream = self.wal == "jetstream";
        let missing = [
            ("postgres_url", &self.postgres_url),
            ("secret", &self.secret),
        ]
        .into_iter()
        .chain((role.ingests() && jetstream).then_some(("nats_url", &self.nats_url)))
        .chain(
            (role.ingests() || role == Role::Compactor)
                .then_some(("object_store", &self.object_store)),
        )
        .find(|(_, v)| v.is_empty());
        if let Some((key, _)) = missing {
            anyhow::bail!("cluster: {key} must be set for role {role}");
        }
        if self.shards == 0
            || self.lease_secs == 0
            || self.request_timeout_secs == 0
            || self.compaction_secs == 0
        {
            anyhow::bail!(
                "cluster: shards, lease_secs, request_timeout_secs and compaction_secs must be \
                 positive"
            );
        }
        Ok(())
    }
}

/// What a running cluster node hands the client APIs, and how to stop it.
pub(crate) struct Node {
    router: Router,
    querier: Querier,
    /// OpenTSDB's UIDs, shared by every node.
    uids: Arc<PgUids>,
    /// `/api/ttl`'s values, shared by every node.
    ttls: Arc<PgDocument>,
    ingesting: Option<Ingesting>,
    compacting: Option<Compacting>,
    postgres_url: String,
}

/// A compactor's background work.
struct Compacting {
    compactor: Compactor,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// An ingester's background work.
struct Ingesting {
    ingester: Ingester,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Starts the node's parts for `role`; an ingester's shards live
    /// under `data_dir/cluster`.
    pub(crate) async fn start(
        config: &ClusterConfig,
        role: Role,
        data_dir: &Path,
        storage: &sundial_storage::Config,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(config.request_timeout_secs);
        let client = FrameClient::new(&config.secret, timeout);
        let ttls = Arc::new(PgDocument::connect(&config.postgres_url, TTL_DOCUMENT).await?);
        let ingesting = if role.ingests() {
            Some(start_ingester(config, data_dir, storage, ttls.clone()).await?)
        } else {
            None
        };
        let compacting = if role == Role::Compactor {
            Some(start_compactor(config, storage, client.clone()).await?)
        } else {
            None
        };
        // One owner cache and one set of connections for both.
        let router = Router::new(&config.postgres_url, config.shards, client).await?;
        let querier = match reading_blocks(config, role, data_dir, storage)? {
            Some(replicas) => router.querier().reading_blocks(Arc::new(replicas)),
            None => router.querier(),
        };
        let uids = Arc::new(PgUids::connect(&config.postgres_url).await?);
        info!(%role, shards = config.shards, "cluster node started");
        Ok(Self {
            router,
            querier,
            uids,
            ttls,
            ingesting,
            compacting,
            postgres_url: config.postgres_url.clone(),
        })
    }

    /// Points the client APIs at the cluster: writes to the router, JSON
    /// queries to the querier, and only the routes served so far.
    pub(crate) fn serve_through(&self, apis: &mut crate::listener::Apis) {
        let sink = sundial_api::sink::Sink::new(self.router.clone());
        let reads = sundial_api::reads::Reads::remote(self.querier.clone());
        apis.opentsdb = apis
            .opentsdb
            .clone()
            .with_sink(sink.clone())
            .with_reads(reads.clone())
            .with_deletes(sundial_api::deletes::Deletes::remote(self.querier.clone()))
            .with_shared_uids(self.uids.clone())
            .with_shared_ttl(self.ttls.clone(), Arc::new(self.sharded_data()));
        apis.baidu = apis.baidu.clone().with_sink(sink.clone()).with_reads(reads);
        apis.bk = apis.bk.clone().with_sink(sink);
        apis.cluster = Some(self.admin());
    }

    /// What `/admin/storage` and `/admin/compact` act on at this node:
    /// the cluster.
    pub(crate) fn admin(&self) -> ClusterAdmin {
        ClusterAdmin {
            postgres_url: self.postgres_url.clone(),
            querier: self.querier.clone(),
        }
    }

    /// What Baidu's registry drops a database's data with: its part in
    /// every shard and its TTL.
    pub(crate) fn sharded_data(&self) -> shared::ClusterData {
        shared::ClusterData {
            querier: self.querier.clone(),
            ttls: self.ttls.clone(),
        }
    }

    /// The node's ingester, when its role ingests.
    pub(crate) fn ingester(&self) -> Option<Ingester> {
        self.ingesting.as_ref().map(|i| i.ingester.clone())
    }

    /// The node's shard copies, when it reads the blocks itself.
    pub(crate) fn copies(&self) -> Option<Arc<Replicas>> {
        self.querier.replicas()
    }

    /// The node's compactor, when its role is that.
    pub(crate) fn compactor(&self) -> Option<Compactor> {
        self.compacting.as_ref().map(|c| c.compactor.clone())
    }

    /// Hands this node's shards to the others (flushing each), gives the
    /// compactor lease up, and stops.
    pub(crate) async fn stop(self) {
        if let Some(compacting) = self.compacting {
            let _ = compacting.stop.send(true);
            if let Err(e) = compacting.task.await {
                warn!(error = %e, "the compactor ended badly");
            }
        }
        let Some(ingesting) = self.ingesting else {
            return;
        };
        let _ = ingesting.stop.send(true);
        for task in ingesting.tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "a cluster task ended badly");
            }
        }
    }
}

/// Copies of the shard databases for a node that queries without owning
/// shards, when it can reach the object store: it reads the blocks
/// itself (docs/cluster.md, "Queriers read the blocks"). An ingesting
/// node leaves that to the owners, itself among them, rather than hold a
/// second copy.
fn reading_blocks(
    config: &ClusterConfig,
    role: Role,
    data_dir: &Path,
    storage: &sundial_storage::Config,
) -> anyhow::Result<Option<Replicas>> {
    if role.ingests() || config.object_store.is_empty() {
        return Ok(None);
    }
    let store = sundial_storage::RemoteStore::open(
        &config.object_store,
        &config.object_store_options,
        storage.cache_bytes,
    )?;
    let dir = data_dir.join("cluster-copies");
    Ok(Some(Replicas::new(dir, store, storage.clone())?))
}

async fn start_compactor(
    config: &ClusterConfig,
    storage: &sundial_storage::Config,
    client: FrameClient,
) -> anyhow::Result<Compacting> {
    let store = sundial_storage::RemoteStore::open(
        &config.object_store,
        &config.object_store_options,
        storage.cache_bytes,
    )?;
    let holder = if config.node_id.is_empty() {
        format!("compactor-{}", std::process::id())
    } else {
        config.node_id.clone()
    };
    let compactor_config = CompactorConfig {
        holder: holder.clone(),
        ttl: Duration::from_secs(config.lease_secs),
        every: Duration::from_secs(config.compaction_secs),
        grace: Duration::from_secs(config.compaction_grace_secs),
    };
    let compactor = Compactor::new(
        &config.postgres_url,
        config.shards,
        client,
        store,
        compactor_config,
    )
    .await?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn({
        let compactor = compactor.clone();
        async move {
            compactor
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        }
    });
    info!(%holder, "compactor started; it works while it holds the compactor lease");
    Ok(Compacting {
        compactor,
        stop,
        task,
    })
}

async fn start_ingester(
    config: &ClusterConfig,
    data_dir: &Path,
    storage: &sundial_storage::Config,
    ttls: Arc<PgDocument>,
) -> anyhow::Result<Ingesting> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for peers on {}: {e}", config.listen))?;
    let bound = listener.local_addr()?;
    let advertise = if config.advertise.is_empty() {
        bound.to_string()
    } else {
        config.advertise.clone()
    };
    let node_id = if config.node_id.is_empty() {
        advertise.clone()
    } else {
        config.node_id.clone()
    };
    let wal: ShardLog = match config.wal.as_str() {
        "local" => LocalWal::open(data_dir.join("cluster-wal")).into(),
        _ => {
            let wal_config = WalConfig {
                replicas: config.wal_replicas,
                ..WalConfig::default()
            };
            JetStreamWal::connect(&config.nats_url, &wal_config)
                .await?
                .into()
        }
    };
    let store = sundial_storage::RemoteStore::open(
        &config.object_store,
        &config.object_store_options,
        storage.cache_bytes,
    )?;
    let mut ingester_config = IngesterConfig::new(data_dir.join("cluster"));
    ingester_config.storage = storage.clone();
    ingester_config.checkpoint_every = Duration::from_secs(config.checkpoint_secs);
    ingester_config.checkpoint_points = config.checkpoint_points;
    let ingester = Ingester::new(&config.postgres_url, wal, store, ingester_config).await?;
    let meta = Arc::new(Meta::connect(&config.postgres_url).await?);
    let ttl = Duration::from_secs(config.lease_secs);
    let keeper = Keeper::new(meta, &node_id, &advertise, config.shards, ttl);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let serving = tokio::spawn({
        let stop = until_stopped(stopped.clone());
        let (ingester, secret) = (ingester.clone(), config.secret.clone());
        async move {
            let served = sundial_cluster::serve_ingest(listener, ingester, &secret, stop);
            if let Err(e) = served.await {
                warn!(error = %e, "the peer listener stopped");
            }
        }
    });
    let keeping = tokio::spawn({
        let (mut handler, stop) = (ingester.clone(), until_stopped(stopped.clone()));
        async move {
            if let Err(e) = keeper.run(&mut handler, stop).await {
                warn!(error = %e, "shard ownership stopped");
            }
        }
    });
    let checkpoints = tokio::spawn({
        let (ingester, stop) = (ingester.clone(), until_stopped(stopped.clone()));
        async move { ingester.run_checkpoints(stop).await }
    });
    let retention = tokio::spawn({
        let (ingester, stop) = (ingester.clone(), until_stopped(stopped));
        async move {
            tokio::select! {
                () = stop => {}
                () = keep_retention(ingester, ttls) => {}
            }
        }
    });
    info!(%node_id, %advertise, "ingester serving its peers");
    // Tests and scripts read the peer address (port 0) from this line.
    println!("sundial peers on {advertise}");
    Ok(Ingesting {
        ingester,
        stop,
        tasks: vec![keeping, checkpoints, retention, serving],
    })
}

/// A cluster node's `/admin`: the storage view (per database what the
/// manifest lists, the objects waiting for the compactor, and which node
/// owns each shard, read over a connection of its own: operator calls
/// are rare, and a PostgreSQL restart needs no reconnect logic here) and
/// a compaction of every shard now.
#[derive(Debug, Clone)]
pub(crate) struct ClusterAdmin {
    postgres_url: String,
    querier: Querier,
}

impl ClusterAdmin {
    /// Every shard's owner checkpoints and merges all its blocks now: the
    /// blocks retired.
    pub(crate) async fn compact(&self) -> anyhow::Result<usize> {
        Ok(self.querier.compact_all().await?)
    }

    pub(crate) async fn describe(&self) -> anyhow::Result<serde_json::Value> {
        let meta = Meta::connect(&self.postgres_url).await?;
        let (stored, retired) = meta.stored().await?;
        let mut owners: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for owner in meta.shard_owners().await? {
            owners.entry(owner.node_id).or_default().push(owner.shard);
        }
        let databases: serde_json::Map<String, serde_json::Value> = stored
            .into_iter()
            .map(|d| (d.database.clone(), serde_json::json!(d)))
            .collect();
        Ok(serde_json::json!({
            "cluster": true,
            "databases": databases,
            "retired_objects": retired,
            "shard_owners": owners,
        }))
    }
}

/// Whether a cluster node serves the route: every route of the three
/// APIs and SQL, the console's files, `/metrics`, and `/admin`'s storage
/// view, queries, compaction and access keys. `/admin/snapshots` acts on what one node
/// holds alone and answers "not in cluster mode yet" rather than on this
/// node's empty store.
pub(crate) fn serves_in_cluster(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    match path {
        "/api/put" | "/api/query" | "/api/version" | "/api/aggregators" | "/api/suggest" => true,
        "/api/mput" | "/api/mquery" | "/api/query/last" | "/api/query/mlast" => true,
        "/api/dump_meta" | "/api/ttl" | "/api/import" | "/api/cardinality" => true,
        "/api/delete_data" | "/api/delete_meta" | "/api/export" | "/api/export/metrics" => true,
        "/api/search/lookup" | "/api/uid/assign" | "/api/uid/uidmeta" | "/api/uid/tsmeta" => true,
        // What the node says of itself: health, filters, serializers,
        // its statistics and configuration, its caches.
        "/api/health" | "/api/config/filters" | "/api/serializers" | "/api/stats" => true,
        "/api/config" | "/api/dropcaches" => true,
        // The cluster's storage view, and this node's running and slow
        // queries.
        "/admin/storage" | "/admin/queries" => method == Method::GET,
        "/admin/compact" => method == Method::POST,
        // Access keys live in PostgreSQL on a cluster.
        "/admin/keys" => method == Method::GET,
        _ if path.starts_with("/admin/keys/") => true,
        "/v1/database" => true,
        _ if path.starts_with("/v1/database/") => true,
        "/v1/datapoint" | "/v1/row" | "/v2/push" => true,
        _ if bkmonitor_metadata(path) => true,
        _ => {
            method == Method::GET
                && (matches!(path, "" | "/metrics" | "/v1/metric")
                    || listing(path)
                    // The web console's own files (its pages call the APIs).
                    || path == "/console"
                    || path.starts_with("/console/"))
        }
    }
}

/// BlueKing's metadata calls (their state is shared through PostgreSQL).
fn bkmonitor_metadata(path: &str) -> bool {
    [
        "/api/c/compapi/v2/monitor_v3/",
        "/api/c/compapi/monitor_v3/",
        "/app/metadata/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// Baidu's per-metric listings: `/v1/metric/{metric}/field` and `/tag`.
fn listing(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    matches!(segments.as_slice(), ["", "v1", "metric", metric, "field" | "tag"] if !metric.is_empty())
}

/// Refuses the routes a cluster node does not serve yet, in the shape of
/// the API asked.
pub(crate) async fn only_cluster_routes(request: Request, next: Next) -> Response {
    if serves_in_cluster(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let message = format!(
        "{} {} is not served in cluster mode yet (docs/cluster.md, \"Roles\")",
        request.method(),
        request.uri().path()
    );
    let body = if request.uri().path().starts_with("/v1") {
        serde_json::json!({"code": "NotImplemented", "message": message})
    } else {
        serde_json::json!({"error": {"code": 501, "message": message}})
    };
    (StatusCode::NOT_IMPLEMENTED, axum::Json(body)).into_response()
}
