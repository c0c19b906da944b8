//! Baidu `/v1` validation and HTTP-level errors: spec 16.5.

use crate::baidu::{Check, D1, T, put_query, q, write};
use crate::harness::TestServer;
use anyhow::Result;
use serde_json::{Value, json};

/// The JSON rows of the 16.5 table.
#[test]
fn query_validation_errors() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    c.eq("write D1", write(&s, D1)?.status, 204);
    let base = || json!({"metric": "cpu_idle", "filters": {"start": T}});
    let with = |extra: Value| {
        let mut query = base();
        for (k, v) in extra.as_object().into_iter().flatten() {
            query[k] = v.clone();
        }
        q(query)
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("{}", json!({}), "ParameterMissing"),
        (
            "no metric",
            q(json!({"filters": {"start": T}})),
            "ParameterMissing",
        ),
        (
            "no filters",
            q(json!({"metric": "cpu_idle"})),
            "ParameterMissing",
        ),
        (
            "filters without start",
            q(json!({"metric": "cpu_idle", "filters": {}})),
            "ParameterMissing",
        ),
        (
            "field and fields",
            with(json!({"field": "value", "fields": ["value"]})),
            "InvalidArgument",
        ),
        (
            "5 dayz ago",
            q(json!({"metric": "cpu_idle", "filters": {"start": "5 dayz ago"}})),
            "InvalidArgument",
        ),
        (
            "5 dc ago",
            q(json!({"metric": "cpu_idle", "filters": {"start": "5 dc ago"}})),
            "InvalidArgument",
        ),
        (
            "end before start",
            q(json!({"metric": "cpu_idle", "filters": {"start": T, "end": T - 1}})),
            "InvalidArgument",
        ),
        (
            "start beside or",
            q(json!({"metric": "cpu_idle", "filters": {"start": T, "or": [{"start": T}]}})),
            "InvalidArgument",
        ),
        (
            "or branch without start",
            q(json!({"metric": "cpu_idle", "filters": {"or": [{"end": T}]}})),
            "ParameterMissing",
        ),
        (
            "value == 5",
            q(json!({"metric": "cpu_idle", "filters": {"start": T, "value": "== 5"}})),
            "InvalidArgument",
        ),
        (
            "in and notIn",
            q(json!({"metric": "cpu_idle", "filters": {"start": T,
                "tags": [{"tag": "host", "in": ["a"], "notIn": ["b"]}]}})),
            "InvalidArgument",
        ),
        (
            "groupBy Time",
            with(json!({"groupBy": [{"name": "Time"}]})),
            "InvalidArgument",
        ),
        ("limit 0", with(json!({"limit": 0})), "InvalidArgument"),
        ("order Up", with(json!({"order": "Up"})), "InvalidArgument"),
        (
            "marker @@@",
            with(json!({"marker": "@@@"})),
            "InvalidArgument",
        ),
        (
            "nine queries",
            json!({"queries": vec![base(); 9]}),
            "InvalidArgument",
        ),
    ];
    for (what, body, code) in cases {
        let r = put_query(&s, &body)?;
        c.error(&format!("16.5 {what}"), &r, 400, code);
    }
    // Eight queries are fine.
    let r = put_query(&s, &json!({"queries": vec![base(); 8]}))?;
    let body = c.json("16.5 eight queries", &r, 200);
    c.eq(
        "16.5 eight results",
        body["results"].as_array().map(Vec::len),
        Some(8),
    );
    c.done_with_errors()
}

/// The HTTP rows of the 16.5 table.
#[test]
fn http_level_errors() -> Result<()> {
    // The spec addresses databases by `{db}.tsdb.` host names.
    let s = TestServer::spawn_with_config("[http]\nallowed_hosts = [\".baidubce.com\"]\n")?;
    let mut c = Check::new();
    let json_type = ("Content-Type", "application/json; charset=utf-8");
    let query = q(json!({"metric": "cpu_idle", "filters": {"start": T}})).to_string();

    let r = s.send("PUT", "/v1/datapoint", &[json_type], Some(query.as_bytes()))?;
    c.error(
        "16.5 PUT without query parameter",
        &r,
        400,
        "ParameterMissing",
    );
    let r = s.send("DELETE", "/v1/metric", &[], None)?;
    c.error("16.5 DELETE /v1/metric", &r, 405, "MethodNotSupported");
    let r = s.send("GET", "/v1/nothing", &[], None)?;
    c.error("16.5 GET /v1/nothing", &r, 404, "ResourceNotFound");
    let r = s.send(
        "GET",
        "/v1/metric",
        &[("Host", "nodb.tsdb.iot.gz.baidubce.com")],
        None,
    )?;
    c.error("16.5 unknown database by Host", &r, 404, "ResourceNotFound");
    let r = s.send("GET", "/v1/metric", &[("Accept", "text/html")], None)?;
    c.error("16.5 Accept text/html", &r, 406, "NotAcceptable");
    let r = s.send(
        "POST",
        "/v1/datapoint",
        &[("Content-Type", "text/plain")],
        Some(D1.as_bytes()),
    )?;
    c.error("16.5 text/plain write", &r, 415, "ContentTypeNotSupported");

    // The same requests done right succeed (the errors above are not noise).
    let r = s.send(
        "PUT",
        "/v1/datapoint?query",
        &[json_type],
        Some(query.as_bytes()),
    )?;
    c.eq("PUT with ?query", r.status, 200);
    let r = s.send("GET", "/v1/metric", &[("Accept", "application/json")], None)?;
    c.eq("GET /v1/metric with JSON Accept", r.status, 200);
    c.done_with_errors()
}
