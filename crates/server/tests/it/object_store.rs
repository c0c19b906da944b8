//! Blocks on S3 (the s3s test server, on loopback in this process): the
//! same answers through every API as with local blocks, across flushes,
//! compaction and restarts; `kill -9` during uploads and compactions
//! loses no acknowledged point and leaves no manifest entry without its
//! object.

use crate::baidu::{D1, put_query, q, write};
use crate::durability::{FLUSHY, T0, kill_during_stream};
use crate::harness::{TestServer, point};
use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use sundial_testkit::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

pub(crate) const BUCKET: &str = "sundial";

static S3: LazyLock<Result<(S3Server, tempfile::TempDir), String>> = LazyLock::new(|| {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = S3Server::start(dir.path(), &[BUCKET]).map_err(|e| e.to_string())?;
    Ok((server, dir))
});

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A prefix of the test bucket no other test uses, and where the S3
/// server keeps its objects.
pub(crate) fn fresh_prefix() -> Result<(String, PathBuf)> {
    let (_, dir) = S3.as_ref().map_err(|e| anyhow!("S3 test server: {e}"))?;
    let prefix = format!(
        "it{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let root = dir.path().join(BUCKET).join(&prefix);
    Ok((prefix, root))
}

/// The `AWS_*` variables that point a client at the test S3 server.
pub(crate) fn s3_env() -> Result<Vec<(&'static str, String)>> {
    let (server, _) = S3.as_ref().map_err(|e| anyhow!("S3 test server: {e}"))?;
    Ok(server.env())
}

/// `config` (which may hold a `[storage]` table) with the blocks under
/// `prefix` of the test bucket.
pub(crate) fn on_s3(config: &str, prefix: &str) -> Result<String> {
    let (server, _) = S3.as_ref().map_err(|e| anyhow!("S3 test server: {e}"))?;
    Ok(on_server(server, config, prefix))
}

fn on_server(server: &S3Server, config: &str, prefix: &str) -> String {
    on_endpoint(&server.endpoint(), config, prefix)
}

/// `config` with the blocks under `prefix` of the test bucket of the S3
/// server at `endpoint` (signed with the test keys; moto takes any).
pub(crate) fn on_endpoint(endpoint: &str, config: &str, prefix: &str) -> String {
    let storage = format!("[storage]\n{}", store_keys(endpoint, prefix));
    match config.split_once("[storage]\n") {
        Some((before, after)) => format!("{before}{storage}{after}"),
        None => format!("{config}\n{storage}"),
    }
}

/// `object_store` and `object_store_options` lines for `prefix` of the
/// test bucket of the S3 server at `endpoint`.
fn store_keys(endpoint: &str, prefix: &str) -> String {
    format!(
        "object_store = \"s3://{BUCKET}/{prefix}\"\n\
         object_store_options = {{ aws_endpoint_url = \"{endpoint}\", aws_access_key_id = \"{ACCESS_KEY}\", \
         aws_secret_access_key = \"{SECRET_KEY}\", aws_region = \"{REGION}\", aws_allow_http = \"true\" }}\n"
    )
}

/// [`store_keys`] for a fresh prefix of this process's S3 test server.
pub(crate) fn fresh_store_keys() -> Result<String> {
    let (server, _) = S3.as_ref().map_err(|e| anyhow!("S3 test server: {e}"))?;
    let (prefix, _) = fresh_prefix()?;
    Ok(store_keys(&server.endpoint(), &prefix))
}

/// Keys of the blocks `blocks.remote` of `db_dir` names.
pub(crate) fn manifest_keys(db_dir: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(db_dir.join("blocks.remote"))?;
    let mut lines = text.lines();
    if !lines
        .next()
        .is_some_and(|h| h.starts_with("sundial blocks 1 s3://"))
    {
        bail!("not a manifest: {text}");
    }
    lines
        .map(|l| {
            l.rsplit(' ')
                .next()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("bad line {l}"))
        })
        .collect()
}

pub(crate) fn objects(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sdb"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill9_during_uploads_and_compactions_on_s3_loses_no_acknowledged_point() -> Result<()> {
    let (prefix, root) = fresh_prefix()?;
    let tmp = kill_during_stream(&[], Some(&on_s3(FLUSHY, &prefix)?), T0)?;
    let db_dir = tmp.path().join("data").join("db").join("default");
    let named = manifest_keys(&db_dir)?;
    let stored = objects(&root.join("default"));
    assert!(!named.is_empty(), "the rounds flushed blocks to the store");
    let missing: Vec<&String> = named.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "the manifest names objects the bucket lacks: {missing:?}"
    );
    let local = std::fs::read_dir(&db_dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sdb"))
        .count();
    assert_eq!(local, 0, "every block went to the store");
    Ok(())
}

