//! `sundial backup` and `sundial restore` (docs/storage.md, "Backup and
//! restore").
//!
//! A destination (a directory or `s3://bucket/prefix`) holds
//! `blobs/<identity>`, one object per distinct file content, and
//! `backups/<name>.json`, each backup's list of files. A backup uploads
//! only the blobs the destination lacks, and writes its list last: an
//! interrupted backup leaves blobs a rerun skips, never a list naming
//! something missing.

mod listing;
mod progress;
mod source;

use anyhow::{Context, bail};
use listing::{Entry, Verifier};
use progress::Progress;
use serde::{Deserialize, Serialize};
use source::Source;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use sundial_storage::RemoteStore;

pub(crate) use listing::{Origin, is_safe_path, list, read as read_origin};

/// Bytes read from the source per request.
const PIECE: usize = 8 << 20;
const FORMAT: &str = "sundial-backup 1";

#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// A stopped server's data directory (or, with --snapshot, one of its
    /// snapshots, safe while the server runs).
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    data_dir: Option<PathBuf>,
    /// A snapshot under --data-dir to back up.
    #[arg(long, requires = "data_dir")]
    snapshot: Option<String>,
    /// Where the blocks of --data-dir live, when in object storage.
    #[arg(long, env = "SUNDIAL_OBJECT_STORE")]
    object_store: Option<String>,
    /// A running server: it takes a snapshot, which is copied and dropped.
    #[arg(long)]
    url: Option<String>,
    /// `ID:SECRET` of an access key with admin on every database, when the
    /// server has credentials configured.
    #[arg(long, env = "SUNDIAL_CREDENTIALS")]
    credentials: Option<String>,
    /// A directory or s3://bucket/prefix (AWS_* variables for S3).
    #[arg(long)]
    to: String,
    /// The backup's name [default: backup-<milliseconds since the epoch>].
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// A directory or s3://bucket/prefix that `sundial backup` wrote to.
    #[arg(long)]
    from: String,
    /// Which backup [default: the newest].
    #[arg(long)]
    name: Option<String>,
    /// The data directory to create (must be missing or empty).
    #[arg(long)]
    data_dir: PathBuf,
}

/// A backup's list of files, `backups/<name>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    name: String,
    created_ms: i64,
    source: String,
    files: Vec<Entry>,
}

fn now_ms() -> i64 {
    sundial_model::now_ms()
}

/// The store at `url`: `s3://...`, `file://...`, or a directory path.
fn open_store(url: &str) -> anyhow::Result<RemoteStore> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        std::fs::create_dir_all(url).with_context(|| format!("cannot create {url}"))?;
        let dir = std::fs::canonicalize(url).with_context(|| format!("cannot open {url}"))?;
        format!("file://{}", dir.display())
    };
    Ok(RemoteStore::open(&url, &BTreeMap::new(), 0)?)
}

pub(crate) fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let name = args.name.unwrap_or_else(|| format!("backup-{}", now_ms()));
    anyhow::ensure!(
        sundial_storage::snapshots::is_valid_snapshot_name(&name),
        "invalid backup name {name:?}: 1-64 of A-Z a-z 0-9 _ - . starting with a letter or digit"
    );
    let source = match (&args.data_dir, &args.url) {
        (Some(dir), _) => {
            let store = args
                .object_store
                .as_deref()
                .map(|url| RemoteStore::open(url, &BTreeMap::new(), 0))
                .transpose()?;
            Source::dir(dir, args.snapshot.as_deref(), store)?
        }
        (None, Some(url)) => Source::server(url, args.credentials.as_deref(), &name)?,
        (None, None) => bail!("give --data-dir or --url"),
    };
    let dest = open_store(&args.to)?;
    let result = copy(&source, &dest, &name);
    let finished = source.finish();
    result?;
    finished
}

