//! SQL at `/v1/row` (spec 10, vectors 16.6): expectations computed from
//! the data written, the statement shapes of 10.4 on two metrics, a join,
//! a time-bucket GROUP BY checked against the JSON query, push-down, and
//! errors.

use crate::baidu::{D1, d1_series, get, percent_encode, put_query, q, write_ok};
use crate::harness::{TestServer, json};
use anyhow::Result;
use serde_json::{Value, json};

/// `GET /v1/row?sql=`: (status, body).
fn sql(s: &TestServer, statement: &str) -> Result<(u16, Value)> {
    let r = get(s, &format!("/v1/row?sql={}", percent_encode(statement)))?;
    Ok((r.status, json(&r.body)?))
}

fn ok(s: &TestServer, statement: &str) -> Result<Value> {
    let (status, body) = sql(s, statement)?;
    anyhow::ensure!(status == 200, "{statement}: {status} {body}");
    Ok(body)
}

fn columns(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| json!({"name": n})).collect())
}

#[test]
fn vectors_s1_to_s10() -> Result<()> {
    let s = TestServer::spawn()?;
    write_ok(&s, &serde_json::from_str(D1)?)?;
    let d1 = d1_series();
    let rows = |keep: &dyn Fn(&crate::baidu::Series, i64) -> bool| {
        crate::baidu::select(&d1, |s, t, _| keep(s, t))
    };
    // S1: `*` is time, fields, tags (ascending).
    let want: Vec<Value> = rows(&|s, t| s.tag("host") == "a" && t <= 1_500_000_060_000)
        .iter()
        .map(|(t, v, s)| json!([t, v, s.tag("host"), s.tag("rack")]))
        .collect();
    assert_eq!(
        ok(
            &s,
            "select * from cpu_idle where host = 'a' and timestamp <= 1500000060000"
        )?,
        json!({"columns": columns(&["time", "value", "host", "rack"]), "rows": want})
    );
    // S2: double-quoted string literal, `timestamp` keeps its name.
    let want: Vec<Value> = rows(&|s, _| s.tag("host") == "b")
        .iter()
        .map(|(t, v, _)| json!([t, v]))
        .collect();
    assert_eq!(
        ok(
            &s,
            "select timestamp, value from cpu_idle where host = \"b\""
        )?,
        json!({"columns": columns(&["timestamp", "value"]), "rows": want})
    );
    // S3: count per host.
    let want: Vec<Value> = d1
        .iter()
        .map(|s| json!([s.tag("host"), s.points.len()]))
        .collect();
    assert_eq!(
        ok(
            &s,
            "select host, count(*) from cpu_idle group by host order by host"
        )?,
        json!({"columns": columns(&["host", "count(*)"]), "rows": want})
    );
    // S4: five-minute buckets.
    let mut buckets: std::collections::BTreeMap<i64, i64> = Default::default();
    for (t, v, _) in rows(&|_, _| true) {
        *buckets.entry(t - t.rem_euclid(300_000)).or_default() += v;
    }
    let want: Vec<Value> = buckets.iter().map(|(b, v)| json!([b, v])).collect();
    assert_eq!(
        ok(
            &s,
            "select time_bucket(timestamp, '5 minutes') as B, sum(value) as S from cpu_idle group by time_bucket(timestamp, '5 minutes') order by time_bucket(timestamp, '5 minutes')"
        )?,
        json!({"columns": columns(&["B", "S"]), "rows": want})
    );
    // S5: max keeps Long, avg is Double.
    let r1: Vec<i64> = rows(&|s, _| s.tag("rack") == "r1")
        .iter()
        .map(|(_, v, _)| *v)
        .collect();
    let max = r1.iter().copied().max().unwrap_or_default();
    let avg = r1.iter().sum::<i64>() as f64 / r1.len() as f64;
    assert_eq!(
        ok(
            &s,
            "select max(value) as M, avg(value) as A from cpu_idle where rack = 'r1'"
        )?,
        json!({"columns": columns(&["M", "A"]), "rows": [[max, avg]]})
    );
    // S6: IF, descending time, limit.
    let mut a: Vec<i64> = rows(&|s, _| s.tag("host") == "a")
        .iter()
        .map(|(_, v, _)| *v)
        .collect();
    a.reverse();
    let want: Vec<Value> = a
        .iter()
        .take(2)
        .map(|v| json!([v, i64::from(*v > 10)]))
        .collect();
    assert_eq!(
        ok(
            &s,
            "select value, IF(value > 10, 1, 0) as big from cpu_idle where host = 'a' order by timestamp desc limit 2"
        )?,
        json!({"columns": columns(&["value", "big"]), "rows": want})
    );
    // S7, S8: errors.
    for bad in [
        "select * from",
        "select nosuchcol from cpu_idle",
        "select * from nosuchmetric",
    ] {
        let (status, body) = sql(&s, bad)?;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!("InvalidArgument")),
            "{bad}: {body}"
        );
        assert!(!body["message"].as_str().unwrap_or_default().is_empty());
    }
    // S9: PUT with the statement in the body.
    let r = s.send(
        "PUT",
        "/v1/row?sql=",
        &[("Content-Type", "text/plain")],
        Some(b"select timestamp, value from cpu_idle where host = 'c'"),
    )?;
    let want: Vec<Value> = rows(&|s, _| s.tag("host") == "c")
        .iter()
        .map(|(t, v, _)| json!([t, v]))
        .collect();
    assert_eq!(
        (r.status, json(&r.body)?),
        (
            200,
            json!({"columns": columns(&["timestamp", "value"]), "rows": want})
        )
    );
    // DataFusion's time functions over the time column, times back as ms.
    let got = ok(
        &s,
        "select date_bin(interval '5 minutes', to_timestamp_millis(timestamp)) as b, count(*) as n from cpu_idle group by b order by b",
    )?;
    let mut counts: std::collections::BTreeMap<i64, usize> = Default::default();
    for (t, _, _) in rows(&|_, _| true) {
        *counts.entry(t - t.rem_euclid(300_000)).or_default() += 1;
    }
    let want: Vec<Value> = counts.iter().map(|(b, n)| json!([b, n])).collect();
    assert_eq!(got["rows"], Value::Array(want));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let now = ok(&s, "select now() as n")?["rows"][0][0]
        .as_i64()
        .unwrap_or(0);
    assert!(now >= before && now - before < 60_000, "now() = {now}");
    // A type error is the client's.
    let (status, body) = sql(
        &s,
        "select value + 'x' from cpu_idle where host = 'a' and value / 0 > 1",
    )?;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("InvalidArgument")),
        "{body}"
    );
    // S10.
    let r = get(&s, "/v1/row")?;
    assert_eq!(
        (r.status, json(&r.body)?["code"].clone()),
        (400, json!("ParameterMissing"))
    );
    // The Go client's alias.
    let r = get(
        &s,
        &format!(
            "/v1/datapoint?sql={}",
            percent_encode("select count(*) from cpu_idle")
        ),
    )?;
    let total: usize = d1.iter().map(|s| s.points.len()).sum();
    assert_eq!(json(&r.body)?["rows"], json!([[total]]));
    Ok(())
}

