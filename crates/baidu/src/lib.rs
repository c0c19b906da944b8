//! The Baidu TSDB `/v1` API (seed 002, docs/api/baidu-tsdb.md): writes,
//! metadata, the JSON query and the database management API, with
//! `bce-auth-v1` signatures.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod config;
mod database;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod meta;
pub mod presampling;
mod query;
mod sql;
mod time;
mod write;

pub use auth::{Credential, authorization};
pub use config::{Config, ConfiguredRule};
pub use error::BaiduError;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use error::ErrorBody;
use serde_json::{Value, json};
use std::sync::Arc;
use sundial_api::access::{Action, Identity, Store};
use sundial_api::write_hook::{HookedRequest, Refusal, WriteRequest};
use sundial_model::Timestamp;
use sundial_model::now_ms;
use sundial_storage::{DEFAULT_DATABASE, Db, Engine};

/// What the `/v1` handlers share.
#[derive(Debug, Clone)]
pub struct Api {
    engine: Engine,
    config: Arc<Config>,
    store: Arc<Store>,
    limits: sundial_api::limits::Limits,
    registry: Arc<database::Registry>,
    /// What every write passes through before the engine.
    hooks: sundial_api::write_hook::WriteHooks,
    /// Where writes are stored (this node, or a cluster's shard owners).
    sink: sundial_api::sink::Sink,
    /// Where JSON queries read (this node, or a cluster's querier).
    reads: sundial_api::reads::Reads,
    /// On a cluster node: the shared databases, caught up with on a miss.
    directory: Option<Arc<dyn sundial_api::shared::DatabaseDirectory>>,
}

impl Api {
    /// Opens the database registry under the engine's data directory;
    /// callers are checked against `store`.
    pub fn new(
        engine: Engine,
        config: Config,
        store: Arc<Store>,
        limits: sundial_api::limits::Limits,
    ) -> std::io::Result<Self> {
        let registry = Arc::new(database::Registry::open(&engine)?);
        Ok(Self {
            engine,
            config: Arc::new(config),
            store,
            limits,
            registry,
            hooks: sundial_api::write_hook::WriteHooks::default(),
            sink: sundial_api::sink::Sink::default(),
            reads: sundial_api::reads::Reads::default(),
            directory: None,
        })
    }

    /// Keeps the databases created through `/v1/database` in `doc`, which
    /// every node of a cluster shares, instead of this node's file.
    pub fn with_shared_databases(
        mut self,
        doc: Arc<dyn sundial_api::shared::SharedDocument>,
        data: Arc<dyn sundial_api::shared::ShardedData>,
    ) -> Self {
        self.registry = Arc::new(database::Registry::open_shared(doc, data));
        self
    }

    /// Opens this node's handle on every database the cluster lists, so
    /// requests naming one are served here too, and closes the handles of
    /// databases dropped through other nodes: the names opened and
    /// closed. Blocks.
    pub fn sync_databases(&self) -> std::io::Result<(Vec<String>, Vec<String>)> {
        self.registry
            .sync(&self.engine)
            .map_err(|e| std::io::Error::other(e.message))
    }

