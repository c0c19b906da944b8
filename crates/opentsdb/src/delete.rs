//! `POST /api/delete_data` and `POST /api/delete_meta` (spec 17.5, 17.6).

use super::Api;
use super::error::OpenTsdbError;
use super::lookup::json_body;
use super::scope::AdminScope;
use super::time;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde_json::Value;
use sundial_model::now_ms;
use sundial_model::{TagMatch, Timestamp};
use sundial_storage::{Db, RoaringBitmap};

/// The series a delete names: a metric and pairs they must all carry.
struct Target {
    metric: String,
    tags: Vec<TagMatch>,
    fields: Option<Vec<String>>,
}

fn target(v: &Value) -> Result<Target, OpenTsdbError> {
    let metric = match v.get("metric") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(OpenTsdbError::bad_request("Missing metric")),
    };
    let tags = match v.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(t)) => t
            .iter()
            .map(|(k, val)| TagMatch::Eq {
                key: k.clone(),
                value: val.as_str().map_or_else(|| val.to_string(), str::to_owned),
            })
            .collect(),
        Some(_) => return Err(OpenTsdbError::bad_request("tags must be an object")),
    };
    let fields = match v.get("fields") {
        None | Some(Value::Null) => None,
        Some(Value::Array(f)) => Some(
            f.iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| OpenTsdbError::bad_request("fields must be strings"))?,
        ),
        Some(_) => return Err(OpenTsdbError::bad_request("fields must be an array")),
    };
    Ok(Target {
        metric,
        tags,
        fields,
    })
}

/// The ids of the target's series; none for an unknown metric.
fn series(api: &Api, t: &Target) -> Result<RoaringBitmap, OpenTsdbError> {
    api.db.read(|mut view| {
        // Names of series about to go keep their UIDs (spec 17.6).
        api.uids.catch_up(&mut view);
        if !view.has_metric(&t.metric) {
            return Ok(RoaringBitmap::new());
        }
        let ids = view
            .select(&t.metric, &t.tags)
            .map_err(|e| OpenTsdbError::bad_request(e.to_string()))?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    })
}

fn query_time(v: &Value, now: Timestamp, tz: &TimeZone) -> Result<Timestamp, OpenTsdbError> {
    let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    time::parse_query_time(&text, now, tz).map_err(OpenTsdbError::bad_request)
}

pub(crate) async fn delete_data(
    AdminScope(api): AdminScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let t = target(&v)?;
    let now = now_ms();
    // Date strings are read in the server's zone (spec 4.5).
    let tz = super::zone::by_name(&api.config.timezone)?;
    let start = match v.get("start") {
        None | Some(Value::Null) => return Err(OpenTsdbError::bad_request("Missing start time")),
        Some(s) => query_time(s, now, &tz)?,
    };
    let end = match v.get("end") {
        None | Some(Value::Null) => now,
        Some(e) => query_time(e, now, &tz)?,
    };
    if end < start {
        return Err(OpenTsdbError::bad_request(format!(
            "End time [{end}] must be greater than or equal to the start time [{start}]"
        )));
    }
    run(&api, &t, move |db, ids, fields| {
        db.delete_points(ids, fields, start, end)
    })
    .await
}

pub(crate) async fn delete_meta(
    AdminScope(api): AdminScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let t = target(&v)?;
    // With `fields`, only those fields' data goes; the series stay.
    run(&api, &t, |db, ids, fields| match fields {
        Some(fields) => db.delete_points(ids, Some(fields), Timestamp::MIN, Timestamp::MAX),
        None => db.remove_series(ids),
    })
    .await
}

/// Runs `delete` on the target's series off the async workers (it flushes
/// and rewrites blocks); nothing to do for an unknown metric.
async fn run(
    api: &Api,
    t: &Target,
    delete: impl FnOnce(&Db, &RoaringBitmap, Option<&[String]>) -> sundial_storage::Result<usize>
    + Send
    + 'static,
) -> Result<Response, OpenTsdbError> {
    let ids = series(api, t)?;
    if !ids.is_empty() {
        let (db, fields) = (api.db.clone(), t.fields.clone());
        tokio::task::spawn_blocking(move || delete(&db, &ids, fields.as_deref()))
            .await
            .map_err(|e| OpenTsdbError::internal(&e))??;
    }
    Ok(StatusCode::OK.into_response())
}
