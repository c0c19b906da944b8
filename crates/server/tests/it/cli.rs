//! The command line: help texts, environment variables, the loopback rule.

use anyhow::Result;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn sundial() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sundial"))
}

#[test]
fn help_describes_every_flag() -> Result<()> {
    let top = sundial().arg("--help").output()?;
    assert!(top.status.success());
    assert!(String::from_utf8(top.stdout)?.contains("serve"));
    let serve = String::from_utf8(sundial().args(["serve", "--help"]).output()?.stdout)?;
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "--allow-unauthenticated",
        "SUNDIAL_DATA_DIR",
        "SUNDIAL_LISTEN",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}");
    }
    Ok(())
}

#[test]
fn non_loopback_without_credentials_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = sundial()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("--allow-unauthenticated"));
    Ok(())
}

#[test]
fn environment_variables_configure_serve() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("from-env");
    let mut child = sundial()
        .arg("serve")
        .env("SUNDIAL_DATA_DIR", &data)
        .env("SUNDIAL_LISTEN", "127.0.0.1:0")
        .env("SUNDIAL_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let _ = child.kill();
    child.wait()?;
    assert!(
        line.starts_with("sundial listening on 127.0.0.1:"),
        "{line}"
    );
    assert!(data.is_dir());
    Ok(())
}

#[test]
fn bad_config_file_is_reported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[opentsdb]\nmax_tags = 0\n")?;
    let out = sundial()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("max_tags"));
    Ok(())
}

/// `sundial query` in each language, as a reader key with the server's
/// keys on: CSV rows carry the values written, the table counts them, and
/// JSON is the server's own answer.
#[test]
fn query_prints_the_answers_of_each_language() -> Result<()> {
    use crate::harness::{TestServer, point};
    use serde_json::{Value, json};
    let s = TestServer::spawn_with_config(crate::access::KEYS)?;
    let t0 = 1_700_000_000i64;
    let values: Vec<i64> = (0..6).map(|i| i * i + 3).collect();
    let points: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| point("climetric", t0 + 60 * i as i64, json!(v), &[("h", "a")]))
        .collect();
    let basic = crate::harness::basic("writer", "writer-secret");
    let body = Value::Array(points).to_string();
    let reply = s.send(
        "POST",
        "/api/put",
        &[("Authorization", &basic)],
        Some(body.as_bytes()),
    )?;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let url = format!("http://{}", s.addr);
    let query = |lang: &str, statement: &str, format: &str| -> Result<String> {
        let out = sundial()
            .args(["query", "--url", &url, "--lang", lang, "--format", format])
            .args([
                "--access-key",
                "reader",
                "--secret-key",
                "reader-secret",
                statement,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    // The last column of each CSV row, after the header.
    let last_column = |csv: &str| -> Vec<i64> {
        csv.lines()
            .skip(1)
            .filter_map(|l| l.rsplit(',').next()?.parse().ok())
            .collect()
    };
    let range = format!("start={t0}&end={}", t0 + 3600);
    let opentsdb = query(
        "opentsdb",
        &format!("{range}&m=sum:climetric{{h=a}}"),
        "csv",
    )?;
    assert_eq!(opentsdb.lines().next(), Some("metric,tags,timestamp,value"));
    assert_eq!(last_column(&opentsdb), values);
    let baidu_body = json!({"queries": [{"metric": "climetric", "field": "value",
        "filters": {"start": t0 * 1000, "end": (t0 + 3600) * 1000}}]})
    .to_string();
    let baidu = query("baidu", &baidu_body, "csv")?;
    assert_eq!(baidu.lines().next(), Some("metric,group,timestamp,value"));
    assert_eq!(last_column(&baidu), values);
    let sql = query(
        "sql",
        "select h, value from climetric order by timestamp",
        "csv",
    )?;
    assert_eq!(sql.lines().next(), Some("h,value"));
    assert_eq!(last_column(&sql), values);
    let table = query("sql", "select h, value from climetric", "table")?;
    assert!(
        table.contains(&format!("({} rows)", values.len())),
        "{table}"
    );
    let raw = query("sql", "select count(*) as n from climetric", "json")?;
    let answer: Value = serde_json::from_str(&raw)?;
    assert_eq!(answer["rows"][0][0], json!(values.len()));
    // A wrong secret is the server's refusal, exit status 1.
    let refused = sundial()
        .args([
            "query",
            "--url",
            &url,
            "--lang",
            "sql",
            "--access-key",
            "reader",
        ])
        .args(["--secret-key", "wrong", "select 1"])
        .output()?;
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("the server answered 4"), "{why}");
    Ok(())
}
