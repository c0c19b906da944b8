//! BlueKing monitor metadata (seed 000, docs/api/bkmonitor-metadata.md): the
//! `monitor_v3` time series group APIs behind ESB-style authentication,
//! the `/v2/push/` custom report, and the binding of `/api/put` and
//! `/v1/datapoint` writes to groups.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod binder;
mod config;
mod esb;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod groups;
mod ingest;
mod labels;
mod model;
mod registry;
mod sources;
mod validate;

pub use binder::Binder;
pub use config::Config;
pub use ingest::PeerAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{any, post};
use esb::{BkError, envelope};
use serde_json::Value;
use std::sync::Arc;
use sundial_api::access::Action;
use sundial_model::now_ms;
use sundial_storage::{DEFAULT_DATABASE, Db};
use validate::Params;

/// What the BlueKing handlers need.
#[derive(Debug, Clone)]
pub struct Api {
    pub(crate) registry: Arc<registry::Registry>,
    pub(crate) config: Arc<Config>,
    /// Where group data is stored (the default database).
    pub(crate) db: Db,
    /// Request body limit.
    max_body_bytes: usize,
    /// Tag keys per series, as `/api/put` allows.
    max_tags: usize,
    store: Arc<sundial_api::access::Store>,
    limits: sundial_api::limits::Limits,
    /// Where writes are stored (this node, or a cluster's shard owners).
    pub(crate) sink: sundial_api::sink::Sink,
}

impl Api {
    /// Opens the metadata kept in `dir`.
    pub fn new(
        db: Db,
        config: Config,
        dir: &std::path::Path,
        max_body_bytes: usize,
        max_tags: usize,
        store: Arc<sundial_api::access::Store>,
        limits: sundial_api::limits::Limits,
    ) -> std::io::Result<Self> {
        Ok(Self {
            registry: Arc::new(registry::Registry::open(dir)?),
            config: Arc::new(config),
            db,
            max_body_bytes,
            max_tags,
            store,
            limits,
            sink: sundial_api::sink::Sink::default(),
        })
    }

    /// Keeps the metadata in `doc`, which every node of a cluster shares,
    /// instead of this node's file. Before [`Api::binder`]: the binder
    /// looks groups up where the API keeps them.
    pub fn with_shared_metadata(
        mut self,
        doc: Arc<dyn sundial_api::shared::SharedDocument>,
    ) -> std::io::Result<Self> {
        self.registry = Arc::new(registry::Registry::open_shared(doc)?);
        Ok(self)
    }

    /// Sends every write to `sink` instead of this node's databases.
    pub fn with_sink(mut self, sink: sundial_api::sink::Sink) -> Self {
        self.sink = sink;
        self
    }

    fn view(&self) -> model::View {
        model::View {
            now_ms: now_ms(),
            expire_ms: i64::try_from(self.config.metric_expire_seconds)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        }
    }
}

/// The metadata routes (with and without the ESB prefix's alias) and
/// `/v2/push`. Paths arrive without their trailing slash.
pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/api/c/compapi/v2/monitor_v3/{name}", any(dispatch))
        // BlueKing's own client leaves the version out unless configured
        // with `bk_api_ver="v2"`.
        .route("/api/c/compapi/monitor_v3/{name}", any(dispatch))
        .route("/app/metadata/{name}", any(dispatch_alias))
        .route("/v2/push", post(ingest::push))
        .with_state(api)
}

/// The APIs of spec 2 and their methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Create,
    Get,
    Modify,
    Delete,
    Query,
    Metrics,
    CreateDataId,
    GetDataId,
    ListLabel,
}

impl Call {
    /// What the call does to the `default` database, where group data
    /// lives.
    fn action(self) -> Action {
        match self {
            Call::Get | Call::Query | Call::Metrics | Call::GetDataId | Call::ListLabel => {
                Action::Read
            }
            Call::Create | Call::Modify | Call::CreateDataId => Action::Write,
            Call::Delete => Action::Admin,
        }
    }