/// Writes the same data through OpenTSDB (HTTP and telnet) and Baidu.
pub(crate) fn write_everything(s: &TestServer) -> Result<()> {
    for batch in 0..40i64 {
        let body: Vec<Value> = (0..50i64)
            .map(|i| {
                let host = format!("h{}", i % 5);
                let t = T0 + (batch * 50 + i) * 10;
                point("s3.cpu", t, json!(batch * 100 + i), &[("host", &host)])
            })
            .collect();
        let (status, text) = s.post("/api/put", &Value::Array(body).to_string())?;
        if status != 204 {
            bail!("put answered {status}: {text}");
        }
    }
    let mut telnet = s.telnet()?;
    for i in 0..100i64 {
        telnet.send(&format!(
            "put s3.mem {} {}.5 host=h{}\n",
            T0 + i * 60,
            i,
            i % 3
        ))?;
    }
    let r = write(s, D1)?;
    if r.status != 204 {
        bail!("Baidu write answered {r:?}");
    }
    // Telnet answers nothing on success: a query sees its last point.
    let last = format!("/api/query?start={T0}&end={}&m=sum:s3.mem", T0 + 6000);
    for _ in 0..200 {
        let (status, text) = s.get(&last)?;
        if status == 200 && text.contains(&format!("\"{}\"", T0 + 99 * 60)) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    bail!("telnet points never became visible")
}

/// The answers of a fixed set of queries of every API and SQL.
pub(crate) fn answers(s: &TestServer) -> Result<Vec<Value>> {
    let end = T0 + 40 * 50 * 10;
    let mut out = Vec::new();
    for m in [
        "none:s3.cpu{host=h1}",
        "avg:1m-avg:s3.cpu{host=*}",
        "max:10m-max-zero:s3.cpu",
        "sum:rate:s3.mem",
        "count:5m-count:s3.mem{host=*}",
    ] {
        out.push(s.get_json(&format!("/api/query?start={T0}&end={end}&m={m}"))?);
    }
    out.push(s.get_json("/api/query/last?timeseries=s3.cpu%7Bhost%3Dh2%7D")?);
    let range = json!({"start": 1_500_000_000_000i64, "end": 1_500_000_600_000i64});
    for query in [
        json!({"metric": "cpu_idle", "filters": range}),
        json!({"metric": "cpu_idle", "filters": range, "groupBy": [{"name": "Tag", "tags": ["host"]}],
               "aggregators": [{"name": "Sum", "sampling": "5 minutes"}]}),
    ] {
        let r = put_query(s, &q(query))?;
        if r.status != 200 {
            bail!("Baidu query answered {r:?}");
        }
        out.push(serde_json::from_str(&r.body)?);
    }
    let sql =
        "select host, count(*) as n, sum(value) as s from cpu_idle group by host order by host";
    let r = crate::baidu::get(
        s,
        &format!("/v1/row?sql={}", crate::baidu::percent_encode(sql)),
    )?;
    if r.status != 200 {
        bail!("SQL answered {r:?}");
    }
    out.push(serde_json::from_str(&r.body)?);
    Ok(out)
}

#[test]
fn answers_on_s3_equal_answers_on_local_blocks_across_compaction_and_restart() -> Result<()> {
    let (prefix, root) = fresh_prefix()?;
    let tmp = tempfile::tempdir()?;
    let small = "[storage]\nwal_segment_bytes = 8192\nflush_wal_bytes = 16384\ncompaction_min_blocks = 1000\n";
    let local_cfg = tmp.path().join("local.toml");
    let s3_cfg = tmp.path().join("s3.toml");
    std::fs::write(&local_cfg, small)?;
    std::fs::write(&s3_cfg, on_s3(small, &prefix)?)?;
    let start = |name: &str, cfg: &Path| {
        TestServer::spawn_with(
            &tmp.path().join(name),
            &["--config", cfg.to_str().unwrap_or_default()],
        )
    };
    let (local, remote) = (start("local", &local_cfg)?, start("s3", &s3_cfg)?);
    write_everything(&local)?;
    write_everything(&remote)?;
    let before = answers(&local)?;
    assert_eq!(answers(&remote)?, before, "answers before compaction");
    assert!(
        !objects(&root.join("default")).is_empty(),
        "small flush thresholds put blocks in the bucket"
    );
    for s in [&local, &remote] {
        let (status, text) = s.post("/admin/compact", "")?;
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(answers(&remote)?, before, "answers after compaction");
    drop((local, remote));
    let remote = start("s3", &s3_cfg)?;
    assert_eq!(answers(&remote)?, before, "answers after a restart");
    let db_dir = tmp.path().join("s3").join("db").join("default");
    assert_eq!(
        manifest_keys(&db_dir)?,
        objects(&root.join("default")),
        "after a start, the bucket holds exactly the manifest's blocks"
    );
    drop(remote);
    // `check` reads every chunk from the bucket, and names a damaged one.
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sundial"))
            .args([
                "check",
                "--config",
                s3_cfg.to_str().unwrap_or_default(),
                "--data-dir",
            ])
            .arg(tmp.path().join("s3"))
            .output()
    };
    let out = check()?;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("; 0 damaged"),
        "{report}"
    );
    let key = manifest_keys(&db_dir)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no block"))?;
    let object = root.join("default").join(&key);
    let mut bytes = std::fs::read(&object)?;
    bytes[12] ^= 0xff;
    std::fs::write(&object, &bytes)?;
    let out = check()?;
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("DAMAGED  s3://{BUCKET}/{prefix}/default/{key}")),
        "{report}"
    );
    Ok(())
}

