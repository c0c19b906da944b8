//! Acknowledged writes survive `kill -9`, clean shutdown and flushes.

use crate::harness::{TestServer, point};
use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: i64 = 4;
const BATCH: i64 = 50;
pub(crate) const T0: i64 = 1_600_000_000;
/// Tiny thresholds: kills land in flushes and merges as often as in
/// plain appends.
pub(crate) const FLUSHY: &str = "[storage]\nwal_segment_bytes = 8192\nflush_wal_bytes = 16384\n\
     compaction_min_blocks = 2\nmaintenance_interval_secs = 1\n";

/// What one writer thread had acknowledged: (timestamp s, value).
type Acked = Arc<Mutex<Vec<Vec<(i64, i64)>>>>;

/// Streams batches from several threads until `stop`; records every batch
/// answered 204. Bounded by count and time.
fn stream_writes(
    s: &TestServer,
    t0: i64,
    stop: Arc<AtomicBool>,
) -> (Acked, Vec<std::thread::JoinHandle<()>>) {
    let acked: Acked = Arc::new(Mutex::new(vec![Vec::new(); WRITERS as usize]));
    let handles = (0..WRITERS)
        .map(|w| {
            let url = s.url("/api/put");
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let started = Instant::now();
                for batch in 0..2000i64 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(30) {
                        return;
                    }
                    let pts: Vec<(i64, i64)> = (0..BATCH)
                        .map(|i| (t0 + batch * BATCH + i, batch * 1000 + i + w))
                        .collect();
                    let body: Vec<Value> = pts
                        .iter()
                        .map(|(t, v)| {
                            point("crash.test", *t, json!(v), &[("writer", &w.to_string())])
                        })
                        .collect();
                    match agent
                        .post(&url)
                        .send_string(&Value::Array(body).to_string())
                    {
                        Ok(r) if r.status() == 204 => {
                            if let Ok(mut a) = acked.lock() {
                                a[w as usize].extend(pts);
                            }
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    (acked, handles)
}

fn stored(s: &TestServer, t0: i64, writer: i64) -> Result<BTreeMap<i64, i64>> {
    let (status, text) = s.get(&format!(
        "/api/query?start={t0}&end={}&m=none:crash.test{{writer={writer}}}",
        t0 + 2000 * BATCH
    ))?;
    if status == 400 {
        return Ok(BTreeMap::new());
    }
    integer_dps(&serde_json::from_str(&text)?)
}

/// The `dps` of every result of a query answer, as integers.
fn integer_dps(answer: &Value) -> Result<BTreeMap<i64, i64>> {
    let mut out = BTreeMap::new();
    for r in answer.as_array().into_iter().flatten() {
        for (t, val) in r["dps"].as_object().into_iter().flatten() {
            let v = val
                .as_i64()
                .ok_or_else(|| anyhow!("not an integer: {val}"))?;
            out.insert(t.parse()?, v);
        }
    }
    Ok(out)
}

/// Rounds of writes cut by `kill -9`; after each restart every
/// acknowledged point is checked. Returns the directory it used.
pub(crate) fn kill_during_stream(
    extra: &[&str],
    config: Option<&str>,
    t0: i64,
) -> Result<tempfile::TempDir> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    if let Some(c) = config {
        let path = tmp.path().join("sundial.toml");
        std::fs::write(&path, c)?;
        args.push("--config".into());
        args.push(path.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for round in 0..5 {
        let mut s = TestServer::spawn_with(&dir, &args)?;
        let before: Vec<BTreeMap<i64, i64>> = (0..WRITERS)
            .map(|w| stored(&s, t0, w))
            .collect::<Result<_>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (acked, handles) = stream_writes(&s, t0, stop.clone());
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        s.kill9()?;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| anyhow!("writer panicked"))?;
        }
        let s = TestServer::spawn_with(&dir, &args)?;
        let acked = acked.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        let mut total = 0;
        for w in 0..WRITERS {
            let got = stored(&s, t0, w)?;
            for (t, v) in &acked[w as usize] {
                assert_eq!(
                    got.get(t),
                    Some(v),
                    "round {round}: writer {w} lost acknowledged point at {t}"
                );
                total += 1;
            }
            // Data from earlier rounds is still there (later rounds rewrite
            // the same timestamps with the same values).
            for (t, v) in &before[w as usize] {
                assert_eq!(
                    got.get(t),
                    Some(v),
                    "round {round}: earlier point at {t} lost"
                );
            }
        }
        assert!(
            total > 0,
            "round {round}: nothing was acknowledged before the kill"
        );
    }
    Ok(tmp)
}

#[test]
fn kill9_during_writes_loses_no_acknowledged_point() -> Result<()> {
    kill_during_stream(&[], None, T0).map(drop)
}

#[test]
fn kill9_during_flushes_and_compactions_loses_no_acknowledged_point() -> Result<()> {
    kill_during_stream(&[], Some(FLUSHY), T0).map(drop)
}

#[test]
fn kill9_while_closed_partitions_flush_loses_no_acknowledged_point() -> Result<()> {
    // Points from four hours ago into the future: the first maintenance
    // pass of each start flushes the closed partitions and logs the open
    // and future ones again, so kills land around those re-logs too.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    kill_during_stream(
        &[],
        Some(
            "[storage]\nwal_segment_bytes = 65536\nflush_wal_bytes = 8388608\n\
             partition_grace_secs = 0\nmaintenance_interval_secs = 1\n",
        ),
        i64::try_from(now)? - 4 * 3600,
    )
    .map(drop)
}

#[test]
fn wal_stays_bounded_and_clean_shutdown_keeps_everything() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("sundial.toml");
    std::fs::write(
        &cfg,
        "[storage]\nwal_segment_bytes = 8192\nflush_wal_bytes = 32768\n",
    )?;
    let args = ["--config", cfg.to_str().unwrap_or_default()];
    let mut s = TestServer::spawn_with(&dir, &args)?;
    let mut expected = BTreeMap::new();
    for batch in 0..200i64 {
        let body: Vec<Value> = (0..50i64)
            .map(|i| {
                let t = T0 + batch * 50 + i;
                let v = (t * 7919) % 1000;
                expected.insert(t, v);
                point("bounded", t, json!(v), &[("h", "x")])
            })
            .collect();
        assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    }
    // Let the background flusher catch up with the last threshold crossing.
    std::thread::sleep(Duration::from_millis(500));
    let db_dir = dir.join("db").join("default");
    let wal_bytes: u64 = std::fs::read_dir(&db_dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wal-"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    // Flushes keep the WAL near the flush threshold (32 KiB) whatever was written.
    assert!(
        wal_bytes < 2 * 32768,
        "WAL holds {wal_bytes} bytes after flushes"
    );
    assert!(
        std::fs::read_dir(&db_dir)?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("block-"))
    );
    let status = s.terminate()?;
    assert!(status.success(), "exit status {status}");
    let s = TestServer::spawn_with(&dir, &args)?;
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={}&m=none:bounded",
        T0 + 10_000
    ))?;
    assert_eq!(integer_dps(&got)?, expected);
    Ok(())
}

