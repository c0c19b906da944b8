//! The internal read protocol: a querier asks a shard owner for the
//! per-series half of a query over the shards it names (JSON request,
//! binary answer: `frame::staged` for OpenTSDB, `frame::rows` and
//! `frame::folded` for Baidu and for OpenTSDB's newest points,
//! `frame::stats` for SQL's aggregates), or
//! for a listing (JSON both ways: a
//! listing is names, not points), or to delete in its shards. A query the owner cannot run
//! comes back with its error class, so the querier answers as the single
//! node would.

use super::{FrameClient, Served, authorized, peer, refusal};
use crate::frame::{
    ExportAnswer, FoldedAnswer, NewerAnswer, RowsAnswer, StagedAnswer, StatsAnswer, decode_export,
    decode_folded, decode_newer, decode_rows, decode_staged, decode_stats, encode_export,
    encode_folded, encode_newer, encode_rows, encode_staged, encode_stats,
};
use crate::ingest::NewerQuery;
use crate::{Error, Ingester, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use sundial_model::series_query::SeriesQuery;
use sundial_model::{Deletion, ErrorClass, ExportPage, Listed, Listing, Query, StatsQuery};

/// Where owners answer the per-series half of OpenTSDB queries...
pub const STAGE_PATH: &str = "/internal/v1/opentsdb/series";
/// ...the newest points OpenTSDB's `/api/query/last` asks for...
pub const LAST_PATH: &str = "/internal/v1/opentsdb/last";
/// ...of Baidu series queries...
pub const ROWS_PATH: &str = "/internal/v1/baidu/series";
/// ...and of Baidu queries that fold per bucket.
pub const FOLDED_PATH: &str = "/internal/v1/baidu/folded";
/// Where owners answer listings (metrics, fields, tags).
pub const LIST_PATH: &str = "/internal/v1/listing";
/// Where owners answer SQL's statistics per group and bucket.
pub const STATS_PATH: &str = "/internal/v1/sql/stats";
/// Where an owner reads one export page of a shard.
pub const EXPORT_PATH: &str = "/internal/v1/export";
/// Where owners drop a database from their shards (Baidu's drop).
pub const DROP_PATH: &str = "/internal/v1/drop";
/// Where owners set a database's retention in their shards (`/api/ttl`).
pub const RETENTION_PATH: &str = "/internal/v1/retention";
/// Where owners answer what their shards hold beyond the checkpoints a
/// querier reading the blocks itself holds.
pub const NEWER_PATH: &str = "/internal/v1/newer";
/// Where owners delete in their shards (OpenTSDB's deletes).
pub const DELETE_PATH: &str = "/internal/v1/delete";
/// A change checkpoints each shard (a delete also rewrites blocks) before
/// it answers.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const JSON_TYPE: &str = "application/json";
const ANSWER_TYPE: &str = "application/x-sundial-staged";
/// With a refused query: the class of its error.
const CLASS: &str = "x-sundial-class";

/// What a querier asks one owner: `query` is an OpenTSDB [`Query`] or a
/// Baidu [`SeriesQuery`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StageRequest<Q = Query> {
    pub database: String,
    pub shards: Vec<u32>,
    pub query: Q,
    /// What is left of the querier's budget.
    pub timeout_ms: u64,
    pub max_points: usize,
    /// Groups the query may make (folded Baidu queries).
    #[serde(default)]
    pub max_groups: usize,
}

/// An owner's listing over the shards it covers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ListedAnswer {
    pub shards: Vec<u32>,
    pub listed: Listed,
}

/// An owner's change over the shards it covers (a delete, a drop, a
/// retention): the shards, and how much it changed (points deleted,
/// objects retired, databases whose retention changed).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ChangedAnswer {
    pub shards: Vec<u32>,
    pub count: u64,
}

impl<Q> StageRequest<Q> {
    fn allowance(&self) -> (Duration, usize) {
        (Duration::from_millis(self.timeout_ms), self.max_points)
    }
}

