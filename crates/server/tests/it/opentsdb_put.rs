//! `POST /api/put`: seed 001 and the write vectors of spec 22.1.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};

fn seed_write_body() -> Value {
    json!([
        point(
            "sys.cpu.nice",
            1346846400,
            json!(18),
            &[("host", "web01"), ("dc", "lga")]
        ),
        point(
            "sys.cpu.nice",
            1346846400,
            json!(9),
            &[("host", "web02"), ("dc", "lga")]
        ),
        point(
            "sys.cpu.alter",
            1346846400,
            json!("High CPU Load"),
            &[("host", "web03"), ("dc", "lga")]
        ),
        point(
            "sys.cpu.nice",
            1346846400,
            json!(true),
            &[("host", "web04"), ("dc", "lga")]
        ),
    ])
}

/// The `none` query result the server must give for points written in
/// `body`, grouped per series in series-key order, computed from the body.
fn expected_none(body: &Value, metric: &str) -> Value {
    let mut series: std::collections::BTreeMap<String, (Value, serde_json::Map<String, Value>)> =
        Default::default();
    for p in body.as_array().into_iter().flatten() {
        if p["metric"] != metric {
            continue;
        }
        let mut tags: Vec<(String, String)> = p["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        tags.sort();
        let key = tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let tag_obj: serde_json::Map<String, Value> = tags
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let entry = series
            .entry(key)
            .or_insert((Value::Object(tag_obj), Default::default()));
        entry
            .1
            .insert(p["timestamp"].to_string(), p["value"].clone());
    }
    Value::Array(
        series
            .into_values()
            .map(|(tags, dps)| json!({"metric": metric, "tags": tags, "aggregateTags": [], "dps": dps}))
            .collect(),
    )
}

#[test]
fn w01_seed_write_example_then_read_back() -> Result<()> {
    let s = TestServer::spawn()?;
    let body = seed_write_body();
    let (status, text) = s.post("/api/put", &body.to_string())?;
    assert_eq!((status, text.as_str()), (204, ""));
    for metric in ["sys.cpu.nice", "sys.cpu.alter"] {
        let got = s.get_json(&format!(
            "/api/query?start=1346846400&end=1346846400&m=none:{metric}"
        ))?;
        assert_eq!(got, expected_none(&body, metric), "{metric}");
    }
    Ok(())
}

#[test]
fn w02_seed_details_example() -> Result<()> {
    let s = TestServer::spawn()?;
    let element = point(
        "sys.cpu.nice",
        1365465600,
        json!("NaN"),
        &[("host", "web01")],
    );
    for _ in 0..2 {
        let (status, text) = s.post("/api/put?details", &json!([element]).to_string())?;
        assert_eq!(status, 400);
        assert_eq!(
            json(&text)?,
            json!({"errors": [{"datapoint": element, "error": "Unable to parse value to a number"}], "failed": 1, "success": 0})
        );
        // Also after the seed's write example made sys.cpu.nice numeric.
        s.post("/api/put", &seed_write_body().to_string())?;
    }
    Ok(())
}

#[test]
fn w03_w04_summary_and_details_flags() -> Result<()> {
    let s = TestServer::spawn()?;
    let body = json!([point(
        "sys.cpu.nice",
        1346846400,
        json!(9),
        &[("host", "web02"), ("dc", "lga")]
    )])
    .to_string();
    for q in ["summary", "summary=false", "summary=true"] {
        let (status, text) = s.post(&format!("/api/put?{q}"), &body)?;
        assert_eq!(
            (status, json(&text)?),
            (200, json!({"failed": 0, "success": 1})),
            "{q}"
        );
    }
    let (status, text) = s.post("/api/put?summary&details", &body)?;
    assert_eq!(
        (status, json(&text)?),
        (200, json!({"errors": [], "failed": 0, "success": 1}))
    );
    Ok(())
}

#[test]
fn w05_w06_failures_with_and_without_flags() -> Result<()> {
    let s = TestServer::spawn()?;
    let body = json!([point("sys.cpu.nice", 1346846400, json!(9), &[])]).to_string();
    let (status, text) = s.post("/api/put?summary", &body)?;
    assert_eq!(
        (status, json(&text)?),
        (400, json!({"failed": 1, "success": 0}))
    );
    let (status, text) = s.post("/api/put", &body)?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?,
        json!({"error": {"code": 400, "message": "One or more data points had errors",
            "details": "Please see the TSD logs or append \"details\" to the put request"}})
    );
    Ok(())
}

