//! `POST /api/delete_data` and `POST /api/delete_meta` (spec 17.5, 17.6).

use super::Api;
use super::error::OpenTsdbError;
use super::lookup::json_body;
use super::query::query_error;
use super::scope::AdminScope;
use super::time;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde_json::Value;
use sundial_model::{Deleted, Deletion, TagMatch, Timestamp, now_ms};

/// The series a delete names: a metric and pairs they must all carry,
/// and the fields named (every field: `None`).
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

impl Target {
    fn deletion(self, what: impl FnOnce(Option<Vec<String>>) -> Deleted) -> Deletion {
        Deletion {
            metric: self.metric,
            tags: self.tags,
            what: what(self.fields),
        }
    }
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
    let deletion = t.deletion(|fields| Deleted::Points { fields, start, end });
    run(&api, deletion).await
}

pub(crate) async fn delete_meta(
    AdminScope(api): AdminScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let t = target(&v)?;
    // With `fields`, only those fields' data goes; the series stay.
    let deletion = t.deletion(|fields| match fields {
        Some(fields) => Deleted::Points {
            fields: Some(fields),
            start: Timestamp::MIN,
            end: Timestamp::MAX,
        },
        None => Deleted::Series,
    });
    run(&api, deletion).await
}

/// Runs `deletion` through the delete seam: on this node's database, or
/// at a cluster's shard owners.
async fn run(api: &Api, deletion: Deletion) -> Result<Response, OpenTsdbError> {
    if api.shared_uids.is_none() {
        // Names of series about to go keep their UIDs (spec 17.6); a
        // cluster's UIDs live in PostgreSQL and never go.
        api.db.read(|mut view| api.uids.catch_up(&mut view));
    }
    api.deletes
        .delete(&api.db, deletion)
        .await
        .map_err(query_error)?;
    Ok(StatusCode::OK.into_response())
}
