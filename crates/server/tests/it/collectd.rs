//! A real collector: Debian's collectd with its write_tsdb plugin pointed at
//! the server's telnet protocol writes for a few seconds; its metrics are
//! then read back through `/api/suggest` and `/api/query`. `scripts/test`
//! installs collectd (package collectd-core) and exports `SUNDIAL_COLLECTD`.

use crate::harness::TestServer;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MEMORY: [&str; 6] = [
    "memory.used.memory",
    "memory.free.memory",
    "memory.buffered.memory",
    "memory.cached.memory",
    "memory.slab_recl.memory",
    "memory.slab_unrecl.memory",
];

#[test]
fn collectd_write_tsdb_reaches_the_query_api() -> Result<()> {
    let collectd = crate::harness::installed_client("SUNDIAL_COLLECTD")?;
    let s = TestServer::spawn()?;
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("collectd.conf");
    std::fs::write(
        &conf,
        format!(
            "Hostname \"sundial-it\"\nFQDNLookup false\nInterval 1\nBaseDir \"{base}\"\n\
             PIDFile \"{base}/collectd.pid\"\nPluginDir \"/usr/lib/collectd\"\n\
             TypesDB \"/usr/share/collectd/types.db\"\nLoadPlugin load\nLoadPlugin memory\n\
             LoadPlugin write_tsdb\n<Plugin write_tsdb>\n  <Node \"sundial\">\n    \
             Host \"{host}\"\n    Port \"{port}\"\n    HostTags \"source=collectd\"\n  \
             </Node>\n</Plugin>\n",
            base = dir.path().display(),
            host = s.addr.ip(),
            port = s.addr.port(),
        ),
    )?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // Bounded: collectd runs for five seconds at a one-second interval.
    let mut child = Command::new(&collectd)
        .arg("-f")
        .arg("-C")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {collectd}"))?;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill()?;
    child.wait()?;
    // Writes go over telnet without acknowledgement: wait until they show.
    let mut metrics = Vec::new();
    for _ in 0..50 {
        metrics = s
            .get_json("/api/suggest?type=metrics&q=memory.&max=100")?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if MEMORY.iter().all(|m| metrics.iter().any(|x| x == m)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for m in MEMORY {
        if !metrics.iter().any(|x| x == m) {
            bail!("collectd metric {m} missing; got {metrics:?}");
        }
    }
    // collectd's memory plugin splits MemTotal exactly into these six
    // gauges, so at every sample they must add up to /proc/meminfo's total.
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let total_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("MemTotal")?;
    let mut per_ts: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for m in MEMORY {
        let got = s.get_json(&format!(
            "/api/query?start={}&m=sum:{m}{{fqdn=sundial-it}}",
            started.saturating_sub(5)
        ))?;
        let dps = got[0]["dps"].as_object().cloned().unwrap_or_default();
        for (ts, v) in dps {
            let e = per_ts.entry(ts).or_default();
            e.0 += 1;
            e.1 += v.as_f64().unwrap_or(f64::NAN);
        }
        assert_eq!(got[0]["tags"]["source"], Value::from("collectd"));
    }
    let complete: Vec<f64> = per_ts
        .values()
        .filter(|(n, _)| *n == MEMORY.len())
        .map(|(_, sum)| *sum)
        .collect();
    assert!(complete.len() >= 2, "samples: {per_ts:?}");
    for sum in complete {
        assert!(
            (sum - total_kb * 1024.0).abs() < 1.0,
            "{sum} vs {}",
            total_kb * 1024.0
        );
    }
    Ok(())
}