/// A `power` row: time, watts, amps, meter, city.
type PowerRow = (i64, i64, f64, &'static str, &'static str);

/// Spec 10.4's metrics: `power` (watts Long, amps Double; meter, city) and
/// `heat` (celsius; meter).
fn power_and_heat(s: &TestServer) -> Result<Vec<PowerRow>> {
    let rows: Vec<PowerRow> = (0..12)
        .map(|i| {
            let meter = ["M-01", "M-02", "M-03"][i % 3];
            let city = if i % 3 == 2 { "sh" } else { "bj" };
            (
                1_525_611_900_000 + i as i64 * 5_000,
                (i as i64 * 97) % 500,
                1.5 + i as f64,
                meter,
                city,
            )
        })
        .collect();
    let mut dps = Vec::new();
    for (t, w, a, meter, city) in &rows {
        let tags = json!({"meter": meter, "city": city});
        dps.push(
            json!({"metric": "power", "field": "watts", "tags": tags, "timestamp": t, "value": w}),
        );
        dps.push(
            json!({"metric": "power", "field": "amps", "tags": tags, "timestamp": t, "value": a}),
        );
    }
    for (i, meter) in ["M-01", "M-02"].iter().enumerate() {
        dps.push(
            json!({"metric": "heat", "field": "celsius", "tags": {"meter": meter},
            "timestamp": 1_525_611_900_000i64, "value": 20 + i as i64}),
        );
    }
    write_ok(s, &json!({"datapoints": dps}))?;
    Ok(rows)
}

