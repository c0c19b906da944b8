//! Spec 16.7 end to end: the authentication vectors against the running
//! server, its clock pinned with `baidu.test_clock_ms` (spec 5.4).

use crate::baidu::days_from_civil;
use crate::harness::TestServer;
use anyhow::Result;
use serde_json::Value;

const AK: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SK: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const HOST: &str = "metricsdb.tsdb.iot.gz.baidubce.com";
const DATE: &str = "2016-06-08T16:49:51Z";
const A1_SIG: &str = "8b623d176d8535269c7f56ee0bdda1a6576092feac6bc7c583c887e7f996de2a";

/// 2016-06-08 `h:m:s` UTC in ms.
fn at(h: i64, m: i64, s: i64) -> i64 {
    (days_from_civil(2016, 6, 8) * 86_400 + h * 3600 + m * 60 + s) * 1000
}

/// A server with the spec's credential, a `metricsdb` database, and its
/// clock fixed at `now_ms`.
fn server(now_ms: i64) -> Result<(TestServer, tempfile::TempDir)> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("db").join("metricsdb"))?;
    let config = tmp.path().join("sundial.toml");
    std::fs::write(
        &config,
        format!(
            "[baidu]\ntest_clock_ms = {now_ms}\ncredentials = [{{ access_key_id = \"{AK}\", \
             secret_access_key = \"{SK}\", databases = [\"*\"] }}]\n"
        ),
    )?;
    let config = config.to_string_lossy().into_owned();
    Ok((TestServer::spawn_with(&data, &["--config", &config])?, tmp))
}

fn auth(ak: &str, signed: &str, sig: &str) -> String {
    format!("bce-auth-v1/{ak}/{DATE}/1800/{signed}/{sig}")
}

fn code(body: &str) -> Value {
    serde_json::from_str::<Value>(body).map_or(Value::Null, |v| v["code"].clone())
}

