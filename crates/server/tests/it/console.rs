//! The web console: served from the binary, and driven in headless
//! Chromium through `tests/clients/console_browser.py` (Selenium; the
//! browser, its driver and Selenium are installed by `scripts/test`).
//! Screenshots go to `$SUNDIAL_ARTIFACTS/console-*`.

use crate::harness::{TestServer, installed_client, point};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;

const T0: i64 = 1_700_000_040_000;
const HOSTS: [&str; 2] = ["a", "b"];
const POINTS: i64 = 8;

fn value(host: &str, i: i64) -> i64 {
    i * 10 + if host == "b" { 5 } else { 0 }
}

/// Each language's statement and the lines and rows it must show, from
/// the points written.
fn expectations() -> Value {
    let end = T0 + 3_600_000;
    let series = |label: &dyn Fn(&str) -> String| -> BTreeMap<String, Vec<[i64; 2]>> {
        HOSTS
            .iter()
            .map(|h| {
                let points = (0..POINTS)
                    .map(|i| [T0 + i * 60_000, value(h, i)])
                    .collect();
                (label(h), points)
            })
            .collect()
    };
    let rows = HOSTS.len() as i64 * POINTS;
    json!({
        "database": "default",
        "languages": [
            {"lang": "opentsdb", "rows": rows,
             "statement": json!({"start": T0, "end": end, "msResolution": true,
                "queries": [{"metric": "webload", "aggregator": "sum", "tags": {"host": "*"}}]}).to_string(),
             "series": series(&|h| format!("webload{{host={h}}}"))},
            {"lang": "baidu", "rows": rows,
             "statement": json!({"queries": [{"metric": "webload", "field": "value",
                "filters": {"start": T0, "end": end},
                "groupBy": [{"name": "Tag", "tags": ["host"]}]}]}).to_string(),
             "series": series(&|h| format!("webload.value{{host={h}}}"))},
            {"lang": "sql", "rows": rows,
             "statement": "SELECT timestamp, host, value FROM webload ORDER BY host, timestamp",
             "series": series(&|h| format!("value{{host={h}}}"))},
        ],
        "metrics": {"webload": HOSTS.len()},
        "slow_statement": "webload",
    })
}

fn write_points(s: &TestServer, auth: &[(&str, &str)]) -> Result<()> {
    let points: Vec<Value> = HOSTS
        .iter()
        .flat_map(|h| {
            (0..POINTS).map(move |i| {
                point(
                    "webload",
                    T0 + i * 60_000,
                    json!(value(h, i)),
                    &[("host", h)],
                )
            })
        })
        .collect();
    let r = s.send(
        "POST",
        "/api/put",
        auth,
        Some(Value::Array(points).to_string().as_bytes()),
    )?;
    ensure!(r.status == 204, "{}", r.body);
    Ok(())
}

fn drive(s: &TestServer, name: &str, key: Option<(&str, &str)>, want: &Value) -> Result<()> {
    let python = installed_client("SUNDIAL_PYTHON")?;
    let dir = tempfile::tempdir()?;
    let expect = dir.path().join("expect.json");
    std::fs::write(&expect, want.to_string())?;
    let want = expect;
    let artifacts = std::env::var("SUNDIAL_ARTIFACTS")
        .map_or_else(
            |_| std::env::temp_dir().join("sundial-artifacts"),
            Into::into,
        )
        .join(name);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/console_browser.py"
    );
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(format!("http://{}", s.addr))
        .arg(&want)
        .arg(&artifacts);
    if let Some((k, v)) = key {
        cmd.args([k, v]);
    }
    let out = cmd.output().context("run console_browser.py")?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "console_browser.py ({}): {}\n{}\nscreenshots in {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        artifacts.display()
    );
    ensure!(artifacts.join("query-sql.png").is_file());
    Ok(())
}

/// `[log] slow_query_ms = 1`: every query lands on the slow list.
const SLOW_LOG: &str = "\n[log]\nslow_query_ms = 1\n";

#[test]
fn the_console_charts_each_language_in_a_real_browser() -> Result<()> {
    let s = TestServer::spawn_with_config(SLOW_LOG)?;
    write_points(&s, &[])?;
    // A BlueKing group, for the groups page.
    let group = crate::bk::seed_request();
    crate::bk::ok(&s, "metadata_create_time_series_group", group.clone())?;
    let mut want = expectations();
    want["bk_group"] = group["time_series_group_name"].clone();
    want["bk_metrics"] = group["metric_info_list"]
        .as_array()
        .context("metrics")?
        .iter()
        .map(|m| m["field_name"].clone())
        .collect();
    drive(&s, "console-open", None, &want)
}

#[test]
fn the_console_asks_for_a_key_when_auth_is_on() -> Result<()> {
    let s = TestServer::spawn_with_config(&format!("{}{SLOW_LOG}", crate::access::KEYS))?;
    let basic = crate::harness::basic("writer", "writer-secret");
    write_points(&s, &[("Authorization", &basic)])?;
    drive(
        &s,
        "console-auth",
        Some(("root", "root-secret")),
        &expectations(),
    )
}

#[test]
fn the_console_is_served_from_the_binary() -> Result<()> {
    let s = TestServer::spawn_with_config(crate::access::KEYS)?;
    for path in ["/", "/console/"] {
        let r = ureq::get(&s.url(path)).call()?;
        assert_eq!(r.status(), 200);
        let policy = r.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(r.into_string()?.contains("/console/app.js"));
    }
    let js = ureq::get(&s.url("/console/vendor/uPlot.iife.min.js")).call()?;
    assert!(
        js.header("content-type")
            .unwrap_or_default()
            .starts_with("text/javascript")
    );
    assert!(js.into_string()?.contains("uPlot"));
    let licence = ureq::get(&s.url("/console/vendor/LICENSE-uPlot"))
        .call()?
        .into_string()?;
    assert!(licence.contains("MIT"));
    // The page is public; what it asks for is not.
    let (status, _) = s.get("/api/cardinality")?;
    assert_eq!(status, 401);
    Ok(())
}
