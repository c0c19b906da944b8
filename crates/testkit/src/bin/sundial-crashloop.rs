//! `sundial-crashloop N`: SIGKILLs a `sundial` server N times while every
//! write API, deletes, BlueKing metadata changes and compactions run, and
//! checks every acknowledged write after each restart (see
//! `sundial_testkit::crashloop`). `scripts/crash-loop` builds and runs it.

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use sundial_testkit::crashloop::{self, Options};

#[derive(Debug, Parser)]
struct Args {
    /// Rounds: kills, each followed by a restart and a check.
    rounds: u32,
    /// Longest random delay before a kill, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seed of every random choice [default: from the clock].
    #[arg(long)]
    seed: Option<u64>,
    /// The `sundial` binary.
    #[arg(long)]
    server: PathBuf,
    /// Directory for the data and config [default: a new temporary one].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The server's retention (at least 120 s).
    #[arg(long, default_value_t = 240)]
    retention_secs: u64,
    /// Run the server with `fsync = "buffered"` (default "always").
    #[arg(long)]
    buffered: bool,
    /// Keep the work directory after a clean run.
    #[arg(long)]
    keep: bool,
    /// Keep the blocks on an S3 server (in this process, on loopback); a
    /// quarter of the kills then land at an upload start.
    #[arg(long)]
    s3: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut opts = Options::new(args.server, args.rounds);
    opts.seconds = args.seconds;
    opts.seed = args.seed.unwrap_or(opts.seed);
    opts.work_dir = args.work_dir;
    opts.retention_secs = args.retention_secs;
    opts.buffered = args.buffered;
    opts.keep = args.keep;
    opts.s3 = args.s3;
    let summary = crashloop::run(&opts, &mut std::io::stdout())?;
    println!("{summary}");
    if !summary.is_clean() {
        eprintln!(
            "crash loop FAILED: rerun with --seed {}; data kept in {}",
            summary.seed,
            summary.work_dir.display()
        );
        std::process::exit(1);
    }
    Ok(())
}
