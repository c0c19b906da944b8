//! Dev-only data generators: a TSBS-devops-like data set (hosts × cpu
//! metrics, ten tags per series, fixed interval) rendered as OpenTSDB
//! `/api/put` bodies, for benches and load tests; the crash loop that
//! kills a running server under writes and checks what it kept; the
//! overload driver; and the real servers tests run against (S3, moto,
//! Prometheus, PostgreSQL).

pub mod crashloop;
pub mod moto;
pub mod nats;
pub mod overload;
pub mod postgres;
pub mod prometheus;
pub mod s3;

/// Waits until `child` writes a line containing `ready` to its stderr
/// (which must be piped), killing it when that does not happen within
/// `timeout`. The rest of stderr keeps being drained. A child that exits
/// first is an [`Exited`] error carrying its last lines (a port another
/// process took meanwhile, say), so callers can tell it from a hang.
pub fn wait_for_stderr_line(
    child: &mut std::process::Child,
    ready: String,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc::RecvTimeoutError;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("the child's stderr is not piped"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = ready.clone();
    let last = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = last.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(());
            }
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
                let over = kept.len().saturating_sub(20);
                kept.drain(..over);
            }
        }
    });
    match rx.recv_timeout(timeout) {
        Ok(()) => Ok(()),
        Err(RecvTimeoutError::Disconnected) => {
            let _ = child.kill();
            let _ = child.wait();
            let lines = last.lock().map(|l| l.join("\n")).unwrap_or_default();
            Err(Exited { ready, lines }.into())
        }
        Err(RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            let lines = last.lock().map(|l| l.join("\n")).unwrap_or_default();
            anyhow::bail!(
                "no line {ready:?} on stderr within {timeout:?}; its last lines:\n{lines}"
            );
        }
    }
}

/// Spawns `command` with stdout discarded and stderr piped, and waits up
/// to a minute for a stderr line containing `ready` (see
/// [`wait_for_stderr_line`]).
pub fn spawn_until_ready(
    command: &mut std::process::Command,
    ready: String,
) -> anyhow::Result<std::process::Child> {
    use anyhow::Context;
    let name = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    wait_for_stderr_line(&mut child, ready, std::time::Duration::from_secs(60))
        .with_context(|| format!("{name} did not report that it is ready"))?;
    Ok(child)
}

