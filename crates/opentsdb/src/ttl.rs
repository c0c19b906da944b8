//! `/api/ttl` (docs/api/opentsdb.md, Alibaba extensions): reads and sets
//! how long the database keeps data. It is the storage retention: a value
//! set here is kept in the data directory and wins over
//! `storage.retention_secs` from then on. On a cluster node it is kept in
//! a document every node shares, and each shard's owner applies it, at
//! once when set (docs/cluster.md, "Shared metadata").

use super::error::{OpenTsdbError, json_response};
use super::lookup::json_body;
use super::scope::{AdminScope, ReadScope};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use sundial_api::shared::SharedDocument;
use sundial_model::ErrorClass;

/// Times a change is tried against other nodes' changes.
const ATTEMPTS: usize = 16;

/// `GET`: `{"val": <seconds, 0 = forever>}`.
pub(crate) async fn get(ReadScope(api): ReadScope) -> Result<Response, OpenTsdbError> {
    let secs = match api.shared_ttl.clone() {
        Some((doc, _)) => {
            let database = api.database.to_string();
            let stored = api.read_blocking(move |_| load(&*doc)).await?.1;
            stored.get(&database).copied()
        }
        None => None,
    };
    let secs = secs.unwrap_or_else(|| api.db.retention_secs());
    Ok(json_response(StatusCode::OK, &json!({"val": secs})))
}

/// The shared TTLs by database, and their version.
fn load(doc: &dyn SharedDocument) -> Result<(i64, BTreeMap<String, u64>), OpenTsdbError> {
    match doc.load().map_err(unreachable)? {
        None => Ok((0, BTreeMap::new())),
        Some((version, body)) => {
            let ttls = serde_json::from_slice(&body).map_err(|e| OpenTsdbError::internal(&e))?;
            Ok((version, ttls))
        }
    }
}

/// Stores `secs` for `database` over the version read, again on another
/// node's change.
fn store(doc: &dyn SharedDocument, database: &str, secs: u64) -> Result<(), OpenTsdbError> {
    for _ in 0..ATTEMPTS {
        let (version, mut ttls) = load(doc)?;
        ttls.insert(database.to_owned(), secs);
        let body = serde_json::to_vec(&ttls).map_err(|e| OpenTsdbError::internal(&e))?;
        if doc.store(version, &body).map_err(unreachable)? {
            return Ok(());
        }
    }
    Err(OpenTsdbError::classified(
        ErrorClass::Busy,
        &"other nodes kept changing the TTLs; retry",
    ))
}

fn unreachable(e: std::io::Error) -> OpenTsdbError {
    OpenTsdbError::classified(
        ErrorClass::Busy,
        &format!("the cluster's metadata store: {e}; retry"),
    )
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
    if let Some((doc, shards)) = api.shared_ttl.clone() {
        // Stored, then applied by the shards' owners at once; an owner
        // that misses it (a shard moving) applies it within a second from
        // the stored value.
        let database = api.database.to_string();
        api.read_blocking(move |_| {
            store(&*doc, &database, secs)?;
            if let Err(e) = shards.set_retention(&database, secs) {
                tracing::warn!(error = %e, "the TTL reaches some shards at their next pass");
            }
            Ok(())
        })
        .await?;
        tracing::info!(
            retention_secs = secs,
            "retention set through /api/ttl for the cluster"
        );
        return Ok(StatusCode::OK.into_response());
    }
    let db = api.db.clone();
    sundial_api::write_off_workers(move || db.set_retention_secs(secs)).await?;
    tracing::info!(retention_secs = secs, "retention set through /api/ttl");
    Ok(StatusCode::OK.into_response())
}
