//! Alibaba's `/api/query/mlast` (the newest value of several fields per
//! series) and `/api/ttl` (the retention, kept across restarts).

use crate::harness::{TestServer, json, point};
use crate::opentsdb_alibaba::{WIND, mput_wind};
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One stored field value: (sensor, seconds, field, value).
type Stored = (&'static str, i64, &'static str, Value);

/// What `mput_wind` stored, one row per field.
fn wind_fields() -> Vec<Stored> {
    WIND.iter()
        .flat_map(|&(sensor, t, speed, level, dir)| {
            [
                (sensor, t, "speed", json!(speed)),
                (sensor, t, "level", json!(level)),
                (sensor, t, "direction", json!(dir)),
            ]
        })
        .collect()
}

/// The answer mlast owes for `fields` of `sensors`, computed from what was
/// stored: per series the newest value of each field at or before
/// `until`, a row per distinct newest time (milliseconds), `null` where
/// a field's newest is at another time.
fn expected(stored: &[Stored], sensors: &[&str], fields: &[&str], until: i64) -> Value {
    let mut fields: Vec<&str> = fields.to_vec();
    fields.sort_unstable();
    let mut out = Vec::new();
    for sensor in sensors {
        let mut newest: BTreeMap<&str, (i64, &Value)> = BTreeMap::new();
        for (s, t, f, v) in stored {
            if s == sensor && *t <= until && fields.contains(f) {
                let e = newest.entry(f).or_insert((*t, v));
                if *t >= e.0 {
                    *e = (*t, v);
                }
            }
        }
        if newest.is_empty() {
            continue;
        }
        let mut times: Vec<i64> = newest.values().map(|(t, _)| *t).collect();
        times.sort_unstable();
        times.dedup();
        let rows: Vec<Value> = times
            .iter()
            .map(|&t| {
                let mut row = vec![json!(t * 1000)];
                row.extend(fields.iter().map(|f| match newest.get(f) {
                    Some((at, v)) if *at == t => (*v).clone(),
                    _ => Value::Null,
                }));
                Value::Array(row)
            })
            .collect();
        let mut columns = vec![json!("timestamp")];
        columns.extend(fields.iter().map(|f| json!(f)));
        out.push(json!({"metric": "wind", "tags": {"sensor": sensor},
            "columns": columns, "values": rows}));
    }
    Value::Array(out)
}

fn mlast(s: &TestServer, body: Value) -> Result<(u16, Value)> {
    let (status, text) = s.post("/api/query/mlast", &body.to_string())?;
    Ok((status, json(&text)?))
}

