//! Rollup tiers (docs/storage.md, "Rollup tiers") through the APIs: with
//! `rollup_retention_secs` the hourly answers of OpenTSDB and SQL outlive
//! the raw points that `/api/ttl` expires, restarts included.

use crate::baidu::{get, percent_encode};
use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const CONFIG: &str = "[storage]\nrollup_secs = [600, 3600]\nrollup_retention_secs = 0\n";
const HOSTS: [&str; 2] = ["a", "b"];

/// The value `host` (its index) gets at `t` seconds.
fn value(host: usize, t: i64) -> i64 {
    (t / 30) % 17 + 100 * host as i64
}

/// Per host, hour (seconds) -> (sum, count) of the written values.
type Hourly = BTreeMap<&'static str, BTreeMap<i64, (i64, i64)>>;

/// OpenTSDB's hourly average per host: hour -> value.
fn opentsdb_hourly(s: &TestServer, (start, end): (i64, i64)) -> Result<BTreeMap<String, Value>> {
    let got = s.get_json(&format!(
        "/api/query?start={start}&end={end}&m=avg:1h-avg:rollm{{host=*}}"
    ))?;
    let mut out = BTreeMap::new();
    for series in got.as_array().into_iter().flatten() {
        let host = series["tags"]["host"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.insert(host, series["dps"].clone());
    }
    Ok(out)
}

/// SQL's hourly sum and count per host, as rows.
fn sql_hourly(s: &TestServer) -> Result<Value> {
    let statement = "select host, time_bucket(timestamp, '1 hour') as B, sum(value) as S, \
                     count(value) as C from rollm group by host, time_bucket(timestamp, '1 hour') \
                     order by host, time_bucket(timestamp, '1 hour')";
    let r = get(s, &format!("/v1/row?sql={}", percent_encode(statement)))?;
    anyhow::ensure!(r.status == 200, "{}", r.body);
    Ok(json(&r.body)?["rows"].clone())
}

#[test]
fn hourly_answers_outlive_the_raw_points() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("sundial.toml");
    std::fs::write(&config, CONFIG)?;
    let config = config.to_string_lossy().into_owned();
    let dir = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&dir, &["--config", &config])?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    // Four hours ten days ago, every 30 s.
    let start = now - 10 * 86_400 - (now - 10 * 86_400).rem_euclid(86_400);
    let end = start + 4 * 3600 - 1;
    let mut hourly = Hourly::new();
    let mut body = Vec::new();
    for (i, host) in HOSTS.iter().enumerate() {
        for t in (start..=end).step_by(30) {
            body.push(point("rollm", t, json!(value(i, t)), &[("host", host)]));
            let cell = hourly
                .entry(host)
                .or_default()
                .entry(t - t % 3600)
                .or_default();
            *cell = (cell.0 + value(i, t), cell.1 + 1);
        }
    }
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    assert_eq!(s.post("/admin/compact", "")?.0, 200);
    // The averages as written, to the last bits a sum's order may change.
    let hourly_avg = hourly.iter().flat_map(|(host, hours)| {
        hours
            .iter()
            .map(move |(h, (sum, n))| (host.to_string(), h.to_string(), *sum as f64 / *n as f64))
    });
    let want_opentsdb = opentsdb_hourly(&s, (start, end))?;
    let mut compared = 0;
    for (host, hour, avg) in hourly_avg {
        let got = want_opentsdb[&host][&hour].as_f64().unwrap_or(f64::NAN);
        assert!((got - avg).abs() < 1e-9, "{host} {hour}: {got} vs {avg}");
        compared += 1;
    }
    assert_eq!(compared, 8);
    let want_sql: Vec<Value> = hourly
        .iter()
        .flat_map(|(host, hours)| {
            hours
                .iter()
                .map(move |(h, (sum, n))| json!([host, h * 1000, sum, n]))
        })
        .collect();
    let check = |s: &TestServer| -> Result<()> {
        assert_eq!(opentsdb_hourly(s, (start, end))?, want_opentsdb);
        assert_eq!(sql_hourly(s)?, json!(want_sql));
        Ok(())
    };
    check(&s)?;
    // A week of raw points: the four hours expire, their tiers stay.
    assert_eq!(
        s.post("/api/ttl", &json!({"val": 7 * 86_400}).to_string())?
            .0,
        200
    );
    assert_eq!(s.post("/admin/compact", "")?.0, 200);
    let levels = s.get_json("/admin/storage")?;
    let rollups = levels["databases"]["default"]["levels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["level"] == "rollups")
        .map(|l| l["blocks"].clone());
    assert_eq!(rollups, Some(json!(1)), "{levels}");
    let raw = s.get_json(&format!("/api/query?start={start}&end={end}&m=sum:rollm"))?;
    assert_eq!(raw, json!([]), "raw points past the retention");
    check(&s)?;
    s.terminate()?;
    let s = TestServer::spawn_with(&dir, &["--config", &config])?;
    check(&s)?;
    Ok(())
}
