//! `GET /api/cardinality`: how many series a database holds and where
//! they come from (a Sundial extension, for the console's series browser
//! and cardinality view; docs/api/opentsdb.md).
//!
//! - `?top=N` (default 20): the total, the N metrics with the most series
//!   and the N tag keys with the most values.
//! - `?metric=M`: that metric's series and, per tag key, its values with
//!   the series of each (the `top` values with most series per key).

use crate::error::{OpenTsdbError, json_response};
use crate::scope::ReadScope;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::cmp::Reverse;

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
    let body = api
        .read_blocking(move |api| {
            let mut pacer = api.pacer();
            api.db.read(|mut snap| match &metric {
                Some(m) => {
                    let tags: Vec<_> = snap
                        .tag_cardinality(m)
                        .into_iter()
                        .map(|(key, mut values)| {
                            values.sort_by_key(|(v, n)| (Reverse(*n), *v));
                            let count = values.len();
                            values.truncate(top.max(1000));
                            let values: Vec<_> = values
                                .into_iter()
                                .map(|(v, n)| json!({"value": v, "series": n}))
                                .collect();
                            json!({"key": key, "value_count": count, "values": values})
                        })
                        .collect();
                    Ok(json!({"metric": m, "series": snap.series_of(m).len(), "tags": tags}))
                }
                None => {
                    let names: Vec<String> =
                        snap.metrics().into_iter().map(String::from).collect();
                    let mut metrics = Vec::new();
                    let mut keys = Vec::new();
                    for m in &names {
                        pacer.step(&mut snap)?;
                        metrics.push((m.as_str(), snap.series_of(m).len()));
                        for (key, values) in snap.tag_cardinality(m) {
                            let series: u64 = values.iter().map(|(_, n)| n).sum();
                            keys.push((m.as_str(), key.to_owned(), values.len(), series));
                        }
                    }
                    let metric_count = metrics.len();
                    metrics.sort_by_key(|(m, n)| (Reverse(*n), *m));
                    metrics.truncate(top);
                    keys.sort_by(|a, b| (Reverse(a.2), a.0, &a.1).cmp(&(Reverse(b.2), b.0, &b.1)));
                    keys.truncate(top);
                    Ok(json!({
                        "series": snap.series_count(),
                        "metric_count": metric_count,
                        "metrics": metrics.iter().map(|(m, n)| json!({"metric": m, "series": n})).collect::<Vec<_>>(),
                        "tag_keys": keys.iter().map(|(m, k, v, n)| json!({"metric": m, "key": k, "values": v, "series": n})).collect::<Vec<_>>(),
                    }))
                }
            })
        })
        .await?;
    Ok(json_response(StatusCode::OK, &body))
}
