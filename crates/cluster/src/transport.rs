//! The internal protocol (docs/cluster.md, "Between nodes"): a
//! router posts each shard's frame to the shard's owner over HTTP/2 in
//! clear text (prior knowledge: one connection per peer, many frames in
//! flight on it), and gets back which points were refused. Every request
//! carries the cluster's shared secret; a refusal names its kind in a
//! header, so the router can tell "ask again elsewhere" (not the owner,
//! moving, stale epoch, busy) from a bad frame.

use crate::frame::{self, ShardBatch, decode_outcome, encode_outcome};
use crate::{Error, Ingester, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use sundial_model::WriteOutcome;

mod stage;

pub use stage::{
    ChangedAnswer, DELETE_PATH, DROP_PATH, EXPORT_PATH, FOLDED_PATH, LAST_PATH, LIST_PATH,
    ListedAnswer, NEWER_PATH, RETENTION_PATH, ROWS_PATH, STAGE_PATH, STATS_PATH, StageRequest,
};

/// Where owners take frames.
pub const FRAMES_PATH: &str = "/internal/v1/frames";
/// Where the compactor asks an owner to compact a shard (JSON both ways).
pub const COMPACT_PATH: &str = "/internal/v1/compact";
/// How long the compactor waits for one shard's compaction: merging a
/// shard's week of blocks takes far longer than a frame.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const FRAME_TYPE: &str = "application/x-sundial-frame";
const OUTCOME_TYPE: &str = "application/x-sundial-outcome";
/// Names why a frame was refused.
const REFUSAL: &str = "x-sundial-refusal";
/// With a stale-epoch refusal: the epoch the owner serves under.
const EPOCH: &str = "x-sundial-epoch";
/// The largest frame an owner takes (a router splits larger writes).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// The routes an ingester serves its peers, under the cluster's secret.
pub fn ingest_routes(ingester: Ingester, secret: &str) -> axum::Router {
    let state = Arc::new(Served {
        ingester,
        secret: secret.to_owned(),
    });
    axum::Router::new()
        .route(FRAMES_PATH, axum::routing::post(take_frame))
        .route(STAGE_PATH, axum::routing::post(stage::stage))
        .route(LAST_PATH, axum::routing::post(stage::last))
        .route(ROWS_PATH, axum::routing::post(stage::stage_rows))
        .route(FOLDED_PATH, axum::routing::post(stage::stage_folded))
        .route(LIST_PATH, axum::routing::post(stage::list))
        .route(NEWER_PATH, axum::routing::post(stage::newer))
        .route(STATS_PATH, axum::routing::post(stage::sql_stats))
        .route(DELETE_PATH, axum::routing::post(stage::delete))
        .route(DROP_PATH, axum::routing::post(stage::drop_database))
        .route(RETENTION_PATH, axum::routing::post(stage::retention))
        .route(EXPORT_PATH, axum::routing::post(stage::export_page))
        .route(COMPACT_PATH, axum::routing::post(compact))
        .layer(DefaultBodyLimit::max(MAX_FRAME_BYTES))
        .with_state(state)
}

/// Serves [`ingest_routes`] on `listener` until `stop` completes. Without
/// Nagle's delay: an answer is one small write, and waiting for the peer's
/// delayed acknowledgement cost every multi-frame answer 40 ms.
pub async fn serve_ingest(
    listener: tokio::net::TcpListener,
    ingester: Ingester,
    secret: &str,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, ingest_routes(ingester, secret))
        .with_graceful_shutdown(stop)
        .await
}

struct Served {
    ingester: Ingester,
    secret: String,
}

async fn take_frame(State(s): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &s.secret) {
        return unauthorized();
    }
    let batch = match frame::decode(&body) {
        Ok(b) => b,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, "bad-frame", &e.to_string()),
    };
    match s.ingester.write(batch).await {
        Ok(outcome) => (
            [(header::CONTENT_TYPE, OUTCOME_TYPE)],
            encode_outcome(&outcome),
        )
            .into_response(),
        Err(e) => refused(&e),
    }
}

/// A request to compact one shard, and its answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CompactRequest {
    pub(crate) shard: u32,
    /// Merge every adjacent block now, not only the due merges (an
    /// operator's `/admin/compact`).
    #[serde(default)]
    pub(crate) force: bool,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Compacted {
    /// Blocks the compaction (or retention) replaced.
    pub(crate) retired: usize,
}

async fn compact(State(s): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers, &s.secret) {
        return unauthorized();
    }
    let request: CompactRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, "invalid", &e.to_string()),
    };
    match s.ingester.compact(request.shard, request.force).await {
        Ok(retired) => axum::Json(Compacted { retired }).into_response(),
        Err(e) => refused(&e),
    }
}

