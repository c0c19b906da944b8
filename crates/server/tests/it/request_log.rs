//! Issue 17, point 2: every response carries a request id (the client's
//! own when it sends a plain one), and requests slower than
//! `log.slow_query_ms` are logged, as JSON with `--log-format json`, with
//! their API, statement, points scanned, time and request id.

use crate::harness::{TestServer, point};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::process::Stdio;

fn request_id(s: &TestServer, sent: Option<&str>) -> Result<Option<String>> {
    let mut req = ureq::get(&s.url("/api/version"));
    if let Some(id) = sent {
        req = req.set("X-Request-Id", id);
    }
    let response = req.call()?;
    Ok(response.header("x-request-id").map(str::to_owned))
}

#[test]
fn responses_carry_a_request_id() -> Result<()> {
    let s = TestServer::spawn()?;
    let first = request_id(&s, None)?.context("no x-request-id")?;
    let second = request_id(&s, None)?.context("no x-request-id")?;
    assert_ne!(first, second, "ids are per request");
    assert_eq!(
        request_id(&s, Some("grafana-42"))?.as_deref(),
        Some("grafana-42")
    );
    // An id that is not a plain token is replaced, not echoed.
    let replaced = request_id(&s, Some("a b <script>"))?.context("no x-request-id")?;
    assert!(uuid_like(&replaced), "{replaced}");
    // Errors (here an unknown route) carry one too.
    let err = ureq::get(&s.url("/no/such/route")).call();
    let Err(ureq::Error::Status(404, response)) = err else {
        anyhow::bail!("expected a 404, got {err:?}");
    };
    assert!(response.header("x-request-id").is_some());
    // Baidu's own request id is the same one, in its header and its error
    // body.
    let err = ureq::get(&s.url("/v1/metric?database=nosuchdb"))
        .set("X-Request-Id", "bce-check-7")
        .call();
    let Err(ureq::Error::Status(_, response)) = err else {
        anyhow::bail!("expected an error, got {err:?}");
    };
    assert_eq!(response.header("x-bce-request-id"), Some("bce-check-7"));
    let body: Value = serde_json::from_str(&response.into_string()?)?;
    assert_eq!(body["requestId"], "bce-check-7", "{body}");
    // So does a refusal made before routing (a foreign web page's request).
    let err = ureq::get(&s.url("/v1/metric"))
        .set("X-Request-Id", "bce-check-8")
        .set("Origin", "http://evil.example")
        .call();
    let Err(ureq::Error::Status(403, response)) = err else {
        anyhow::bail!("expected a 403, got {err:?}");
    };
    assert_eq!(response.header("x-bce-request-id"), Some("bce-check-8"));
    assert_eq!(response.header("x-request-id"), Some("bce-check-8"));
    let body: Value = serde_json::from_str(&response.into_string()?)?;
    assert_eq!(body["requestId"], "bce-check-8", "{body}");
    Ok(())
}

/// `8-4-4-4-12` hexadecimal digits.
fn uuid_like(id: &str) -> bool {
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
}

#[test]
fn slow_queries_are_logged_with_statement_points_and_id() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("sundial.toml");
    // Every request counts as slow: the test is about what the line holds.
    std::fs::write(&config, "[log]\nslow_query_ms = 1\n")?;
    let log_path = tmp.path().join("server.log");
    let log = std::fs::File::create(&log_path)?;
    let config = config.to_string_lossy().into_owned();
    let s = TestServer::spawn_logging_to(
        &tmp.path().join("data"),
        &["--config", &config, "--log-format", "json"],
        Stdio::from(log),
    )?;
    let points: Vec<Value> = (0..5000)
        .map(|i| point("slow.m", 1_700_000_000 + i, json!(i), &[("h", "a")]))
        .collect();
    let (status, text) = s.post("/api/put", &Value::Array(points).to_string())?;
    assert_eq!(status, 204, "{text}");
    let body = r#"{"start":1700000000,"end":1700010000,"queries":[{"metric":"slow.m","aggregator":"sum"}]}"#;
    let response = ureq::post(&s.url("/api/query"))
        .set("X-Request-Id", "slow-test-1")
        .send_string(body)?;
    assert_eq!(response.status(), 200);
    let answered: Value = serde_json::from_str(&response.into_string()?)?;
    let dps = answered[0]["dps"].as_object().map_or(0, |m| m.len());
    assert_eq!(dps, 5000);
    // The line is written before the response is sent.
    let text = std::fs::read_to_string(&log_path)?;
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["id"] == "slow-test-1")
        .with_context(|| format!("no JSON log line of request slow-test-1 in:\n{text}"))?;
    let fields = &line["fields"];
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(fields["message"], "slow request", "{line}");
    assert_eq!(fields["api"], "opentsdb", "{line}");
    assert_eq!(fields["status"], 200, "{line}");
    assert_eq!(fields["scanned_points"], 5000, "{line}");
    assert_eq!(fields["statement"], body, "{line}");
    assert!(
        fields["elapsed_ms"].as_u64().is_some_and(|ms| ms >= 1),
        "{line}"
    );
    // Writes are logged when slow, but their bodies are not.
    let put_line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["path"] == "/api/put")
        .with_context(|| format!("no log line of the put in:\n{text}"))?;
    assert!(put_line["fields"]["statement"].is_null(), "{put_line}");
    Ok(())
}
