//! Access keys made and revoked at run time through `/admin/keys`: they
//! sign in on every API at once, survive a restart, and a change that
//! would lock the operators out or open the server again is refused.

use crate::access::{Caller, NOW_MS, baidu, tsdb};
use crate::harness::{TestServer, json};
use anyhow::{Result, ensure};
use serde_json::json;

fn key_body(id: &str, grants: serde_json::Value) -> String {
    json!({"secret_access_key": format!("{id}-secret"), "grants": grants}).to_string()
}

fn put_key(s: &TestServer, who: Caller, id: &str, grants: serde_json::Value) -> Result<u16> {
    let path = format!("/admin/keys/{id}");
    Ok(tsdb(s, who, "PUT", &path, Some(&key_body(id, grants)))?.0)
}

fn write_as(s: &TestServer, who: Caller, value: i64) -> Result<u16> {
    let point = json!({"metric": "keys.m", "timestamp": NOW_MS / 1000, "value": value,
        "tags": {"host": "a"}});
    Ok(tsdb(s, who, "POST", "/api/put", Some(&point.to_string()))?.0)
}

/// The value of `keys.m` the server answers, as `who`.
fn stored_value(s: &TestServer, who: Caller) -> Result<Option<f64>> {
    let start = NOW_MS / 1000 - 60;
    let path = format!("/api/query?start={start}&m=sum:keys.m");
    let (status, body) = tsdb(s, who, "GET", &path, None)?;
    ensure!(status == 200, "query: {status} {body}");
    let answer = json(&body)?;
    Ok(answer[0]["dps"]
        .as_object()
        .and_then(|dps| dps.values().next()?.as_f64()))
}

/// `DELETE /admin/keys/{id}` as root, which must succeed.
fn revoke(s: &TestServer, id: &str) -> Result<()> {
    let path = format!("/admin/keys/{id}");
    let (status, body) = tsdb(s, Caller::Key("root"), "DELETE", &path, None)?;
    ensure!(status == 200, "revoke {id}: {status} {body}");
    Ok(())
}

/// Member `field` of each key `GET /admin/keys` answered.
fn listed(body: &str, field: &str) -> Result<Vec<String>> {
    let keys = json(body)?["keys"].as_array().cloned().unwrap_or_default();
    Ok(keys
        .iter()
        .filter_map(|k| Some(k[field].as_str()?.to_owned()))
        .collect())
}