fn refused(e: &Error) -> Response {
    let text = e.to_string();
    match e {
        Error::NotOwner { .. } => refusal(StatusCode::MISDIRECTED_REQUEST, "not-owner", &text),
        Error::Moving { .. } => refusal(StatusCode::SERVICE_UNAVAILABLE, "moving", &text),
        Error::StaleEpoch { current, .. } => {
            let mut r = refusal(StatusCode::MISDIRECTED_REQUEST, "stale-epoch", &text);
            r.headers_mut().insert(EPOCH, HeaderValue::from(*current));
            r
        }
        Error::BadDatabase(_) => refusal(StatusCode::BAD_REQUEST, "bad-database", &text),
        Error::Storage(s) if s.class() == sundial_storage::ErrorClass::Busy => {
            refusal(StatusCode::SERVICE_UNAVAILABLE, "busy", &text)
        }
        Error::Storage(s) if s.class() == sundial_storage::ErrorClass::InvalidInput => {
            refusal(StatusCode::BAD_REQUEST, "invalid", &text)
        }
        Error::Storage(s) if s.class() == sundial_storage::ErrorClass::Quota => {
            refusal(StatusCode::TOO_MANY_REQUESTS, "quota", &text)
        }
        // The log or the metadata store failing is the owner's trouble:
        // the write may go through after a retry.
        Error::Wal(_) | Error::Postgres(_) => {
            refusal(StatusCode::SERVICE_UNAVAILABLE, "busy", &text)
        }
        _ => refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", &text),
    }
}

fn refusal(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut r = (status, message.to_owned()).into_response();
    r.headers_mut()
        .insert(REFUSAL, HeaderValue::from_static(kind));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// The answer to a request without the cluster's secret.
fn unauthorized() -> Response {
    refusal(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong cluster secret",
    )
}

fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    let Some(sent) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant time in the secret's bytes: timing tells nothing of it.
    sent.len() == secret.len()
        && sent
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Sends frames to their owners; clones share the connections.
#[derive(Debug, Clone)]
pub struct FrameClient {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Arc<str>,
    timeout: Duration,
}

impl FrameClient {
    /// A client presenting `secret`, giving up on a frame after `timeout`.
    pub fn new(secret: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Self {
            client,
            secret: secret.into(),
            timeout,
        }
    }

    /// Sends `batch` to the owner at `address` (`host:port`): which of its
    /// points the owner refused, or why it refused the whole frame.
    pub async fn send(&self, address: &str, batch: &ShardBatch) -> Result<WriteOutcome> {
        let (parts, body) = self
            .post(address, FRAMES_PATH, FRAME_TYPE, frame::encode(batch))
            .await?;
        if parts.status.is_success() {
            return decode_outcome(&body, batch.points.len())
                .map_err(|e| peer(address, format!("bad answer: {e}")));
        }
        let kind = parts
            .headers
            .get(REFUSAL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let message = String::from_utf8_lossy(&body).into_owned();
        Err(match kind {
            "not-owner" => Error::NotOwner { shard: batch.shard },
            "moving" => Error::Moving { shard: batch.shard },
            "stale-epoch" => Error::StaleEpoch {
                shard: batch.shard,
                sent: batch.epoch,
                current: parts
                    .headers
                    .get(EPOCH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or_default(),
            },
            "bad-database" => Error::BadDatabase(batch.database.clone()),
            "busy" => Error::PeerBusy {
                address: address.to_owned(),
                message,
            },
            "invalid" | "quota" => Error::PeerRefused {
                address: address.to_owned(),
                message,
                class: if kind == "quota" {
                    sundial_storage::ErrorClass::Quota
                } else {
                    sundial_storage::ErrorClass::InvalidInput
                },
            },
            _ => Error::Peer {
                address: address.to_owned(),
                message: format!("{}: {message}", parts.status),
            },
        })
    }

    /// Asks the owner at `address` to compact `shard` (see
    /// [`Ingester::compact`]): the blocks it retired.
    pub async fn compact(&self, address: &str, shard: u32, force: bool) -> Result<usize> {
        let body = serde_json::to_vec(&CompactRequest { shard, force })
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (parts, body) = self
            .post_within(
                address,
                COMPACT_PATH,
                "application/json",
                body,
                COMPACT_TIMEOUT,
            )
            .await?;
        if parts.status.is_success() {
            let answer: Compacted = serde_json::from_slice(&body)
                .map_err(|e| peer(address, format!("bad answer: {e}")))?;
            return Ok(answer.retired);
        }
        let kind = parts.headers.get(REFUSAL).and_then(|v| v.to_str().ok());
        let message = String::from_utf8_lossy(&body).into_owned();
        Err(match kind {
            Some("not-owner") => Error::NotOwner { shard },
            Some("moving") => Error::Moving { shard },
            _ => peer(address, format!("{}: {message}", parts.status)),
        })
    }

    /// Posts `body` to `path` at `address` under the secret and the
    /// timeout: the answer's head and body, whatever its status.
    async fn post(
        &self,
        address: &str,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(axum::http::response::Parts, Bytes)> {
        self.post_within(address, path, content_type, body, self.timeout)
            .await
    }

    /// [`FrameClient::post`] with a timeout of its own.
    async fn post_within(
        &self,
        address: &str,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(axum::http::response::Parts, Bytes)> {
        let request = axum::http::Request::post(format!("http://{address}{path}"))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.secret))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| peer(address, e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| peer(address, e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| peer(address, e.to_string()))?
                .to_bytes();
            Ok::<_, Error>((parts, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| peer(address, format!("no answer in {timeout:?}")))?
    }
}

fn peer(address: &str, message: String) -> Error {
    Error::Peer {
        address: address.to_owned(),
        message,
    }
}
