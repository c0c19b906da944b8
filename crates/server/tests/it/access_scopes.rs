//! Issue 14, point 1, continued: OpenTSDB addressing databases other than
//! `default`, BlueKing group tokens and writes, and telnet's `auth` line.

use crate::access::*;
use crate::harness::json;
use anyhow::Result;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};

#[test]
fn opentsdb_addresses_other_databases() -> Result<()> {
    let s = server()?;
    let put = r#"[{"metric":"iso.m","timestamp":1500000000,"value":7,"tags":{"host":"a"}}]"#;
    let q = "/api/query?start=1499999000&m=sum:iso.m";
    // `other` may write metricsdb (by parameter or header), not default.
    let (status, _) = tsdb(
        &s,
        Caller::Key("other"),
        "POST",
        "/api/put?database=metricsdb",
        Some(put),
    )?;
    assert_eq!(status, 204);
    let (status, _) = tsdb(&s, Caller::Key("other"), "POST", "/api/put", Some(put))?;
    assert_eq!(status, 403);
    let (status, _) = tsdb(
        &s,
        Caller::Key("writer"),
        "POST",
        "/api/put?database=metricsdb",
        Some(put),
    )?;
    assert_eq!(status, 403);
    // The data stays in its database.
    let (_, body) = tsdb(
        &s,
        Caller::Key("root"),
        "GET",
        &format!("{q}&database=metricsdb"),
        None,
    )?;
    assert_eq!(json(&body)?[0]["dps"]["1500000000"], json!(7));
    let (status, body) = tsdb(&s, Caller::Key("root"), "GET", q, None)?;
    assert_eq!(status, 400, "default has no such metric: {body}");
    let r = s.send(
        "GET",
        q,
        &[
            ("Authorization", &basic("other", "other-secret")),
            ("X-Sundial-Database", "metricsdb"),
        ],
        None,
    )?;
    assert_eq!(json(&r.body)?[0]["dps"]["1500000000"], json!(7));
    // A database that does not exist: 404 to a key that may see it.
    let (status, body) = tsdb(
        &s,
        Caller::Key("root"),
        "GET",
        &format!("{q}&database=nosuch"),
        None,
    )?;
    assert_eq!(status, 404, "{body}");
    let (status, _) = tsdb(
        &s,
        Caller::Key("other"),
        "GET",
        &format!("{q}&database=nosuch"),
        None,
    )?;
    assert_eq!(status, 403);
    // SQL reaches the signing key's databases only.
    let sql = Some("database=metricsdb&sql=select%20%2A%20from%20iso.m");
    assert_eq!(
        baidu(&s, Caller::Key("writer"), "GET", "/v1/row", sql, None)?.0,
        403
    );
    let (status, body) = baidu(&s, Caller::Key("other"), "GET", "/v1/row", sql, None)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)?["rows"].as_array().map(Vec::len), Some(1));
    // Listings show a key its own databases only.
    let (_, body) = baidu(&s, Caller::Key("writer"), "GET", "/v1/database", None, None)?;
    assert_eq!(json(&body)?["databases"], json!([]));
    let (_, body) = baidu(&s, Caller::Key("other"), "GET", "/v1/database", None, None)?;
    assert_eq!(
        json(&body)?["databases"][0]["databaseName"],
        json!("metricsdb")
    );
    Ok(())
}