#[test]
fn w07_timestamp_ranges() -> Result<()> {
    let s = TestServer::spawn()?;
    let stamps: Vec<Value> = vec![
        json!(4294767),
        json!(4294768),
        json!(9999999999i64),
        json!(10000000000i64),
        json!(9999999999999i64),
        json!(10000000000000i64),
        json!(0),
        json!(-1),
        json!("1500000000"),
    ];
    let body: Vec<Value> = stamps
        .iter()
        .enumerate()
        .map(
            |(i, ts)| json!({"metric": "ts.edge", "timestamp": ts, "value": i, "tags": {"h": "x"}}),
        )
        .collect();
    // The seed rule, applied here independently of the server.
    let to_ms = |v: i64| match v {
        4_294_768..=9_999_999_999 => Some(v * 1000),
        10_000_000_000..=9_999_999_999_999 => Some(v),
        _ => None,
    };
    let mut expected_errors = Vec::new();
    let mut expected_dps = std::collections::BTreeMap::new();
    for (i, ts) in stamps.iter().enumerate() {
        let raw = ts
            .as_i64()
            .or_else(|| ts.as_str().and_then(|t| t.parse().ok()))
            .unwrap_or(-1);
        match to_ms(raw) {
            Some(ms) => {
                expected_dps.insert(ms, i);
            }
            None => {
                expected_errors.push(json!({"datapoint": body[i], "error": "Invalid timestamp"}))
            }
        }
    }
    let (status, text) = s.post("/api/put?details", &Value::Array(body.clone()).to_string())?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?,
        json!({"errors": expected_errors, "failed": expected_errors.len(), "success": expected_dps.len()})
    );
    let got = s.get_json("/api/query?start=4294768&end=9999999999999&ms&m=none:ts.edge")?;
    let dps: serde_json::Map<String, Value> = expected_dps
        .iter()
        .map(|(t, v)| (t.to_string(), json!(v)))
        .collect();
    assert_eq!(
        got,
        json!([{"metric": "ts.edge", "tags": {"h": "x"}, "aggregateTags": [], "dps": dps}])
    );
    Ok(())
}

#[test]
fn w08_per_point_messages_in_order() -> Result<()> {
    let s = TestServer::spawn()?;
    let base = json!({"metric": "m1", "timestamp": 1500000000, "value": 1, "tags": {"h": "x"}});
    let variant = |k: &str, v: Option<Value>| {
        let mut p = base.clone();
        if let Some(o) = p.as_object_mut() {
            match v {
                Some(v) => o.insert(k.into(), v),
                None => o.remove(k),
            };
        }
        p
    };
    let cases = vec![
        (
            variant("metric", Some(json!(""))),
            "Metric name was empty".to_owned(),
        ),
        (variant("value", None), "Empty value".into()),
        (variant("tags", Some(json!({}))), "Missing tags".into()),
        (
            variant("metric", Some(json!("sys@cpu"))),
            "Invalid metric name (\"sys@cpu\"): illegal character: @".into(),
        ),
        (
            variant("tags", Some(json!({"host": "web$01"}))),
            "Invalid tag value with key [host] (\"web$01\"): illegal character: $".into(),
        ),
        (
            variant("tags", Some(json!({"ho*st": "a"}))),
            "Invalid tag name with value [a] (\"ho*st\"): illegal character: *".into(),
        ),
        (
            variant("timestamp", Some(json!("abc"))),
            "Invalid timestamp".into(),
        ),
        (
            variant("value", Some(json!([1]))),
            "Unable to parse value to a number".into(),
        ),
        (
            variant("tags", Some(json!({"h": null}))),
            "Invalid tag value with key [h]: not a string".into(),
        ),
        (variant("value", Some(json!(""))), "Empty value".into()),
    ];
    let body: Vec<Value> = cases.iter().map(|(p, _)| p.clone()).collect();
    let errors: Vec<Value> = cases
        .iter()
        .map(|(p, e)| json!({"datapoint": p, "error": e}))
        .collect();
    let (status, text) = s.post("/api/put?details", &Value::Array(body).to_string())?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?,
        json!({"errors": errors, "failed": cases.len(), "success": 0})
    );
    Ok(())
}

