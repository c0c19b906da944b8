//! `POST /api/mquery` (spec 17.2): Alibaba's multi-field query. Each field
//! column is an `/api/query` sub-query on that field; the columns of one
//! group are joined on timestamp.

use super::Api;
use super::error::{OpenTsdbError, json_response};
use super::lookup::json_body;
use super::query::{Clock, Trim, count, execute_one, from_json, lenient_bool, value_json};
use super::scope::ReadScope;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use sundial_model::{Aggregator, Query, SeriesResult, Tags};

/// One output column: its name, its sub-query and the per-value condition.
struct Column {
    name: String,
    query: Query,
    trim: Trim,
}

/// One sub-query: its columns (ascending by name) and row cuts.
struct Plan {
    metric: String,
    columns: Vec<Column>,
    rows: Trim,
}

pub(crate) async fn mquery(
    ReadScope(api): ReadScope,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let v = json_body(&api, &headers, body).await?;
    let clock = Clock::of(&api)?;
    let _slot = api.limits.query_slot().await?;
    let budget = api.query_budget();
    // Planning reads stored field names and may cut calendar buckets: it
    // runs off the async workers with the execution.
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, OpenTsdbError> {
        let obj = v
            .as_object()
            .ok_or_else(|| OpenTsdbError::unparseable_json("the query must be a JSON object"))?;
        let subs = match obj.get("queries") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => return Err(OpenTsdbError::bad_request("Missing queries")),
        };
        let ms = [obj.get("msResolution"), obj.get("ms")]
            .into_iter()
            .flatten()
            .any(lenient_bool);
        let plans = subs
            .iter()
            .map(|sub| plan(&api, obj, sub, &clock, &budget))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for p in &plans {
            let results = p
                .columns
                .iter()
                .map(|c| execute_one((&api.db, &api.reads), &api.uids, &c.query, &budget))
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(join(p, results, ms));
        }
        Ok(out)
    })
    .await
    .map_err(|e| OpenTsdbError::internal(&e))??;
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// Reads one sub-query into columns, each checked as `/api/query` would.
fn plan(
    api: &Api,
    top: &Map<String, Value>,
    sub: &Value,
    clock: &Clock,
    budget: &sundial_query::Budget,
) -> Result<Plan, OpenTsdbError> {
    let metric = match sub.get("metric") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(OpenTsdbError::bad_request("Missing metric")),
    };
    let fields = match sub.get("fields") {
        Some(Value::Array(f)) if !f.is_empty() => f,
        _ => return Err(OpenTsdbError::bad_request("Missing fields")),
    };
    let mut columns = Vec::new();
    for f in fields {
        let field = match f.get("field") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => return Err(OpenTsdbError::bad_request("Missing field name")),
        };
        let alias = f.get("alias").and_then(Value::as_str);
        let names: Vec<(String, String)> = if field == "*" {
            api.stored_fields(&metric, budget)?
                .into_iter()
                .map(|n| (format!("{}{n}", alias.unwrap_or_default()), n))
                .collect()
        } else {
            vec![(alias.unwrap_or(field).to_owned(), field.to_owned())]
        };
        for (column, field) in names {
            columns.push(column_query(top, sub, f, &metric, column, field, clock)?);
        }
    }
    columns.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Plan {
        metric,
        columns,
        rows: Trim {
            dp_value: None,
            offset: count(sub.get("offset"), "offset")?,
            limit: count(sub.get("limit"), "limit")?,
        },
    })
}