/// Uploads what `dest` lacks, then the list.
fn copy(source: &Source, dest: &RemoteStore, name: &str) -> anyhow::Result<()> {
    let blobs = dest.database("blobs");
    let backups = dest.database("backups");
    if backups.list()?.iter().any(|k| *k == format!("{name}.json")) {
        bail!("the destination already holds a backup named {name}");
    }
    let present: HashSet<String> = blobs.list()?.into_iter().collect();
    let entries = source.entries();
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let progress = Progress::new(total, &format!("backup {name}"));
    let (mut copied, mut copied_bytes) = (0usize, 0u64);
    let mut done = HashSet::new();
    let scratch = tempfile::tempdir()?;
    for (index, entry) in entries.iter().enumerate() {
        anyhow::ensure!(
            is_safe_path(&entry.path),
            "unsafe path {:?} in the listing",
            entry.path
        );
        if present.contains(&entry.id) || !done.insert(entry.id.clone()) {
            progress.skip(entry.bytes);
            continue;
        }
        let staged = scratch.path().join("blob");
        stage(entry, &staged, &progress, |at, len| {
            source.read(index, at, len)
        })?;
        blobs.upload_file(&entry.id, &staged)?;
        progress.file(&entry.path, entry.bytes);
        copied += 1;
        copied_bytes += entry.bytes;
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        name: name.into(),
        created_ms: now_ms(),
        source: source.describe(),
        files: entries,
    };
    backups.upload(
        &format!("{name}.json"),
        serde_json::to_vec_pretty(&manifest)?.into(),
    )?;
    progress.finish(&format!(
        "backup {name}: {} files, {copied} copied ({copied_bytes} bytes), the rest already in {}",
        manifest.files.len(),
        dest.location()
    ));
    Ok(())
}

/// The backups in `store`, oldest first.
fn manifests(store: &RemoteStore) -> anyhow::Result<Vec<Manifest>> {
    let backups = store.database("backups");
    let mut out = Vec::new();
    for key in backups.list()? {
        if key.ends_with(".json") {
            let bytes = backups.get(&key)?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("backups/{key} is not a backup list"))?;
            anyhow::ensure!(
                manifest.format == FORMAT,
                "backups/{key}: unknown format {:?}",
                manifest.format
            );
            out.push(manifest);
        }
    }
    out.sort_by_key(|m| m.created_ms);
    Ok(out)
}

pub(crate) fn restore(args: RestoreArgs) -> anyhow::Result<bool> {
    let store = open_store(&args.from)?;
    let mut all = manifests(&store)?;
    let manifest = match &args.name {
        Some(name) => {
            let at = all.iter().position(|m| &m.name == name);
            all.swap_remove(at.with_context(|| format!("{} holds no backup {name}", args.from))?)
        }
        None => all
            .pop()
            .with_context(|| format!("{} holds no backup", args.from))?,
    };
    let dir = &args.data_dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: restore into a new directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    let blobs = store.database("blobs");
    let total = manifest.files.iter().map(|e| e.bytes).sum();
    let progress = Progress::new(total, &format!("restore {}", manifest.name));
    for entry in &manifest.files {
        anyhow::ensure!(
            is_safe_path(&entry.path),
            "unsafe path {:?} in the backup",
            entry.path
        );
        fetch_into(&blobs, entry, &dir.join(&entry.path), &progress)?;
        progress.file(&entry.path, entry.bytes);
    }
    progress.finish(&format!(
        "restored backup {} ({} files) into {}",
        manifest.name,
        manifest.files.len(),
        dir.display()
    ));
    let config = sundial_storage::Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let report = sundial_storage::check::check(&config)?;
    for (path, problem) in &report.problems {
        println!("DAMAGED  {}: {problem}", path.display());
    }
    println!(
        "checked: {} databases, {} series, {} blocks, {} chunks; {} damaged",
        report.databases,
        report.series,
        report.blocks,
        report.chunks,
        report.problems.len()
    );
    Ok(report.problems.is_empty())
}

/// Downloads one blob to `path` (through a `.tmp` file, synced, renamed).
fn fetch_into(
    blobs: &RemoteStore,
    entry: &Entry,
    path: &Path,
    progress: &Progress,
) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let staged = path.with_extension("tmp");
    stage(entry, &staged, progress, |at, len| {
        Ok(blobs.fetch(&entry.id, at, len)?.to_vec())
    })?;
    std::fs::rename(&staged, path)?;
    Ok(())
}

/// Writes `entry` to `path` piece by piece from `read(at, len)`, synced,
/// and checks it against its identity.
fn stage(
    entry: &Entry,
    path: &Path,
    progress: &Progress,
    mut read: impl FnMut(u64, usize) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let mut verifier = Verifier::new(&entry.id);
    let mut at = 0u64;
    while at < entry.bytes {
        let len = (entry.bytes - at).min(PIECE as u64) as usize;
        let piece = read(at, len)?;
        verifier.update(&piece);
        file.write_all(&piece)?;
        at += len as u64;
        progress.advance(len as u64);
    }
    file.sync_all()?;
    verifier.finish(&entry.path)
}
