//! Issue 15: every OpenTSDB query route stops at the query deadline and
//! at the point budget of `[limits]` with an error in OpenTSDB's shape,
//! and a query inside both answers from the data written.

use crate::harness::{TestServer, json};
use anyhow::Result;
use serde_json::{Value, json};

pub(crate) const T0: i64 = 1_500_000_000;
pub(crate) const POINTS: i64 = 3;

/// `series` hosts of `metric` with [`POINTS`] points each; host `h` at
/// `T0 + 10 i` (seconds) holds `10 h + i`.
pub(crate) fn write(s: &TestServer, metric: &str, series: i64) -> Result<()> {
    let points: Vec<Value> = (0..series)
        .flat_map(|h| {
            (0..POINTS).map(move |i| {
                json!({"metric": metric, "timestamp": T0 + 10 * i, "value": 10 * h + i,
                    "tags": {"host": format!("h{h:04}")}})
            })
        })
        .collect();
    let (status, body) = s.post("/api/put", &Value::Array(points).to_string())?;
    anyhow::ensure!(status == 204, "put answered {status}: {body}");
    Ok(())
}

/// Every query route, reading every series of `limit.m`.
fn routes() -> Vec<(&'static str, String, Option<String>)> {
    let end = T0 + 100;
    vec![
        (
            "GET",
            format!("/api/query?start={T0}&end={end}&m=sum:limit.m"),
            None,
        ),
        (
            "POST",
            "/api/query".into(),
            Some(
                json!({"start": T0, "end": end, "queries": [{"metric": "limit.m", "aggregator": "sum"}]})
                    .to_string(),
            ),
        ),
        ("GET", "/api/query/last?timeseries=limit.m".into(), None),
        (
            "POST",
            "/api/query/last".into(),
            Some(json!({"queries": [{"metric": "limit.m"}]}).to_string()),
        ),
        (
            "POST",
            "/api/mquery".into(),
            Some(
                json!({"start": T0, "end": end,
                    "queries": [{"metric": "limit.m", "fields": [{"field": "value"}]}]})
                .to_string(),
            ),
        ),
    ]
}

/// Asserts that every route answers 400 with `message` and a detail
/// naming `setting`.
fn every_route_refuses(s: &TestServer, message: &str, setting: &str) -> Result<()> {
    for (method, path, body) in routes() {
        let (status, text) = s.request(method, &path, body.as_deref())?;
        assert_eq!(status, 400, "{method} {path}: {text}");
        let error = &json(&text)?["error"];
        assert_eq!(error["message"], json!(message), "{method} {path}: {text}");
        let details = error["details"].as_str().unwrap_or_default();
        assert!(details.contains(setting), "{method} {path}: {text}");
    }
    Ok(())
}

#[test]
fn every_query_route_stops_at_the_point_budget() -> Result<()> {
    // 120 series of 3 points: every route reads more than 100.
    let s = TestServer::spawn_with_config("[limits]\nmax_query_points = 100\n")?;
    write(&s, "limit.m", 120)?;
    every_route_refuses(
        &s,
        "Query reads too many data points",
        "limits.max_query_points",
    )?;
    // One series stays inside the budget and answers its own values.
    let one = json!({"start": T0, "end": T0 + 100, "queries": [{"metric": "limit.m",
        "aggregator": "sum", "tags": {"host": "h0007"}}]});
    let (status, text) = s.post("/api/query", &one.to_string())?;
    assert_eq!(status, 200, "{text}");
    let want: serde_json::Map<String, Value> = (0..POINTS)
        .map(|i| ((T0 + 10 * i).to_string(), json!(70 + i)))
        .collect();
    assert_eq!(json(&text)?[0]["dps"], Value::Object(want));
    let last = json!({"queries": [{"metric": "limit.m", "tags": {"host": "h0007"}}]});
    let (status, text) = s.post("/api/query/last", &last.to_string())?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        json(&text)?[0]["value"],
        json!((70 + POINTS - 1).to_string())
    );
    Ok(())
}

#[test]
fn every_query_route_stops_at_its_deadline() -> Result<()> {
    // 3000 series take an unoptimised build far longer than 1 ms to read.
    let s = TestServer::spawn_with_config("[limits]\nquery_timeout_ms = 1\n")?;
    write(&s, "limit.m", 3000)?;
    every_route_refuses(&s, "Query timed out", "limits.query_timeout")
}

#[test]
fn calendar_buckets_of_one_request_share_one_cap() -> Result<()> {
    let s = TestServer::spawn()?;
    write(&s, "cal.m", 2)?;
    // 600,000 one-second buckets before the data: one list is within the
    // cap of a request however often its specification repeats ...
    let (start, end) = (T0 - 600_000, T0 + 100);
    let m = "m=sum:1sc-sum:cal.m";
    let path = format!("/api/query?start={start}&end={end}&{m}&{m}&{m}&timezone=Asia/Shanghai");
    let (status, text) = s.get(&path)?;
    assert_eq!(status, 200, "{text}");
    // Both hosts summed per second (downsampled sums print as doubles).
    let want: serde_json::Map<String, Value> = (0..POINTS)
        .map(|i| ((T0 + 10 * i).to_string(), json!((10 + 2 * i) as f64)))
        .collect();
    let results = json(&text)?;
    assert_eq!(results.as_array().map(Vec::len), Some(3), "{text}");
    for result in results.as_array().into_iter().flatten() {
        assert_eq!(result["dps"], Value::Object(want.clone()), "{text}");
    }
    // ... while 1s, 2s and 3s buckets together (1.1 million) are refused,
    // through every form of query.
    let distinct = ["1sc", "2sc", "3sc"];
    let get = distinct
        .iter()
        .map(|d| format!("m=sum:{d}-sum:cal.m"))
        .collect::<Vec<_>>()
        .join("&");
    let queries: Vec<Value> = distinct
        .iter()
        .map(|d| json!({"metric": "cal.m", "aggregator": "sum", "downsample": format!("{d}-sum")}))
        .collect();
    let fields: Vec<Value> = distinct
        .iter()
        .map(|d| json!({"field": "value", "alias": *d, "downsample": format!("{d}-sum")}))
        .collect();
    let requests = [
        (
            "GET",
            format!("/api/query?start={start}&end={end}&{get}"),
            None,
        ),
        (
            "POST",
            "/api/query".to_owned(),
            Some(json!({"start": start, "end": end, "queries": queries})),
        ),
        (
            "POST",
            "/api/mquery".to_owned(),
            Some(json!({"start": start, "end": end,
                "queries": [{"metric": "cal.m", "fields": fields}]})),
        ),
    ];
    for (method, path, body) in requests {
        let body = body.map(|b| b.to_string());
        let (status, text) = s.request(method, &path, body.as_deref())?;
        assert_eq!(status, 400, "{method} {path}: {text}");
        let message = json(&text)?["error"]["message"].clone();
        let message = message.as_str().unwrap_or_default();
        assert!(message.starts_with("Too many calendar buckets"), "{text}");
    }
    Ok(())
}
