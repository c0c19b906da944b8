//! Baidu `/v1` writes and metadata: spec 16.1 (TV-W1 … TV-W14).

use crate::baidu::{
    Check, D1, T, d1_series, datapoints, get, is_uuid_v4, long_rows, put_query, q, select, write,
    write_ok,
};
use crate::harness::TestServer;
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

/// The tag listing computed from D1 for series with a point in `[start, end]`.
fn d1_tags(start: i64, end: i64) -> Value {
    let mut tags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in d1_series() {
        if s.points.iter().any(|(t, _)| (start..=end).contains(t)) {
            for (k, v) in &s.tags {
                tags.entry(k.clone()).or_default().insert(v.clone());
            }
        }
    }
    json!({ "tags": tags })
}

/// TV-W1 … TV-W7.
#[test]
fn d1_write_and_metadata() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();

    // TV-W1
    let r = write(&s, D1)?;
    c.eq("TV-W1 status", r.status, 204);
    c.eq("TV-W1 body", r.body.as_str(), "");
    c.that(
        "TV-W1 x-bce-request-id is a lowercase uuid v4",
        r.request_id.as_deref().is_some_and(is_uuid_v4),
        &r.request_id,
    );

    // TV-W2
    let r = get(&s, "/v1/metric")?;
    c.body("TV-W2", &r, &json!({"metrics": ["cpu_idle"]}));
    c.eq(
        "TV-W2 content type",
        r.content_type.as_deref(),
        Some("application/json; charset=utf-8"),
    );
    c.that(
        "TV-W2 request id",
        r.request_id.as_deref().is_some_and(is_uuid_v4),
        &r.request_id,
    );

    // TV-W3
    let r = get(&s, "/v1/metric/cpu_idle/field")?;
    c.body(
        "TV-W3",
        &r,
        &json!({"fields": {"value": {"type": "Number"}}}),
    );

    // TV-W4: computed from D1, and the spec's literal.
    let all = d1_tags(0, i64::MAX);
    c.eq(
        "TV-W4 reference",
        &all,
        &json!({"tags": {"host": ["a", "b", "c"], "rack": ["r1", "r2"]}}),
    );
    c.body("TV-W4", &get(&s, "/v1/metric/cpu_idle/tag")?, &all);

    // TV-W5: ms and seconds bounds.
    let ranged = d1_tags(1_500_000_300_000, 1_500_000_400_000);
    c.eq(
        "TV-W5 reference",
        &ranged,
        &json!({"tags": {"host": ["a", "b"], "rack": ["r1"]}}),
    );
    let r = get(
        &s,
        "/v1/metric/cpu_idle/tag?start=1500000300000&end=1500000400000",
    )?;
    c.body("TV-W5 ms", &r, &ranged);
    let r = get(
        &s,
        "/v1/metric/cpu_idle/tag?start=1500000300&end=1500000400",
    )?;
    c.body("TV-W5 seconds", &r, &ranged);

    // TV-W6
    let r = get(&s, "/v1/metric/nope/field")?;
    c.error("TV-W6", &r, 404, "ResourceNotFound");

    // TV-W7: seconds timestamp, default field, overwrite of host a's first point.
    let r = write(
        &s,
        r#"{"datapoints":[{"metric":"cpu_idle","tags":{"host":"a","rack":"r1"},"timestamp":1500000000,"value":5}]}"#,
    )?;
    c.eq("TV-W7 write", r.status, 204);
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle",
            "filters": {"start": 1_500_000_000_000i64, "end": 1_500_000_000_000i64, "tags": {"host": ["a"]}}})),
    )?;
    let body = c.json("TV-W7 query", &r, 200);
    let res = &body["results"][0];
    c.eq(
        "TV-W7 values",
        &res["groups"][0]["values"],
        &json!([[1_500_000_000_000i64, 5]]),
    );
    c.eq("TV-W7 field", &res["field"], &json!("value"));
    c.eq("TV-W7 rawCount", &res["rawCount"], &json!(1));
    c.eq("TV-W7 truncated", &res["truncated"], &json!(false));
    c.done_with_errors()
}

