//! `POST /api/query/mlast` (docs/api/opentsdb.md, Alibaba extensions):
//! `/api/query/last` over several fields of a metric. Each field's newest
//! point is found as `/api/query/last` finds a series' newest; a series'
//! fields are then laid out as rows, one per distinct newest timestamp,
//! with `null` where a field's newest point is older than the row.

use super::Api;
use super::error::{OpenTsdbError, json_response};
use super::last::{last_query, predicates, tags_of, until_of, window};
use super::query::{query_error, value_json};
use super::scope::ReadScope;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use sundial_model::{FieldValue, Timestamp};

/// One sub-query: a metric, tag pairs and the fields wanted (`*`: all).
#[derive(Debug)]
struct FieldsLast {
    metric: String,
    tags: Vec<(String, String)>,
    fields: Vec<String>,
}

/// A series' newest value of each field, by field name.
type Newest = BTreeMap<String, (Timestamp, FieldValue)>;

pub(crate) async fn mlast(
    ReadScope(api): ReadScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = super::lookup::json_body(&api, &headers, body).await?;
    // Alibaba's tuple layout and its paging are not offered: say so
    // rather than answer in a shape the client did not ask for.
    for unsupported in ["tupleFormat", "tupleOffset", "tupleLimit"] {
        if v.get(unsupported)
            .is_some_and(|x| !x.is_null() && *x != Value::Bool(false))
        {
            return Err(OpenTsdbError::not_implemented(format!(
                "{unsupported} is not supported by /api/query/mlast"
            )));
        }
    }
    let list = match v.get("queries") {
        Some(Value::Array(q)) if !q.is_empty() => q,
        _ => return Err(OpenTsdbError::bad_request("Missing queries")),
    };
    let queries = list.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    let back_scan = v.get("backScan").and_then(Value::as_i64).unwrap_or(0);
    let until = until_of(&v)?;
    api.read_blocking(move |api| run(api, &queries, window(back_scan, until)))
        .await
}

fn parse(q: &Value) -> Result<FieldsLast, OpenTsdbError> {
    let metric = match q.get("metric") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(OpenTsdbError::bad_request("Missing metric")),
    };
    let fields = match q.get("fields") {
        Some(Value::Array(f)) if !f.is_empty() => f,
        _ => return Err(OpenTsdbError::bad_request("Missing fields")),
    };
    let fields = fields
        .iter()
        .map(|f| match f {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(OpenTsdbError::bad_request(
                "fields must be an array of field names",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FieldsLast {
        metric,
        tags: tags_of(q),
        fields,
    })
}

fn run(
    api: &Api,
    queries: &[FieldsLast],
    range: (Timestamp, Timestamp),
) -> Result<Response, OpenTsdbError> {
    let budget = api.query_budget();
    let max = api.limits.config.max_result_rows;
    let mut out = Vec::new();
    for q in queries {
        let mut series: BTreeMap<sundial_model::Tags, Newest> = BTreeMap::new();
        let fields = expand(api, q, &budget)?;
        for field in &fields {
            let query = last_query(&q.metric, field, predicates(&q.tags), false, range);
            let newest = api
                .reads
                .last(&api.db, &query, &budget)
                .map_err(query_error)?;
            for (key, t, v) in newest {
                series
                    .entry(key.tags)
                    .or_default()
                    .insert(field.clone(), (t, v));
            }
            if out.len() + series.len() > max {
                return Err(OpenTsdbError::bad_request(format!(
                    "more than {max} series match (limits.max_result_rows)"
                )));
            }
        }
        out.extend(
            series
                .into_iter()
                .map(|(tags, newest)| render(&q.metric, tags, &fields, &newest)),
        );
    }
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// The fields a sub-query names, `*` expanded to the metric's stored
/// fields, in ascending byte order without repeats.
fn expand(
    api: &Api,
    q: &FieldsLast,
    budget: &sundial_query::Budget,
) -> Result<Vec<String>, OpenTsdbError> {
    let mut fields: Vec<String> = if q.fields.iter().any(|f| f == "*") {
        api.stored_fields(&q.metric, budget)?
    } else {
        Vec::new()
    };
    fields.extend(q.fields.iter().filter(|f| *f != "*").cloned());
    fields.sort_unstable();
    fields.dedup();
    Ok(fields)
}

/// One series' object: a row per distinct newest timestamp, ascending.
fn render(metric: &str, tags: sundial_model::Tags, fields: &[String], newest: &Newest) -> Value {
    let mut times: Vec<Timestamp> = newest.values().map(|(t, _)| *t).collect();
    times.sort_unstable();
    times.dedup();
    let rows: Vec<Value> = times
        .iter()
        .map(|&t| {
            let mut row = vec![json!(t)];
            row.extend(fields.iter().map(|f| match newest.get(f) {
                Some((at, v)) if *at == t => value_json(v),
                _ => Value::Null,
            }));
            Value::Array(row)
        })
        .collect();
    let mut columns = vec![Value::from("timestamp")];
    columns.extend(fields.iter().map(|f| Value::from(f.as_str())));
    let tags: Map<String, Value> = tags
        .into_iter()
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .collect();
    json!({"metric": metric, "tags": tags, "columns": columns, "values": rows})
}