#[test]
fn statement_shapes_of_the_spec() -> Result<()> {
    let s = TestServer::spawn()?;
    let data = power_and_heat(&s)?;
    let n = data.len();
    // Every shape of 10.4 parses and runs.
    for statement in [
        "select * from power",
        "select time from power",
        "select timestamp, watts from power order by timestamp desc",
        "select timestamp, watts, meter from power where watts > 400 and amps < 5 and meter = 'M-01'",
        "select city, count(1) as n from power group by city",
        "select time_bucket(timestamp, '10 seconds') as t, avg(watts) as w from power where meter = \"M-01\" group by time_bucket(timestamp, '10 seconds') order by time_bucket(timestamp, '10 seconds')",
        "select timestamp, (watts - amps) * 2 as d, city from power",
        "select watts, case watts when 0 then 'off' when 1 then 'idle' else 'busy' end from power",
        "select watts, if(watts > 100, 1, 0) as hot, coalesce(amps, watts) as x from power",
        "select abs(watts), sqrt(watts), cbrt(watts), ceil(amps), floor(amps) from power",
        "select 'M-' || meter as label from power where timestamp < 1525611901000",
        "select max_by(meter, watts) as top, min_by(meter, watts) as bottom, max(watts), min(watts), sum(watts) from power",
        "select * from power join heat on power.meter = heat.meter",
    ] {
        ok(&s, statement)?;
    }
    // `*`: time, fields ascending, tags ascending.
    let all = ok(&s, "select * from power")?;
    assert_eq!(
        all["columns"],
        columns(&["time", "amps", "watts", "city", "meter"])
    );
    assert_eq!(all["rows"].as_array().map(Vec::len), Some(n));
    // Arithmetic keeps Long with Long, Double with any Double.
    let got = ok(
        &s,
        "select timestamp, (watts - amps) * 2 as d, watts * 2 as w2 from power order by timestamp limit 1",
    )?;
    let (t, w, a, _, _) = data[0];
    assert_eq!(got["rows"], json!([[t, (w as f64 - a) * 2.0, w * 2]]));
    // Counting per city, and max_by/min_by.
    let bj = data.iter().filter(|r| r.4 == "bj").count();
    let got = ok(
        &s,
        "select city, count(1) as n from power group by city order by city",
    )?;
    assert_eq!(got["rows"], json!([["bj", bj], ["sh", n - bj]]));
    let top = data.iter().max_by_key(|r| r.1).map(|r| r.3);
    let bottom = data.iter().min_by_key(|r| r.1).map(|r| r.3);
    let sum: i64 = data.iter().map(|r| r.1).sum();
    let got = ok(
        &s,
        "select max_by(meter, watts) as top, min_by(meter, watts) as bottom, sum(watts) from power",
    )?;
    assert_eq!(got["rows"], json!([[top, bottom, sum]]));
    assert_eq!(got["columns"], columns(&["top", "bottom", "sum(watts)"]));
    // CASE, string concatenation, a filter with AND.
    let got = ok(
        &s,
        "select 'M-' || meter as label from power where timestamp < 1525611901000",
    )?;
    let want: Vec<Value> = data
        .iter()
        .filter(|r| r.0 < 1_525_611_901_000)
        .map(|r| json!([format!("M-{}", r.3)]))
        .collect();
    assert_eq!(got["rows"], Value::Array(want));
    let got = ok(
        &s,
        "select timestamp, watts, meter from power where watts > 400 and amps < 5 and meter = 'M-01'",
    )?;
    let want: Vec<Value> = data
        .iter()
        .filter(|r| r.1 > 400 && r.2 < 5.0 && r.3 == "M-01")
        .map(|r| json!([r.0, r.1, r.3]))
        .collect();
    assert_eq!(got["rows"], Value::Array(want));
    // A join on a shared tag: `*` names columns metric.column.
    let got = ok(
        &s,
        "select * from power join heat on power.meter = heat.meter",
    )?;
    let joined = data.iter().filter(|r| r.3 != "M-03").count();
    assert_eq!(got["rows"].as_array().map(Vec::len), Some(joined));
    let names: Vec<&str> = got["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.first(), Some(&"power.time"));
    assert!(names.contains(&"heat.celsius"), "{names:?}");
    Ok(())
}

/// A GROUP BY time bucket equals the JSON query's sampling on the same data.
#[test]
fn time_buckets_match_the_json_query() -> Result<()> {
    let s = TestServer::spawn()?;
    write_ok(&s, &serde_json::from_str(D1)?)?;
    let sql_rows = ok(&s, "select time_bucket(timestamp, '2 minutes') as b, sum(value) as s from cpu_idle where timestamp >= 1500000000000 and timestamp < 1500000480000 group by time_bucket(timestamp, '2 minutes') order by b")?["rows"].clone();
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle",
        "filters": {"start": 1_500_000_000_000i64, "end": 1_500_000_479_999i64},
        "aggregators": [{"name": "Sum", "sampling": "2 minutes"}]})),
    )?;
    let values = json(&r.body)?["results"][0]["groups"][0]["values"].clone();
    assert_eq!(sql_rows, values);
    Ok(())
}

