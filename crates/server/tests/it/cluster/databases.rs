//! Baidu's databases on a cluster: one created through the router is
//! listed by the querier at once, written through the router and read
//! through the querier at once (a node catches up with the shared list
//! when a request names a database it has not opened);
//! a create repeated with its client token on another node gives the same
//! database; dropped through one node, it is gone on every node within a
//! second, and created again it starts empty; a TTL set on one node is
//! read on another and applied by the shards' owners before the call
//! returns, and goes with the database.

use super::{T0, json_request, until_not_busy};
use crate::harness::{TestServer, json};
use anyhow::{Result, bail};
use serde_json::json;
use std::time::{Duration, Instant};

pub(super) const NAME: &str = "clusterdb01";

/// `method path body` on `server` until it no longer answers 404 (a
/// database this node has not opened yet), for up to ten seconds.
fn until_found(server: &TestServer, method: &str, path: &str, body: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = until_not_busy(server, method, path, Some(body))?;
        if status != 404 {
            assert_eq!(status, 200, "{path}: {text}");
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{path} still answers 404 after ten seconds: {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(super) fn databases_shared(router: &TestServer, querier: &TestServer) -> Result<()> {
    let create = json!({"databaseName": NAME, "ingestDataPointsMonthly": 1,
        "purchaseLength": 1, "description": "made on the router"})
    .to_string();
    let path = "/v1/database?clientToken=cluster-token-1";
    let (status, text) = json_request(router, "POST", path, Some(&create))?;
    assert_eq!(status, 200, "{text}");
    let id = json(&text)?["databaseId"].clone();
    assert!(
        id.as_str().is_some_and(|i| i.starts_with("tsdb-")),
        "{text}"
    );
    // The same client token on another node: the same database.
    let (status, again) = json_request(querier, "POST", path, Some(&create))?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(json(&again)?["databaseId"], id);
    let (status, listed) = json_request(querier, "GET", "/v1/database", None)?;
    assert_eq!(status, 200, "{listed}");
    let listed = json(&listed)?;
    let names: Vec<&str> = listed["databases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["databaseName"].as_str())
        .collect();
    assert_eq!(names, [NAME], "{listed}");

    // Written through the router, read through the querier: a node that
    // has not opened the new database yet catches up before answering.
    let t0 = T0 * 1000;
    let values: Vec<_> = (0..30).map(|m| json!([t0 + m * 60_000, m * 3])).collect();
    let body = json!({"datapoints": [{"metric": "pressure", "field": "kpa",
        "tags": {"site": "x"}, "values": values}]})
    .to_string();
    let write = format!("/v1/datapoint?database={NAME}");
    let (status, text) = until_not_busy(router, "POST", &write, Some(&body))?;
    assert_eq!(status, 204, "{text}");
    let query = json!({"queries": [{"metric": "pressure", "field": "kpa",
        "filters": {"start": t0, "end": t0 + 3_600_000},
        "aggregators": [{"name": "Sum"}]}]})
    .to_string();
    let read = format!("/v1/datapoint?query&database={NAME}");
    let (status, text) = until_not_busy(querier, "PUT", &read, Some(&query))?;
    assert_eq!(status, 200, "{text}");
    let answer = json(&text)?;
    let sum: i64 = (0..30).map(|m| m * 3).sum();
    assert_eq!(
        answer["results"][0]["groups"][0]["values"][0][1],
        json!(sum),
        "{answer}"
    );
    // The default database holds none of it.
    let (_, text) = json_request(querier, "PUT", "/v1/datapoint?query", Some(&query))?;
    assert!(!text.contains(&sum.to_string()), "{text}");

    // Dropped through the router: the querier forgets it within a second
    // (Baidu's 404), and a database created again under the name, on
    // the querier, starts empty.
    let database = format!("/v1/database/{}", id.as_str().unwrap_or_default());
    let (status, text) = until_not_busy(router, "DELETE", &database, None)?;
    assert_eq!(status, 200, "{text}");
    let (status, text) = json_request(router, "GET", &database, None)?;
    assert_eq!(status, 404, "{text}");
    until_gone(querier, &read, &query)?;
    let path = "/v1/database?clientToken=cluster-token-2";
    let (status, text) = until_not_busy(querier, "POST", path, Some(&create))?;
    assert_eq!(status, 200, "{text}");
    let id = json(&text)?["databaseId"].clone();
    let (status, text) = until_not_busy(router, "PUT", &read, Some(&query))?;
    assert_eq!(status, 200, "{text}");
    let answer = json(&text)?;
    assert_eq!(
        answer["results"][0]["groups"][0]["values"],
        json!([]),
        "{answer}"
    );
    let (status, text) = until_not_busy(router, "POST", &write, Some(&body))?;
    assert_eq!(status, 204, "{text}");
    let answer = json(&until_found(querier, "PUT", &read, &query)?)?;
    assert_eq!(
        answer["results"][0]["groups"][0]["values"][0][1],
        json!(sum),
        "{answer}"
    );

    // A TTL set through the router: the querier reads it back, and the
    // shards' owners have applied it when the call returns: the points,
    // written for 2023, are older than a day and no longer answered.
    let ttl = format!("/api/ttl?database={NAME}");
    let (status, text) = json_request(router, "POST", &ttl, Some(r#"{"val": 86400}"#))?;
    assert_eq!(status, 200, "{text}");
    let (status, text) = json_request(querier, "GET", &ttl, None)?;
    assert_eq!(
        (status, json(&text)?),
        (200, json!({"val": 86400})),
        "{text}"
    );
    let (_, text) = json_request(querier, "GET", "/api/ttl", None)?;
    assert_eq!(
        json(&text)?,
        json!({"val": 0}),
        "the default database keeps all"
    );
    let has_points = |answer: &serde_json::Value| {
        let groups = answer["results"][0]["groups"].as_array().cloned();
        groups
            .unwrap_or_default()
            .iter()
            .any(|g| g["values"].as_array().is_some_and(|v| !v.is_empty()))
    };
    let answer = json(&until_found(querier, "PUT", &read, &query)?)?;
    assert!(
        !has_points(&answer),
        "points past the TTL answered: {answer}"
    );

    // Dropped again, the TTL goes with it: made a third time (on the
    // router), the database keeps everything.
    let database = format!("/v1/database/{}", id.as_str().unwrap_or_default());
    let (status, text) = until_not_busy(querier, "DELETE", &database, None)?;
    assert_eq!(status, 200, "{text}");
    let path = "/v1/database?clientToken=cluster-token-3";
    let (status, text) = until_not_busy(router, "POST", path, Some(&create))?;
    assert_eq!(status, 200, "{text}");
    let (status, text) = json_request(router, "GET", &ttl, None)?;
    assert_eq!((status, json(&text)?), (200, json!({"val": 0})), "{text}");
    Ok(())
}

/// `method path body` on `server` until it answers 404 (the node closed
/// its handle on a dropped database), for up to ten seconds.
fn until_gone(server: &TestServer, path: &str, body: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = until_not_busy(server, "PUT", path, Some(body))?;
        if status == 404 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{path} still answers {status} ten seconds after the drop: {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
