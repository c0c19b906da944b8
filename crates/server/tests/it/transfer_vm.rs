//! Moving over from VictoriaMetrics: the real `victoria-metrics` (Debian's
//! package; `SUNDIAL_VICTORIA` names it, `scripts/test` installs it) takes
//! points, its `/api/v1/export` file goes through `sundial import`, and
//! Sundial answers a sum over the series as VictoriaMetrics does. Then
//! bench/long.sh's path, small: the generated import lines go to both,
//! and its two queries answer alike (rollup tiers on, and raw).

use crate::harness::{TestServer, installed_client};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Victoria {
    child: Child,
    url: String,
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_victoria(dir: &std::path::Path) -> Result<Victoria> {
    let exe = installed_client("SUNDIAL_VICTORIA")?;
    // Its port is free when picked; another process may take it before
    // VictoriaMetrics binds it, and then it exits: a fresh port is tried.
    // No log line tells that it listens (it logs the address before it
    // binds it): its health endpoint does.
    for _ in 0..4 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&exe)
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start victoria-metrics")?;
        let mut vm = Victoria {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if vm.child.try_wait()?.is_some() {
                break;
            }
            if ureq::get(&format!("{}/health", vm.url)).call().is_ok() {
                return Ok(vm);
            }
            if Instant::now() > deadline {
                bail!("victoria-metrics did not become healthy");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    bail!("victoria-metrics exited at start four times")
}

/// `sundial import --format vm-jsonl FILE` into `s`.
fn import_vm_jsonl(s: &TestServer, file: &std::path::Path) -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args(["import", "--url", &format!("http://{}", s.addr)])
        .args(["--format", "vm-jsonl"])
        .arg(file)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `sum(metric)` at each step, as `(seconds, value)`.
fn vm_sum(vm: &Victoria, metric: &str, start_s: i64, end_s: i64) -> Result<Vec<(i64, f64)>> {
    let answer = vm_range(vm, &format!("sum({metric})"), (start_s, end_s), 60)?;
    let values = answer["data"]["result"][0]["values"]
        .as_array()
        .with_context(|| format!("{answer}"))?;
    vm_values(values)
}

/// A `query_range` answer, uncached.
fn vm_range(vm: &Victoria, query: &str, (start_s, end_s): (i64, i64), step: i64) -> Result<Value> {
    Ok(serde_json::from_str(
        &ureq::get(&format!("{}/api/v1/query_range", vm.url))
            .query("query", query)
            .query("start", &start_s.to_string())
            .query("end", &end_s.to_string())
            .query("step", &step.to_string())
            .query("nocache", "1")
            .call()?
            .into_string()?,
    )?)
}

/// A result's `[seconds, "value"]` pairs.
fn vm_values(values: &[Value]) -> Result<Vec<(i64, f64)>> {
    values
        .iter()
        .map(|p| {
            let t = p[0].as_i64().context("time")?;
            let v: f64 = p[1].as_str().context("value")?.parse()?;
            Ok((t, v))
        })
        .collect()
}

#[test]
fn a_victoriametrics_export_imports_to_the_same_answers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let vm = start_victoria(&dir.path().join("vm"))?;
    // Three hosts, one point a minute for two hours, aligned to the step.
    let start_s = 1_700_000_040i64;
    let mut lines = String::new();
    for host in 0..3i64 {
        let timestamps: Vec<i64> = (0..120).map(|i| (start_s + i * 60) * 1000).collect();
        let values: Vec<f64> = (0..120)
            .map(|i| ((i * 7 + host * 13) % 50) as f64 / 4.0)
            .collect();
        let line = json!({"metric": {"__name__": "vmload", "host": format!("h{host}")},
            "values": values, "timestamps": timestamps});
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    ureq::post(&format!("{}/api/v1/import", vm.url)).send_string(&lines)?;
    ureq::get(&format!("{}/internal/force_flush", vm.url)).call()?;
    let end_s = start_s + 119 * 60;
    // VictoriaMetrics' own export file, as a user would fetch it.
    let export = ureq::get(&format!("{}/api/v1/export", vm.url))
        .query("match[]", "{__name__=\"vmload\"}")
        .call()?
        .into_string()?;
    ensure!(export.lines().count() == 3, "{export}");
    let file = dir.path().join("vm.jsonl");
    std::fs::write(&file, &export)?;

    let s = TestServer::spawn()?;
    import_vm_jsonl(&s, &file)?;

    let want = vm_sum(&vm, "vmload", start_s, end_s)?;
    ensure!(want.len() == 120, "{want:?}");
    let answer = s.get_json(&format!(
        "/api/query?start={}&end={}&m=sum:vmload",
        start_s, end_s
    ))?;
    let dps = answer[0]["dps"].as_object().context("dps")?;
    let got: Vec<(i64, f64)> = dps
        .iter()
        .map(|(t, v)| Ok((t.parse()?, v.as_f64().context("value")?)))
        .collect::<Result<_>>()?;
    assert_eq!(got.len(), want.len());
    for ((t1, v1), (t2, v2)) in got.iter().zip(&want) {
        assert_eq!(t1, t2);
        assert!(
            (v1 - v2).abs() < 1e-9,
            "at {t1}: sundial {v1}, victoria {v2}"
        );
    }
    Ok(())
}

/// An OpenTSDB answer's `dps`, as `(seconds, value)`.
fn dps_of(series: &Value) -> Result<Vec<(i64, f64)>> {
    let dps = series["dps"].as_object().context("dps")?;
    dps.iter()
        .map(|(t, v)| Ok((t.parse()?, v.as_f64().context("value")?)))
        .collect()
}

fn assert_close(got: &[(i64, f64)], want: &[(i64, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for ((t1, v1), (t2, v2)) in got.iter().zip(want) {
        assert_eq!(t1, t2, "{what}");
        assert!(
            (v1 - v2).abs() <= 1e-9 * v2.abs().max(1.0),
            "{what} at {t1}: {v1} vs {v2}"
        );
    }
}

#[test]
fn the_long_profiles_lines_answer_alike_in_both() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let vm = start_victoria(&dir.path().join("vm"))?;
    // bench/long.sh's shape, small: three hosts, two days at 10 minutes,
    // from 30 s past a UTC midnight so no point sits on a bucket's edge
    // (VictoriaMetrics' windows are open on the left, OpenTSDB's on the
    // right).
    let day0 = 1_700_006_400i64;
    let set = sundial_testkit::Devops {
        hosts: 3,
        start_s: day0 + 30,
        interval_s: 600,
        points: 2 * 144,
        batch: 0,
        seed: 42,
    };
    let mut lines = Vec::new();
    set.write_vm_jsonl(&mut lines, 144)?;
    ureq::post(&format!("{}/api/v1/import", vm.url)).send_bytes(&lines)?;
    ureq::get(&format!("{}/internal/force_flush", vm.url)).call()?;
    let file = dir.path().join("long.jsonl");
    std::fs::write(&file, &lines)?;

    let s = TestServer::spawn_with_config("[storage]\nrollup_secs = [3600]\n")?;
    let url = format!("http://{}", s.addr);
    import_vm_jsonl(&s, &file)?;
    // Compacted, so the chunks carry the hourly tier (queries below may
    // take it; crates/query/src/series_query/rollup_tests.rs shows they do).
    ureq::post(&format!("{url}/admin/compact")).call()?;

    let end = day0 + 2 * 86_400 - 1;
    let range = format!("start={day0}&end={end}");
    // Hourly average per host: OpenTSDB's bucket h is VictoriaMetrics'
    // window ending at h + 1 h.
    let hourly = s.get_json(&format!(
        "/api/query?{range}&m=avg:1h-avg:cpu.usage_user{{hostname=*}}"
    ))?;
    let vm_hourly = vm_range(
        &vm,
        "avg by (hostname) (avg_over_time({__name__=\"cpu.usage_user\"}[1h]))",
        (day0 + 3600, end + 1),
        3600,
    )?;
    let vm_series = vm_hourly["data"]["result"].as_array().context("result")?;
    ensure!(vm_series.len() == 3 && hourly.as_array().map(Vec::len) == Some(3));
    for series in hourly.as_array().into_iter().flatten() {
        let host = &series["tags"]["hostname"];
        let theirs = vm_series
            .iter()
            .find(|v| &v["metric"]["hostname"] == host)
            .with_context(|| format!("{host} in {vm_hourly}"))?;
        let want: Vec<(i64, f64)> = vm_values(theirs["values"].as_array().context("values")?)?
            .into_iter()
            .map(|(t, v)| (t - 3600, v))
            .collect();
        assert_eq!(want.len(), 48);
        assert_close(&dps_of(series)?, &want, &format!("hourly {host}"));
    }
    // Daily max over every host, and the same from raw points through /v1.
    let daily = s.get_json(&format!("/api/query?{range}&m=max:1d-max:cpu.usage_user"))?;
    let vm_daily = vm_range(
        &vm,
        "max(max_over_time({__name__=\"cpu.usage_user\"}[1d]))",
        (day0 + 86_400, end + 1),
        86_400,
    )?;
    let want: Vec<(i64, f64)> = vm_values(
        vm_daily["data"]["result"][0]["values"]
            .as_array()
            .with_context(|| format!("{vm_daily}"))?,
    )?
    .into_iter()
    .map(|(t, v)| (t - 86_400, v))
    .collect();
    assert_eq!(want.len(), 2);
    assert_close(&dps_of(&daily[0])?, &want, "daily max");
    let body = json!({"queries": [{"metric": "cpu.usage_user",
        "filters": {"start": day0 * 1000, "end": end * 1000 + 999},
        "aggregators": [{"name": "Max", "sampling": "1 day"}]}], "disablePresampling": true});
    let raw: Value = serde_json::from_str(
        &ureq::put(&format!("{url}/v1/datapoint?query"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())?
            .into_string()?,
    )?;
    let rows = raw["results"][0]["groups"][0]["values"]
        .as_array()
        .with_context(|| format!("{raw}"))?;
    let got: Vec<(i64, f64)> = rows
        .iter()
        .map(|r| {
            Ok((
                r[0].as_i64().context("time")? / 1000,
                r[1].as_f64().context("value")?,
            ))
        })
        .collect::<Result<_>>()?;
    assert_close(&got, &want, "raw daily max through /v1");
    Ok(())
}