    fn parse(name: &str, method: &Method) -> Option<Call> {
        let read = *method == Method::GET || *method == Method::POST;
        let write = *method == Method::POST;
        let (call, ok) = match name {
            "metadata_create_time_series_group" => (Call::Create, write),
            "metadata_get_time_series_group" => (Call::Get, read),
            "metadata_modify_time_series_group" => (Call::Modify, write),
            "metadata_delete_time_series_group" => (Call::Delete, write),
            "metadata_query_time_series_group" => (Call::Query, read),
            "metadata_get_time_series_metrics" => (Call::Metrics, read),
            "metadata_create_data_id" => (Call::CreateDataId, write),
            "metadata_get_data_id" => (Call::GetDataId, read),
            "metadata_list_label" => (Call::ListLabel, read),
            _ => return None,
        };
        ok.then_some(call)
    }
}

async fn dispatch_alias(
    state: State<Api>,
    Path(name): Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    dispatch(
        state,
        Path(format!("metadata_{name}")),
        method,
        query,
        headers,
        body,
    )
    .await
}

async fn dispatch(
    State(api): State<Api>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = token();
    let en = headers
        .get("Blueking-Language")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("en"));
    let result = handle(&api, &name, &method, query.as_deref(), &headers, body).await;
    envelope(result, &request_id, en)
}

/// Metadata calls carry group definitions, never data: 4 MiB is ample.
const METADATA_MAX_BODY: usize = 4 << 20;

async fn handle(
    api: &Api,
    name: &str,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, BkError> {
    let call = Call::parse(name, method).ok_or(BkError::Route)?;
    let bytes = if *method == Method::POST {
        // Read and parsed before the caller is known: bounded small.
        let limit = api.max_body_bytes.min(METADATA_MAX_BODY);
        sundial_api::body::read(headers, body, limit)
            .await
            .map_err(|e| match e {
                sundial_api::body::BodyError::TooLarge { limit } => BkError::TooLarge(limit),
                other => BkError::Gateway(other.to_string()),
            })?
    } else {
        bytes::Bytes::new()
    };
    let map = esb::collect_params(query.unwrap_or_default(), &bytes)?;
    let (_user, identity) = esb::authenticate(&api.config, &api.store, headers, &map)?;
    let action = call.action();
    if !identity.may(DEFAULT_DATABASE, action) {
        return Err(BkError::Gateway(format!(
            "Permission denied: {}",
            identity.denial(DEFAULT_DATABASE, action)
        )));
    }
    let shows_tokens = identity.may(DEFAULT_DATABASE, Action::Write);
    let api = api.clone();
    // Mutations write the metadata file: off the async workers.
    tokio::task::spawn_blocking(move || {
        let p = Params {
            map: &map,
            shows_tokens,
        };
        match call {
            Call::Create => groups::create(&api, &p),
            Call::Get => groups::get(&api, &p),
            Call::Modify => groups::modify(&api, &p),
            Call::Delete => groups::delete(&api, &p),
            Call::Query => groups::query(&api, &p),
            Call::Metrics => groups::metrics(&api, &p),
            Call::CreateDataId => sources::create_data_id(&api, &p),
            Call::GetDataId => sources::get_data_id(&api, &p),
            Call::ListLabel => sources::list_label(&p),
        }
    })
    .await
    .unwrap_or(Err(BkError::Internal))
}

/// A complete answer for refusals made before routing: the metadata
/// envelope, or bk-collector's shape for `/v2/push`.
pub fn refusal(path: &str, status: axum::http::StatusCode, message: &str) -> Response {
    if path.starts_with("/v2/push") {
        return ingest::reply(status, message);
    }
    let mut r = envelope(Err(BkError::Gateway(message.to_owned())), &token(), false);
    *r.status_mut() = status;
    r
}

/// Whether a path belongs to this API.
pub fn owns(path: &str) -> bool {
    path.starts_with("/api/c/compapi/")
        || path.starts_with("/app/metadata/")
        || path.starts_with("/v2/push")
}

/// A fresh 32-hex-digit token or request id.
pub(crate) fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