#[test]
fn an_unreachable_store_fills_the_head_then_writes_wait_until_it_is_back() -> Result<()> {
    let s3_dir = tempfile::tempdir()?;
    let s3 = S3Server::start(s3_dir.path(), &[BUCKET])?;
    let addr = s3.addr;
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("sundial.toml");
    let small_head = "[storage]\nmax_head_points = 10000\nwal_segment_bytes = 67108864\n\
                      flush_wal_bytes = 1073741824\n";
    std::fs::write(&cfg, on_server(&s3, small_head, "down"))?;
    let s = TestServer::spawn_with(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap_or_default()],
    )?;
    let batch = |from: i64| -> String {
        let body: Vec<Value> = (from..from + 5000)
            .map(|i| point("outage", T0 + i, json!(i), &[("h", "x")]))
            .collect();
        Value::Array(body).to_string()
    };
    let status = |s: &TestServer| -> Result<Value> {
        Ok(s.get_json("/admin/storage")?["databases"]["default"].clone())
    };
    assert_eq!(s.post("/api/put", &batch(0))?.0, 204);
    assert_eq!(s.post("/admin/compact", "")?.0, 200);
    let up = status(&s)?;
    assert_eq!(up["remote_blocks"], 1, "{up}");
    assert_eq!(up["object_store"], format!("s3://{BUCKET}/down/default"));
    drop(s3);
    // The store is gone: writes land in the WAL and the head...
    assert_eq!(s.post("/api/put", &batch(5000))?.0, 204);
    assert_eq!(s.post("/admin/compact", "")?.0, 500);
    let down = status(&s)?;
    assert!(
        down["flush_failure"]
            .as_str()
            .is_some_and(|f| f.contains("upload")),
        "{down}"
    );
    assert_eq!(down["head_points"], 5000);
    assert_eq!(s.post("/api/put", &batch(10_000))?.0, 204);
    // ...until the head is full: then they are refused, with a hint.
    match ureq::post(&s.url("/api/put")).send_string(&batch(15_000)) {
        Err(ureq::Error::Status(503, r)) => assert_eq!(r.header("Retry-After"), Some("1")),
        other => bail!("expected 503, got {other:?}"),
    }
    // The store is back on its address: the next flush empties the head.
    let _s3 = S3Server::start_at(s3_dir.path(), &[BUCKET], addr)?;
    assert_eq!(s.post("/admin/compact", "")?.0, 200);
    let back = status(&s)?;
    assert_eq!(back["head_points"], 0, "{back}");
    assert!(back["flush_failure"].is_null(), "{back}");
    assert_eq!(s.post("/api/put", &batch(15_000))?.0, 204);
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={}&m=none:outage",
        T0 + 20_000
    ))?;
    let dps = got[0]["dps"]
        .as_object()
        .ok_or_else(|| anyhow!("no dps: {got}"))?;
    assert_eq!(dps.len(), 20_000, "every acknowledged point");
    for (t, v) in dps {
        assert_eq!(v.as_i64(), Some(t.parse::<i64>()? - T0), "value at {t}");
    }
    Ok(())
}
