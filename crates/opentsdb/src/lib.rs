//! The OpenTSDB HTTP API and telnet protocol (seed 001, docs/api/opentsdb.md;
//! "spec N" in this crate is a section of it).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cardinality;
mod config;
mod delete;
mod dto;
mod dump_meta;
mod error;
mod filters;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod last;
mod lookup;
mod mlast;
mod mput;
mod mquery;
mod names;
mod nesting;
mod put;
mod query;
mod scope;
mod telnet;
mod time;
mod transfer;
mod ttl;
mod uidmeta;
mod uids;
mod zone;

pub use config::Config;
pub use error::OpenTsdbError;
pub use telnet::serve as serve_telnet;
pub use transfer::LineValue;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use sundial_storage::{DEFAULT_DATABASE, Db, Engine};

/// Open UID tables by database name, with the database they belong to.
type UidsByDatabase = HashMap<String, (Db, Arc<uids::Uids>)>;

/// What the OpenTSDB handlers need. Handlers get it pointed at the
/// database their request addresses (see `scope`). Cloned for every
/// request (axum's state, the scope extractors), so all but the
/// database's own parts sit behind one `Arc`, reached through `Deref`.
#[derive(Debug, Clone)]
pub struct Api {
    /// The database this request reads or writes.
    pub db: Db,
    /// Its name.
    database: Arc<str>,
    /// Its UID tables.
    uids: Arc<uids::Uids>,
    common: Arc<Common>,
}

/// The parts of [`Api`] common to every database.
#[derive(Debug, Clone)]
pub struct Common {
    default_uids: Arc<uids::Uids>,
    engine: Engine,
    pub config: Arc<Config>,
    store: Arc<sundial_api::access::Store>,
    limits: sundial_api::limits::Limits,
    /// UID tables of the databases other than `default`, opened on first
    /// use; a dropped and recreated database gets fresh ones.
    /// Async: held across a first open, so one log has one owner.
    other_uids: Arc<tokio::sync::Mutex<UidsByDatabase>>,
    /// What every write passes through before the engine.
    hooks: sundial_api::write_hook::WriteHooks,
    /// Where writes are stored (this node, or a cluster's shard owners).
    sink: sundial_api::sink::Sink,
    /// Where queries read (this node, or a cluster's querier).
    reads: sundial_api::reads::Reads,
    /// Where deletes run (this node, or a cluster's shard owners).
    deletes: sundial_api::deletes::Deletes,
    /// On a cluster node: the shared databases, caught up with on a miss.
    directory: Option<Arc<dyn sundial_api::shared::DatabaseDirectory>>,
    /// On a cluster node: the UIDs every node shares, which TSUIDs come
    /// from instead of `uids`.
    shared_uids: Option<Arc<dyn sundial_api::shared::SharedUids>>,
    /// On a cluster node: the TTLs (`/api/ttl`) every node shares.
    shared_ttl: Option<(
        Arc<dyn sundial_api::shared::SharedDocument>,
        Arc<dyn sundial_api::shared::ShardedData>,
    )>,
    /// Checked series keys of put elements.
    keys: Arc<put::keys::KeyCache>,
    /// What `/api/stats` and telnet `stats` list (none: an empty list).
    stats: Option<sundial_api::stats::StatsSource>,
}

impl std::ops::Deref for Api {
    type Target = Common;

    fn deref(&self) -> &Common {
        &self.common
    }
}

impl Api {
    /// The API over the engine's databases (`default` unless a request
    /// names another), checking callers against `store`.
    pub fn new(
        engine: Engine,
        config: Config,
        store: Arc<sundial_api::access::Store>,
        limits: sundial_api::limits::Limits,
    ) -> std::io::Result<Self> {
        let uids = Arc::new(uids::Uids::open(engine.vfs(), engine.data_dir())?);
        Ok(Self {
            db: engine.default_db(),
            database: DEFAULT_DATABASE.into(),
            uids: uids.clone(),
            common: Arc::new(Common {
                default_uids: uids,
                engine,
                config: Arc::new(config),
                store,
                limits,
                other_uids: Arc::default(),
                hooks: sundial_api::write_hook::WriteHooks::default(),
                sink: sundial_api::sink::Sink::default(),
                reads: sundial_api::reads::Reads::default(),
                deletes: sundial_api::deletes::Deletes::default(),
                directory: None,
                shared_uids: None,
                shared_ttl: None,
                stats: None,
                keys: Arc::default(),
            }),
        })
    }

