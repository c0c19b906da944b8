//! `POST /api/put`, write vectors W13–W18 of spec 22.1
//! (docs/api/opentsdb.md): string limits, request-level errors, single
//! objects and sync, ignoreErrors, one identity for s and ms timestamps.

use crate::harness::{TestServer, json, point};
use anyhow::Result;
use serde_json::{Value, json};

#[test]
fn w13_string_length_limit() -> Result<()> {
    let s = TestServer::spawn()?;
    let at_limit = "a".repeat(20480);
    assert_eq!(
        s.post(
            "/api/put",
            &point("k.long", 1500000000, json!(at_limit), &[("h", "x")]).to_string()
        )?
        .0,
        204
    );
    let over = "a".repeat(20481);
    let (status, text) = s.post(
        "/api/put?details",
        &point("k.long2", 1500000000, json!(over), &[("h", "x")]).to_string(),
    )?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?["errors"][0]["error"],
        "String value too long: 20481 bytes (limit 20480)"
    );
    let got = s.get_json("/api/query?start=1500000000&end=1500000000&m=none:k.long")?;
    assert_eq!(
        got[0]["dps"]["1500000000"].as_str().map(str::len),
        Some(20480)
    );
    Ok(())
}

#[test]
fn w14_request_level_errors() -> Result<()> {
    let s = TestServer::spawn()?;
    for (body, msg) in [
        ("", "Missing request content"),
        ("{\"metric\":", "Unable to parse the given JSON"),
        ("5", "The JSON must start as an object or an array"),
        ("[]", "No datapoints found in content"),
        ("[1]", "Unable to parse the given JSON"),
    ] {
        let (status, text) = s.post("/api/put", body)?;
        assert_eq!(status, 400, "{body}");
        let v = json(&text)?;
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["message"], msg, "{body}");
    }
    let (status, text) = s.get("/api/put")?;
    assert_eq!(status, 405);
    assert_eq!(
        json(&text)?,
        json!({"error": {"code": 405, "message": "Method not allowed", "details": "The HTTP method [GET] is not permitted for this endpoint"}})
    );
    let (status, text) = s.get("/api/nope")?;
    assert_eq!(
        (status, json(&text)?["error"]["message"].clone()),
        (404, json!("Endpoint not found"))
    );
    Ok(())
}

#[test]
fn w15_w16_single_object_sync_and_trailing_slash() -> Result<()> {
    let s = TestServer::spawn()?;
    let one = json!({"metric": "one", "timestamp": 1500000000, "value": 1, "tags": {"h": "x"}})
        .to_string();
    assert_eq!(s.post("/api/put", &one)?.0, 204);
    assert_eq!(s.post("/api/put/?sync&sync_timeout=60000", &one)?.0, 204);
    assert_eq!(s.post("/api/v1/put?sync", &one)?.0, 204);
    let (status, text) = s.post("/api/put?sync&sync_timeout=60000&summary", &one)?;
    assert_eq!(
        (status, json(&text)?),
        (200, json!({"failed": 0, "success": 1, "timeouts": 0}))
    );
    let (status, text) = s.post("/api/put?sync_timeout=abc", &one)?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?["error"]["message"],
        "Unable to parse 'sync_timeout' as a number"
    );
    Ok(())
}

#[test]
fn w17_ignore_errors() -> Result<()> {
    let s = TestServer::spawn()?;
    let good = point("ie", 1500000000, json!(1), &[("h", "x")]);
    let bad = point("ie", 1500000001, json!(2), &[]);
    let (status, text) = s.post(
        "/api/put?ignoreErrors=true",
        &json!([good, bad]).to_string(),
    )?;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)?,
        json!({"failed": 1, "success": 1, "ignoredErrors": [{"datapoint": bad, "error": "Missing tags"}]})
    );
    let (status, text) = s.post("/api/put?ignoreErrors", &json!([good]).to_string())?;
    assert_eq!(
        (status, json(&text)?),
        (200, json!({"failed": 0, "success": 1, "ignoredErrors": []}))
    );
    Ok(())
}

