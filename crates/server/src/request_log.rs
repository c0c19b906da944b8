//! Per request: an id, echoed in `X-Request-Id` (the client's own when it
//! sends a plain token, else a fresh UUID) and handed to the APIs (Baidu's
//! `x-bce-request-id` and error bodies repeat it), a tracing span carrying
//! it so every log line of the request names it, and the slow-request log:
//! requests slower than `log.slow_query_ms` are logged with their API,
//! route, time, the points they scanned (when the API reports it) and,
//! for queries, the statement (query string and the start of the body).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_api::Scanned;
use tracing::Instrument;

/// Bytes of a query body kept for the slow-query log.
const STATEMENT_BYTES: usize = 2048;

/// The longest client-chosen request id accepted.
const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    /// Requests at least this slow are logged; `None`: never.
    pub(crate) slow: Option<Duration>,
    /// Running queries and recent slow requests (`/admin/queries`).
    pub(crate) board: Arc<crate::query_board::QueryBoard>,
}

/// The layer on every request (routed or not).
pub(crate) async fn trace(State(log): State<RequestLog>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut()
        .insert(sundial_api::RequestId(id.clone()));
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    // At warn level, so the warnings and errors of a server logging at
    // `SUNDIAL_LOG=warn` still name their request.
    let span = tracing::warn_span!("request", id = %id, method = %method, path = %path);
    let query = is_query(&method, &path, req.uri().query());
    // The start of a query's body, as the handler reads it.
    let body_start = query.then(|| {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = kept.clone();
        let stream = std::mem::take(req.body_mut())
            .into_data_stream()
            .map(move |chunk| {
                if let Ok(bytes) = &chunk {
                    let mut kept = sink.lock();
                    let room = STATEMENT_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                chunk
            });
        *req.body_mut() = Body::from_stream(stream);
        kept
    });
    let compressed = req.headers().contains_key("content-encoding");
    let query_string = req.uri().query().map(str::to_owned);
    let started = Instant::now();
    let running = query.then(|| {
        log.board
            .start(&id, &path, query_string.clone(), body_start.clone())
    });
    let mut response = next.run(req).instrument(span.clone()).await;
    drop(running);
    let elapsed = started.elapsed();
    if log.slow.is_some_and(|slow| elapsed >= slow) {
        let scanned = response.extensions().get::<Scanned>().map(|s| s.0);
        let body = body_start.map(|kept| {
            if compressed {
                "(compressed body)".to_owned()
            } else {
                String::from_utf8_lossy(&kept.lock()).into_owned()
            }
        });
        let statement =
            crate::query_board::statement(query_string.as_deref(), body).filter(|_| query);
        log.board.record_slow(crate::query_board::Slow {
            id: id.clone(),
            api: crate::metrics::api_of(&path),
            path: path.clone(),
            status: response.status().as_u16(),
            elapsed_ms: elapsed.as_millis() as u64,
            scanned_points: scanned,
            statement: statement.clone(),
            at_ms: sundial_model::now_ms(),
        });
        span.in_scope(|| {
            tracing::warn!(
                target: "sundial::slow",
                api = crate::metrics::api_of(&path),
                status = response.status().as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                scanned_points = scanned,
                statement = statement.as_deref(),
                "slow request"
            );
        });
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Ids a client may choose: short, letters, digits, `-_.:`.
fn is_plain_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_ID_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Requests whose body (or query string) is a query statement.
fn is_query(method: &Method, path: &str, query: Option<&str>) -> bool {
    let path = path.trim_end_matches('/');
    let opentsdb = [
        "/api/query",
        "/api/query/last",
        "/api/mquery",
        "/api/query/mlast",
    ]
    .iter()
    .any(|p| path.ends_with(p));
    let baidu_query = path == "/v1/datapoint"
        && *method == Method::PUT
        && query.is_some_and(|q| {
            q.split('&')
                .any(|p| p == "query" || p.starts_with("query="))
        });
    opentsdb || baidu_query || path == "/v1/row"
}

#[cfg(test)]
mod tests {
    use super::{is_plain_id, is_query};
    use axum::http::Method;

    #[test]
    fn ids_and_query_routes() {
        assert!(is_plain_id("grafana-1234.5:x"));
        assert!(!is_plain_id("has space"));
        assert!(!is_plain_id(&"x".repeat(65)));
        assert!(is_query(&Method::POST, "/api/query/", None));
        assert!(is_query(&Method::PUT, "/v1/datapoint", Some("query")));
        assert!(!is_query(&Method::POST, "/v1/datapoint", None));
        assert!(!is_query(&Method::POST, "/api/put", Some("details")));
    }
}