/// One column of a field query: built as an `/api/query` request and
/// parsed by that endpoint's parser, so every rule and message is its own.
fn column_query(
    top: &Map<String, Value>,
    sub: &Value,
    f: &Value,
    metric: &str,
    name: String,
    field: String,
    clock: &Clock,
) -> Result<Column, OpenTsdbError> {
    let either = |key: &str| f.get(key).or_else(|| sub.get(key)).cloned();
    let mut one = json!({
        "aggregator": f.get("aggregator").cloned().unwrap_or_else(|| json!("none")),
        "metric": metric,
    });
    for (key, value) in [
        ("downsample", f.get("downsample").cloned()),
        ("rate", either("rate")),
        ("rateOptions", either("rateOptions")),
        ("delta", either("delta")),
        ("deltaOptions", either("deltaOptions")),
        ("dpValue", either("dpValue")),
        ("tags", sub.get("tags").cloned()),
        ("filters", sub.get("filters").cloned()),
        ("explicitTags", sub.get("explicitTags").cloned()),
    ] {
        if let Some(value) = value {
            one[key] = value;
        }
    }
    let mut request = json!({"queries": [one]});
    for key in ["start", "end", "timezone", "useCalendar"] {
        if let Some(value) = top.get(key) {
            request[key] = value.clone();
        }
    }
    let parsed = from_json(&request, clock)?;
    let (Some(mut query), Some(trim)) = (parsed.queries.into_iter().next(), parsed.trims.first())
    else {
        return Err(OpenTsdbError::bad_request("Missing queries"));
    };
    query.field = field;
    Ok(Column {
        name,
        query,
        trim: Trim {
            offset: 0,
            limit: 0,
            ..*trim
        },
    })
}

/// A group of the joined output.
struct Group {
    tags: Tags,
    aggregated: Vec<String>,
    /// Output timestamp → one value per column.
    rows: BTreeMap<i64, Vec<Value>>,
}

/// Joins the columns' results on group and timestamp (outer join).
fn join(plan: &Plan, results: Vec<Vec<SeriesResult>>, ms: bool) -> Vec<Value> {
    let width = plan.columns.len();
    let per_series = plan
        .columns
        .iter()
        .all(|c| c.query.aggregator == Aggregator::None);
    let mut groups: BTreeMap<Vec<Option<String>>, Group> = BTreeMap::new();
    for (col, (rs, column)) in results.into_iter().zip(&plan.columns).enumerate() {
        for mut r in rs {
            let first = r.series.first().cloned().unwrap_or_default();
            let tag = |k: &str| {
                first
                    .iter()
                    .find(|(tk, _)| tk == k)
                    .map(|(_, v)| v.to_string())
            };
            let key: Vec<Option<String>> = if per_series {
                first
                    .iter()
                    .map(|(k, v)| Some(format!("{k}={v}")))
                    .collect()
            } else {
                column.query.group_by.iter().map(|k| tag(k)).collect()
            };
            column.trim.apply(&mut r.points);
            let group = groups.entry(key).or_insert_with(|| Group {
                tags: r.tags.clone(),
                aggregated: r.aggregated_tags.clone(),
                rows: BTreeMap::new(),
            });
            for (ts, v) in &r.points {
                let t = if ms { *ts } else { ts.div_euclid(1000) };
                let row = group
                    .rows
                    .entry(t)
                    .or_insert_with(|| vec![Value::Null; width]);
                // Within one second the later point wins (spec 4.4).
                if let Some(slot) = row.get_mut(col) {
                    *slot = value_json(v);
                }
            }
        }
    }
    let mut names = vec![Value::from("timestamp")];
    names.extend(plan.columns.iter().map(|c| Value::from(c.name.clone())));
    groups
        .into_values()
        .map(|g| {
            let mut rows: Vec<(i64, Vec<Value>)> = g.rows.into_iter().collect();
            rows.drain(..plan.rows.offset.min(rows.len()));
            if plan.rows.limit > 0 {
                rows.truncate(plan.rows.limit);
            }
            let values: Vec<Value> = rows
                .into_iter()
                .map(|(t, mut vals)| {
                    vals.insert(0, t.into());
                    Value::Array(vals)
                })
                .collect();
            let tags: Map<String, Value> = g
                .tags
                .into_iter()
                .map(|(k, v)| (k.into(), Value::String(v.into())))
                .collect();
            json!({"metric": plan.metric, "columns": names, "tags": tags,
                "aggregatedTags": g.aggregated, "values": values})
        })
        .collect()
}
