//! `/admin/snapshots`: named point-in-time snapshots of every database
//! (`sundial_storage::snapshots`), and the reads `sundial backup --url`
//! copies them with.

use super::error;
use crate::backup::{Origin, list};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sundial_storage::{Engine, ErrorClass};

/// Most bytes one file read returns.
const MAX_READ: usize = 16 << 20;

/// Runs blocking storage work off the async workers; a storage error
/// becomes its status, internals only in the log.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(f)) => Err(f.response()),
        Err(e) => {
            tracing::error!(error = %e, "snapshot task failed");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            ))
        }
    }
}

/// Why a snapshot request failed.
enum Failure {
    Storage(sundial_storage::Error),
    Other(StatusCode, String),
    Internal(anyhow::Error),
}

impl From<sundial_storage::Error> for Failure {
    fn from(e: sundial_storage::Error) -> Self {
        Self::Storage(e)
    }
}

impl Failure {
    fn response(self) -> Response {
        match self {
            Self::Storage(e) => {
                let status = match e.class() {
                    ErrorClass::InvalidInput => StatusCode::BAD_REQUEST,
                    ErrorClass::Conflict => StatusCode::CONFLICT,
                    ErrorClass::NotFound => StatusCode::NOT_FOUND,
                    ErrorClass::Busy | ErrorClass::Quota => StatusCode::SERVICE_UNAVAILABLE,
                    _ => {
                        tracing::error!(error = %e, "snapshot request failed");
                        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
                    }
                };
                error(status, &e.to_string())
            }
            Self::Other(status, message) => error(status, &message),
            Self::Internal(e) => {
                tracing::error!(error = %e, "snapshot request failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

pub(super) async fn list_all(State(engine): State<Engine>) -> Response {
    match blocking(move || Ok(engine.snapshots()?)).await {
        Ok(all) => Json(json!({ "snapshots": all })).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    name: Option<String>,
}

/// `POST /admin/snapshots` with `{"name": ...}` (or `?name=`; default
/// `snapshot-<milliseconds since the epoch>`): flushes every database and
/// answers 201 with the snapshot once it is complete.
pub(super) async fn create(
    State(engine): State<Engine>,
    Query(query): Query<Create>,
    body: Bytes,
) -> Response {
    let named: Create = if body.iter().all(u8::is_ascii_whitespace) {
        Create::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
        }
    };
    let now = sundial_model::now_ms();
    let name = named
        .name
        .or(query.name)
        .unwrap_or_else(|| format!("snapshot-{now}"));
    match blocking(move || Ok(engine.create_snapshot(&name, now)?)).await {
        Ok(info) => (StatusCode::CREATED, Json(json!({ "snapshot": info }))).into_response(),
        Err(r) => r,
    }
}

pub(super) async fn remove(State(engine): State<Engine>, Path(name): Path<String>) -> Response {
    let shown = name.clone();
    match blocking(move || Ok(engine.drop_snapshot(&name)?)).await {
        Ok(()) => Json(json!({ "deleted": shown })).into_response(),
        Err(r) => r,
    }
}

/// Every file of the snapshot with its size and identity (what
/// `sundial backup` compares against its destination).
pub(super) async fn files(State(engine): State<Engine>, Path(name): Path<String>) -> Response {
    let listed = blocking(move || {
        let dir = engine.snapshot_dir(&name)?;
        let items = list(&dir).map_err(Failure::Internal)?;
        Ok(items.into_iter().map(|i| i.entry).collect::<Vec<_>>())
    })
    .await;
    match listed {
        Ok(files) => Json(json!({ "files": files })).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Read {
    path: String,
    offset: u64,
    len: usize,
}

/// `len` bytes (at most 16 MiB) from `offset` of one file of the snapshot.
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    Query(read): Query<Read>,
) -> Response {
    if read.len > MAX_READ {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("len may be at most {MAX_READ} bytes"),
        );
    }
    let bytes = blocking(move || {
        let dir = engine.snapshot_dir(&name)?;
        let origin = origin_of(&dir, &read.path)?;
        crate::backup::read_origin(&origin, engine.remote(), read.offset, read.len)
            .map_err(Failure::Internal)
    })
    .await;
    match bytes {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(r) => r,
    }
}

/// Where the snapshot file `path` is read from: a file of the snapshot,
/// or a block its `blocks.remote` names.
fn origin_of(dir: &std::path::Path, path: &str) -> Result<Origin, Failure> {
    let missing = || {
        Failure::Other(
            StatusCode::NOT_FOUND,
            format!("no file {path} in the snapshot"),
        )
    };
    if !crate::backup::is_safe_path(path) {
        return Err(missing());
    }
    let local = dir.join(path);
    if local.is_file() {
        return Ok(Origin::File(local));
    }
    let parts: Vec<&str> = path.split('/').collect();
    let ["db", database, file] = parts.as_slice() else {
        return Err(missing());
    };
    let blocks = sundial_storage::snapshots::remote_blocks(&dir.join("db").join(database))?;
    blocks
        .into_iter()
        .find(|b| b.file_name == *file)
        .map(|b| Origin::Object {
            database: (*database).to_owned(),
            key: b.key,
        })
        .ok_or_else(missing)
}
