//! The Baidu TSDB `/v1` API (seed 002, spec baidu-tsdb.md): writes,
//! metadata, the JSON query and the database management API, with
//! `bce-auth-v1` signatures.

mod auth;
mod config;
mod database;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod meta;
mod query;
mod sql;
mod time;
mod write;

pub use auth::Credential;
pub use config::Config;
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
use sundial_model::Timestamp;
use sundial_storage::{DEFAULT_DATABASE, Db, Engine};

/// What the `/v1` handlers share.
#[derive(Debug, Clone)]
pub struct Api {
    engine: Engine,
    config: Arc<Config>,
    registry: Arc<database::Registry>,
    /// BlueKing groups that writes may be bound to.
    groups: Option<crate::bk::ingest::Binder>,
}

impl Api {
    /// Opens the database registry under the engine's data directory.
    pub fn new(engine: Engine, config: Config) -> std::io::Result<Self> {
        let registry = Arc::new(database::Registry::open(&engine)?);
        Ok(Self {
            engine,
            config: Arc::new(config),
            registry,
            groups: None,
        })
    }

    /// Binds writes to BlueKing groups (`bk_data_id`, physical names).
    pub fn with_groups(mut self, binder: crate::bk::ingest::Binder) -> Self {
        self.groups = Some(binder);
        self
    }

    fn auth_enabled(&self) -> bool {
        self.config.require_auth && !self.config.credentials.is_empty()
    }

    /// Checks the signature (when auth is on); returns the key's database
    /// permission check.
    fn authenticate(&self, parts: &Parts) -> Result<Option<&Credential>, BaiduError> {
        if !self.auth_enabled() {
            return Ok(None);
        }
        let path = parts
            .extensions
            .get::<crate::ReceivedPath>()
            .map_or(parts.uri.path(), |p| p.0.as_str());
        let req = auth::SignedRequest {
            method: parts.method.as_str(),
            path,
            query: parts.uri.query(),
            headers: &parts.headers,
        };
        auth::verify(&req, &self.config.credentials, self.now_ms() / 1000)
            .map(Some)
            .map_err(|e| {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
                BaiduError::new(status, e.code(), e.to_string())
            })
    }

