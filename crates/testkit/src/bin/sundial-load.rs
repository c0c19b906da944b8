//! Posts a generated TSBS-devops-like data set to an OpenTSDB `/api/put`
//! endpoint from several connections and reports points per second. Bodies
//! are built before the clock starts. Bounded: one pass over the data set.
//! With `--vm-jsonl` it instead streams the data set to stdout as
//! VictoriaMetrics import lines, for sets too large to hold in memory.
//!
//! The connections are tasks of one thread (hyper's HTTP/1 client on a
//! current-thread runtime): at small batches a thread per connection cost
//! the client over a third of this machine's two cores, measuring the load
//! generator as much as the server. The client's own CPU time is reported.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use sundial_testkit::Devops;
use tokio::net::TcpStream;

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

/// Where requests go: the socket address and the `Host` header.
struct Target {
    authority: String,
    path: String,
}

fn target(base: &str) -> Result<Target> {
    let uri: hyper::Uri = format!("{}/api/put", base.trim_end_matches('/'))
        .parse()
        .context("--url is not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be http://host:port");
    }
    let authority = uri.authority().context("--url has no host")?;
    let port = authority.port_u16().unwrap_or(80);
    Ok(Target {
        authority: format!("{}:{port}", authority.host()),
        path: uri.path().to_owned(),
    })
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
    let target = match (args.vm_jsonl, &args.url) {
        (Some(line_points), _) => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            set.write_vm_jsonl(&mut out, line_points)?;
            return Ok(());
        }
        (None, Some(url)) => Arc::new(target(url)?),
        (None, None) => bail!("--url or --vm-jsonl is required"),
    };
    let bodies: Arc<Vec<Bytes>> = Arc::new(set.bodies().into_iter().map(Bytes::from).collect());
    let wire_bytes: usize = bodies.iter().map(Bytes::len).sum();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    runtime.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.connections {
            tasks.spawn(post_all(target.clone(), bodies.clone(), next.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        anyhow::Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds() - cpu_before;
    let total = set.total_points();
    println!(
        "{{\"label\":\"{}\",\"points\":{total},\"seconds\":{secs:.3},\"points_per_sec\":{:.0},\"wire_bytes_per_point\":{:.1},\"batch\":{},\"connections\":{},\"client_cpu_seconds\":{client_cpu:.2}}}",
        args.label,
        total as f64 / secs,
        wire_bytes as f64 / total as f64,
        args.batch,
        args.connections
    );
    Ok(())
}

/// One connection: posts the next unsent body until none is left.
async fn post_all(
    target: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> Result<()> {
    let stream = TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("connecting to {}", target.authority))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(i) else { break };
        let request = Request::post(target.path.as_str())
            .header(hyper::header::HOST, target.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        let response = tokio::time::timeout(Duration::from_secs(120), sender.send_request(request))
            .await
            .context("no answer in 120 s")??;
        let status = response.status();
        // The body is read to its end so the connection can carry the next request.
        let answer = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("status {status}: {}", String::from_utf8_lossy(&answer));
        }
    }
    drop(sender);
    driver.await??;
    Ok(())
}

/// This process's user and system CPU time so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