    /// This API pointed at database `name`; `None` if it does not exist.
    /// The first use of a database opens its UID log (off the async
    /// workers).
    async fn for_database(&self, name: &str) -> Result<Option<Self>, OpenTsdbError> {
        let mut api = self.clone();
        if name == DEFAULT_DATABASE {
            api.db = self.engine.default_db();
            api.database = DEFAULT_DATABASE.into();
            api.uids = self.default_uids.clone();
            return Ok(Some(api));
        }
        let busy = |e: String| OpenTsdbError::classified(sundial_storage::ErrorClass::Busy, &e);
        let found =
            sundial_api::shared::database_caught_up(self.directory.as_ref(), &self.engine, name);
        let Some(db) = found.await.map_err(busy)? else {
            return Ok(None);
        };
        let mut opened = self.other_uids.lock().await;
        let uids = match opened.get(name) {
            Some((known, uids)) if known.same_as(&db) => uids.clone(),
            _ => {
                let (vfs, dir) = (db.config().vfs.clone(), db.config().data_dir.clone());
                let uids = tokio::task::spawn_blocking(move || uids::Uids::open(&vfs, &dir))
                    .await
                    .map_err(|e| OpenTsdbError::internal(&e))?
                    .map_err(|e| OpenTsdbError::internal(&e))?;
                let uids = Arc::new(uids);
                opened.insert(name.to_owned(), (db.clone(), uids.clone()));
                uids
            }
        };
        drop(opened);
        api.db = db;
        api.database = name.into();
        api.uids = uids;
        Ok(Some(api))
    }

    /// The deadline and point budget of one query request.
    fn query_budget(&self) -> sundial_query::Budget {
        let c = &self.limits.config;
        sundial_query::Budget::new(c.query_timeout(), c.max_query_points)
    }

    /// A metric's stored field names in byte order, from every shard on a
    /// cluster: what Alibaba's `"*"` field stands for.
    fn stored_fields(
        &self,
        metric: &str,
        budget: &sundial_query::Budget,
    ) -> Result<Vec<String>, OpenTsdbError> {
        let listing = sundial_model::Listing {
            names: sundial_model::Names::Fields {
                metric: Some(metric.to_owned()),
            },
            prefix: String::new(),
            range: None,
            max: usize::MAX,
        };
        let listed = self
            .reads
            .listing(&self.db, &listing, budget)
            .map_err(query::query_error)?;
        Ok(listed.fields.into_keys().collect())
    }