/// TV-W8 … TV-W11: Double stays Double, kind clash, Long and Double in
/// one field, Bytes.
#[test]
fn value_kinds() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();

    // TV-W8
    let r = write(
        &s,
        &datapoints(&[
            json!({"metric": "m_d", "tags": {"k": "v"}, "timestamp": T, "value": 51, "type": "Double"}),
        ])
        .to_string(),
    )?;
    c.eq("TV-W8 write", r.status, 204);
    let r = put_query(&s, &q(json!({"metric": "m_d", "filters": {"start": T}})))?;
    let values = c.values("TV-W8", &r);
    c.eq("TV-W8 values", &values, &json!([[T, 51.0]]));
    c.that("TV-W8 51 is a JSON double", values[0][1].is_f64(), &r.body);
    c.that(
        "TV-W8 body text has 51.0",
        r.body.contains("51.0") && !r.body.contains(",51]"),
        &r.body,
    );

    // TV-W9
    let states = [(T, "on"), (T + 1000, "off"), (T + 2000, "on")];
    let vals: Vec<Value> = states.iter().map(|(t, v)| json!([t, v])).collect();
    let r = write(
        &s,
        &datapoints(&[
            json!({"metric": "status", "field": "state", "tags": {"dev": "d1"}, "values": vals}),
        ])
        .to_string(),
    )?;
    c.eq("TV-W9 write strings", r.status, 204);
    let r = write(
        &s,
        &datapoints(&[
            json!({"metric": "status", "field": "state", "tags": {"dev": "d1"}, "timestamp": T + 3000, "value": 1}),
        ])
        .to_string(),
    )?;
    c.error("TV-W9 number into String field", &r, 400, "InvalidArgument");
    c.body(
        "TV-W9 fields",
        &get(&s, "/v1/metric/status/field")?,
        &json!({"fields": {"state": {"type": "String"}}}),
    );
    let r = put_query(
        &s,
        &q(json!({"metric": "status", "field": "state", "filters": {"start": T}})),
    )?;
    c.values_eq("TV-W9 three rows", &r, &Value::Array(vals.clone()));

    // TV-W10
    write_ok(
        &s,
        &datapoints(&[json!({"metric": "mix", "tags": {"k": "v"}, "values": [[T, 1]]})]),
    )?;
    let r = write(
        &s,
        &datapoints(&[json!({"metric": "mix", "tags": {"k": "v"}, "values": [[T + 1, 2.5]]})])
            .to_string(),
    )?;
    c.eq("TV-W10 Double into Long field", r.status, 204);
    let r = put_query(&s, &q(json!({"metric": "mix", "filters": {"start": T}})))?;
    c.values_eq("TV-W10", &r, &json!([[T, 1], [T + 1, 2.5]]));

    // TV-W11: the bytes 01 02 00 03, base64 with padding.
    let r = write(
        &s,
        &datapoints(&[
            json!({"metric": "blob", "field": "raw", "type": "Bytes", "tags": {"k": "v"}, "timestamp": T, "value": "AQIAAw=="}),
        ])
        .to_string(),
    )?;
    c.eq("TV-W11 write", r.status, 204);
    c.body(
        "TV-W11 fields",
        &get(&s, "/v1/metric/blob/field")?,
        &json!({"fields": {"raw": {"type": "Bytes"}}}),
    );
    let r = put_query(
        &s,
        &q(json!({"metric": "blob", "field": "raw", "filters": {"start": T}})),
    )?;
    c.values_eq("TV-W11 query", &r, &json!([[T, "AQIAAw=="]]));
    let r = write(
        &s,
        &datapoints(&[
            json!({"metric": "blob", "field": "raw", "type": "Bytes", "tags": {"k": "v"}, "timestamp": T + 1, "value": "%%%"}),
        ])
        .to_string(),
    )?;
    c.error("TV-W11 bad base64", &r, 400, "InvalidArgument");
    c.done_with_errors()
}

/// TV-W12: gzip bodies, and bytes that are not gzip.
#[test]
fn gzip_write() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(D1.as_bytes())?;
    let body = gz.finish()?;
    let headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Encoding", "gzip"),
    ];
    let r = s.send("POST", "/v1/datapoint", &headers, Some(&body))?;
    c.eq("TV-W12 gzip write", r.status, 204);

    // Every D1 point reads back.
    let series = d1_series();
    let rows = select(&series, |_, _, _| true);
    let want: Vec<Value> = rows
        .iter()
        .map(|(t, v, s)| json!([t, v, s.tag("host")]))
        .collect();
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle", "tags": ["host"], "filters": {"start": T}})),
    )?;
    c.values_eq("TV-W12 read back", &r, &Value::Array(want));

    let r = s.send("POST", "/v1/datapoint", &headers, Some(b"not gzip"))?;
    c.error("TV-W12 not gzip", &r, 400, "InvalidHTTPRequest");
    c.done_with_errors()
}

