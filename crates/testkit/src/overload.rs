//! Writes at several times a server's capacity: many connections post
//! `/api/put` bodies back to back for a while, and the run reports what
//! was accepted (points, latency percentiles), what was refused as busy
//! (and whether with a retry hint), anything else, and the server's RSS
//! sampled once a second. `bench/overload.sh` runs it for a minute; a CI
//! test runs it for seconds.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One run's shape.
#[derive(Debug, Clone)]
pub struct Plan {
    /// e.g. `http://127.0.0.1:4242`.
    pub url: String,
    pub connections: usize,
    pub duration: Duration,
    /// Points per request.
    pub batch: usize,
    /// Extra headers on every request (credentials).
    pub headers: Vec<(String, String)>,
    /// The server's process, for RSS samples.
    pub pid: Option<u32>,
}

/// What a run saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub accepted: u64,
    pub accepted_points: u64,
    pub busy: u64,
    /// Busy answers without `Retry-After`.
    pub busy_without_hint: u64,
    /// Other answers and broken requests, with a sample.
    pub failed: u64,
    pub failure_sample: Option<String>,
    /// Latencies of accepted requests, sorted, in ms.
    pub latencies_ms: Vec<f64>,
    /// RSS samples in MiB, one a second.
    pub rss_mib: Vec<f64>,
    pub seconds: f64,
}

impl Report {
    /// The `q` quantile (0..=1) of accepted latencies, in ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_ms.len() - 1) as f64 * q).round() as usize;
        self.latencies_ms.get(i).copied().unwrap_or_default()
    }

    pub fn max_rss_mib(&self) -> f64 {
        self.rss_mib.iter().copied().fold(0.0, f64::max)
    }

    pub fn to_json(&self) -> Value {
        let offered = self.accepted + self.busy + self.failed;
        json!({
            "seconds": round(self.seconds),
            "requests": offered,
            "accepted": self.accepted,
            "accepted_points_per_sec": round(self.accepted_points as f64 / self.seconds.max(1e-9)),
            "busy": self.busy,
            "busy_rate": round(self.busy as f64 / (offered.max(1)) as f64),
            "busy_without_retry_after": self.busy_without_hint,
            "failed": self.failed,
            "failure_sample": self.failure_sample,
            "p50_ms": round(self.latency_ms(0.5)),
            "p99_ms": round(self.latency_ms(0.99)),
            "max_ms": round(self.latency_ms(1.0)),
            "max_rss_mib": round(self.max_rss_mib()),
            "rss_mib": self.rss_mib.iter().map(|r| round(*r)).collect::<Vec<_>>(),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A put body of `batch` points, distinct per connection and request.
fn body(conn: usize, request: u64, batch: usize) -> String {
    let mut out = String::with_capacity(batch * 96);
    out.push('[');
    for i in 0..batch {
        if i > 0 {
            out.push(',');
        }
        let ts = 1_700_000_000_000i64 + (request as i64) * 1000 + (i / 100) as i64;
        out.push_str(&format!(
            r#"{{"metric":"overload.m","timestamp":{ts},"value":{request}.{i},"tags":{{"conn":"c{conn}","s":"s{}"}}}}"#,
            i % 100
        ));
    }
    out.push(']');
    out
}

/// The resident set of `pid` in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Runs `plan`; blocking, bounded by its duration (plus one request's
/// timeout).
pub fn run(plan: &Plan) -> Report {
    let report = Arc::new(Mutex::new(Report::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sampler = plan.pid.map(|pid| {
        let (report, stop) = (report.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let (Some(r), Ok(mut rep)) = (rss_mib(pid), report.lock()) {
                    rep.rss_mib.push(r);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    });
    let url = format!("{}/api/put", plan.url.trim_end_matches('/'));
    let workers: Vec<_> = (0..plan.connections)
        .map(|conn| {
            let (report, url, plan) = (report.clone(), url.clone(), plan.clone());
            std::thread::spawn(move || connection(conn, &url, &plan, started, &report))
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.join();
    }
    let mut out = report.lock().map(|r| r.clone()).unwrap_or_default();
    out.seconds = started.elapsed().as_secs_f64();
    out.latencies_ms.sort_by(f64::total_cmp);
    out
}

fn connection(conn: usize, url: &str, plan: &Plan, started: Instant, report: &Mutex<Report>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    let mut request = 0u64;
    while started.elapsed() < plan.duration {
        let text = body(conn, request, plan.batch);
        request += 1;
        let mut req = agent.post(url).set("Content-Type", "application/json");
        for (k, v) in &plan.headers {
            req = req.set(k, v);
        }
        let sent = Instant::now();
        let answer = req.send_string(&text);
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        let Ok(mut rep) = report.lock() else { return };
        match answer {
            Ok(r) if r.status() / 100 == 2 => {
                rep.accepted += 1;
                rep.accepted_points += plan.batch as u64;
                rep.latencies_ms.push(ms);
            }
            Err(ureq::Error::Status(503, r)) => {
                rep.busy += 1;
                if r.header("retry-after").is_none() {
                    rep.busy_without_hint += 1;
                }
            }
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                rep.failed += 1;
                let status = r.status();
                let text = r.into_string().unwrap_or_default();
                rep.failure_sample
                    .get_or_insert_with(|| format!("HTTP {status}: {text}"));
            }
            Err(e) => {
                rep.failed += 1;
                rep.failure_sample.get_or_insert_with(|| e.to_string());
            }
        }
        // A busy answer asks for a retry later: this client retries at once,
        // which is what overload is.
    }
}
