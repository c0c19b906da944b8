//! Helpers of the BlueKing metadata tests: the ESB prefix, the seed's
//! placeholder credentials, envelope checks.

use crate::harness::{TestServer, json};
use anyhow::Result;
use serde_json::{Map, Value, json};

pub(crate) const BASE: &str = "/api/c/compapi/v2/monitor_v3";

/// The spec's `AUTH` members merged into `body`.
pub(crate) fn with_auth(body: Value) -> Value {
    let mut out: Map<String, Value> = match json!({"bk_app_code": "xxx",
        "bk_app_secret": "xxxxx", "bk_username": "admin"})
    {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    if let Value::Object(b) = body {
        out.extend(b);
    }
    Value::Object(out)
}

/// `POST BASE/<api>/` with `body` as is; (HTTP status, envelope).
pub(crate) fn call(s: &TestServer, api: &str, body: &Value) -> Result<(u16, Value)> {
    let (status, text) = s.post(&format!("{BASE}/{api}/"), &body.to_string())?;
    Ok((status, json(&text)?))
}

/// A call with AUTH that must succeed; returns `data`.
pub(crate) fn ok(s: &TestServer, api: &str, body: Value) -> Result<Value> {
    let (status, env) = call(s, api, &with_auth(body))?;
    anyhow::ensure!(status == 200, "{api}: HTTP {status}: {env}");
    anyhow::ensure!(
        env["result"] == json!(true) && env["code"] == json!(200) && env["message"] == json!("OK"),
        "{api}: {env}"
    );
    check_request_id(&env)?;
    Ok(env["data"].clone())
}

/// A call with AUTH that must fail with `code`; returns the message.
pub(crate) fn fails(s: &TestServer, api: &str, body: Value, code: i64) -> Result<String> {
    let (status, env) = call(s, api, &with_auth(body))?;
    assert_failure(status, &env, code)
}

pub(crate) fn assert_failure(status: u16, env: &Value, code: i64) -> Result<String> {
    let http = if code == 1306404 { 404 } else { 200 };
    anyhow::ensure!(status == http, "HTTP {status}: {env}");
    anyhow::ensure!(
        env["result"] == json!(false) && env["code"] == json!(code) && env["data"].is_null(),
        "expected code {code}: {env}"
    );
    check_request_id(env)?;
    Ok(env["message"].as_str().unwrap_or_default().to_owned())
}

fn check_request_id(env: &Value) -> Result<()> {
    let id = env["request_id"].as_str().unwrap_or_default();
    anyhow::ensure!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "request_id {id:?}"
    );
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn is_time(v: &Value) -> bool {
    let t = v.as_str().unwrap_or_default().as_bytes();
    t.len() == 19
        && t.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        })
}

/// The seed's request example, verbatim.
pub(crate) fn seed_request() -> Value {
    json!({
        "bk_app_code": "xxx",
        "bk_app_secret": "xxxxx",
        "bk_token": "xxxx",
        "bk_data_id": 123,
        "bk_biz_id": 123,
        "time_series_group_name": "Customized time series group name",
        "label": "application",
        "operator": "system",
        "metric_info_list": [
            {"field_name": "usage for update", "tag_list": ["dimension_name"]},
            {"field_name": "usage for create", "tag_list": ["dimension_name"]}
        ]
    })
}

/// The default `table_id` of spec 6.3.
pub(crate) fn table_id(biz: i64, data_id: i64) -> String {
    if biz == 0 {
        format!("bkmonitor_time_series_{data_id}.__default__")
    } else {
        format!("{biz}_bkmonitor_time_series_{data_id}.__default__")
    }
}

/// Field names of a `metric_info_list`, in order.
pub(crate) fn metric_names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["field_name"].as_str().map(str::to_owned))
        .collect()
}

/// Tag names of one metric of a `metric_info_list`.
pub(crate) fn tag_names(list: &Value, metric: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["field_name"] == json!(metric))
        .flat_map(|m| m["tag_list"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["field_name"].as_str().map(str::to_owned))
        .collect()
}

/// A request with headers; an empty body sends none. (status, body text)
pub(crate) fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let body = (!body.is_empty()).then_some(body.as_bytes());
    let r = s.send(method, path, headers, body)?;
    Ok((r.status, r.body))
}