pub(super) async fn stage(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<Query>| async move {
        let allowance = r.allowance();
        (ingester)
            .stage_opentsdb(&r.database, &r.shards, Arc::new(r.query), allowance)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_staged).await
}

pub(super) async fn last(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<Query>| async move {
        let allowance = r.allowance();
        (ingester)
            .last(&r.database, &r.shards, Arc::new(r.query), allowance)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_rows).await
}

pub(super) async fn stage_rows(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<SeriesQuery>| async move {
        let allowance = r.allowance();
        (ingester)
            .stage_series_query(&r.database, &r.shards, Arc::new(r.query), allowance)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_rows).await
}

pub(super) async fn stage_folded(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<SeriesQuery>| async move {
        let (allowance, groups) = (r.allowance(), r.max_groups);
        (ingester)
            .stage_folded_query(&r.database, &r.shards, Arc::new(r.query), allowance, groups)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_folded).await
}

pub(super) async fn sql_stats(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<StatsQuery>| async move {
        let allowance = r.allowance();
        (ingester)
            .sql_stats(&r.database, &r.shards, Arc::new(r.query), allowance)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_stats).await
}

pub(super) async fn list(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<Listing>| async move {
        let allowance = r.allowance();
        (ingester)
            .list(&r.database, &r.shards, Arc::new(r.query), allowance)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_json).await
}

pub(super) async fn export_page(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<ExportPage>| async move {
        match r.shards.first() {
            Some(&shard) => {
                (ingester)
                    .export_page(&r.database, shard, Arc::new(r.query))
                    .await
            }
            None => Ok(ExportAnswer::default()),
        }
    };
    serve_stage(&s, &headers, &body, run, encode_export).await
}

pub(super) async fn drop_database(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<()>| async move {
        (ingester).drop_database(&r.database, &r.shards).await
    };
    serve_stage(&s, &headers, &body, run, encode_json).await
}

pub(super) async fn retention(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<u64>| async move {
        let set = ingester.set_retention_in(&r.database, &r.shards, r.query);
        let (shards, changed) = set.await.map_err(|e| sundial_query::Error::Remote {
            message: e.to_string(),
            class: ErrorClass::Busy,
        })?;
        Ok(ChangedAnswer {
            shards,
            count: changed as u64,
        })
    };
    serve_stage(&s, &headers, &body, run, encode_json).await
}

pub(super) async fn delete(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<Deletion>| async move {
        (ingester)
            .delete(&r.database, &r.shards, Arc::new(r.query))
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_json).await
}

/// A listing or delete answer as JSON (plain data cannot fail to
/// serialize).
pub(super) async fn newer(
    State(s): State<Arc<Served>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = |ingester: Ingester, r: StageRequest<NewerQuery>| async move {
        let allowance = r.allowance();
        ingester
            .newer(&r.database, Arc::new(r.query), allowance)
            .await
    };
    serve_stage(&s, &headers, &body, run, encode_newer).await
}

fn encode_json<T: serde::Serialize>(answer: &T) -> Vec<u8> {
    serde_json::to_vec(answer).unwrap_or_default()
}

/// One query half: the request checked and parsed, `run` on this node's
/// ingester, the answer encoded (or the query's error with its class).
async fn serve_stage<Q, T, F>(
    s: &Served,
    headers: &HeaderMap,
    body: &[u8],
    run: impl FnOnce(Ingester, StageRequest<Q>) -> F,
    encode: fn(&T) -> Vec<u8>,
) -> Response
where
    Q: serde::de::DeserializeOwned,
    F: Future<Output = sundial_query::Result<T>>,
{
    let request = match accept(s, headers, body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    answered(run(s.ingester.clone(), request).await.map(|a| encode(&a)))
}

/// The request, if its secret is right and its body parses.
fn accept<Q: serde::de::DeserializeOwned>(
    s: &Served,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<StageRequest<Q>, Box<Response>> {
    if !authorized(headers, &s.secret) {
        return Err(Box::new(super::unauthorized()));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &e.to_string(),
        ))
    })
}