#[test]
fn w09_tag_key_limit_default_and_configured() -> Result<()> {
    let s = TestServer::spawn()?;
    let tags = |n: usize| -> Value {
        Value::Object((1..=n).map(|i| (format!("t{i:02}"), json!("v"))).collect())
    };
    let p = |n| {
        json!({"metric": "many", "timestamp": 1500000000, "value": 1, "tags": tags(n)}).to_string()
    };
    assert_eq!(s.post("/api/put", &p(16))?.0, 204);
    let (status, text) = s.post("/api/put?details", &p(17))?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?["errors"][0]["error"],
        "Too many tags: 17 maximum allowed: 16"
    );

    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("sundial.toml");
    std::fs::write(&cfg, "[opentsdb]\nmax_tags = 20\n")?;
    let s = TestServer::spawn_with(
        &dir.path().join("d"),
        &["--config", cfg.to_str().unwrap_or_default()],
    )?;
    assert_eq!(s.post("/api/put", &p(20))?.0, 204);
    let (_, text) = s.post("/api/put?details", &p(21))?;
    assert_eq!(
        json(&text)?["errors"][0]["error"],
        "Too many tags: 21 maximum allowed: 20"
    );
    Ok(())
}

#[test]
fn w10_w11_character_set_and_tag_coercion() -> Result<()> {
    let s = TestServer::spawn()?;
    let metric = "温度.传感器(1):[a]=b‘c#d-e_f/g,h'i";
    let body =
        json!({"metric": metric, "timestamp": 1500000000, "value": 1, "tags": {"区域": "华东-1"}});
    assert_eq!(s.post("/api/put", &body.to_string())?.0, 204);
    let enc: String = metric.bytes().map(|b| format!("%{b:02X}")).collect();
    let got = s.get_json(&format!(
        "/api/query?start=1500000000&end=1500000000&m=none:{enc}"
    ))?;
    assert_eq!(got[0]["tags"], json!({"区域": "华东-1"}));
    for (m, tagv, err) in [
        (
            "tempü",
            "x",
            "Invalid metric name (\"tempü\"): illegal character: ü",
        ),
        (
            "a，b",
            "x",
            "Invalid metric name (\"a，b\"): illegal character: ，",
        ),
        (
            "ok",
            "web 01",
            "Invalid tag value with key [h] (\"web 01\"): illegal character:  ",
        ),
    ] {
        let p = json!({"metric": m, "timestamp": 1500000000, "value": 1, "tags": {"h": tagv}});
        let (_, text) = s.post("/api/put?details", &p.to_string())?;
        assert_eq!(json(&text)?["errors"][0]["error"], err);
    }
    let p = json!({"metric": "rack.temp", "timestamp": 1500000000, "value": 21.5, "tags": {"rack": 7, "on": true, "ratio": 0.5}});
    assert_eq!(s.post("/api/put", &p.to_string())?.0, 204);
    let got = s.get_json("/api/query?start=1500000000&end=1500000000&m=none:rack.temp")?;
    assert_eq!(
        got[0]["tags"],
        json!({"on": "true", "rack": "7", "ratio": "0.5"})
    );
    assert_eq!(got[0]["dps"]["1500000000"], json!(21.5));
    Ok(())
}

#[test]
fn w12_kinds_and_quoted_numbers() -> Result<()> {
    let s = TestServer::spawn()?;
    let h = &[("h", "x")];
    let body = json!([
        point("k.str", 1500000000, json!("on"), h),
        point("k.str", 1500000001, json!(42), h),
        point("k.str", 1500000002, json!("42"), h),
        point("k.num", 1500000000, json!("42"), h),
        point("k.num", 1500000001, json!("abc"), h),
        point("k.num", 1500000002, json!(true), h),
        point("k.num", 1500000003, json!("1.5e3"), h),
        point("k.num", 1500000004, json!("Infinity"), h),
    ]);
    let (status, text) = s.post("/api/put?details", &body.to_string())?;
    assert_eq!(status, 400);
    let e = |i: usize, msg: &str| json!({"datapoint": body[i], "error": msg});
    assert_eq!(
        json(&text)?,
        json!({"errors": [
            e(1, "Cannot write a numeric value to metric k.str: it stores string values"),
            e(4, "Unable to parse value to a number"),
            e(7, "Unable to parse value to a number"),
        ], "failed": 3, "success": 5})
    );
    let q = |m: &str| s.get_json(&format!("/api/query?start=1500000000&end=1500000004&m={m}"));
    assert_eq!(
        q("none:k.num")?[0]["dps"],
        json!({"1500000000": 42, "1500000002": true, "1500000003": 1500.0})
    );
    assert_eq!(
        q("none:k.str")?[0]["dps"],
        json!({"1500000000": "on", "1500000002": "42"})
    );
    assert_eq!(
        q("sum:k.num")?[0]["dps"],
        json!({"1500000000": 42, "1500000002": 1, "1500000003": 1500.0})
    );
    let (status, text) = s.get("/api/query?start=1500000000&end=1500000004&m=sum:k.str")?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?["error"]["message"],
        "Aggregator sum cannot be applied to string values of metric k.str"
    );
    Ok(())
}