/// Runs `start` on a free loopback port until it starts. Servers that take
/// a port rather than a listener get one released just before they bind
/// it; another process may take it in between, and then the server exits
/// at once ([`Exited`]): a fresh port is tried, three times at most.
pub fn on_free_port<T>(
    mut start: impl FnMut(u16) -> anyhow::Result<T>,
) -> anyhow::Result<(u16, T)> {
    let mut attempt = 0;
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        match start(port) {
            Ok(started) => return Ok((port, started)),
            Err(e) if attempt < 3 && e.root_cause().is::<Exited>() => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A child that closed its stderr (exited) before saying it was ready.
#[derive(Debug, thiserror::Error)]
#[error("exited before writing {ready:?}; its last lines:\n{lines}")]
pub struct Exited {
    ready: String,
    lines: String,
}

/// Shape of a generated data set.
#[derive(Debug, Clone)]
pub struct Devops {
    pub hosts: usize,
    /// First timestamp, seconds.
    pub start_s: i64,
    pub interval_s: i64,
    /// Points per series.
    pub points: usize,
    /// Points per request body.
    pub batch: usize,
    pub seed: u64,
}

/// The ten cpu fields of TSBS devops, as OpenTSDB metric names.
pub const CPU_METRICS: [&str; 10] = [
    "cpu.usage_user",
    "cpu.usage_system",
    "cpu.usage_idle",
    "cpu.usage_nice",
    "cpu.usage_iowait",
    "cpu.usage_irq",
    "cpu.usage_softirq",
    "cpu.usage_steal",
    "cpu.usage_guest",
    "cpu.usage_guest_nice",
];

const REGIONS: [&str; 3] = ["us-east-1", "eu-central-1", "ap-northeast-1"];
const OS: [&str; 3] = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"];
const SERVICES: [&str; 4] = ["6", "11", "18", "19"];

/// splitmix64: small, fast and deterministic; enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The ten tags of one host, TSBS style.
pub fn host_tags(host: usize) -> Vec<(String, String)> {
    vec![
        ("hostname".into(), format!("host_{host}")),
        ("region".into(), REGIONS[host % REGIONS.len()].into()),
        (
            "datacenter".into(),
            format!("{}a", REGIONS[host % REGIONS.len()]),
        ),
        ("rack".into(), (host % 97).to_string()),
        ("os".into(), OS[host % OS.len()].into()),
        (
            "arch".into(),
            if host.is_multiple_of(2) { "x64" } else { "x86" }.into(),
        ),
        ("team".into(), ["SF", "NYC", "LON", "CHI"][host % 4].into()),
        ("service".into(), SERVICES[host % SERVICES.len()].into()),
        ("service_version".into(), (host % 2).to_string()),
        (
            "service_environment".into(),
            ["production", "staging", "test"][host % 3].into(),
        ),
    ]
}

impl Devops {
    pub fn total_points(&self) -> usize {
        self.hosts * CPU_METRICS.len() * self.points
    }

    /// Request bodies in time order: each body holds consecutive points of
    /// all series at consecutive timestamps. Six metrics are 2-decimal
    /// random walks in [0, 100], four are integers.
    pub fn bodies(&self) -> Vec<String> {
        let series = self.hosts * CPU_METRICS.len();
        let mut rng = Rng::new(self.seed);
        let mut state: Vec<f64> = (0..series).map(|_| rng.next_f64() * 100.0).collect();
        let tag_json: Vec<String> = (0..self.hosts)
            .map(|h| {
                let pairs: Vec<String> = host_tags(h)
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                    .collect();
                format!("{{{}}}", pairs.join(","))
            })
            .collect();
        let mut bodies = Vec::new();
        let mut body = String::with_capacity(self.batch * 300);
        let mut in_body = 0usize;
        for step in 0..self.points {
            let ts = self.start_s + step as i64 * self.interval_s;
            for (s, value) in state.iter_mut().enumerate() {
                let (host, m) = (s / CPU_METRICS.len(), s % CPU_METRICS.len());
                *value = (*value + (rng.next_f64() - 0.5) * 4.0).clamp(0.0, 100.0);
                let text = if m < 6 {
                    format!("{:.2}", *value)
                } else {
                    format!("{}", value.round() as i64)
                };
                body.push(if in_body == 0 { '[' } else { ',' });
                body.push_str(&format!(
                    "{{\"metric\":\"{}\",\"timestamp\":{ts},\"value\":{text},\"tags\":{}}}",
                    CPU_METRICS[m], tag_json[host]
                ));
                in_body += 1;
                if in_body == self.batch {
                    body.push(']');
                    bodies.push(std::mem::take(&mut body));
                    in_body = 0;
                }
            }
        }
        if in_body > 0 {
            body.push(']');
            bodies.push(body);
        }
        bodies
    }

    /// Streams the data set to `out` as VictoriaMetrics `/api/v1/import`
    /// JSON lines (which `sundial import --format vm-jsonl` reads too): a
    /// line per series and `line_points` steps, all series of one span
    /// before the next span, so memory stays one value per series however
    /// long the set. The same kinds of random walks as [`Self::bodies`],
    /// from another draw order.
    pub fn write_vm_jsonl(
        &self,
        out: &mut impl std::io::Write,
        line_points: usize,
    ) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let series = self.hosts * CPU_METRICS.len();
        let mut rng = Rng::new(self.seed);
        // Whole hundredths: the decimal metrics' values, kept exact.
        let mut state: Vec<i64> = (0..series)
            .map(|_| (rng.next_f64() * 10_000.0) as i64)
            .collect();
        let heads: Vec<String> = (0..series)
            .map(|s| {
                let (host, m) = (s / CPU_METRICS.len(), s % CPU_METRICS.len());
                let tags: String = host_tags(host)
                    .iter()
                    .map(|(k, v)| format!(",\"{k}\":\"{v}\""))
                    .collect();
                format!(
                    "{{\"metric\":{{\"__name__\":\"{}\"{tags}}},",
                    CPU_METRICS[m]
                )
            })
            .collect();
        let line_points = line_points.max(1);
        let (mut values, mut stamps) = (String::new(), String::new());
        for first in (0..self.points).step_by(line_points) {
            let steps = first..(first + line_points).min(self.points);
            for (s, value) in state.iter_mut().enumerate() {
                values.clear();
                stamps.clear();
                for step in steps.clone() {
                    *value = (*value + ((rng.next_f64() - 0.5) * 400.0) as i64).clamp(0, 10_000);
                    let sep = if step == first { "" } else { "," };
                    let ms = (self.start_s + step as i64 * self.interval_s) * 1000;
                    let _ = write!(stamps, "{sep}{ms}");
                    let _ = if s % CPU_METRICS.len() < 6 {
                        write!(values, "{sep}{}.{:02}", *value / 100, *value % 100)
                    } else {
                        write!(values, "{sep}{}", (*value + 50) / 100)
                    };
                }
                writeln!(
                    out,
                    "{}\"values\":[{values}],\"timestamps\":[{stamps}]}}",
                    heads[s]
                )?;
            }
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that exits at start (its port taken) is started again on
    /// another port; other failures and a fourth exit are returned.
    #[test]
    fn a_server_that_exits_at_start_gets_a_fresh_port() -> anyhow::Result<()> {
        let exited = || Exited {
            ready: "ready".into(),
            lines: "Address already in use".into(),
        };
        let mut ports = Vec::new();
        let (port, started) = on_free_port(|port| {
            ports.push(port);
            if ports.len() < 3 {
                return Err(anyhow::Error::new(exited()).context("did not start"));
            }
            Ok(ports.len())
        })?;
        assert_eq!((port, started), (ports[2], 3));
        let mut calls = 0;
        let gave_up = on_free_port(|_| -> anyhow::Result<()> {
            calls += 1;
            Err(exited().into())
        });
        assert!(gave_up.is_err());
        assert_eq!(calls, 4);
        let mut calls = 0;
        let hung = on_free_port(|_| -> anyhow::Result<()> {
            calls += 1;
            anyhow::bail!("no line on stderr within 60 s")
        });
        assert!(hung.is_err());
        assert_eq!(calls, 1);
        Ok(())
    }

    #[test]
    fn vm_jsonl_lines_hold_every_point_of_the_set_once() {
        let set = Devops {
            hosts: 3,
            start_s: 1_700_006_430,
            interval_s: 60,
            points: 25,
            batch: 0,
            seed: 7,
        };
        let mut out = Vec::new();
        set.write_vm_jsonl(&mut out, 10).unwrap();
        let text = String::from_utf8(out).unwrap();
        // Spans of 10, 10 and 5 steps, each a line per series.
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3 * 30);
        let mut seen = std::collections::BTreeMap::<String, Vec<i64>>::new();
        for line in &lines {
            let (values, stamps) = (
                line["values"].as_array().unwrap(),
                line["timestamps"].as_array().unwrap(),
            );
            assert_eq!(values.len(), stamps.len());
            for v in values {
                let v = v.as_f64().unwrap();
                assert!((0.0..=100.0).contains(&v), "{v}");
            }
            let key = line["metric"].to_string();
            assert_eq!(line["metric"].as_object().unwrap().len(), 11, "{key}");
            seen.entry(key)
                .or_default()
                .extend(stamps.iter().map(|t| t.as_i64().unwrap()));
        }
        assert_eq!(seen.len(), set.hosts * CPU_METRICS.len());
        let want: Vec<i64> = (0..25).map(|i| (1_700_006_430 + i * 60) * 1000).collect();
        for stamps in seen.values() {
            assert_eq!(stamps, &want);
        }
    }
}