#[test]
fn forced_compaction_merges_blocks_and_keeps_every_point() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("sundial.toml");
    std::fs::write(
        &cfg,
        "[storage]\nwal_segment_bytes = 8192\nflush_wal_bytes = 16384\ncompaction_min_blocks = 1000\n",
    )?;
    let args = ["--config", cfg.to_str().unwrap_or_default()];
    let s = TestServer::spawn_with(&dir, &args)?;
    let mut expected = BTreeMap::new();
    for batch in 0..100i64 {
        let body: Vec<Value> = (0..50i64)
            .map(|i| {
                // Overwrite earlier timestamps now and then: the newest must win.
                let t = T0 + (batch * 50 + i) % 3000;
                let v = batch * 100 + i;
                expected.insert(t, v);
                point("compacted", t, json!(v), &[("h", "x")])
            })
            .collect();
        assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    }
    let blocks = |d: &std::path::Path| -> Result<usize> {
        Ok(std::fs::read_dir(d.join("db").join("default"))?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("block-"))
            .count())
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        blocks(&dir)? > 1,
        "the small flush threshold should have made several blocks"
    );
    let (status, _) = s.post("/admin/compact", "")?;
    assert_eq!(status, 200);
    assert_eq!(blocks(&dir)?, 1);
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={}&m=none:compacted",
        T0 + 3000
    ))?;
    assert_eq!(integer_dps(&got)?, expected);
    Ok(())
}

