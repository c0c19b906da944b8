//! `sundial check`: verifies a data directory (a stopped server's, or a
//! restored copy) and exits non-zero naming each damaged file.

use crate::config::FileConfig;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// TOML configuration file (for `[storage]` and its object store).
    #[arg(long, env = "SUNDIAL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./sundial-data].
    #[arg(long, env = "SUNDIAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where the blocks live, when in object storage (s3://bucket/prefix).
    #[arg(long, env = "SUNDIAL_OBJECT_STORE")]
    object_store: Option<String>,
}

/// Runs the check; `Ok(false)` when something is damaged.
pub(crate) fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let mut config = FileConfig::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(url) = args.object_store {
        config.storage.object_store = Some(url);
    }
    config.storage.data_dir = config.data_dir.clone();
    crate::open_object_store(&mut config.storage)?;
    let report = sundial_storage::check::check(&config.storage)?;
    for (path, note) in &report.notes {
        println!("note     {}: {note}", path.display());
    }
    for (path, problem) in &report.problems {
        println!("DAMAGED  {}: {problem}", path.display());
    }
    println!(
        "{}: {} databases, {} series, {} WAL segments, {} blocks, {} chunks checked; {} damaged",
        config.data_dir.display(),
        report.databases,
        report.series,
        report.wal_segments,
        report.blocks,
        report.chunks,
        report.problems.len()
    );
    Ok(report.problems.is_empty())
}
