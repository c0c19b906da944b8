//! Posts a generated TSBS-devops-like data set to an OpenTSDB `/api/put`
//! endpoint from several connections and reports points per second. Bodies
//! are built before the clock starts. Bounded: one pass over the data set.
//! With `--vm-jsonl` it instead streams the data set to stdout as
//! VictoriaMetrics import lines, for sets too large to hold in memory.

use anyhow::{Result, bail};
use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use sundial_testkit::Devops;

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:4242
    #[arg(long, required_unless_present = "vm_jsonl")]
    url: Option<String>,
    /// Write the set to stdout as VictoriaMetrics `/api/v1/import` lines
    /// of this many points per series each, instead of posting it.
    #[arg(long, value_name = "POINTS_PER_LINE")]
    vm_jsonl: Option<usize>,
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Hours of data at the interval.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    #[arg(long, default_value_t = 10)]
    interval_s: i64,
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// First timestamp in seconds.
    #[arg(long, default_value_t = 1_700_000_000)]
    start: i64,
    /// Name printed in the result line.
    #[arg(long, default_value = "sundial")]
    label: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let points = (args.hours * 3600.0 / args.interval_s as f64) as usize;
    let set = Devops {
        hosts: args.hosts,
        start_s: args.start,
        interval_s: args.interval_s,
        points,
        batch: args.batch,
        seed: 42,
    };
    let url = match (args.vm_jsonl, &args.url) {
        (Some(line_points), _) => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            set.write_vm_jsonl(&mut out, line_points)?;
            return Ok(());
        }
        (None, Some(url)) => format!("{}/api/put", url.trim_end_matches('/')),
        (None, None) => bail!("--url or --vm-jsonl is required"),
    };
    let bodies = Arc::new(set.bodies());
    let wire_bytes: usize = bodies.iter().map(String::len).sum();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
            std::thread::spawn(move || -> Result<()> {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(120))
                    .build();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok(());
                    };
                    let r = agent
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(body);
                    match r {
                        Ok(resp) if resp.status() / 100 == 2 => {}
                        Ok(resp) => bail!("status {}", resp.status()),
                        Err(e) => bail!("request failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = set.total_points();
    println!(
        "{{\"label\":\"{}\",\"points\":{total},\"seconds\":{secs:.3},\"points_per_sec\":{:.0},\"wire_bytes_per_point\":{:.1},\"batch\":{},\"connections\":{}}}",
        args.label,
        total as f64 / secs,
        wire_bytes as f64 / total as f64,
        args.batch,
        args.connections
    );
    Ok(())
}
