//! The OpenTSDB HTTP API and telnet protocol (seed 001, spec opentsdb.md).

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
mod mput;
mod mquery;
mod names;
mod put;
mod query;
mod telnet;
mod time;
mod uidmeta;
mod uids;
mod zone;

pub use config::Config;
pub use error::OpenTsdbError;
pub use telnet::serve as serve_telnet;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde_json::json;
use std::sync::Arc;
use sundial_storage::Db;

/// What the OpenTSDB handlers need.
#[derive(Debug, Clone)]
pub struct Api {
    pub db: Db,
    pub config: Arc<Config>,
    uids: Arc<uids::Uids>,
    /// BlueKing groups that writes may be bound to.
    groups: Option<crate::bk::ingest::Binder>,
    /// Checked series keys of put elements.
    keys: Arc<put::keys::KeyCache>,
}

impl Api {
    /// The API over `db`, keeping its UID log in `dir`.
    pub fn new(db: Db, config: Config, dir: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self {
            db,
            config: Arc::new(config),
            uids: Arc::new(uids::Uids::open(dir)?),
            groups: None,
            keys: Arc::default(),
        })
    }

    /// Binds writes to BlueKing groups (`bk_data_id`, physical names).
    pub fn with_groups(mut self, binder: crate::bk::ingest::Binder) -> Self {
        self.groups = Some(binder);
        self
    }

    fn limits(&self) -> put::Limits {
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
        .route("/api/health", guarded(get(|| async { StatusCode::OK })))
        .route("/api/{*rest}", any(not_found))
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
async fn stats() -> Response {
    error::json_response(StatusCode::OK, &json!([])).into_response()
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