    /// Runs read work (lookups, listings, meta data) off the async
    /// workers, in one of the query slots.
    async fn read_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Api) -> Result<T, OpenTsdbError> + Send + 'static,
    ) -> Result<T, OpenTsdbError> {
        let _slot = self.limits.query_slot().await?;
        let api = self.clone();
        tokio::task::spawn_blocking(move || work(&api))
            .await
            .map_err(|e| OpenTsdbError::internal(&e))?
    }

    /// Whether this API addresses the `default` database (the only one
    /// BlueKing groups bind into).
    fn is_default(&self) -> bool {
        &*self.database == DEFAULT_DATABASE
    }

    /// Starts the write hooks' part of one HTTP write request.
    fn begin_hooks(
        &self,
        query: Option<&str>,
        headers: &axum::http::HeaderMap,
    ) -> Result<sundial_api::write_hook::HookedRequest, error::OpenTsdbError> {
        self.hooks
            .begin(sundial_api::write_hook::WriteRequest {
                query,
                headers,
                default_database: self.is_default(),
            })
            .map_err(|e| error::OpenTsdbError::bad_request(e.to_string()))
    }

    /// The common parts, to set while the server is built (copied only
    /// if a request already holds them).
    fn common_mut(&mut self) -> &mut Common {
        Arc::make_mut(&mut self.common)
    }

    /// Passes every write through `hooks` (BlueKing's group binding).
    pub fn with_hooks(mut self, hooks: sundial_api::write_hook::WriteHooks) -> Self {
        self.common_mut().hooks = hooks;
        self
    }

    /// Sends every write to `sink` instead of this node's databases.
    pub fn with_sink(mut self, sink: sundial_api::sink::Sink) -> Self {
        self.common_mut().sink = sink;
        self
    }

    /// Runs queries, last points and listings through `reads` instead of
    /// this node's databases.
    pub fn with_reads(mut self, reads: sundial_api::reads::Reads) -> Self {
        self.common_mut().reads = reads;
        self
    }

    /// Catches up with `directory` before answering that a database named
    /// by a request does not exist (a cluster node).
    pub fn with_directory(
        mut self,
        directory: Arc<dyn sundial_api::shared::DatabaseDirectory>,
    ) -> Self {
        self.common_mut().directory = Some(directory);
        self
    }

    /// Runs `/api/delete_data` and `/api/delete_meta` through `deletes`
    /// instead of on this node's databases.
    pub fn with_deletes(mut self, deletes: sundial_api::deletes::Deletes) -> Self {
        self.common_mut().deletes = deletes;
        self
    }

    /// Takes TSUIDs from `uids`, shared by a cluster's nodes.
    pub fn with_shared_uids(mut self, uids: Arc<dyn sundial_api::shared::SharedUids>) -> Self {
        self.common_mut().shared_uids = Some(uids);
        self
    }

    /// Keeps `/api/ttl`'s values in `doc`, shared by a cluster's nodes;
    /// `shards` applies a value set here at once (the shards' owners also
    /// re-read `doc` each second).
    pub fn with_shared_ttl(
        mut self,
        doc: Arc<dyn sundial_api::shared::SharedDocument>,
        shards: Arc<dyn sundial_api::shared::ShardedData>,
    ) -> Self {
        self.common_mut().shared_ttl = Some((doc, shards));
        self
    }

    /// The cluster's shared UIDs in this request's database, on a node
    /// whose queries read the cluster; `Err` on such a node without them.
    fn shared_tables(&self) -> Result<Option<uids::shared::SharedTables<'_>>, OpenTsdbError> {
        if !self.reads.is_remote() {
            return Ok(None);
        }
        match &self.shared_uids {
            Some(shared) => Ok(Some(uids::shared::SharedTables {
                shared: shared.as_ref(),
                database: &self.database,
            })),
            None => Err(OpenTsdbError::not_implemented(uids::NOT_ON_CLUSTER)),
        }
    }

    /// Lists `source`'s statistics at `/api/stats` and telnet `stats`.
    pub fn with_stats(mut self, source: sundial_api::stats::StatsSource) -> Self {
        self.common_mut().stats = Some(source);
        self
    }

    /// The statistics now, with the time they were read (seconds).
    fn stats_now(&self) -> (i64, Vec<sundial_api::stats::Stat>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        (
            now,
            self.stats.as_ref().map(|s| s.read()).unwrap_or_default(),
        )
    }

    fn name_limits(&self) -> put::Limits {
        put::Limits {
            max_tags: self.config.max_tags,
            max_metric_bytes: self.config.max_metric_bytes,
            max_tagk_bytes: self.config.max_tagk_bytes,
            max_tagv_bytes: self.config.max_tagv_bytes,
        }
    }
}

/// The `/api/...` routes.
pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/api/put", guarded(post(put::put)))
        .route(
            "/api/query",
            guarded(
                get(query::get)
                    .post(query::post)
                    .delete(|| async { query::delete_disabled() }),
            ),
        )
        .route("/api/mput", guarded(post(mput::mput)))
        .route("/api/mquery", guarded(post(mquery::mquery)))
        .route("/api/dump_meta", guarded(post(dump_meta::dump_meta)))
        .route("/api/delete_data", guarded(post(delete::delete_data)))
        .route("/api/delete_meta", guarded(post(delete::delete_meta)))
        .route("/api/query/last", guarded(get(last::get).post(last::post)))
        .route("/api/query/mlast", guarded(post(mlast::mlast)))
        .route("/api/ttl", guarded(get(ttl::get).post(ttl::post)))
        .route(
            "/api/suggest",
            guarded(get(lookup::suggest_get).post(lookup::suggest_post)),
        )
        .route(
            "/api/search/lookup",
            guarded(get(lookup::lookup_get).post(lookup::lookup_post)),
        )
        .route("/api/dropcaches", guarded(get(dropcaches).post(dropcaches)))
        .route(
            "/api/config/filters",
            guarded(get(filters::config).post(filters::config)),
        )
        .route(
            "/api/aggregators",
            guarded(get(aggregators).post(aggregators)),
        )
        .route(
            "/api/serializers",
            guarded(get(serializers).post(serializers)),
        )
        .route("/api/stats", guarded(get(stats).post(stats)))
        .route("/api/config", guarded(get(config_view).post(config_view)))
        .route("/api/version", guarded(get(version).post(version)))
        .route(
            "/api/uid/assign",
            guarded(get(uidmeta::assign_get).post(uidmeta::assign_post)),
        )
        .route("/api/uid/uidmeta", guarded(get(uidmeta::uidmeta)))
        .route("/api/uid/tsmeta", guarded(get(uidmeta::tsmeta)))
        .route("/api/cardinality", guarded(get(cardinality::cardinality)))
        .route("/api/import", guarded(post(transfer::import)))
        .route("/api/export", guarded(get(transfer::export)))
        .route(
            "/api/export/metrics",
            guarded(get(transfer::export_metrics)),
        )
        .route("/api/health", guarded(get(|| async { StatusCode::OK })))
        .route("/api/{*rest}", any(not_found))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            scope::authenticate,
        ))
        .with_state(api)
}