#[test]
fn keys_made_at_run_time_guard_every_api_and_outlive_a_restart() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("sundial.toml");
    std::fs::write(&config, format!("[baidu]\ntest_clock_ms = {NOW_MS}\n"))?;
    let config = config.to_string_lossy().into_owned();
    let data = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&data, &["--config", &config])?;

    // An open server: the first key must be able to administer it.
    let reader_only = json!({"default": ["read"]});
    let refused = put_key(&s, Caller::None, "reader", reader_only.clone())?;
    ensure!(refused == 409, "a first key without admin on *: {refused}");
    ensure!(write_as(&s, Caller::None, 1)? == 204, "still open");
    let root = put_key(
        &s,
        Caller::None,
        "root",
        json!({"*": ["read", "write", "admin"]}),
    )?;
    ensure!(root == 200, "root: {root}");

    // Closed now: the admin routes and the APIs need a key.
    ensure!(tsdb(&s, Caller::None, "GET", "/admin/keys", None)?.0 == 401);
    ensure!(
        write_as(&s, Caller::None, 2)? == 401,
        "anonymous write refused"
    );
    let writer = json!({"default": ["read", "write"]});
    ensure!(put_key(&s, Caller::Key("root"), "writer", writer.clone())? == 200);
    ensure!(put_key(&s, Caller::Key("writer"), "x", writer.clone())? == 403);
    ensure!(put_key(&s, Caller::Key("root"), "reader", reader_only)? == 200);

    // The keys sign in through OpenTSDB and Baidu with their grants.
    ensure!(write_as(&s, Caller::Key("writer"), 42)? == 204);
    ensure!(
        write_as(&s, Caller::Key("reader"), 7)? == 403,
        "reader may not write"
    );
    ensure!(stored_value(&s, Caller::Key("reader"))? == Some(42.0));
    let baidu_write = json!({"datapoints": [{"metric": "keys_b", "tags": {"host": "a"},
        "timestamp": NOW_MS, "value": 5}]})
    .to_string();
    let signed = baidu(
        &s,
        Caller::Key("writer"),
        "POST",
        "/v1/datapoint",
        None,
        Some(&baidu_write),
    )?;
    ensure!(signed.0 == 204, "signed Baidu write: {signed:?}");
    let signed = baidu(
        &s,
        Caller::Key("reader"),
        "POST",
        "/v1/datapoint",
        None,
        Some(&baidu_write),
    )?;
    ensure!(signed.0 == 403, "reader's Baidu write: {signed:?}");

    // Listed without secrets.
    let (status, body) = tsdb(&s, Caller::Key("root"), "GET", "/admin/keys", None)?;
    ensure!(status == 200, "list: {status} {body}");
    ensure!(!body.contains("-secret"), "a secret listed: {body}");
    let ids = listed(&body, "access_key_id")?;
    ensure!(ids == ["reader", "root", "writer"], "{body}");
    ensure!(json(&body)?["keys"][2]["grants"] == writer, "{body}");

    // A telnet session signed in as the writer: revoked, it may put no
    // more, without reconnecting.
    let mut telnet = s.telnet()?;
    telnet.send("auth writer writer-secret\n")?;
    ensure!(telnet.read_available()?.contains("auth: ok"));
    let ts = NOW_MS / 1000;
    telnet.send(&format!("put keys.t {ts} 1 host=a\n"))?;
    revoke(&s, "writer")?;
    telnet.send(&format!("put keys.t {ts} 2 host=a\n"))?;
    let answer = telnet.read_available()?;
    ensure!(answer.contains("authentication required"), "{answer}");
    ensure!(put_key(&s, Caller::Key("root"), "writer", writer.clone())? == 200);

    // A restart keeps them; a revocation holds at once.
    s.terminate()?;
    let s = TestServer::spawn_with(&data, &["--config", &config])?;
    ensure!(
        stored_value(&s, Caller::Key("writer"))? == Some(42.0),
        "writer after restart"
    );
    ensure!(
        write_as(&s, Caller::None, 3)? == 401,
        "still closed after restart"
    );
    revoke(&s, "writer")?;
    ensure!(
        write_as(&s, Caller::Key("writer"), 43)? == 401,
        "revoked key refused"
    );
    let (status, _) = tsdb(
        &s,
        Caller::Key("root"),
        "DELETE",
        "/admin/keys/writer",
        None,
    )?;
    ensure!(status == 404, "revoked twice: {status}");

    // Removing root would leave the reader alone, without admin: refused.
    let (status, body) = tsdb(&s, Caller::Key("root"), "DELETE", "/admin/keys/root", None)?;
    ensure!(
        status == 409 && body.contains("administer"),
        "{status} {body}"
    );
    let bad = tsdb(
        &s,
        Caller::Key("root"),
        "PUT",
        "/admin/keys/bad",
        Some("{\"grants\": 1}"),
    )?;
    ensure!(bad.0 == 400, "a bad body: {bad:?}");
    Ok(())
}

#[test]
fn configured_keys_stay_as_configured() -> Result<()> {
    let s = crate::access::server()?;
    let status = put_key(&s, Caller::Key("root"), "writer", json!({"*": ["admin"]}))?;
    ensure!(status == 409, "replacing a configured key: {status}");
    let (status, _) = tsdb(
        &s,
        Caller::Key("root"),
        "DELETE",
        "/admin/keys/reader",
        None,
    )?;
    ensure!(status == 409, "removing a configured key: {status}");
    ensure!(
        write_as(&s, Caller::Key("writer"), 1)? == 204,
        "writer unchanged"
    );
    let (_, body) = tsdb(&s, Caller::Key("root"), "GET", "/admin/keys", None)?;
    ensure!(listed(&body, "source")? == ["config"; 4], "{body}");
    Ok(())
}
