//! Presampling rules (Baidu spec 12) kept through `/admin/presampling`:
//! a matching `/v1` query reports the rule and answers what raw
//! evaluation answers; the rest do not report it.

use crate::baidu::{put_query, q, write_ok};
use crate::harness::TestServer;
use anyhow::{Result, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const T0: i64 = 1_500_000_000_000;
const TEN_MIN: i64 = 600_000;
const HOURS: i64 = 3;

/// Longs per host every 10 s for three hours, written newest first in
/// two passes: the second pass overwrites every seventh point.
fn points() -> BTreeMap<(String, i64), i64> {
    let mut final_values = BTreeMap::new();
    for host in ["a", "b", "c"] {
        for i in 0..HOURS * 360 {
            let v = (i * 37 + host.len() as i64 * 11) % 1000;
            final_values.insert((host.to_owned(), T0 + i * 10_000), v);
        }
    }
    for ((_, t), v) in final_values.iter_mut() {
        if (t / 10_000) % 7 == 0 {
            *v = -*v - 5;
        }
    }
    final_values
}

fn write_all(s: &TestServer) -> Result<()> {
    let want = points();
    for overwrite in [false, true] {
        let mut batch = Vec::new();
        for ((host, t), v) in want.iter().rev() {
            let rewritten = (t / 10_000) % 7 == 0;
            // First pass: the original value everywhere; second: the new ones.
            let value = match (overwrite, rewritten) {
                (false, true) => -*v - 5,
                (false, false) | (true, true) => *v,
                (true, false) => continue,
            };
            batch.push(
                json!({"metric": "cpu", "tags": {"host": host}, "timestamp": t, "value": value}),
            );
        }
        for chunk in batch.chunks(2000) {
            write_ok(s, &json!({ "datapoints": chunk }))?;
        }
    }
    Ok(())
}

fn admin(s: &TestServer, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let text = body.map(Value::to_string);
    let r = s.send(method, path, &[], text.as_deref().map(str::as_bytes))?;
    Ok((
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    ))
}

fn sum_query(start: i64) -> Value {
    json!({"metric": "cpu", "aggregators": [{"name": "Sum", "sampling": "10 minutes"}],
        "filters": {"start": start, "end": T0 + HOURS * 3_600_000 - 1,
            "tags": {"host": ["b", "a"]}}})
}

fn result(s: &TestServer, body: &Value) -> Result<Value> {
    let r = put_query(s, body)?;
    ensure!(r.status == 200, "query answered {}: {}", r.status, r.body);
    let v: Value = serde_json::from_str(&r.body)?;
    Ok(v["results"][0].clone())
}

#[test]
fn a_matching_query_reports_its_rule_and_answers_as_raw_evaluation() -> Result<()> {
    let s = TestServer::spawn()?;
    let rule = json!({"id": "r1", "metric": "cpu", "tags": {"host": ["a", "b"]},
        "aggregators": [{"name": "Sum", "sampling": "10 minutes"}], "startTime": T0});
    // Refused: a first step that cannot be kept presampled, no id.
    for bad in [
        json!({"id": "x", "metric": "cpu", "aggregators": [{"name": "Dev", "sampling": "1 minute"}], "startTime": 0}),
        json!({"id": "x", "metric": "cpu", "aggregators": [{"name": "Sum"}], "startTime": 0}),
        json!({"metric": "cpu", "aggregators": [{"name": "Sum", "sampling": "1 minute"}], "startTime": 0}),
    ] {
        let (status, body) = admin(&s, "POST", "/admin/presampling", Some(&bad))?;
        ensure!(status == 400, "{bad} answered {status}: {body}");
    }
    let (status, body) = admin(&s, "POST", "/admin/presampling", Some(&rule))?;
    ensure!(status == 201, "create answered {status}: {body}");
    let (status, _) = admin(&s, "POST", "/admin/presampling", Some(&rule))?;
    ensure!(status == 409, "a second r1 answered {status}");
    let (status, _) = admin(&s, "POST", "/admin/presampling?database=nope", Some(&rule))?;
    ensure!(status == 404, "an unknown database answered {status}");
    let (_, listed) = admin(&s, "GET", "/admin/presampling", None)?;
    ensure!(listed["rules"] == json!([rule]), "listed {listed}");

    write_all(&s)?;
    let (status, body) = s.post("/admin/compact", "")?;
    ensure!(status == 200, "compaction answered {status}: {body}");

    // Expected sums per 10-minute bucket over hosts a and b, from the data.
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for ((host, t), v) in points() {
        if host != "c" {
            *sums.entry(T0 + (t - T0) / TEN_MIN * TEN_MIN).or_default() += v;
        }
    }
    let expected: Vec<Value> = sums.iter().map(|(t, v)| json!([t, v])).collect();

    let hit = result(&s, &q(sum_query(T0)))?;
    ensure!(hit["presamplingRuleId"] == "r1", "no rule reported: {hit}");
    ensure!(
        hit["groups"][0]["values"] == json!(expected),
        "hit rows: {hit}"
    );
    let raw_count = hit["rawCount"].as_u64().unwrap_or_default();
    ensure!(raw_count == 2 * HOURS as u64 * 360, "rawCount {raw_count}");
    // The presampled buckets were read in place of most points.
    let consumed = hit["consumedCount"].as_u64().unwrap_or(u64::MAX);
    ensure!(
        consumed < raw_count / 4,
        "consumedCount {consumed} of {raw_count}"
    );

    // Disabled in the body and as the SDKs' query parameter: raw rows.
    let mut disabled = q(sum_query(T0));
    disabled["disablePresampling"] = json!(true);
    let raw = result(&s, &disabled)?;
    let by_param = {
        let r = s.send(
            "PUT",
            "/v1/datapoint?query=&disablePresampling=True",
            &[("Content-Type", "application/json")],
            Some(q(sum_query(T0)).to_string().as_bytes()),
        )?;
        serde_json::from_str::<Value>(&r.body)?["results"][0].clone()
    };
    for (name, r) in [("body", &raw), ("parameter", &by_param)] {
        ensure!(r.get("presamplingRuleId").is_none(), "{name}: {r}");
        ensure!(r["groups"] == hit["groups"], "{name}: {r} vs {hit}");
        ensure!(
            r["consumedCount"].as_u64() == Some(raw_count),
            "{name}: {r}"
        );
    }

    // Misses: a start off the rule's grid, other aggregators, the array
    // form of the tag filter, a value filter.
    let off_grid = sum_query(T0 + 60_000);
    let mut avg = sum_query(T0);
    avg["aggregators"] = json!([{"name": "Avg", "sampling": "10 minutes"}]);
    let mut array_tags = sum_query(T0);
    array_tags["filters"]["tags"] = json!([{"tag": "host", "in": ["a", "b"]}]);
    let mut filtered = sum_query(T0);
    filtered["filters"]["value"] = json!(">= 0");
    for (name, query) in [
        ("off grid", off_grid),
        ("avg", avg),
        ("array tags", array_tags),
        ("value filter", filtered),
    ] {
        let r = result(&s, &q(query))?;
        ensure!(r.get("presamplingRuleId").is_none(), "{name} hit: {r}");
    }

    let (status, _) = admin(&s, "DELETE", "/admin/presampling/r1", None)?;
    ensure!(status == 200, "delete answered {status}");
    let after = result(&s, &q(sum_query(T0)))?;
    ensure!(
        after.get("presamplingRuleId").is_none(),
        "deleted rule hit: {after}"
    );
    ensure!(after["groups"] == hit["groups"], "after delete: {after}");
    let (status, _) = admin(&s, "DELETE", "/admin/presampling/r1", None)?;
    ensure!(status == 404, "a second delete answered {status}");
    Ok(())
}

#[test]
fn rules_survive_a_restart() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let rule = json!({"id": "7", "metric": "*", "aggregators": [{"name": "Max", "sampling": "1 hour"},
        {"name": "Diff"}], "startTime": 0});
    {
        let mut s = TestServer::spawn_with(&dir, &[])?;
        let (status, body) = admin(&s, "POST", "/admin/presampling", Some(&rule))?;
        ensure!(status == 201, "create answered {status}: {body}");
        s.terminate()?;
    }
    let s = TestServer::spawn_with(&dir, &[])?;
    let (_, listed) = admin(&s, "GET", "/admin/presampling", None)?;
    ensure!(
        listed["rules"] == json!([rule]),
        "after a restart: {listed}"
    );
    Ok(())
}

#[test]
fn configured_rules_apply_and_stay() -> Result<()> {
    let s = TestServer::spawn_with_config(
        r#"
[[baidu.presampling]]
id = "cfg"
metric = "cpu"
startTime = 1500000000000
aggregators = [{ name = "Sum", sampling = "10 minutes" }]
tags = { host = ["a", "b"] }
"#,
    )?;
    let (_, listed) = admin(&s, "GET", "/admin/presampling", None)?;
    ensure!(listed["rules"][0]["id"] == "cfg", "listed {listed}");
    let (status, _) = admin(&s, "DELETE", "/admin/presampling/cfg", None)?;
    ensure!(
        status == 409,
        "deleting a configured rule answered {status}"
    );
    write_all(&s)?;
    let hit = result(&s, &q(sum_query(T0)))?;
    ensure!(hit["presamplingRuleId"] == "cfg", "{hit}");
    Ok(())
}
