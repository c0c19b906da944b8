//! `POST /api/dump_meta` (spec 17.4): the distinct values of one tag key,
//! by prefix, optionally within one metric.

use super::scope::ReadScope;

use super::error::{OpenTsdbError, json_response};
use super::lookup::json_body;
use super::query::query_error;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};
use sundial_model::{Listing, Names};

const DEFAULT_MAX: usize = 1000;

pub(crate) async fn dump_meta(
    ReadScope(api): ReadScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let text = |name: &str| match v.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let key = text("tagkey")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| OpenTsdbError::bad_request("Missing parameter tagkey"))?;
    let prefix = text("tagvalueprefix")
        .ok_or_else(|| OpenTsdbError::bad_request("Missing parameter tagvalueprefix"))?;
    let max = match v.get("max") {
        None | Some(Value::Null) => DEFAULT_MAX,
        Some(m) => m
            .as_u64()
            .and_then(|m| usize::try_from(m).ok())
            .ok_or_else(|| OpenTsdbError::bad_request("Unable to parse 'max' as a number"))?,
    }
    .min(api.limits.config.max_result_rows);
    let metric = text("metric").filter(|m| !m.is_empty());
    // Through the read seam: this node's database, or a cluster's owners.
    let listing = Listing {
        names: Names::KeyValues {
            metric,
            key: key.clone(),
        },
        prefix,
        range: None,
        max,
    };
    let values = api
        .read_blocking(move |api| {
            let budget = api.query_budget();
            let listed = api.reads.listing(&api.db, &listing, &budget);
            Ok(listed.map_err(query_error)?.names)
        })
        .await?;
    let list: Vec<Value> = values
        .into_iter()
        .take(max)
        .map(|v| {
            let mut one = Map::new();
            one.insert(key.clone(), Value::String(v));
            Value::Object(one)
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}