#[test]
fn authentication_vectors_against_the_server() -> Result<()> {
    let (s, _tmp) = server(at(17, 0, 0))?;
    let a1 = auth(AK, "host;x-bce-date", A1_SIG);
    let get = |host: &str, authorization: Option<&str>| {
        let mut headers = vec![("Host", host), ("x-bce-date", DATE)];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        s.send("GET", "/v1/metric", &headers, None)
    };
    // TV-A1: JS-style header signature.
    let r = get(HOST, Some(&a1))?;
    assert_eq!(r.status, 200, "{}", r.body);
    // TV-A2: Python-style empty signed-header list over a query body.
    let body = r#"{"queries":[{"metric":"cpu_idle","filters":{"start":1465376157006}}]}"#;
    assert_eq!(body.len(), 69);
    let a2 = auth(
        AK,
        "",
        "10d85ca53f56d6fe3263fc169ddb99fef008ad42ab3717370f2db4ffcf2ce30a",
    );
    let r = s.send(
        "PUT",
        "/v1/datapoint?query=&disablePresampling=False",
        &[
            ("Host", HOST),
            ("x-bce-date", DATE),
            ("Content-Type", "application/json"),
            ("Authorization", &a2),
        ],
        Some(body.as_bytes()),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    // TV-A5: altered signature, altered Host.
    let tampered = auth(AK, "host;x-bce-date", &format!("{}b", &A1_SIG[..63]));
    let r = get(HOST, Some(&tampered))?;
    assert_eq!(
        (r.status, code(&r.body)),
        (400, "SignatureDoesNotMatch".into())
    );
    let r = get("otherdb.tsdb.iot.gz.baidubce.com", Some(&a1))?;
    assert_eq!(
        (r.status, code(&r.body)),
        (400, "SignatureDoesNotMatch".into())
    );
    // TV-A7: unknown key, no authorization, not bce-auth-v1, bad timestamp.
    let r = get(
        HOST,
        Some(&auth(
            "cccccccccccccccccccccccccccccccc",
            "host;x-bce-date",
            A1_SIG,
        )),
    )?;
    // Issue 14: an unknown key answers like a wrong signature (TV-A7 had
    // 403 InvalidAccessKeyId, which lets keys be probed for).
    assert_eq!(
        (r.status, code(&r.body)),
        (400, "SignatureDoesNotMatch".into())
    );
    let r = get(HOST, None)?;
    assert_eq!((r.status, code(&r.body)), (403, "AccessDenied".into()));
    let r = get(HOST, Some("Bearer xyz"))?;
    assert_eq!(
        (r.status, code(&r.body)),
        (400, "InvalidHTTPAuthHeader".into())
    );
    let r = get(
        HOST,
        Some(&format!("bce-auth-v1/{AK}/2016-06-08 16:49:51/1800//abc")),
    )?;
    assert_eq!(
        (r.status, code(&r.body)),
        (400, "InvalidHTTPAuthHeader".into())
    );
    // TV-A4: `database` parameter and a port in Host: the signature holds, the
    // metric does not exist (404, never 400).
    let a4 = auth(
        AK,
        "host;x-bce-date",
        "d9070fc4e117dd4ddbf89a46c1cf73d561ada6e02b78687129f30160af5fb771",
    );
    let r = s.send(
        "GET",
        "/v1/metric/cpu_idle/tag?database=metricsdb&start=1465376157",
        &[
            ("Host", "127.0.0.1:8086"),
            ("x-bce-date", DATE),
            ("Authorization", &a4),
        ],
        None,
    )?;
    assert_eq!((r.status, code(&r.body)), (404, "ResourceNotFound".into()));
    drop(s);
    // TV-A6: the validity window, with the clock moved.
    for (now, status) in [
        (at(17, 19, 51), 200),
        (at(17, 19, 52), 400),
        (at(16, 34, 50), 400),
    ] {
        let (s, _tmp) = server(now)?;
        let r = s.send(
            "GET",
            "/v1/metric",
            &[("Host", HOST), ("x-bce-date", DATE), ("Authorization", &a1)],
            None,
        )?;
        assert_eq!(r.status, status, "clock {now}: {}", r.body);
        if status == 400 {
            assert_eq!(code(&r.body), Value::from("RequestExpired"));
        }
    }
    Ok(())
}

/// TV-A3: a presigned SQL URL (host only) answers the statement. The data
/// is written first by the same directory's server without credentials.
#[test]
fn presigned_sql_url() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let mut open = TestServer::spawn_with(&data, &[])?;
    let created = open.send(
        "POST",
        "/v1/database?clientToken=a3",
        &[("Content-Type", "application/json")],
        Some(br#"{"databaseName":"metricsdb","ingestDataPointsMonthly":1,"purchaseLength":1}"#),
    )?;
    assert!(created.status < 300, "{}", created.body);
    let r = open.send(
        "POST",
        "/v1/datapoint?database=metricsdb",
        &[("Content-Type", "application/json")],
        Some(crate::baidu::D1.as_bytes()),
    )?;
    assert_eq!(r.status, 204, "{}", r.body);
    open.terminate()?;
    let config = tmp.path().join("sundial.toml");
    std::fs::write(
        &config,
        format!(
            "[baidu]\ntest_clock_ms = {}\ncredentials = [{{ access_key_id = \"{AK}\", \
             secret_access_key = \"{SK}\", databases = [\"*\"] }}]\n",
            at(17, 0, 0)
        ),
    )?;
    let s = TestServer::spawn_with(&data, &["--config", &config.to_string_lossy()])?;
    let url = "/v1/row?sql=select%20%2A%20from%20cpu_idle&authorization=bce-auth-v1%2Faaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%2F2016-06-08T16%3A49%3A51Z%2F1800%2Fhost%2F9614e3f406b47c27e41fa9fcb6440b2546a7b899ff75dc977ed3f9393d3097b1";
    let r = s.send("GET", url, &[("Host", HOST)], None)?;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = serde_json::from_str::<Value>(&r.body)?["rows"].clone();
    let written: usize = crate::baidu::d1_series()
        .iter()
        .map(|s| s.points.len())
        .sum();
    assert_eq!(rows.as_array().map(Vec::len), Some(written));
    // Altering the statement breaks the signature.
    let r = s.send(
        "GET",
        &url.replace("cpu_idle", "cpu_busy"),
        &[("Host", HOST)],
        None,
    )?;
    assert_eq!(
        (r.status, code(&r.body)),
        (400, "SignatureDoesNotMatch".into())
    );
    Ok(())
}
