//! Golden replies: the exact bytes of SQL, Baidu JSON query and OpenTSDB
//! query answers over the spec's data set D1, kept in
//! `tests/golden/<name>.txt`, so a change of key order, number format or
//! shape shows up as a diff. `SUNDIAL_BLESS=1` rewrites the files after a
//! deliberate change; a missing file fails.

use crate::baidu::{D1, get, percent_encode, put_query, q, write_ok};
use crate::harness::TestServer;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    // At run time: a test binary may outlive the checkout it was built in.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    root.join("tests/golden")
}

/// Compares `got` with the golden file `name`, or writes it when blessing.
fn check(name: &str, status: u16, body: &str) -> Result<Option<String>> {
    let got = format!("{status}\n{body}\n");
    let path = golden_dir().join(format!("{name}.txt"));
    if std::env::var_os("SUNDIAL_BLESS").is_some() {
        std::fs::write(&path, &got).with_context(|| format!("writing {}", path.display()))?;
        return Ok(None);
    }
    let want = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no golden file {} (SUNDIAL_BLESS=1 writes it)",
            path.display()
        )
    })?;
    Ok((want != got).then(|| format!("{name}:\n--- golden\n{want}+++ got\n{got}")))
}

const SQL: &[(&str, &str)] = &[
    ("sql_select_all", "select * from cpu_idle"),
    (
        "sql_group_by_host",
        "select host, count(*), sum(value), avg(value) from cpu_idle group by host order by host",
    ),
    (
        "sql_time_bucket",
        "select time_bucket(timestamp, '5 minutes') as t, max(value) from cpu_idle group by t order by t",
    ),
    (
        "sql_if_and_max_by",
        "select max_by(host, value) as top, sum(if(value > 5, 1, 0)) as big from cpu_idle",
    ),
    ("sql_error", "select nope from cpu_idle"),
];

#[test]
fn replies_match_their_golden_files() -> Result<()> {
    let s = TestServer::spawn()?;
    write_ok(&s, &serde_json::from_str(D1)?)?;
    let mut diffs = Vec::new();
    for (name, statement) in SQL {
        let r = get(&s, &format!("/v1/row?sql={}", percent_encode(statement)))?;
        // Error bodies carry the request id, which differs every run.
        let body = r
            .body
            .replace(r.request_id.as_deref().unwrap_or("-"), "<request id>");
        diffs.extend(check(name, r.status, &body)?);
    }
    let queries = [
        (
            "json_query_sum_by_rack",
            q(
                json!({"metric": "cpu_idle", "filters": {"start": 1_500_000_000_000_i64},
                "groupBy": [{"name": "Tag", "tags": ["rack"]}],
                "aggregators": [{"name": "Sum", "sampling": "5 minutes"}]}),
            ),
        ),
        (
            "json_query_raw",
            q(
                json!({"metric": "cpu_idle", "filters": {"start": 1_500_000_000_000_i64,
                "tags": {"host": ["a"]}}}),
            ),
        ),
    ];
    for (name, query) in queries {
        let r = put_query(&s, &query)?;
        diffs.extend(check(name, r.status, &r.body)?);
    }
    let opentsdb = [
        (
            "opentsdb_query_sum",
            "/api/query?start=1500000000&m=sum:cpu_idle%7Brack=*%7D",
        ),
        (
            "opentsdb_query_downsample",
            "/api/query?start=1500000000&m=avg:5m-max:cpu_idle",
        ),
    ];
    for (name, path) in opentsdb {
        let (status, body) = s.get(path)?;
        diffs.extend(check(name, status, &body)?);
    }
    if !diffs.is_empty() {
        bail!(
            "replies differ from their golden files:\n{}",
            diffs.join("\n")
        );
    }
    Ok(())
}
