//! Data into BlueKing groups (spec bkmonitor 9, vectors E1–E19): the
//! `/v2/push/` report, `/api/put` and `/v1/datapoint` bound by data id or
//! physical name, discovery, and the data read back through `/v1`.

use crate::bk::{metric_names, ok, table_id, tag_names};
use crate::harness::{TestServer, json};
use anyhow::Result;
use serde_json::{Value, json};

const METRICS: &str = "metadata_get_time_series_metrics";

fn push(s: &TestServer, body: &Value) -> Result<(u16, Value)> {
    let (status, text) = s.post("/v2/push/", &body.to_string())?;
    Ok((status, json(&text)?))
}

fn collector(status: u16, message: &str) -> Value {
    json!({"code": status.to_string(), "result": (status == 200).to_string(), "message": message})
}

fn group2_metrics(s: &TestServer) -> Result<Value> {
    Ok(ok(s, METRICS, json!({"table_id": table_id(2, 125)}))?["metric_info_list"].clone())
}

/// Telnet puts pass the same write hook as `/api/put`: a physical name
/// binds to its group and is discovered, a name the group refuses is
/// answered (telnet_return_errors is on by default) and not stored.
pub(crate) fn telnet_binds_like_put(s: &TestServer) -> Result<()> {
    let prefix = "2_bkmonitor_time_series_125";
    let before = metric_names(&group2_metrics(s)?).len();
    let mut t = s.telnet()?;
    t.send(&format!("put {prefix}.via_telnet 1700000100 7 rack=r1\n"))?;
    t.send(&format!(
        "put {prefix}.bad-name 1700000100 7 rack=r1\nversion\n"
    ))?;
    let answer = t.read_available()?;
    assert!(
        answer.starts_with(
            "put: illegal argument: name 'bad-name' required match regex [^[a-zA-Z_][a-zA-Z0-9_]*$]\n"
        ),
        "{answer}"
    );
    let list = group2_metrics(s)?;
    let names = metric_names(&list);
    assert_eq!(names.len(), before + 1, "{names:?}");
    assert!(names.iter().any(|n| n == "via_telnet"), "{names:?}");
    let tags = tag_names(&list, "via_telnet");
    assert!(tags.iter().any(|t| t == "rack"), "{tags:?}");
    Ok(())
}

