//! Moving over from VictoriaMetrics: the real `victoria-metrics` (Debian's
//! package; `SUNDIAL_VICTORIA` names it, `scripts/test` installs it) takes
//! points, its `/api/v1/export` file goes through `sundial import`, and
//! Sundial answers a sum over the series as VictoriaMetrics does.

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
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(exe)
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=100y")
        .arg("-search.disableCache")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start victoria-metrics")?;
    let vm = Victoria {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready when its health endpoint answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ureq::get(&format!("{}/health", vm.url)).call().is_ok() {
            return Ok(vm);
        }
        if Instant::now() > deadline {
            bail!("victoria-metrics did not become healthy");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sum(metric)` at each step, as `(seconds, value)`.
fn vm_sum(vm: &Victoria, metric: &str, start_s: i64, end_s: i64) -> Result<Vec<(i64, f64)>> {
    let answer: Value = serde_json::from_str(
        &ureq::get(&format!("{}/api/v1/query_range", vm.url))
            .query("query", &format!("sum({metric})"))
            .query("start", &start_s.to_string())
            .query("end", &end_s.to_string())
            .query("step", "60")
            .query("nocache", "1")
            .call()?
            .into_string()?,
    )?;
    let values = answer["data"]["result"][0]["values"]
        .as_array()
        .with_context(|| format!("{answer}"))?;
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
    let out = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args([
            "import",
            "--url",
            &format!("http://{}", s.addr),
            "--format",
            "vm-jsonl",
        ])
        .arg(&file)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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