#[test]
fn corrupt_block_is_reported_with_its_path_not_served() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut s = TestServer::spawn_with(&dir, &[])?;
    let body: Vec<Value> = (0..100i64)
        .map(|i| point("corrupt.me", T0 + i, json!(i), &[("h", "x")]))
        .collect();
    assert_eq!(s.post("/api/put", &Value::Array(body).to_string())?.0, 204);
    assert!(s.terminate()?.success()); // the clean stop flushes into a block
    let block = std::fs::read_dir(dir.join("db").join("default"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("block-"))
        })
        .ok_or_else(|| anyhow!("no block after a clean stop"))?;
    let clean = std::fs::read(&block)?;
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sundial"))
            .args(["check", "--data-dir"])
            .arg(&dir)
            .output()
    };
    let out = check()?;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("1 blocks") && report.contains("; 0 damaged"),
        "{report}"
    );

    // Damage inside a chunk: chunks are read (and checked) when queried,
    // so the server starts and the query fails instead of answering; the
    // check names the block.
    let mut bytes = clean.clone();
    bytes[12] ^= 0xff;
    std::fs::write(&block, &bytes)?;
    let out = check()?;
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("DAMAGED  {}", block.display())),
        "{report}"
    );
    let s = TestServer::spawn_with(&dir, &[])?;
    let (status, text) = s.get(&format!(
        "/api/query?start={T0}&end={}&m=none:corrupt.me",
        T0 + 100
    ))?;
    assert_eq!(status, 500, "{text}");
    drop(s);

    // Damage in the footer: the index cannot be read, so the server refuses
    // to start and names the file.
    let mut bytes = clean;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&block, &bytes)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "server started on a corrupt block");
    assert!(stderr.contains(&block.display().to_string()), "{stderr}");
    Ok(())
}

#[test]
fn full_head_answers_503_with_a_retry_hint_and_recovers_after_a_flush() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("sundial.toml");
    std::fs::write(
        &cfg,
        "[storage]\nmax_head_points = 10000\nwal_segment_bytes = 67108864\nflush_wal_bytes = 1073741824\n",
    )?;
    let s = TestServer::spawn_with(&dir, &["--config", cfg.to_str().unwrap_or_default()])?;
    let batch = |from: i64| -> String {
        let body: Vec<Value> = (from..from + 5000)
            .map(|i| point("full", T0 + i, json!(i), &[("h", "x")]))
            .collect();
        Value::Array(body).to_string()
    };
    assert_eq!(s.post("/api/put", &batch(0))?.0, 204);
    assert_eq!(s.post("/api/put", &batch(5000))?.0, 204);
    let res = ureq::post(&s.url("/api/put")).send_string(&batch(10_000));
    match res {
        Err(ureq::Error::Status(503, r)) => {
            assert_eq!(r.header("Retry-After"), Some("1"));
            let v: Value = serde_json::from_str(&r.into_string()?)?;
            assert_eq!(v["error"]["message"], "Please throttle writes");
        }
        other => anyhow::bail!("expected 503, got {other:?}"),
    }
    // Nothing accepted before was lost; a flush makes room again.
    let got = s.get_json(&format!(
        "/api/query?start={T0}&end={}&m=none:full",
        T0 + 20_000
    ))?;
    assert_eq!(got[0]["dps"].as_object().map(|m| m.len()), Some(10_000));
    assert_eq!(s.post("/admin/compact", "")?.0, 200);
    assert_eq!(s.post("/api/put", &batch(10_000))?.0, 204);
    Ok(())
}