    /// Authentication, then the database: `database=`, a `{db}.tsdb.` Host,
    /// or the default (spec 3.2).
    fn database(&self, parts: &Parts) -> Result<Db, BaiduError> {
        let credential = self.authenticate(parts)?;
        let name = param(parts, "database")
            .filter(|d| !d.is_empty())
            .or_else(|| {
                let host = parts.headers.get(header::HOST)?.to_str().ok()?;
                let host = host.split(':').next().unwrap_or(host);
                host.contains(".tsdb.")
                    .then(|| host.split('.').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let db = self
            .engine
            .database(&name)
            .ok_or_else(|| BaiduError::not_found(format!("database {name} does not exist")))?;
        if let Some(c) = credential
            && !c.may_use(&name)
        {
            return Err(BaiduError::access_denied(format!(
                "access key {} may not use database {name}",
                c.access_key_id
            )));
        }
        check_accept(&parts.headers)?;
        Ok(db)
    }

    /// Authentication for the management API, then `Accept`.
    fn authenticate_management(&self, parts: &Parts) -> Result<(), BaiduError> {
        self.authenticate(parts)?;
        check_accept(&parts.headers)
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

/// Milliseconds since the epoch.
fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Timestamp)
        .unwrap_or_default()
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

/// Request id, CORS, `Accept`, and the error body that repeats the id.
async fn envelope(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::OK.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, PUT, POST, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("*"),
        );
        r
    } else {
        next.run(req).await
    };
    if let Some(err) = resp.extensions_mut().remove::<ErrorBody>() {
        let body = json!({"requestId": id, "code": err.code, "message": err.message});
        *resp.body_mut() = Body::from(body.to_string());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-bce-request-id", v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-bce-request-id"),
    );
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
    let bytes = crate::body::read(&parts.headers, body, api.config.max_body_bytes).await?;
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
    let db = api.database(&parts)?;
    let body = json_body(&api, &parts, body).await?;
    let limits = write::WriteLimits {
        max_points: api.config.max_points_per_write,
        max_string_chars: api.config.max_string_chars,
        max_bytes: api.config.max_bytes_value,
    };
    let mut points = write::parse(&body, limits, api.now_ms())?;
    let is_default = db.config().data_dir == api.engine.default_db().config().data_dir;
    let seen = bind_groups(&api, &parts, is_default, &mut points)?;
    let written = db
        .write_all_or_nothing(points, false)
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
    if let (Some(binder), false) = (&api.groups, seen.is_empty()) {
        binder
            .discovered(&seen)
            .map_err(|e| BaiduError::internal(&e))?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Binds points to BlueKing groups (spec bkmonitor 9.4, 9.5): the whole
/// request fails on the first refusal. Returns what the points will reveal.
fn bind_groups(
    api: &Api,
    parts: &Parts,
    is_default: bool,
    points: &mut [sundial_model::WritePoint],
) -> Result<crate::bk::ingest::Seen, BaiduError> {
    let mut seen = crate::bk::ingest::Seen::new();
    let Some(binder) = &api.groups else {
        return Ok(seen);
    };
    let explicit = crate::bk::ingest::explicit_data_id(parts.uri.query(), &parts.headers)
        .map_err(|raw| BaiduError::invalid(format!("invalid bk_data_id '{raw}'")))?;
    // Group data lives in the default database.
    if !is_default {
        return match explicit {
            Some(_) => Err(BaiduError::invalid(
                "bk_data_id applies to writes to the default database only",
            )),
            None => Ok(seen),
        };
    }
    if explicit.is_none() && !binder.any_groups() {
        return Ok(seen);
    }
    for p in points.iter_mut() {
        let metric = p.series.metric.clone();
        match binder.bind(explicit, p) {
            Ok(Some((group, field))) => {
                crate::bk::ingest::Binder::note(&mut seen, group, &field, &p.series);
            }
            Ok(None) => {}
            Err(e) => return Err(BaiduError::invalid(e.v1_text(&metric))),
        }
    }
    crate::bk::ingest::one_unit(&mut seen);
    Ok(seen)
}

mod databases {
    //! Handlers of the management API; signature only, no database check.
    use super::*;

    pub(super) async fn create(
        State(api): State<Api>,
        req: Request,
    ) -> Result<Response, BaiduError> {
        let (parts, body) = req.into_parts();
        api.authenticate_management(&parts)?;
        let token = param(&parts, "clientToken")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| BaiduError::missing("clientToken"))?;
        let bytes = json_body(&api, &parts, body).await?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| BaiduError::malformed(format!("body is not valid JSON: {e}")))?;
        let now_secs = api.now_ms() / 1000;
        let reply = tokio::task::spawn_blocking(move || {
            api.registry.create(&api.engine, &token, &body, now_secs)
        })
        .await
        .map_err(|e| BaiduError::internal(&e))??;
        Ok(json_ok(&reply))
    }

    pub(super) async fn list(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
        api.authenticate_management(&req.into_parts().0)?;
        Ok(json_ok(&api.registry.list(&api.config.region)))
    }

    pub(super) async fn get(State(api): State<Api>, req: Request) -> Result<Response, BaiduError> {
        let parts = req.into_parts().0;
        api.authenticate_management(&parts)?;
        let id = path_segment(&parts, 3)?;
        Ok(json_ok(&api.registry.get(&id, &api.config.region)?))
    }

    pub(super) async fn delete(
        State(api): State<Api>,
        req: Request,
    ) -> Result<Response, BaiduError> {
        let parts = req.into_parts().0;
        api.authenticate_management(&parts)?;
        let id = path_segment(&parts, 3)?;
        tokio::task::spawn_blocking(move || api.registry.delete(&api.engine, &id))
            .await
            .map_err(|e| BaiduError::internal(&e))??;
        Ok(StatusCode::OK.into_response())
    }
}