/// TV-W14 (each invalid write alone, nothing written), then TV-W13 on the
/// same, still empty, database.
#[test]
fn invalid_writes_then_js_style_write() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    let one = |dp: Value| datapoints(&[dp]).to_string();
    let many: Vec<Value> = (0..10_001i64).map(|i| json!([T + i, i])).collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("{}", "{}".into(), "ParameterMissing"),
        (
            "empty list",
            r#"{"datapoints":[]}"#.into(),
            "InvalidArgument",
        ),
        (
            "value and values",
            one(json!({"metric":"m","tags":{"k":"v"},"timestamp":T,"value":1,"values":[[T,1]]})),
            "InvalidArgument",
        ),
        (
            "neither value nor values",
            one(json!({"metric":"m","tags":{"k":"v"},"timestamp":T})),
            "InvalidArgument",
        ),
        (
            "boolean value",
            one(json!({"metric":"m","tags":{"k":"v"},"timestamp":T,"value":true})),
            "InvalidArgument",
        ),
        (
            "empty tags",
            one(json!({"metric":"m","tags":{},"timestamp":T,"value":1})),
            "InvalidArgument",
        ),
        (
            "no tags",
            one(json!({"metric":"m","timestamp":T,"value":1})),
            "ParameterMissing",
        ),
        (
            "metric 9bad",
            one(json!({"metric":"9bad","tags":{"k":"v"},"value":1})),
            "InvalidArgument",
        ),
        (
            "Long with 1.5",
            one(json!({"metric":"m","tags":{"k":"v"},"type":"Long","timestamp":T,"value":1.5})),
            "InvalidArgument",
        ),
        (
            "values triple",
            one(json!({"metric":"m","tags":{"k":"v"},"values":[[T,1,2]]})),
            "InvalidArgument",
        ),
        (
            "10 001 points",
            one(json!({"metric":"m","tags":{"k":"v"},"values":many})),
            "InvalidArgument",
        ),
        (
            "truncated JSON",
            r#"{"datapoints":["#.into(),
            "MalformedJSON",
        ),
    ];
    for (what, body, code) in &cases {
        let r = write(&s, body)?;
        c.error(&format!("TV-W14 {what}"), &r, 400, code);
    }
    c.body(
        "TV-W14 database still empty",
        &get(&s, "/v1/metric")?,
        &json!({"metrics": []}),
    );

    // TV-W13
    let r = s.send(
        "POST",
        "/v1/datapoint?query=",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(D1.as_bytes()),
    )?;
    c.eq("TV-W13 status", r.status, 204);
    c.body(
        "TV-W13 metrics",
        &get(&s, "/v1/metric")?,
        &json!({"metrics": ["cpu_idle"]}),
    );
    let series = d1_series();
    let want: Vec<(i64, i64)> = select(&series, |s, _, _| s.tag("host") == "a")
        .iter()
        .map(|(t, v, _)| (*t, *v))
        .collect();
    let r = put_query(
        &s,
        &q(json!({"metric": "cpu_idle", "filters": {"start": T, "tags": {"host": ["a"]}}})),
    )?;
    c.values_eq("TV-W13 data", &r, &long_rows(&want));
    c.done_with_errors()
}

/// Spec 8.3 after a flush: a block chunk that spans the asked range without
/// a point inside it must not put its series' tags in the listing.
#[test]
fn tag_listing_in_a_range_after_a_flush() -> Result<()> {
    let s = TestServer::spawn()?;
    assert_eq!(write(&s, D1)?.status, 204);
    assert_eq!(s.post("/admin/compact", "")?.0, 200);
    for (start, end) in [
        (1_500_000_100_000i64, 1_500_000_200_000i64),
        (1_500_000_300_000, 1_500_000_400_000),
        (1_500_000_000_001, 1_500_000_059_999),
    ] {
        let r = get(
            &s,
            &format!("/v1/metric/cpu_idle/tag?start={start}&end={end}"),
        )?;
        assert_eq!(r.status, 200, "{}", r.body);
        let body: Value = serde_json::from_str(&r.body)?;
        assert_eq!(body, d1_tags(start, end), "{start}..{end}");
    }
    Ok(())
}
