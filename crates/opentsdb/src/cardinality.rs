//! `GET /api/cardinality`: how many series a database holds and where
//! they come from (a Sundial extension, for the console's series browser
//! and cardinality view; docs/api/opentsdb.md).
//!
//! - `?top=N` (default 20): the total, the N metrics with the most series
//!   and the N tag keys with the most values.
//! - `?metric=M`: that metric's series and, per tag key, its values with
//!   the series of each (the `top` values with most series per key).

use crate::error::{OpenTsdbError, json_response};
use crate::query::query_error;
use crate::scope::ReadScope;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use sundial_model::{Listing, MetricCardinality, Names};

const DEFAULT_TOP: usize = 20;
const MAX_TOP: usize = 100_000;

pub(crate) async fn cardinality(
    ReadScope(api): ReadScope,
    RawQuery(query): RawQuery,
) -> Result<Response, OpenTsdbError> {
    let mut top = DEFAULT_TOP;
    let mut metric = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "top" => {
                top = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_TOP).contains(n))
                    .ok_or_else(|| {
                        OpenTsdbError::bad_request(format!("top must be 1 to {MAX_TOP}"))
                    })?;
            }
            "metric" => metric = Some(v.into_owned()),
            _ => {}
        }
    }
    // Through the read seam: this node's database, or a cluster's owners
    // (each counts its own series; the counts add up).
    let listing = Listing {
        names: Names::Cardinality {
            metric: metric.clone(),
        },
        prefix: String::new(),
        range: None,
        max: usize::MAX,
    };
    let listed = api
        .read_blocking(move |api| {
            let budget = api.query_budget();
            api.reads
                .listing(&api.db, &listing, &budget)
                .map_err(query_error)
        })
        .await?;
    let body = match metric {
        Some(m) => one_metric(&m, listed.cardinality.get(&m), top),
        None => overview(&listed.cardinality, top),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// A metric's series and, per tag key, its values with the most series.
fn one_metric(metric: &str, counts: Option<&MetricCardinality>, top: usize) -> Value {
    let Some(counts) = counts else {
        return json!({"metric": metric, "series": 0, "tags": []});
    };
    let tags: Vec<_> = counts
        .tags
        .iter()
        .map(|(key, values)| {
            let mut values: Vec<_> = values.iter().collect();
            values.sort_by_key(|(v, n)| (Reverse(**n), *v));
            let count = values.len();
            values.truncate(top.max(1000));
            let values: Vec<_> = values
                .into_iter()
                .map(|(v, n)| json!({"value": v, "series": n}))
                .collect();
            json!({"key": key, "value_count": count, "values": values})
        })
        .collect();
    json!({"metric": metric, "series": counts.series, "tags": tags})
}

/// The total, the metrics with the most series and the tag keys with the
/// most values.
fn overview(all: &BTreeMap<String, MetricCardinality>, top: usize) -> Value {
    let mut metrics: Vec<(&str, u64)> = all.iter().map(|(m, c)| (m.as_str(), c.series)).collect();
    let mut keys = Vec::new();
    for (m, counts) in all {
        for (key, values) in &counts.tags {
            let series: u64 = values.values().sum();
            keys.push((m.as_str(), key.as_str(), values.len(), series));
        }
    }
    let total: u64 = metrics.iter().map(|(_, n)| n).sum();
    let metric_count = metrics.len();
    metrics.sort_by_key(|(m, n)| (Reverse(*n), *m));
    metrics.truncate(top);
    keys.sort_by_key(|(m, k, values, _)| (Reverse(*values), *m, *k));
    keys.truncate(top);
    json!({
        "series": total,
        "metric_count": metric_count,
        "metrics": metrics.iter().map(|(m, n)| json!({"metric": m, "series": n})).collect::<Vec<_>>(),
        "tag_keys": keys.iter().map(|(m, k, v, n)| json!({"metric": m, "key": k, "values": v, "series": n})).collect::<Vec<_>>(),
    })
}