fn answered(answer: sundial_query::Result<Vec<u8>>) -> Response {
    match answer {
        Ok(bytes) => ([(header::CONTENT_TYPE, ANSWER_TYPE)], bytes).into_response(),
        Err(e) => {
            let mut r = refusal(StatusCode::UNPROCESSABLE_ENTITY, "query", &e.to_string());
            r.headers_mut()
                .insert(CLASS, HeaderValue::from_static(class_name(e.class())));
            r
        }
    }
}

impl FrameClient {
    /// Asks the owner at `address` for the per-series half of an
    /// OpenTSDB query.
    pub async fn stage(&self, address: &str, request: &StageRequest) -> Result<StagedAnswer> {
        let body = self.ask(address, STAGE_PATH, request).await?;
        decode_staged(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for the per-series half of a Baidu
    /// series query.
    pub async fn stage_rows(
        &self,
        address: &str,
        request: &StageRequest<SeriesQuery>,
    ) -> Result<RowsAnswer> {
        let body = self.ask(address, ROWS_PATH, request).await?;
        decode_rows(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for the newest point of each series an
    /// OpenTSDB query selects in its shards (one-row halves).
    pub async fn last(&self, address: &str, request: &StageRequest) -> Result<RowsAnswer> {
        let body = self.ask(address, LAST_PATH, request).await?;
        decode_rows(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for the folded half of a Baidu query.
    pub async fn stage_folded(
        &self,
        address: &str,
        request: &StageRequest<SeriesQuery>,
    ) -> Result<FoldedAnswer> {
        let body = self.ask(address, FOLDED_PATH, request).await?;
        decode_folded(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for SQL's statistics over its shards.
    pub async fn sql_stats(
        &self,
        address: &str,
        request: &StageRequest<StatsQuery>,
    ) -> Result<StatsAnswer> {
        let body = self.ask(address, STATS_PATH, request).await?;
        decode_stats(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for what its shards hold beyond the
    /// checkpoints the request says the querier holds.
    pub(crate) async fn newer(
        &self,
        address: &str,
        request: &StageRequest<NewerQuery>,
    ) -> Result<NewerAnswer> {
        let body = self.ask(address, NEWER_PATH, request).await?;
        decode_newer(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for a listing over its shards.
    pub async fn list(
        &self,
        address: &str,
        request: &StageRequest<Listing>,
    ) -> Result<ListedAnswer> {
        let body = self.ask(address, LIST_PATH, request).await?;
        serde_json::from_slice(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for one export page of the shard the
    /// request names.
    pub async fn export_page(
        &self,
        address: &str,
        request: &StageRequest<ExportPage>,
    ) -> Result<ExportAnswer> {
        let body = self.ask(address, EXPORT_PATH, request).await?;
        decode_export(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    /// Asks the owner at `address` for a change in its shards at `path`
    /// ([`DELETE_PATH`], [`DROP_PATH`], [`RETENTION_PATH`]): the shards it
    /// covered and what it changed.
    pub async fn change<Q: serde::Serialize>(
        &self,
        address: &str,
        path: &str,
        request: &StageRequest<Q>,
    ) -> Result<ChangedAnswer> {
        let body = self
            .ask_within(address, path, request, CHANGE_TIMEOUT)
            .await?;
        serde_json::from_slice(&body).map_err(|e| peer(address, format!("bad answer: {e}")))
    }

    async fn ask<Q: serde::Serialize>(
        &self,
        address: &str,
        path: &str,
        request: &StageRequest<Q>,
    ) -> Result<Bytes> {
        self.ask_within(address, path, request, self.timeout).await
    }

    async fn ask_within<Q: serde::Serialize>(
        &self,
        address: &str,
        path: &str,
        request: &StageRequest<Q>,
        timeout: Duration,
    ) -> Result<Bytes> {
        let body = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        let (parts, body) = self
            .post_within(address, path, JSON_TYPE, body, timeout)
            .await?;
        if parts.status.is_success() {
            return Ok(body);
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