    /// Catches up with `directory` before answering that a database named
    /// by a request does not exist (a cluster node).
    pub fn with_directory(
        mut self,
        directory: Arc<dyn sundial_api::shared::DatabaseDirectory>,
    ) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Passes every write through `hooks` (BlueKing's group binding).
    pub fn with_hooks(mut self, hooks: sundial_api::write_hook::WriteHooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Sends every write to `sink` instead of this node's databases.
    pub fn with_sink(mut self, sink: sundial_api::sink::Sink) -> Self {
        self.sink = sink;
        self
    }

    /// Runs JSON queries through `reads` instead of this node's databases.
    pub fn with_reads(mut self, reads: sundial_api::reads::Reads) -> Self {
        self.reads = reads;
        self
    }

    /// A query's deadline: `baidu.query_timeout_secs`, else `[limits]`.
    pub(crate) fn query_timeout(&self) -> std::time::Duration {
        self.config.query_timeout_secs.map_or_else(
            || self.limits.config.query_timeout(),
            std::time::Duration::from_secs,
        )
    }

    /// The most names a listing answers (`limits.max_result_rows`).
    pub(crate) fn max_listed(&self) -> usize {
        self.limits.config.max_result_rows
    }

    /// Points one query may read: `baidu.max_query_points`, else `[limits]`.
    pub(crate) fn max_query_points(&self) -> usize {
        self.config
            .max_query_points
            .unwrap_or(self.limits.config.max_query_points)
    }

    /// Checks the signature when access keys are configured; the caller.
    fn authenticate(&self, parts: &Parts) -> Result<Identity, BaiduError> {
        if let Some(open) = self.store.anonymous() {
            return Ok(open);
        }
        let path = parts
            .extensions
            .get::<sundial_api::ReceivedPath>()
            .map_or(parts.uri.path(), |p| p.0.as_str());
        let req = auth::SignedRequest {
            method: parts.method.as_str(),
            path,
            query: parts.uri.query(),
            headers: &parts.headers,
        };
        auth::verify(&req, &self.store, self.now_ms() / 1000).map_err(|e| {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
            BaiduError::new(status, e.code(), e.to_string())
        })
    }

    /// Authentication, then the database: `database=`, a `{db}.tsdb.` Host,
    /// or the default (spec 3.2), which the caller must be allowed to
    /// `action` on.
    async fn database(&self, parts: &Parts, action: Action) -> Result<Db, BaiduError> {
        let identity = self.authenticate(parts)?;
        let name = param(parts, "database")
            .filter(|d| !d.is_empty())
            .or_else(|| {
                let host = parts.headers.get(header::HOST)?.to_str().ok()?;
                let host = host.split(':').next().unwrap_or(host);
                host.contains(".tsdb.")
                    .then(|| host.split('.').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        // The grant first: a key learns nothing of databases it may not use.
        if !identity.may(&name, action) {
            return Err(BaiduError::access_denied(identity.denial(&name, action)));
        }
        let busy = |e: String| BaiduError::classified(sundial_storage::ErrorClass::Busy, &e);
        let db =
            sundial_api::shared::database_caught_up(self.directory.as_ref(), &self.engine, &name)
                .await
                .map_err(busy)?
                .ok_or_else(|| BaiduError::not_found(format!("database {name} does not exist")))?;
        check_accept(&parts.headers)?;
        Ok(db)
    }

    /// Authentication for the management API, then `Accept`.
    fn authenticate_management(&self, parts: &Parts) -> Result<Identity, BaiduError> {
        let identity = self.authenticate(parts)?;
        check_accept(&parts.headers)?;
        Ok(identity)
    }
}

impl Api {
    /// The request's clock: the real one, or `baidu.test_clock_ms` when set
    /// (spec 5.4: tests pin signature expiry and relative times).
    pub(crate) fn now_ms(&self) -> Timestamp {
        match self.config.test_clock_ms {
            0 => now_ms(),
            fixed => fixed,
        }
    }
}

/// Runs a query off the reactor: on the current worker thread where the
/// runtime allows it (no thread hand-off, which is a good part of a small
/// query's latency), else on the blocking pool.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BaiduError> + Send + 'static,
) -> Result<T, BaiduError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(f);
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BaiduError::internal(&e))?
}

/// The first value of a query parameter, percent-decoded.
pub(crate) fn param(parts: &Parts, name: &str) -> Option<String> {
    form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `/v1/...` routes.
pub fn routes(api: Api) -> Router {
    Router::new()
        .route(
            "/v1/datapoint",
            guarded(post(write_points).get(query::get).put(query::put)),
        )
        .route("/v1/row", guarded(get(sql::get).put(sql::put)))
        .route("/v1/metric", guarded(get(meta::metrics)))
        .route("/v1/metric/{metric}/field", guarded(get(meta::fields)))
        .route("/v1/metric/{metric}/tag", guarded(get(meta::tags)))
        .route(
            "/v1/database",
            guarded(post(databases::create).get(databases::list)),
        )
        .route(
            "/v1/database/{id}",
            guarded(get(databases::get).delete(databases::delete)),
        )
        .route("/v1", any(not_found))
        .route("/v1/{*rest}", any(not_found))
        .layer(middleware::from_fn(envelope))
        .with_state(api)
}

fn guarded(r: MethodRouter<Api>) -> MethodRouter<Api> {
    r.fallback(|method: Method| async move { BaiduError::method_not_supported(method.as_str()) })
}

async fn not_found() -> BaiduError {
    BaiduError::not_found("no such resource")
}

/// The request id, and the error body that repeats it. (CORS, spec 3.6,
/// is the server's: only listed origins get it.)
async fn envelope(req: Request, next: Next) -> Response {
    // The server's request id, so logs and `x-bce-request-id` agree.
    let id = req
        .extensions()
        .get::<sundial_api::RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.clone());
    let mut resp = next.run(req).await;
    if let Some(err) = resp.extensions_mut().remove::<ErrorBody>() {
        let body = json!({"requestId": id, "code": err.code, "message": err.message});
        *resp.body_mut() = Body::from(body.to_string());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-bce-request-id", v);
    }
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// A complete `/v1` error answer for refusals made before routing;
/// `request_id` is the server's id of the request, when it has one.
pub fn refusal(
    request_id: Option<&sundial_api::RequestId>,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    let id = request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.clone());
    let body = json!({"requestId": id, "code": code, "message": message});
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-bce-request-id", v);
    }
    resp
}

/// Spec 4.3 step 5: after authentication and database resolution.
fn check_accept(headers: &HeaderMap) -> Result<(), BaiduError> {
    if accepts_json(headers) {
        return Ok(());
    }
    Err(BaiduError::new(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        "this API answers application/json only",
    ))
}

/// Path segment `i` (`/v1/metric/{m}/field`: 3), percent-decoded; a
/// segment that is not UTF-8 is an invalid argument, in the API's shape.
pub(crate) fn path_segment(parts: &Parts, i: usize) -> Result<String, BaiduError> {
    let raw = parts.uri.path().split('/').nth(i).unwrap_or_default();
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| BaiduError::invalid(format!("path segment {raw:?} is not UTF-8")))
}

fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return true;
    };
    let accept = accept.to_str().unwrap_or_default().to_ascii_lowercase();
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or_default().trim();
        matches!(media, "application/json" | "application/*" | "*/*")
    })
}

/// A JSON success body.
pub(crate) fn json_ok(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON success body already serialised.
pub(crate) fn json_bytes(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The body, decompressed, after the `Content-Type` check of spec 3.4.
pub(crate) async fn json_body(
    api: &Api,
    parts: &Parts,
    body: Body,
) -> Result<bytes::Bytes, BaiduError> {
    let bytes = sundial_api::body::read(&parts.headers, body, api.config.max_body_bytes).await?;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let media = ct
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" {
            return Err(BaiduError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "ContentTypeNotSupported",
                format!("content type {media:?} is not supported: send application/json"),
            ));
        }
    }
    Ok(bytes)
}

async fn write_points(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
    let (parts, body) = req.into_parts();
    let db = api.database(&parts, Action::Write).await?;
    let _slot = api.limits.write_slot().await?;
    let body = json_body(&api, &parts, body).await?;
    let limits = write::WriteLimits {
        max_points: api.config.max_points_per_write,
        max_string_chars: api.config.max_string_chars,
        max_bytes: api.config.max_bytes_value,
    };
    let mut points = write::parse(&body, limits, api.now_ms())?;
    let is_default = db.config().data_dir == api.engine.default_db().config().data_dir;
    let hooked = admit(&api, &parts, is_default, &mut points)?;
    let write = sundial_api::sink::PointWrite::new(db.clone(), points).all_or_nothing();
    let written = api
        .sink
        .write(write)
        .await
        .map_err(|e| BaiduError::storage(&e))?;
    // The point that failed, not one refused along with it.
    let errors = || {
        written
            .outcome
            .results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    };
    if let Some((i, e)) = errors()
        .find(|(_, e)| !matches!(e, sundial_model::PointError::Rejected))
        .or_else(|| errors().next())
    {
        return Err(BaiduError::invalid(format!(
            "data point {i}: {e}; nothing was written"
        )));
    }
    written
        .commit
        .wait()
        .await
        .map_err(|e| BaiduError::storage(&e))?;
    hooked
        .stored(&written.outcome.results)
        .await
        .map_err(|e| BaiduError::internal(&e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Passes the points through the write hooks (BlueKing's group binding,
/// spec bkmonitor 9.4, 9.5): the whole request fails on the first refusal.
fn admit(
    api: &Api,
    parts: &Parts,
    is_default: bool,
    points: &mut [sundial_model::WritePoint],
) -> Result<HookedRequest, BaiduError> {
    let mut hooked = api
        .hooks
        .begin(WriteRequest {
            query: parts.uri.query(),
            headers: &parts.headers,
            default_database: is_default,
        })
        .map_err(|e| BaiduError::invalid(e.to_string()))?;
    for (i, p) in points.iter_mut().enumerate() {
        let metric = p.series.metric.clone();
        hooked.admit(i, p).map_err(|e| match e {
            Refusal::NotANumber => {
                BaiduError::invalid(format!("value of metric '{metric}' must be a number"))
            }
            other => BaiduError::invalid(other.to_string()),
        })?;
    }
    Ok(hooked)
}

mod databases {
    //! Handlers of the management API; signature only, no database check.
    use super::*;

    pub(super) async fn create(
        State(api): State<Api>,
        req: Request,
    ) -> Result<Response, BaiduError> {
        let (parts, body) = req.into_parts();
        let identity = api.authenticate_management(&parts)?;
        let token = param(&parts, "clientToken")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| BaiduError::missing("clientToken"))?;
        let bytes = json_body(&api, &parts, body).await?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| BaiduError::malformed(format!("body is not valid JSON: {e}")))?;
        let now_secs = api.now_ms() / 1000;
        let reply = tokio::task::spawn_blocking(move || {
            api.registry
                .create(&api.engine, &identity, &token, &body, now_secs)
        })
        .await
        .map_err(|e| BaiduError::internal(&e))??;
        Ok(json_ok(&reply))
    }

    pub(super) async fn list(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
        let identity = api.authenticate_management(&req.into_parts().0)?;
        // The registry's lock is held by creates and deletes while they
        // sync or remove files: wait for it off the async workers.
        let list =
            tokio::task::spawn_blocking(move || api.registry.list(&identity, &api.config.region))
                .await
                .map_err(|e| BaiduError::internal(&e))??;
        Ok(json_ok(&list))
    }

    pub(super) async fn get(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
        let parts = req.into_parts().0;
        let identity = api.authenticate_management(&parts)?;
        let id = path_segment(&parts, 3)?;
        let got = tokio::task::spawn_blocking(move || {
            api.registry.get(&identity, &id, &api.config.region)
        })
        .await
        .map_err(|e| BaiduError::internal(&e))??;
        Ok(json_ok(&got))
    }

    pub(super) async fn delete(
        State(api): State<Api>,
        req: Request,
    ) -> Result<Response, BaiduError> {
        let parts = req.into_parts().0;
        let identity = api.authenticate_management(&parts)?;
        let id = path_segment(&parts, 3)?;
        tokio::task::spawn_blocking(move || api.registry.delete(&api.engine, &identity, &id))
            .await
            .map_err(|e| BaiduError::internal(&e))??;
        Ok(StatusCode::OK.into_response())
    }
}