/// E1–E19 on the server of the A–D vectors; group 2 is data id 125.
pub(crate) fn e_vectors(s: &TestServer, token2: &str) -> Result<()> {
    let (prefix, ts) = ("2_bkmonitor_time_series_125", 1_700_000_000_000i64);
    let item = json!({"metrics": {"mem_used": 2048.5, "cpu_load": 10}, "target": "127.0.0.1",
        "dimension": {"module": "db", "location": "guangdong"}, "timestamp": ts});
    let report = |changes: Value| {
        let mut body = json!({"data_id": 125, "access_token": token2, "data": [item.clone()]});
        if let (Value::Object(b), Value::Object(c)) = (&mut body, changes) {
            b.extend(c);
        }
        body
    };
    let with_item = |changes: Value| {
        let mut it = item.clone();
        if let (Value::Object(i), Value::Object(c)) = (&mut it, changes) {
            i.extend(c);
        }
        report(json!({"data": [it]}))
    };
    assert_eq!(push(s, &report(json!({})))?, (200, collector(200, "")));
    // E2: discovered metrics after the declared ones, new names ascending.
    let list = group2_metrics(s)?;
    assert_eq!(
        metric_names(&list),
        ["disk_usage", "io_wait", "cpu_load", "mem_used"]
    );
    assert_eq!(
        tag_names(&list, "cpu_load"),
        ["location", "module", "target"]
    );
    let cpu = list
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["field_name"] == json!("cpu_load"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(cpu["table_id"], json!(format!("{prefix}.cpu_load")));
    // E3: readable by physical name through /v1.
    let query = |metric: &str, start: i64, end: i64| -> Result<Value> {
        let body =
            json!({"queries": [{"metric": metric, "filters": {"start": start, "end": end}}]});
        let (status, text) = s.request("PUT", "/v1/datapoint?query", Some(&body.to_string()))?;
        anyhow::ensure!(status == 200, "{text}");
        json(&text)
    };
    let got = query(&format!("{prefix}.cpu_load"), ts, ts)?;
    let values = &got["results"][0]["groups"][0]["values"];
    assert_eq!(values.as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(
        (values[0][0].as_i64(), values[0][1].as_f64()),
        (Some(ts), Some(10.0))
    );
    // E4–E8, E10.
    let bad = |body: Value, status: u16, message: &str| -> Result<()> {
        assert_eq!(
            push(s, &body)?,
            (status, collector(status, message)),
            "{body}"
        );
        Ok(())
    };
    bad(
        report(json!({"access_token": "deadbeef"})),
        401,
        "invalid access_token for data_id 125",
    )?;
    bad(
        report(json!({"data_id": 999})),
        401,
        "no active time series group for data_id 999",
    )?;
    bad(
        with_item(json!({"metrics": {"cpu-load": 1}})),
        400,
        "name 'cpu-load' required match regex [^[a-zA-Z_][a-zA-Z0-9_]*$]",
    )?;
    assert_eq!(metric_names(&group2_metrics(s)?).len(), 4, "nothing stored");
    bad(
        with_item(json!({"metrics": {"cpu_load": "10"}})),
        400,
        "value expected float64 type, got string",
    )?;
    bad(
        report(json!({"data": []})),
        400,
        "timeseries data cannot be empty",
    )?;
    let (status, text) = s.request("POST", "/v2/push/", None)?;
    assert_eq!(status, 400);
    assert!(
        json(&text)?["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("empty request body not allowed, ip=")
    );
    // E9: dimension values coerced to text.
    assert_eq!(
        push(s, &with_item(json!({"dimension": {"shard": 3}})))?.0,
        200
    );
    let list = group2_metrics(s)?;
    assert_eq!(
        tag_names(&list, "cpu_load"),
        ["location", "module", "shard", "target"]
    );
    assert_eq!(
        tag_names(&list, "mem_used"),
        ["location", "module", "shard", "target"]
    );
    let body = json!({"queries": [{"metric": format!("{prefix}.mem_used"), "filters": {"start": ts, "end": ts,
        "tags": {"shard": ["3"], "target": ["127.0.0.1"]}}}]});
    let (_, text) = s.request("PUT", "/v1/datapoint?query", Some(&body.to_string()))?;
    assert_eq!(
        json(&text)?["results"][0]["groups"][0]["values"],
        json!([[ts, 2048.5]])
    );
    bad(
        with_item(json!({"dimension": {"shard": [3]}})),
        400,
        "dimension 'shard' value expected string type, got []interface {}",
    )?;
    // E11–E13: /api/put bound by parameter.
    let put = |path: &str, body: Value| s.post(path, &body.to_string());
    let (status, text) = put(
        "/api/put?bk_data_id=125",
        json!([{"metric": "cpu_load", "timestamp": 1_700_000_060, "value": 12, "tags": {"host": "web01"}}]),
    )?;
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        tag_names(&group2_metrics(s)?, "cpu_load"),
        ["location", "module", "shard", "host", "target"]
    );
    let points = json!([{"metric": "sys.cpu", "timestamp": 1_700_000_060, "value": 1, "tags": {"host": "web01"}},
        {"metric": "disk_usage", "timestamp": 1_700_000_060, "value": "High", "tags": {"host": "web01"}}]);
    let (status, text) = put("/api/put?bk_data_id=125&details", points.clone())?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?,
        json!({"errors": [
            {"datapoint": points[0], "error": "name 'sys.cpu' required match regex [^[a-zA-Z_][a-zA-Z0-9_]*$]"},
            {"datapoint": points[1], "error": "Unable to parse value to a number"}], "failed": 2, "success": 0})
    );
    let one = json!([{"metric": "cpu_load", "timestamp": 1_700_000_060, "value": 1, "tags": {"host": "web01"}}]);
    let (status, text) = put("/api/put?bk_data_id=999&summary", one.clone())?;
    assert_eq!(
        (status, json(&text)?),
        (400, json!({"failed": 1, "success": 0}))
    );
    let (status, text) = put("/api/put?bk_data_id=abc", one.clone())?;
    assert_eq!(
        (status, json(&text)?["error"]["message"].clone()),
        (400, json!("invalid bk_data_id 'abc'"))
    );
    // /api/mput passes the same hook: an element binds with its fields,
    // and a field the group does not allow fails that element alone.
    let (status, text) = put(
        "/api/mput?bk_data_id=125&details",
        json!([{"metric": "mput_load", "timestamp": 1_700_000_060, "fields": {"value": 3}, "tags": {"host": "web03"}},
            {"metric": "mput_temp", "timestamp": 1_700_000_060, "fields": {"temp": 4}, "tags": {"host": "web03"}}]),
    )?;
    assert_eq!(status, 400, "{text}");
    let reply = json(&text)?;
    assert_eq!(
        (reply["success"].clone(), reply["failed"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        reply["errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("'temp' is not allowed")),
        "{reply}"
    );
    let list = group2_metrics(s)?;
    assert_eq!(tag_names(&list, "mput_load"), ["host", "target"]);
    assert!(!metric_names(&list).iter().any(|m| m == "mput_temp"));
    // E14: routing by physical name.
    let (status, _) = put(
        "/api/put",
        json!([{"metric": format!("{prefix}.net_in"), "timestamp": 1_700_000_120, "value": 7, "tags": {"host": "web02"}}]),
    )?;
    assert_eq!(status, 204);
    let list = group2_metrics(s)?;
    assert_eq!(
        metric_names(&list).last().map(String::as_str),
        Some("net_in")
    );
    assert_eq!(tag_names(&list, "net_in"), ["host", "target"]);
    // E15: /v1 bound write.
    let v1 = |field: Option<&str>| {
        let mut dp = json!({"metric": "cpu_load", "tags": {"host": "a"}, "timestamp": 1_700_000_180_000i64, "value": 1});
        if let Some(f) = field {
            dp["field"] = json!(f);
        }
        json!({"datapoints": [dp]})
    };
    let (status, text) = s.post(
        "/v1/datapoint?bk_data_id=125",
        &v1(Some("temp")).to_string(),
    )?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?["message"],
        json!(
            "field 'temp' is not allowed in a time series group; only the default field 'value' is accepted"
        )
    );
    let (status, text) = s.post("/v1/datapoint?bk_data_id=125", &v1(None).to_string())?;
    assert_eq!(status, 204, "{text}");
    // E16: /v1 metric listing holds metrics with data only.
    let listed = s.get_json("/v1/metric")?;
    let names: Vec<&str> = listed["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for m in ["cpu_load", "mem_used", "net_in"] {
        assert!(
            names.contains(&format!("{prefix}.{m}").as_str()),
            "{m} in {names:?}"
        );
    }
    for m in ["disk_usage", "io_wait"] {
        assert!(
            !names.contains(&format!("{prefix}.{m}").as_str()),
            "{m} in {names:?}"
        );
    }
    // E17: group 1 (data id 123) was disabled in C4.
    let g1 = ok(
        s,
        "metadata_get_time_series_group",
        json!({"time_series_group_id": 1}),
    )?;
    let token1 = g1[0]["token"].as_str().unwrap_or_default();
    bad(
        json!({"data_id": 123, "access_token": token1, "data": [item.clone()]}),
        403,
        "time series group 1 is disabled",
    )?;
    let (status, text) = put("/api/put?bk_data_id=123&summary", one)?;
    assert_eq!(
        (status, json(&text)?),
        (400, json!({"failed": 1, "success": 0}))
    );
    // E18, E19.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let (status, got) = push(s, &with_item(json!({"timestamp": now_ms + 2 * 3_600_000})))?;
    assert_eq!(status, 400);
    assert!(
        got["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("reject future timestamp, dataTs=")
    );
    assert_eq!(
        push(s, &with_item(json!({"timestamp": 1_700_000_300})))?.0,
        200
    );
    let got = query(
        &format!("{prefix}.cpu_load"),
        1_700_000_300_000,
        1_700_000_300_000,
    )?;
    assert_eq!(
        got["results"][0]["groups"][0]["values"][0][0],
        json!(1_700_000_300_000i64)
    );
    Ok(())
}

/// Issue 14: a report proves its token before it waits for a write slot,
/// so bodies of strangers never hold the slots the groups' writers need,
/// and a stranger is told 401, not busy, while every slot is taken.
#[test]
fn a_report_is_authenticated_before_it_waits_for_a_slot() -> Result<()> {
    use std::io::Write;
    let s = TestServer::spawn_with_config(
        "[limits]\nmax_concurrent_writes = 1\nqueue_timeout_ms = 50\n",
    )?;
    let group = ok(
        &s,
        "metadata_create_time_series_group",
        crate::bk::seed_request(),
    )?;
    let token = group["token"].as_str().unwrap_or_default().to_owned();
    let item = json!({"metrics": {"load": 1}, "target": "h", "timestamp": 1_700_000_000_000i64});
    let good = json!({"data_id": 123, "access_token": token, "data": [item]});
    let stranger = json!({"data_id": 123, "access_token": "not-the-token", "data": [item]});
    // A put whose body never finishes holds the only slot.
    let mut held = std::net::TcpStream::connect(
        s.url("")
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    )?;
    held.write_all(b"POST /api/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n[")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = push(&s, &good)?;
        if status == 503 {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the held put never took the slot"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (status, reply) = push(&s, &stranger)?;
    assert_eq!(status, 401, "{reply}");
    // A body that is no object is refused as before, without a slot.
    let (status, reply) = push(&s, &json!([0, 0, 0]))?;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        reply["message"],
        json!("request body expected map[string]interface {}, got []interface {}")
    );
    drop(held);
    loop {
        let (status, reply) = push(&s, &good)?;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{reply}");
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}
