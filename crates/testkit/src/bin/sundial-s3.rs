//! `sundial-s3 --root DIR --bucket NAME`: the loopback S3 server of the
//! tests (s3s over a directory) as a process, for `bench/s3.sh`. Prints
//! `s3 listening on ADDR`, then serves until killed. Requests are signed
//! with the keys of `sundial_testkit::s3`.

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use sundial_testkit::s3::S3Server;

#[derive(Debug, Parser)]
struct Args {
    /// Where the buckets' objects go.
    #[arg(long)]
    root: PathBuf,
    /// Buckets to create.
    #[arg(long, required = true)]
    bucket: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let buckets: Vec<&str> = args.bucket.iter().map(String::as_str).collect();
    let server = S3Server::start(&args.root, &buckets)?;
    println!("s3 listening on {}", server.addr);
    loop {
        std::thread::park();
    }
}