/// Wrong methods get OpenTSDB's 405 body.
fn guarded(r: MethodRouter<Api>) -> MethodRouter<Api> {
    r.fallback(|method: Method| async move { OpenTsdbError::method_not_allowed(method.as_str()) })
}

async fn not_found() -> OpenTsdbError {
    OpenTsdbError::not_found()
}

async fn version(axum::extract::State(api): axum::extract::State<Api>) -> Response {
    let body = json!({
        "version": api.config.version_string,
        "short_revision": option_env!("SUNDIAL_GIT_SHORT").unwrap_or(""),
        "full_revision": option_env!("SUNDIAL_GIT_FULL").unwrap_or(""),
        "timestamp": option_env!("SUNDIAL_BUILD_EPOCH").unwrap_or("0"),
        "repo_status": "MINT",
        "user": "sundial",
        "host": "",
        "repo": "sundial",
        "sundial_version": env!("CARGO_PKG_VERSION"),
    });
    error::json_response(StatusCode::OK, &body).into_response()
}

/// Every aggregator works both across series and as a downsampler.
async fn aggregators() -> Response {
    error::json_response(StatusCode::OK, &json!(sundial_query::aggregator_names())).into_response()
}

async fn dropcaches() -> Response {
    error::json_response(
        StatusCode::OK,
        &json!({"message": "Caches dropped", "status": "200"}),
    )
    .into_response()
}

async fn serializers(axum::extract::State(api): axum::extract::State<Api>) -> Response {
    let body = json!([{
        "serializer": "json",
        "formatter": "net.opentsdb.tsd.HttpJsonSerializer",
        "version": api.config.version_string,
        "request_content_types": ["application/json"],
        "response_content_types": ["application/json; charset=UTF-8"],
        "parsers": ["parsePutV1", "parseQueryV1", "parseSuggestV1"],
        "formatters": ["formatPutV1", "formatQueryV1", "formatSuggestV1"],
    }]);
    error::json_response(StatusCode::OK, &body).into_response()
}

/// `/api/config` (spec 16): the effective settings, as strings, under
/// OpenTSDB's names where one exists.
async fn config_view(axum::extract::State(api): axum::extract::State<Api>) -> Response {
    let c = &api.config;
    let body = json!({
        "tsd.core.meta.enable_realtime_ts": "false",
        "tsd.http.request.enable_chunked": "true",
        "tsd.http.request.max_chunk": c.max_body_bytes.to_string(),
        "tsd.query.allow_delete": "false",
        "tsd.storage.fix_duplicates": "true",
        "sundial.max_tags": c.max_tags.to_string(),
        "sundial.max_metric_bytes": c.max_metric_bytes.to_string(),
        "sundial.max_tagk_bytes": c.max_tagk_bytes.to_string(),
        "sundial.max_tagv_bytes": c.max_tagv_bytes.to_string(),
        "sundial.telnet_max_line_bytes": c.telnet_max_line_bytes.to_string(),
        "sundial.telnet_return_errors": c.telnet_return_errors.to_string(),
        "sundial.version_string": c.version_string,
    });
    error::json_response(StatusCode::OK, &body).into_response()
}

/// No server statistics are published yet: an empty list, as the spec allows.
/// OpenTSDB's statistics list: values as strings, like OpenTSDB's own.
async fn stats(axum::extract::State(api): axum::extract::State<Api>) -> Response {
    let (now, stats) = api.stats_now();
    let list: Vec<serde_json::Value> = stats
        .iter()
        .map(|s| {
            json!({
                "metric": s.metric,
                "timestamp": now,
                "value": stat_value(s.value),
                "tags": s.tags,
            })
        })
        .collect();
    error::json_response(StatusCode::OK, &serde_json::Value::Array(list)).into_response()
}

/// A statistic's value as OpenTSDB prints it: integers without a point.
fn stat_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// OpenTSDB ignores a trailing slash and a version segment
/// (`/api/v1/put`); returns the path to route on when it differs.
pub fn normalize_path(uri: &Uri) -> Option<String> {
    let path = uri.path();
    let mut out = path.trim_end_matches('/').to_owned();
    if out.is_empty() {
        out.push('/');
    }
    if let Some(rest) = out.strip_prefix("/api/v")
        && let Some((digits, tail)) = rest.split_once('/')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        out = format!("/api/{tail}");
    }
    (out != path).then_some(out)
}
