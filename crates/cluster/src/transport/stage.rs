//! The internal read protocol: a querier asks a shard owner for the
//! per-series half of an OpenTSDB query over the shards it names (JSON
//! request, binary answer: `frame::staged`). A query the owner cannot run
//! comes back with its error class, so the querier answers as the single
//! node would.

use super::{FrameClient, Served, authorized, peer, refusal};
use crate::frame::{StagedAnswer, decode_staged, encode_staged};
use crate::{Error, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use sundial_model::{ErrorClass, Query};

/// Where owners answer the per-series half of OpenTSDB queries.
pub const STAGE_PATH: &str = "/internal/v1/opentsdb/series";
const JSON_TYPE: &str = "application/json";
const STAGED_TYPE: &str = "application/x-sundial-staged";
/// With a refused query: the class of its error.
const CLASS: &str = "x-sundial-class";

/// What a querier asks one owner.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StageRequest {
    pub database: String,
    pub shards: Vec<u32>,
    pub query: Query,
    /// What is left of the querier's budget.
    pub timeout_ms: u64,
    pub max_points: usize,
}

pub(super) async fn stage(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &s.secret) {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong cluster secret",
        );
    }
    let request: StageRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, "bad-request", &e.to_string()),
    };
    let limits = (
        Duration::from_millis(request.timeout_ms),
        request.max_points,
    );
    let query = Arc::new(request.query);
    match s
        .ingester
        .stage_opentsdb(&request.database, &request.shards, query, limits)
        .await
    {
        Ok(answer) => (
            [(header::CONTENT_TYPE, STAGED_TYPE)],
            encode_staged(&answer),
        )
            .into_response(),
        Err(e) => {
            let mut r = refusal(StatusCode::UNPROCESSABLE_ENTITY, "query", &e.to_string());
            r.headers_mut()
                .insert(CLASS, HeaderValue::from_static(class_name(e.class())));
            r
        }
    }
}

impl FrameClient {
    /// Asks the owner at `address` for the per-series half of a query.
    pub async fn stage(&self, address: &str, request: &StageRequest) -> Result<StagedAnswer> {
        let body = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        let (parts, body) = self.post(address, STAGE_PATH, JSON_TYPE, body).await?;
        if parts.status.is_success() {
            return decode_staged(&body).map_err(|e| peer(address, format!("bad answer: {e}")));
        }
        let message = String::from_utf8_lossy(&body).into_owned();
        let class = parts
            .headers
            .get(CLASS)
            .and_then(|v| v.to_str().ok())
            .and_then(class_of);
        Err(match class {
            Some(class) => Error::PeerRefused {
                address: address.to_owned(),
                message,
                class,
            },
            None => Error::Peer {
                address: address.to_owned(),
                message: format!("{}: {message}", parts.status),
            },
        })
    }
}

const CLASSES: [(ErrorClass, &str); 7] = [
    (ErrorClass::InvalidInput, "invalid"),
    (ErrorClass::NotFound, "not-found"),
    (ErrorClass::Conflict, "conflict"),
    (ErrorClass::Quota, "quota"),
    (ErrorClass::Busy, "busy"),
    (ErrorClass::Timeout, "timeout"),
    (ErrorClass::Internal, "internal"),
];

fn class_name(class: ErrorClass) -> &'static str {
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map_or("internal", |(_, n)| n)
}

fn class_of(name: &str) -> Option<ErrorClass> {
    CLASSES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
}
