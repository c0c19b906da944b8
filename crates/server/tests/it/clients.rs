//! Real OpenTSDB clients from PyPI (opentsdb-py, potsdb, pyopentsdb)
//! against the real server. `scripts/test` installs them into a private
//! virtualenv and points `SUNDIAL_PYTHON` at its interpreter.

use crate::harness::TestServer;
use anyhow::{Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A script under `tests/clients/` of this checkout (found at run time: a
/// binary built from another clone may share the target directory).
fn client_script(name: &str) -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    crate_dir.join("tests/clients").join(name)
}

#[test]
fn python_opentsdb_clients_write_and_read_back() -> Result<()> {
    let python = crate::harness::installed_client("SUNDIAL_PYTHON")?;
    let s = TestServer::spawn()?;
    let script = client_script("opentsdb_clients.py");
    let out = Command::new(python)
        .arg(script)
        .arg(s.addr.ip().to_string())
        .arg(s.addr.port().to_string())
        .output()?;
    if !out.status.success() {
        bail!(
            "client script failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        counts,
        json!({"opentsdb_http": 40, "opentsdb_telnet": 40, "potsdb": 40, "pyopentsdb": 40})
    );
    // Check one client's data here too, independently of the script.
    let got =
        s.get_json("/api/query?start=1650000000&end=1650000039&m=none:clients.opentsdb_http")?;
    for i in 0..40i64 {
        assert_eq!(
            got[0]["dps"][(1_650_000_000 + i).to_string()],
            json!(0.25 + i as f64)
        );
    }
    assert_eq!(got[0]["tags"], json!({"client": "opentsdb-py"}));
    Ok(())
}

/// Runs one Baidu SDK script against a server holding one credential and
/// returns the JSON summary it prints.
fn run_baidu_sdk(interpreter_var: &str, script: &Path) -> Result<serde_json::Value> {
    let interpreter = crate::harness::installed_client(interpreter_var)?;
    let (ak, sk) = ("sdkaccesskey", "sdksecretkey");
    let s = TestServer::spawn_with_config(&format!(
        "[baidu]\ncredentials = [{{ access_key_id = \"{ak}\", secret_access_key = \"{sk}\", databases = [\"*\"] }}]\n"
    ))?;
    let summary = run_script(&interpreter, script, &s, &[ak, sk])?;
    // Unsigned requests are refused while credentials are configured.
    let (status, body) = s.get("/v1/metric")?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(crate::harness::json(&body)?["code"], json!("AccessDenied"));
    Ok(summary)
}

/// Runs a client script with the server's host and port then `args`, and
/// parses the JSON summary it prints.
fn run_script(
    interpreter: &str,
    script: &Path,
    s: &TestServer,
    args: &[&str],
) -> Result<serde_json::Value> {
    let out = Command::new(interpreter)
        .arg(script)
        .arg(s.addr.ip().to_string())
        .arg(s.addr.port().to_string())
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "{} failed: {}\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Baidu's official Python SDK (`bce-python-sdk`): signed writes (gzip and
/// plain), listings, queries, a presigned GET, and signature failures.
#[test]
fn baidu_python_sdk_end_to_end() -> Result<()> {
    let script = client_script("baidu_sdk.py");
    let summary = run_baidu_sdk("SUNDIAL_PYTHON", &script)?;
    assert_eq!(summary["auth_failures"], json!(2));
    assert_eq!(summary["presigned"], json!(1));
    assert!(summary["written"].as_u64().unwrap_or(0) > 0, "{summary}");
    Ok(())
}

/// Baidu's official JavaScript SDK (`@baiducloud/sdk`, TsdbDataClient): its
/// wire quirks (`POST /v1/datapoint?query=`, `metricName=` on metadata
/// GETs, `host;x-bce-date` signatures, gzip), queries, a presigned GET and
/// signature failures.
#[test]
fn baidu_js_sdk_end_to_end() -> Result<()> {
    let script = client_script("baidu_js/sdk.mjs");
    let summary = run_baidu_sdk("SUNDIAL_NODE", &script)?;
    assert_eq!(summary["auth_failures"], json!(2));
    assert_eq!(summary["presigned"], json!(1));
    assert!(summary["queries"].as_u64().unwrap_or(0) >= 10, "{summary}");
    Ok(())
}

/// BlueKing's ESB client (`bkapi-component-open`) against a server with a
/// registered app: header credentials, GET and POST calls, a wrong secret,
/// and data reported through `/v2/push/` showing up as discovered metrics
/// and as series readable through `/v1`.
#[test]
fn bluekings_esb_client_manages_groups() -> Result<()> {
    let python = crate::harness::installed_client("SUNDIAL_PYTHON")?;
    let (code, secret) = ("bk_demo_app", "demo-secret");
    let s = TestServer::spawn_with_config(&format!(
        "[bkmonitor]\nesb_apps = {{ {code} = [\"{secret}\"] }}\nesb_login_exempt_apps = [\"{code}\"]\n\
         [baidu]\ntest_clock_ms = {}\n",
        crate::access::NOW_MS
    ))?;
    let script = client_script("bk_client.py");
    let got = run_script(&python, &script, &s, &[code, secret])?;
    let ok = |step: &str| {
        assert_eq!(
            (got[step]["result"].clone(), got[step]["code"].clone()),
            (json!(true), json!(200)),
            "{step}: {}",
            got[step]
        );
    };
    for step in [
        "create", "get", "modify", "query", "data_id", "labels", "delete",
    ] {
        ok(step);
    }
    let prefix = "7_bkmonitor_time_series_50010";
    assert_eq!(
        got["create"]["data"]["table_id"],
        json!(format!("{prefix}.__default__"))
    );
    assert_eq!(
        got["push"],
        json!({"code": "200", "result": "true", "message": ""})
    );
    // Declared `latency`, then `errors` discovered from the report.
    let metrics = &got["get"]["data"][0]["metric_info_list"];
    let names: Vec<&str> = metrics
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["field_name"].as_str())
        .collect();
    assert_eq!(names, ["latency", "errors"]);
    assert_eq!(got["modify"]["data"]["is_enable"], json!(false));
    assert_eq!(got["modify"]["data"]["last_modify_user"], json!("bob"));
    assert_eq!(got["query"]["data"]["count"], json!(1));
    assert_eq!(
        got["data_id"]["data"]["result_table_list"][0]["result_table"],
        got["create"]["data"]["table_id"]
    );
    let types: Vec<&str> = got["labels"]["data"]["type_label"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["label_id"].as_str())
        .collect();
    assert_eq!(types, ["event", "log", "time_series"]);
    assert_eq!(got["wrong_secret"]["code"], json!(1306000));
    assert_eq!(got["get_deleted"]["code"], json!(500));
    // The reported latencies, read back by physical name; the app's key
    // signs (with keys configured, every API needs one).
    let body = json!({"queries": [{"metric": format!("{prefix}.latency"),
        "filters": {"start": 1_700_000_000_000i64, "end": 1_700_000_060_000i64}}]});
    let who = crate::access::Caller::Key(code);
    let body = body.to_string();
    let unsigned = s.request("PUT", "/v1/datapoint?query", Some(&body))?;
    assert_eq!(unsigned.0, 403, "{}", unsigned.1);
    let (status, text) = crate::access::baidu_as(
        &s,
        who,
        secret,
        "PUT",
        "/v1/datapoint",
        Some("query"),
        Some(&body),
    )?;
    assert_eq!(status, 200, "{text}");
    let read: serde_json::Value = serde_json::from_str(&text)?;
    let mut values: Vec<f64> = read["results"][0]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v[1].as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [12.5, 20.0]);
    Ok(())
}
