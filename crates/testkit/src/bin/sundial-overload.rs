//! Posts `/api/put` bodies from many connections at once for a while and
//! prints what was accepted, refused busy, or failed, with latency
//! percentiles and the server's RSS (see `sundial_testkit::overload`).

use anyhow::Result;
use clap::Parser;
use std::time::Duration;
use sundial_testkit::overload::{Plan, run};

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:4242
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Points per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The server's process id, for RSS samples.
    #[arg(long)]
    pid: Option<u32>,
    /// `Authorization` header value (e.g. `Basic ...`).
    #[arg(long)]
    authorization: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let plan = Plan {
        url: args.url,
        connections: args.connections,
        duration: Duration::from_secs(args.seconds),
        batch: args.batch,
        headers: args
            .authorization
            .map(|a| vec![("Authorization".to_owned(), a)])
            .unwrap_or_default(),
        pid: args.pid,
    };
    let report = run(&plan);
    println!("{}", report.to_json());
    Ok(())
}
