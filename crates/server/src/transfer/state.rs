//! Where a stopped import or export can pick up again: a small JSON file
//! beside the file being read or written, replaced atomically after each
//! acknowledged batch (import) or finished metric (export), and removed
//! when the run completes.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How far a run got.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Import: input bytes whose points the server has acknowledged.
    /// Export: output bytes holding finished metrics.
    pub(crate) bytes: u64,
    /// Points moved so far.
    pub(crate) points: u64,
    /// Export: metrics written completely.
    #[serde(default)]
    pub(crate) metrics_done: Vec<String>,
}

/// The progress file of `file` (`<file>.sundial-import` or
/// `<file>.sundial-export`).
pub(crate) fn path_for(file: &Path, what: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".sundial-{what}"));
    PathBuf::from(name)
}

pub(crate) fn load(path: &Path) -> anyhow::Result<Option<Progress>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces the file in one rename, so a crash leaves the old or the new.
pub(crate) fn save(path: &Path, progress: &Progress) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, progress)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub(crate) fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
