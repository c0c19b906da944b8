//! `/api/ttl` (docs/api/opentsdb.md, Alibaba extensions): reads and sets
//! how long the database keeps data. It is the storage retention: a value
//! set here is kept in the data directory and wins over
//! `storage.retention_secs` from then on.

use super::error::{OpenTsdbError, json_response};
use super::lookup::json_body;
use super::scope::{AdminScope, ReadScope};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `GET`: `{"val": <seconds, 0 = forever>}`.
pub(crate) async fn get(ReadScope(api): ReadScope) -> Response {
    json_response(StatusCode::OK, &json!({"val": api.db.retention_secs()}))
}

/// `POST {"val": n}`: keeps `n` seconds of data from now on (0: all).
pub(crate) async fn post(
    AdminScope(api): AdminScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let secs = match v.get("val") {
        None | Some(Value::Null) => return Err(OpenTsdbError::bad_request("Missing val")),
        Some(n) => n
            .as_u64()
            .ok_or_else(|| OpenTsdbError::bad_request(format!("Invalid ttl: {n}")))?,
    };
    let db = api.db.clone();
    sundial_api::write_off_workers(move || db.set_retention_secs(secs)).await?;
    tracing::info!(retention_secs = secs, "retention set through /api/ttl");
    Ok(StatusCode::OK.into_response())
}