/// Time ranges and tags narrow the storage scan: with a budget of a few
/// points, a narrow statement runs and a full scan is refused.
#[test]
fn push_down_reads_only_the_range() -> Result<()> {
    let s = TestServer::spawn_with_config("[baidu]\nmax_query_points = 3\n")?;
    write_ok(&s, &serde_json::from_str(D1)?)?;
    let got = ok(
        &s,
        "select value from cpu_idle where timestamp between 1500000000000 and 1500000060000 and host = 'a'",
    )?;
    assert_eq!(got["rows"], json!([[1], [2]]));
    let got = ok(&s, "select value from cpu_idle where host in ('c')")?;
    assert_eq!(got["rows"], json!([[7]]));
    // A plain LIMIT keeps one row per series in the scan: 3 series, 3 points.
    let got = ok(&s, "select * from cpu_idle limit 1")?;
    let d1 = d1_series();
    let first = crate::baidu::select(&d1, |_, _, _| true);
    let want: Vec<Value> = first
        .iter()
        .take(1)
        .map(|(t, v, s)| json!([t, v, s.tag("host"), s.tag("rack")]))
        .collect();
    assert_eq!(got["rows"], Value::Array(want));
    let (status, body) = sql(&s, "select value from cpu_idle")?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("stored points"),
        "{body}"
    );
    Ok(())
}

/// Edge cases: the time keyword in any case, fractional time bounds,
/// `max_by` over rows lacking the ordering field, refused functions, and a
/// column named like an internal marker.
#[test]
fn edge_cases() -> Result<()> {
    let s = TestServer::spawn()?;
    write_ok(&s, &serde_json::from_str(D1)?)?;
    let d1 = d1_series();
    let a: Vec<(i64, i64)> = d1
        .iter()
        .filter(|s| s.tag("host") == "a")
        .flat_map(|s| s.points.clone())
        .collect();
    let got = ok(
        &s,
        "select TIME from cpu_idle where host = 'a' and Time <= 1500000060000",
    )?;
    assert_eq!(got["columns"], columns(&["TIME"]));
    let want: Vec<Value> = a
        .iter()
        .filter(|(t, _)| *t <= 1_500_000_060_000)
        .map(|(t, _)| json!([t]))
        .collect();
    assert_eq!(got["rows"], Value::Array(want));
    // A fractional bound keeps the row at the integer below it.
    let first = a.first().map(|p| p.0).unwrap_or_default();
    let got = ok(
        &s,
        &format!("select value from cpu_idle where host = 'a' and timestamp < {first}.5"),
    )?;
    assert_eq!(got["rows"].as_array().map(Vec::len), Some(1));
    // `mix`: field `b` only on the first row; max_by(a, b) ignores the other.
    let dps = json!({"datapoints": [
        {"metric": "mix", "field": "a", "tags": {"h": "x"}, "values": [[1_500_000_000_000i64, 1], [1_500_000_060_000i64, 2]]},
        {"metric": "mix", "field": "b", "tags": {"h": "x"}, "timestamp": 1_500_000_000_000i64, "value": 5}]});
    write_ok(&s, &dps)?;
    assert_eq!(
        ok(&s, "select max_by(a, b) as m from mix")?["rows"],
        json!([[1]])
    );
    // Issue 14: refused by resolved name at every level, and growth that
    // no name gives away stops before it takes the memory.
    let grow = (0..12).fold("host".to_owned(), |e, _| {
        format!("replace({e}, 'a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')")
    });
    let nested = format!("select length({grow}) from cpu_idle");
    for refused in [
        "select repeat('x', 1000000000) from cpu_idle",
        "select * from generate_series(1, 10)",
        "select x from (select \"lpad\"('a', 1000000000) as x) t",
        "select (select max(length(rpad('a', 1000000000))) from cpu_idle) from cpu_idle",
        "select * from range(1000000000)",
        nested.as_str(),
    ] {
        let (status, body) = sql(&s, refused)?;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!("InvalidArgument")),
            "{refused}: {body}"
        );
    }
    let (status, body) = sql(&s, "select deadline from cpu_idle")?;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("InvalidArgument")),
        "{body}"
    );
    Ok(())
}
