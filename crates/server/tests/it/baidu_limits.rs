//! Issue 15: the Baidu JSON query and SQL stop at the query deadline and
//! at the point budget of `[limits]`, each with the error of spec 4
//! (400 InvalidArgument past the budget, 500 InternalError that says it
//! timed out past the deadline), and answer from the data inside both.

use crate::baidu::{get, percent_encode, put_query, q};
use crate::harness::{Reply, TestServer, json};
use crate::opentsdb_limits::{self, POINTS};
use anyhow::Result;
use serde_json::{Value, json};

/// The OpenTSDB test's series (seconds) in milliseconds.
const T0: i64 = opentsdb_limits::T0 * 1000;
const STEP: i64 = 10_000;

fn write(s: &TestServer, series: i64) -> Result<()> {
    opentsdb_limits::write(s, "limit_m", series)
}

/// The JSON query and the SQL statement over every series of `limit_m`.
fn every_route(s: &TestServer) -> Result<Vec<(&'static str, Reply)>> {
    let query =
        q(json!({"metric": "limit_m", "filters": {"start": T0, "end": T0 + STEP * POINTS}}));
    let sql = percent_encode("select value from limit_m");
    Ok(vec![
        ("json query", put_query(s, &query)?),
        ("sql", get(s, &format!("/v1/row?sql={sql}"))?),
    ])
}

fn refused(what: &str, reply: &Reply, status: u16, code: &str, says: &str) -> Result<()> {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    let body = json(&reply.body)?;
    assert_eq!(body["code"], json!(code), "{what}: {reply:?}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{what}: {message}");
    Ok(())
}

#[test]
fn the_json_query_and_sql_stop_at_the_point_budget() -> Result<()> {
    // 120 series of 3 points: both routes read more than 100.
    let s = TestServer::spawn_with_config("[limits]\nmax_query_points = 100\n")?;
    write(&s, 120)?;
    for (what, reply) in every_route(&s)? {
        refused(what, &reply, 400, "InvalidArgument", "points")?;
    }
    // One series stays inside the budget and answers its own values.
    let one = q(json!({"metric": "limit_m",
        "filters": {"start": T0, "end": T0 + STEP * POINTS, "tags": {"host": ["h0007"]}}}));
    let reply = put_query(&s, &one)?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let want: Vec<Value> = (0..POINTS)
        .map(|i| json!([T0 + STEP * i, 70 + i]))
        .collect();
    let got = &json(&reply.body)?["results"][0]["groups"][0]["values"];
    assert_eq!(got, &Value::Array(want.clone()), "{}", reply.body);
    let sql = percent_encode("select timestamp, value from limit_m where host = 'h0007'");
    let reply = get(&s, &format!("/v1/row?sql={sql}"))?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(json(&reply.body)?["rows"], Value::Array(want));
    Ok(())
}

#[test]
fn the_json_query_and_sql_stop_at_their_deadline() -> Result<()> {
    // 3000 series take an unoptimised build far longer than 1 ms to read.
    let s = TestServer::spawn_with_config("[limits]\nquery_timeout_ms = 1\n")?;
    write(&s, 3000)?;
    for (what, reply) in every_route(&s)? {
        refused(what, &reply, 500, "InternalError", "")?;
        let message = json(&reply.body)?["message"].to_string();
        assert!(
            message.contains("timed out") || message.contains("ran longer"),
            "{what}: {message}"
        );
    }
    Ok(())
}