#[test]
fn blueking_tokens_and_group_writes() -> Result<()> {
    let s = server()?;
    let create = json!({"bk_biz_id": 2, "bk_data_id": 150, "time_series_group_name": "g1",
        "label": "application", "operator": "admin", "metric_info_list": []});
    let body = |who: Caller, mut v: Value| {
        if let Some((id, secret)) = who.secret() {
            v["bk_app_code"] = id.into();
            v["bk_app_secret"] = secret.into();
        }
        v["bk_username"] = "admin".into();
        v.to_string()
    };
    let call = |who: Caller, api: &str, v: Value| -> Result<Value> {
        let (_, text) = s.post(
            &format!("/api/c/compapi/v2/monitor_v3/{api}/"),
            &body(who, v),
        )?;
        json(&text)
    };
    // A reader may not create groups; a writer may.
    assert_eq!(
        call(
            Caller::Key("reader"),
            "metadata_create_time_series_group",
            create.clone()
        )?["code"],
        json!(1306000)
    );
    let created = call(
        Caller::Key("writer"),
        "metadata_create_time_series_group",
        create,
    )?;
    assert_eq!(created["result"], json!(true), "{created}");
    let token = created["data"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(token.len(), 32);
    let id = created["data"]["time_series_group_id"].clone();
    // Searches never show tokens; a get shows it to writers only.
    let found = call(
        Caller::Key("writer"),
        "metadata_query_time_series_group",
        json!({"bk_biz_id": 2}),
    )?;
    assert_eq!(found["data"][0]["time_series_group_name"], json!("g1"));
    assert!(found["data"][0].get("token").is_none(), "{found}");
    let got = call(
        Caller::Key("reader"),
        "metadata_get_time_series_group",
        json!({"time_series_group_id": id}),
    )?;
    assert!(got["data"][0].get("token").is_none(), "{got}");
    let got = call(
        Caller::Key("writer"),
        "metadata_get_time_series_group",
        json!({"time_series_group_id": id}),
    )?;
    assert_eq!(got["data"][0]["token"], json!(token));
    // Data into the group: its token on /v2/push, or a key that may write.
    let push = |token: &str| {
        json!({"data_id": 150, "access_token": token, "data": [{"metrics": {"cpu": 1.5},
            "target": "t", "dimension": {"host": "a"}, "timestamp": NOW_MS}]})
        .to_string()
    };
    assert_eq!(s.post("/v2/push/", &push(&token))?.0, 200);
    assert_eq!(
        s.post("/v2/push/", &push("0123456789abcdef0123456789abcdef"))?
            .0,
        401
    );
    let bound = r#"[{"metric":"cpu","timestamp":1465405000,"value":2,"tags":{"host":"a"}}]"#;
    assert_eq!(
        tsdb(
            &s,
            Caller::None,
            "POST",
            "/api/put?bk_data_id=150",
            Some(bound)
        )?
        .0,
        401
    );
    assert_eq!(
        tsdb(
            &s,
            Caller::Key("reader"),
            "POST",
            "/api/put?bk_data_id=150",
            Some(bound)
        )?
        .0,
        403
    );
    assert_eq!(
        tsdb(
            &s,
            Caller::Key("writer"),
            "POST",
            "/api/put?bk_data_id=150",
            Some(bound)
        )?
        .0,
        204
    );
    // Deleting a group needs admin.
    let gone = json!({"time_series_group_id": id, "operator": "admin"});
    assert_eq!(
        call(
            Caller::Key("writer"),
            "metadata_delete_time_series_group",
            gone.clone()
        )?["code"],
        json!(1306000)
    );
    assert_eq!(
        call(
            Caller::Key("root"),
            "metadata_delete_time_series_group",
            gone
        )?["result"],
        json!(true)
    );
    Ok(())
}

/// Telnet without a key stops at the first put: nothing is stored.
#[test]
fn telnet_put_before_auth_closes_the_connection() -> Result<()> {
    let s = server()?;
    let stream = std::net::TcpStream::connect(s.addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    (&stream).write_all(b"put t.m 1500000000 1 host=a\nput t.m 1500000001 2 host=a\n")?;
    let mut lines = BufReader::new(&stream).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    assert!(first.contains("authentication required"), "{first}");
    // The server closed the connection.
    assert!(lines.next().transpose()?.is_none());
    let (status, body) = tsdb(
        &s,
        Caller::Key("root"),
        "GET",
        "/api/query?start=1499999000&m=sum:t.m",
        None,
    )?;
    assert_eq!(status, 400, "no such metric was written: {body}");
    Ok(())
}