#[test]
fn mlast_gives_each_fields_newest_value_per_series() -> Result<()> {
    let s = TestServer::spawn()?;
    mput_wind(&s)?;
    // s1's speed moves on alone: its row is newer than the other fields'.
    let later = (1_500_000_120, 22.5);
    let (status, text) = s.post(
        "/api/mput",
        &json!([{"metric": "wind", "timestamp": later.0, "tags": {"sensor": "s1"},
            "fields": {"speed": later.1}}])
        .to_string(),
    )?;
    assert_eq!(status, 204, "{text}");
    let mut stored = wind_fields();
    stored.push(("s1", later.0, "speed", json!(later.1)));
    let all = ["direction", "level", "speed"];
    let now = i64::MAX / 1000;

    // The spec's example: every field of s1.
    let (status, got) = mlast(
        &s,
        json!({"queries": [{"metric": "wind", "fields": ["*"], "tags": {"sensor": "s1"}}]}),
    )?;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, expected(&stored, &["s1"], &all, now));
    assert_eq!(got[0]["values"].as_array().map(Vec::len), Some(2), "{got}");

    // Every sensor, two named fields, up to a timestamp.
    let until = 1_500_000_030;
    let (_, got) = mlast(
        &s,
        json!({"timestamp": until, "queries": [{"metric": "wind",
            "fields": ["speed", "level"], "tags": {"sensor": "*"}}]}),
    )?;
    assert_eq!(
        got,
        expected(&stored, &["s1", "s2"], &["level", "speed"], until)
    );

    // A field no series has is a column of nulls; an unknown metric
    // matches nothing.
    let (_, got) = mlast(
        &s,
        json!({"queries": [{"metric": "wind", "fields": ["speed", "gust"],
            "tags": {"sensor": "s2"}}, {"metric": "calm", "fields": ["*"]}]}),
    )?;
    let mut want = expected(&stored, &["s2"], &["speed"], now);
    want[0]["columns"] = json!(["timestamp", "gust", "speed"]);
    for row in want[0]["values"].as_array_mut().into_iter().flatten() {
        if let Some(cells) = row.as_array_mut() {
            cells.insert(1, Value::Null);
        }
    }
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn mlast_refuses_what_it_cannot_answer() -> Result<()> {
    let s = TestServer::spawn()?;
    for (body, status, message) in [
        (json!({}), 400, "Missing queries"),
        (
            json!({"queries": [{"metric": "wind"}]}),
            400,
            "Missing fields",
        ),
        (
            json!({"queries": [{"fields": ["a"]}]}),
            400,
            "Missing metric",
        ),
        (
            json!({"queries": [{"metric": "wind", "fields": [1]}]}),
            400,
            "fields must be an array of field names",
        ),
        (
            json!({"tupleFormat": true, "queries": [{"metric": "wind", "fields": ["a"]}]}),
            501,
            "Not implemented",
        ),
    ] {
        let (got, reply) = mlast(&s, body.clone())?;
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], json!(status), "{reply}");
        assert_eq!(reply["error"]["message"], json!(message), "{body}: {reply}");
    }
    Ok(())
}

#[test]
fn ttl_sets_the_retention_and_a_restart_keeps_it() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&dir, &[])?;
    assert_eq!(s.get_json("/api/ttl")?, json!({"val": 0}));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let (old, recent) = (now - 7200, now - 60);
    let body = json!([
        point("ttl.m", old, json!(1), &[("host", "a")]),
        point("ttl.m", recent, json!(2), &[("host", "a")]),
    ]);
    assert_eq!(s.post("/api/put", &body.to_string())?.0, 204);
    let times = |s: &TestServer| -> Result<Vec<i64>> {
        let got = s.get_json(&format!("/api/query?start={}&m=sum:ttl.m", now - 86_400))?;
        Ok(got[0]["dps"]
            .as_object()
            .map(|d| d.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default())
    };
    assert_eq!(times(&s)?, vec![old, recent]);
    // A retention past what i64 milliseconds hold keeps everything.
    let (status, _) = s.post("/api/ttl", &json!({"val": u64::MAX}).to_string())?;
    assert_eq!(status, 200);
    assert_eq!(s.get_json("/api/ttl")?, json!({"val": u64::MAX}));
    assert_eq!(times(&s)?, vec![old, recent]);

    let hour = 3600;
    let (status, text) = s.post("/api/ttl", &json!({"val": hour}).to_string())?;
    assert_eq!((status, text.as_str()), (200, ""));
    assert_eq!(s.get_json("/api/ttl")?, json!({"val": hour}));
    // Points older than the retention are gone from answers at once.
    assert_eq!(times(&s)?, vec![recent]);

    for bad in [json!(-1), json!(1.5), json!("x")] {
        let (status, text) = s.post("/api/ttl", &json!({"val": bad}).to_string())?;
        assert_eq!(status, 400, "{text}");
        assert_eq!(
            json(&text)?["error"]["message"],
            json!(format!("Invalid ttl: {bad}"))
        );
    }
    assert_eq!(s.post("/api/ttl", "{}")?.0, 400);
    assert_eq!(
        s.get_json("/api/ttl")?,
        json!({"val": hour}),
        "a refused value changes nothing"
    );

    s.terminate()?;
    let s = TestServer::spawn_with(&dir, &[])?;
    assert_eq!(s.get_json("/api/ttl")?, json!({"val": hour}));
    assert_eq!(times(&s)?, vec![recent]);
    Ok(())
}