#[test]
fn w18_overwrite_seconds_and_milliseconds_are_one_identity() -> Result<()> {
    let s = TestServer::spawn()?;
    let body = json!([
        point("ow", 1500000000, json!(1), &[("h", "x")]),
        point("ow", 1500000000000i64, json!(2), &[("h", "x")]),
    ]);
    assert_eq!(s.post("/api/put", &body.to_string())?.0, 204);
    let got = s.get_json("/api/query?start=1500000000&end=1500000000&m=none:ow")?;
    assert_eq!(got[0]["dps"], json!({"1500000000": 2}));
    // And across requests.
    assert_eq!(
        s.post(
            "/api/put",
            &json!([point("ow", 1500000000, json!(3), &[("h", "x")])]).to_string()
        )?
        .0,
        204
    );
    let got = s.get_json("/api/query?start=1500000000&end=1500000000&m=none:ow")?;
    assert_eq!(got[0]["dps"], json!({"1500000000": 3}));
    Ok(())
}

#[test]
fn w19_gzip_and_deflate_bodies_and_size_limit() -> Result<()> {
    use flate2::{Compression, write::GzEncoder, write::ZlibEncoder};
    use std::io::Write;
    let s = TestServer::spawn()?;
    let one = json!({"metric": "gz", "timestamp": 1500000000, "value": 7, "tags": {"h": "x"}})
        .to_string();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(one.as_bytes())?;
    let res = ureq::post(&s.url("/api/put"))
        .set("Content-Encoding", "gzip")
        .send_bytes(&gz.finish()?);
    assert_eq!(crate::harness::response(res)?.0, 204);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(one.replace("1500000000", "1500000001").as_bytes())?;
    let res = ureq::post(&s.url("/api/put"))
        .set("Content-Encoding", "deflate")
        .send_bytes(&z.finish()?);
    assert_eq!(crate::harness::response(res)?.0, 204);
    let got = s.get_json("/api/query?start=1500000000&end=1500000001&m=none:gz")?;
    assert_eq!(got[0]["dps"], json!({"1500000000": 7, "1500000001": 7}));

    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("sundial.toml");
    std::fs::write(&cfg, "[opentsdb]\nmax_body_bytes = 2048\n")?;
    let s = TestServer::spawn_with(
        &dir.path().join("d"),
        &["--config", cfg.to_str().unwrap_or_default()],
    )?;
    let big: Vec<Value> = (0..40)
        .map(|i| point("big", 1500000000 + i, json!(i), &[("h", "x")]))
        .collect();
    let (status, text) = s.post("/api/put", &Value::Array(big).to_string())?;
    assert_eq!(
        (status, json(&text)?["error"]["message"].clone()),
        (413, json!("Request body too large"))
    );
    // A small gzip body that inflates past the limit is refused too.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(format!("[{}]", vec![one.as_str(); 100].join(",")).as_bytes())?;
    let res = ureq::post(&s.url("/api/put"))
        .set("Content-Encoding", "gzip")
        .send_bytes(&gz.finish()?);
    assert_eq!(crate::harness::response(res)?.0, 413);
    Ok(())
}

#[test]
fn concurrent_first_writes_fix_one_kind() -> Result<()> {
    let s = TestServer::spawn()?;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = s.url("/api/put?details");
            std::thread::spawn(move || {
                let v = if i % 2 == 0 {
                    json!(i)
                } else {
                    json!(format!("text{i}"))
                };
                let body = json!([point("race", 1500000000 + i, v, &[("h", "x")])]).to_string();
                crate::harness::response(ureq::post(&url).send_string(&body))
            })
        })
        .collect();
    let mut ok = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let (status, _) = h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??;
        if status == 200 {
            ok.push(i % 2 == 0);
        }
    }
    // Every accepted write agrees on one kind.
    assert!(!ok.is_empty());
    assert!(ok.iter().all(|n| *n == ok[0]));
    Ok(())
}
