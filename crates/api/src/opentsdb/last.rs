//! `/api/query/last` (spec 10): the newest point of each matching series.

use super::Api;
use super::error::{OpenTsdbError, json_response};
use super::lookup::params;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sundial_model::{DEFAULT_FIELD, FieldValue, TagMatch, Timestamp};

/// One sub-query: a metric and `key=value` pairs (`*`: any value).
#[derive(Debug)]
struct Last {
    metric: String,
    tags: Vec<(String, String)>,
}

pub(crate) async fn get(
    State(api): State<Api>,
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
            "tsuids" => {
                return Err(OpenTsdbError::not_implemented("tsuids are not supported"));
            }
            _ => {}
        }
    }
    run(&api, queries, back_scan, None)
}

pub(crate) async fn post(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let bytes = crate::body::read(&headers, body, api.config.max_body_bytes).await?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| OpenTsdbError::unparseable_json(e.to_string()))?;
    let list = match v.get("queries") {
        Some(Value::Array(q)) if !q.is_empty() => q,
        _ => return Err(OpenTsdbError::bad_request("Missing queries")),
    };
    let mut queries = Vec::new();
    for q in list {
        if q.get("tsuids").is_some() && q.get("metric").is_none() {
            return Err(OpenTsdbError::not_implemented("tsuids are not supported"));
        }
        let metric = q
            .get("metric")
            .and_then(Value::as_str)
            .ok_or_else(|| OpenTsdbError::bad_request("Missing metric"))?;
        let tags = match q.get("tags") {
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
        };
        queries.push(Last {
            metric: metric.to_owned(),
            tags,
        });
    }
    let back_scan = v.get("backScan").and_then(Value::as_i64).unwrap_or(0);
    let until = match v.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(t) => {
            let text = t.as_str().map_or_else(|| t.to_string(), str::to_owned);
            Some(
                super::time::parse_query_time(&text, now_ms(), &jiff::tz::TimeZone::UTC)
                    .map_err(|e| OpenTsdbError::bad_request(e.to_string()))?,
            )
        }
    };
    run(&api, queries, back_scan, until)
}

/// `metric{k=v,...}`.
fn parse_series(text: &str) -> Result<Last, OpenTsdbError> {
    let (metric, tags) = super::lookup::split_series(text)?;
    if metric.is_empty() {
        return Err(OpenTsdbError::bad_request("Missing metric"));
    }
    Ok(Last {
        metric: metric.to_owned(),
        tags,
    })
}

fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Timestamp)
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
    let now = now_ms();
    let end = until.unwrap_or(now);
    let start = if back_scan_hours > 0 {
        now.saturating_sub(back_scan_hours.saturating_mul(3_600_000))
    } else {
        Timestamp::MIN
    };
    let out = api.db.read(|view| -> Result<Vec<Value>, OpenTsdbError> {
        let mut out = Vec::new();
        for q in &queries {
            if !view.has_metric(&q.metric) {
                continue;
            }
            let predicates: Vec<TagMatch> = q
                .tags
                .iter()
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
                .collect();
            let ids = view
                .select(&q.metric, &predicates)
                .map_err(|e| OpenTsdbError::bad_request(e.to_string()))?;
            let mut found = Vec::new();
            for id in ids {
                let Some(key) = view.key(id) else { continue };
                // Widening windows back from `end`: the newest point is
                // usually recent, and a whole history is read only when not.
                let mut latest = None;
                for back in [3_600_000i64, 86_400_000, 30 * 86_400_000, i64::MAX] {
                    let from = end.saturating_sub(back).max(start);
                    let points = view
                        .points(id, DEFAULT_FIELD, from, end)
                        .map_err(|e| OpenTsdbError::internal(&e))?;
                    if let Some(p) = points.last() {
                        latest = Some(p.clone());
                        break;
                    }
                    if from == start {
                        break;
                    }
                }
                if let Some((t, v)) = latest {
                    found.push((key, id, t, text(&v)));
                }
            }
            found.sort_by(|a, b| a.0.tags.cmp(&b.0.tags));
            for (key, id, t, v) in found {
                let tags: Map<String, Value> = key
                    .tags
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                out.push(json!({
                    "metric": key.metric,
                    "timestamp": t,
                    "value": v,
                    "tags": tags,
                    "tsuid": format!("{:012X}", id.0),
                }));
            }
        }
        Ok(out)
    })?;
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
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
