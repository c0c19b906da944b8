//! `/api/query/last` (spec 10): the newest point of each matching series.

use super::Api;
use super::error::{OpenTsdbError, json_response};
use super::lookup::params;
use super::query::query_error;
use super::scope::ReadScope;
use super::uids::split_tsuid;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sundial_model::now_ms;
use sundial_model::{Aggregator, DEFAULT_FIELD, FieldValue, Query, SeriesKey, TagMatch, Timestamp};
use sundial_query::Latest;
use sundial_storage::{SeriesId, Snapshot};

/// One sub-query: a metric and `key=value` pairs (`*`: any value), or
/// series named by TSUID.
#[derive(Debug)]
enum Last {
    Series {
        metric: String,
        tags: Vec<(String, String)>,
    },
    Tsuids(Vec<String>),
}

pub(crate) async fn get(
    ReadScope(api): ReadScope,
    RawQuery(raw): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let mut queries = Vec::new();
    let mut back_scan = 0;
    for (k, v) in params(raw.as_deref()) {
        match k.as_str() {
            "timeseries" => queries.push(parse_series(&v)?),
            "back_scan" => {
                back_scan = v.trim().parse::<i64>().map_err(|_| {
                    OpenTsdbError::bad_request("Unable to parse back_scan parameter")
                })?;
            }
            "tsuids" => queries.push(Last::Tsuids(
                v.split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            _ => {}
        }
    }
    api.read_blocking(move |api| run(api, queries, back_scan, None))
        .await
}

pub(crate) async fn post(
    ReadScope(api): ReadScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = super::lookup::json_body(&api, &headers, body).await?;
    let list = match v.get("queries") {
        Some(Value::Array(q)) if !q.is_empty() => q,
        _ => return Err(OpenTsdbError::bad_request("Missing queries")),
    };
    let mut queries = Vec::new();
    for q in list {
        if let Some(list) = q.get("tsuids").filter(|_| q.get("metric").is_none()) {
            let Value::Array(list) = list else {
                return Err(OpenTsdbError::bad_request("tsuids must be an array"));
            };
            queries.push(Last::Tsuids(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ));
            continue;
        }
        let metric = q
            .get("metric")
            .and_then(Value::as_str)
            .ok_or_else(|| OpenTsdbError::bad_request("Missing metric"))?;
        let tags = tags_of(q);
        queries.push(Last::Series {
            metric: metric.to_owned(),
            tags,
        });
    }
    let back_scan = v.get("backScan").and_then(Value::as_i64).unwrap_or(0);
    let until = until_of(&v)?;
    api.read_blocking(move |api| run(api, queries, back_scan, until))
        .await
}

/// A JSON sub-query's `tags`: `key -> value` (`*`: any value).
pub(crate) fn tags_of(q: &Value) -> Vec<(String, String)> {
    match q.get("tags") {
        Some(Value::Object(t)) => t
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The body's `timestamp`: the newest points at or before it count.
pub(crate) fn until_of(body: &Value) -> Result<Option<Timestamp>, OpenTsdbError> {
    match body.get("timestamp") {
        None | Some(Value::Null) => Ok(None),
        Some(t) => {
            let text = t.as_str().map_or_else(|| t.to_string(), str::to_owned);
            super::time::parse_query_time(&text, now_ms(), &jiff::tz::TimeZone::UTC)
                .map(Some)
                .map_err(|e| OpenTsdbError::bad_request(e.to_string()))
        }
    }
}

/// The time range a last-point query reads: `back_scan_hours` back from
/// now (0: all history) up to `until` (default now).
pub(crate) fn window(back_scan_hours: i64, until: Option<Timestamp>) -> (Timestamp, Timestamp) {
    let now = now_ms();
    let start = if back_scan_hours > 0 {
        now.saturating_sub(back_scan_hours.saturating_mul(3_600_000))
    } else {
        Timestamp::MIN
    };
    (start, until.unwrap_or(now))
}

/// `metric{k=v,...}`.
fn parse_series(text: &str) -> Result<Last, OpenTsdbError> {
    let (metric, tags) = super::lookup::split_series(text)?;
    if metric.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing metric"));
    }
    Ok(Last::Series {
        metric: metric.to_owned(),
        tags,
    })
}

fn run(
    api: &Api,
    queries: Vec<Last>,
    back_scan_hours: i64,
    until: Option<Timestamp>,
) -> Result<Response, OpenTsdbError> {
    if queries.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing queries"));
    }
    let (start, end) = window(back_scan_hours, until);
    let budget = api.query_budget();
    let max = api.limits.config.max_result_rows;
    let mut found: Vec<Latest> = Vec::new();
    for q in &queries {
        let mut of_query = Vec::new();
        for selection in selections(api, q, start, end)? {
            of_query.extend(
                api.reads
                    .last(&api.db, &selection, &budget)
                    .map_err(query_error)?,
            );
        }
        of_query.sort_by(|a, b| a.0.tags.cmp(&b.0.tags));
        found.extend(of_query);
        if found.len() > max {
            return Err(OpenTsdbError::bad_request(format!(
                "more than {max} series match (limits.max_result_rows)"
            )));
        }
    }
    let tsuids: Vec<Option<String>> = match api.shared_tables() {
        Ok(Some(shared)) => {
            let series: Vec<_> = found
                .iter()
                .map(|l| (l.0.metric.as_str(), &l.0.tags))
                .collect();
            shared.tsuids(&series)?
        }
        // A cluster node without the shared UIDs prints none.
        Err(_) => vec![None; found.len()],
        Ok(None) => api.db.read(|mut view| {
            api.uids.catch_up(&mut view);
            api.uids.with(&view, |uids| {
                found
                    .iter()
                    .map(|(key, _, _)| uids.tsuid(&key.metric, &key.tags))
                    .collect()
            })
        }),
    };
    let out = found.into_iter().zip(tsuids).map(render).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// One series' newest point and its TSUID.
fn render(((key, t, v), tsuid): (Latest, Option<String>)) -> Value {
    let tags: Map<String, Value> = key
        .tags
        .into_iter()
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .collect();
    json!({
        "metric": key.metric,
        "timestamp": t,
        "value": text(&v),
        "tags": tags,
        "tsuid": tsuid,
    })
}

/// The pipeline queries a sub-query stands for: one per metric, one per
/// known TSUID (that exact series).
fn selections(
    api: &Api,
    q: &Last,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<Query>, OpenTsdbError> {
    match q {
        Last::Series { metric, tags } => Ok(vec![last_query(
            metric,
            DEFAULT_FIELD,
            predicates(tags),
            false,
            (start, end),
        )]),
        Last::Tsuids(list) => {
            if let Some(bad) = list.iter().find(|t| split_tsuid(t).is_none()) {
                return Err(OpenTsdbError::bad_request(format!("Invalid TSUID: {bad}")));
            }
            let keys: Vec<SeriesKey> = match api.shared_tables()? {
                Some(shared) => shared.resolve(list)?.into_iter().flatten().collect(),
                None => api.db.read(|mut view| {
                    api.uids.catch_up(&mut view);
                    api.uids.with(&view, |uids| {
                        list.iter().filter_map(|t| uids.resolve(t)).collect()
                    })
                }),
            };
            Ok(keys
                .into_iter()
                .map(|key| {
                    last_query(
                        &key.metric,
                        DEFAULT_FIELD,
                        exactly(&key),
                        true,
                        (start, end),
                    )
                })
                .collect())
        }
    }
}

/// The pipeline query for the newest points of `field` in `(start, end)`.
pub(crate) fn last_query(
    metric: &str,
    field: &str,
    tags: Vec<TagMatch>,
    explicit_tags: bool,
    (start, end): (Timestamp, Timestamp),
) -> Query {
    Query {
        metric: metric.to_owned(),
        field: field.to_owned(),
        tags,
        group_by: Vec::new(),
        start,
        end,
        aggregator: Aggregator::None,
        downsample: None,
        rate: None,
        explicit_tags,
        pre_filter: None,
        only_series: None,
    }
}

/// `key -> value` pairs as predicates; `*` asks only that the key exists.
pub(crate) fn predicates(tags: &[(String, String)]) -> Vec<TagMatch> {
    tags.iter()
        .map(|(k, v)| {
            if v == "*" {
                TagMatch::Exists { key: k.clone() }
            } else {
                TagMatch::Eq {
                    key: k.clone(),
                    value: v.clone(),
                }
            }
        })
        .collect()
}

/// Predicates that only this key's tags (and a superset's) satisfy.
fn exactly(key: &SeriesKey) -> Vec<TagMatch> {
    key.tags
        .iter()
        .map(|(k, v)| TagMatch::Eq {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// The id of the series with exactly this key.
pub(crate) fn find_series(
    view: &Snapshot<'_>,
    key: &SeriesKey,
) -> Result<Option<SeriesId>, OpenTsdbError> {
    if !view.has_metric(&key.metric) {
        return Ok(None);
    }
    let ids = view
        .select(&key.metric, &exactly(key))
        .map_err(|e| OpenTsdbError::bad_request(e.to_string()))?;
    Ok(ids.into_iter().find(|id| {
        view.key(*id)
            .is_some_and(|k| k.tags.len() == key.tags.len())
    }))
}

/// OpenTSDB renders last values as strings: `"30"`, `"1.5"`, `"1300.0"`.
fn text(v: &FieldValue) -> String {
    match v {
        FieldValue::Long(i) => i.to_string(),
        FieldValue::Double(d) => serde_json::to_string(d).unwrap_or_else(|_| "NaN".into()),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::String(s) => s.clone(),
        FieldValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}
