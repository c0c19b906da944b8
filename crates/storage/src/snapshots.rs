//! Named point-in-time copies of a data directory (`POST /admin/snapshots`),
//! which backups read from while the server keeps running. Not to be
//! confused with `snapshot.rs`, a query's view of one database.
//!
//! `<data_dir>/snapshots/<name>/` has the data directory's own layout:
//! the top-level metadata files copied, and per database its catalog and
//! small files copied and its blocks referenced: local block files as hard
//! links, blocks in the object store through a copy of `blocks.remote`,
//! whose objects stay in the bucket while a snapshot names them. The head
//! is flushed first, so no WAL segment is needed.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::remote::manifest;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The directory all snapshots of a data directory live in.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// A snapshot's description, written last: a directory without it is an
/// unfinished snapshot.
const INFO_FILE: &str = "snapshot.json";

/// What `GET /admin/snapshots` lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
    pub databases: Vec<String>,
    pub blocks: usize,
    pub block_bytes: u64,
}

/// Snapshot names: 1–64 of `[A-Za-z0-9_.-]`, starting with a letter or
/// digit (never `.`, which marks unfinished ones).
pub fn is_valid_snapshot_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Files of a database directory a snapshot leaves out: the WAL (the head
/// is flushed), locks, and what a crash or an interrupted write leaves.
fn is_transient(name: &str) -> bool {
    (name.starts_with("wal-") && name.ends_with(".log"))
        || name == "LOCK"
        || name.ends_with(".tmp")
        || name.ends_with(".damaged")
        || (name.starts_with("block-") && name.ends_with(".sdb"))
}

impl Engine {
    /// Takes the snapshot `name`: flushes every database, then copies what
    /// each holds at that moment. Blocking.
    pub fn create_snapshot(&self, name: &str, now_ms: i64) -> Result<SnapshotInfo> {
        if !is_valid_snapshot_name(name) {
            return Err(Error::InvalidName { name: name.into() });
        }
        let root = self.data_dir().join(SNAPSHOTS_DIR);
        let done = root.join(name);
        if done.exists() {
            return Err(Error::SnapshotExists { name: name.into() });
        }
        let vfs = self.vfs();
        let unfinished = root.join(format!(".{name}.tmp"));
        if unfinished.exists() {
            vfs.remove_dir_all(&unfinished)
                .map_err(|e| Error::io("remove", &unfinished, e))?;
        }
        vfs.create_dir_all(&unfinished)
            .map_err(|e| Error::io("create", &unfinished, e))?;
        let mut info = SnapshotInfo {
            name: name.to_owned(),
            created_ms: now_ms,
            databases: Vec::new(),
            blocks: 0,
            block_bytes: 0,
        };
        let result = (|| {
            for name in self.database_names() {
                let Some(db) = self.database(&name) else {
                    continue;
                };
                let (blocks, bytes) = db.capture(&unfinished.join("db").join(&name))?;
                info.blocks += blocks;
                info.block_bytes += bytes;
                info.databases.push(name);
            }
            // After the databases: every UID and series their blocks use
            // was written before the flush.
            copy_files(self.data_dir(), &unfinished)?;
            let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
            let path = unfinished.join(INFO_FILE);
            vfs.write_atomic(&path, &json)
                .map_err(|e| Error::io("write", &path, e))?;
            vfs.rename(&unfinished, &done)
                .map_err(|e| Error::io("rename", &unfinished, e))?;
            vfs.sync_dir(&root).map_err(|e| Error::io("sync", &root, e))
        })();
        if result.is_err() {
            let _ = vfs.remove_dir_all(&unfinished);
        }
        result.map(|()| info)
    }

    /// Every finished snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let root = self.data_dir().join(SNAPSHOTS_DIR);
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &root, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_valid_snapshot_name(&name) {
                out.push(read_info(&entry.path())?);
            }
        }
        out.sort_by(|a, b| (a.created_ms, &a.name).cmp(&(b.created_ms, &b.name)));
        Ok(out)
    }

    /// The directory of the finished snapshot `name`.
    pub fn snapshot_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.data_dir().join(SNAPSHOTS_DIR).join(name);
        if !is_valid_snapshot_name(name) || !dir.join(INFO_FILE).exists() {
            return Err(Error::NoSnapshot { name: name.into() });
        }
        Ok(dir)
    }

    /// Removes the snapshot `name`, then the objects only it still named.
    /// Blocking.
    pub fn drop_snapshot(&self, name: &str) -> Result<()> {
        let dir = self.snapshot_dir(name)?;
        let vfs = self.vfs();
        let doomed = self
            .data_dir()
            .join(SNAPSHOTS_DIR)
            .join(format!(".{name}.deleted"));
        vfs.rename(&dir, &doomed)
            .map_err(|e| Error::io("rename", &dir, e))?;
        if let Some(store) = &self.config().remote {
            for (database, keys) in remote_keys(&doomed.join("db"))? {
                // Read after the rename: a compaction that replaced one of
                // these blocks meanwhile either saw the pin (and left the
                // object to us) or did not (and deleted it itself).
                let live: HashSet<String> =
                    manifest::read(&self.data_dir().join("db").join(&database))?
                        .map(|(_, entries)| entries.into_iter().map(|e| e.key).collect())
                        .unwrap_or_default();
                let pinned = pinned_keys(self.data_dir(), &database);
                let store = store.database(&database);
                for key in keys
                    .iter()
                    .filter(|k| !live.contains(*k) && !pinned.contains(*k))
                {
                    if let Err(e) = store.delete(key) {
                        tracing::warn!(key = %key, error = %e, "cannot delete a block only a dropped snapshot named");
                    }
                }
            }
        }
        vfs.remove_dir_all(&doomed)
            .map_err(|e| Error::io("remove", &doomed, e))
    }
}

/// Copies the regular files of `from` into `to`, leaving out those
/// [`is_transient`] names and every directory.
pub(crate) fn copy_files(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| Error::io("list", from, e))? {
        let entry = entry.map_err(|e| Error::io("list", from, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || is_transient(&name) {
            continue;
        }
        let target = to.join(&name);
        fs::copy(entry.path(), &target).map_err(|e| Error::io("copy", entry.path(), e))?;
        fs::File::open(&target)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("sync", &target, e))?;
    }
    Ok(())
}

fn read_info(dir: &Path) -> Result<SnapshotInfo> {
    let path = dir.join(INFO_FILE);
    let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path,
        offset: 0,
        reason: e.to_string(),
    })
}

/// Per database under `db_dir` (a snapshot's `db/`), the object keys its
/// `blocks.remote` names.
fn remote_keys(db_dir: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(db_dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let database = entry.file_name().to_string_lossy().into_owned();
        if let Some((_, listed)) = manifest::read(&entry.path())? {
            out.push((database, listed.into_iter().map(|e| e.key).collect()));
        }
    }
    Ok(out)
}

/// The object keys of `database` that some snapshot of the data directory
/// `root` still names: replacing such a block must not delete its object.
/// A snapshot that cannot be read pins nothing but is logged.
pub(crate) fn pinned_keys(root: &Path, database: &str) -> HashSet<String> {
    let mut keys = HashSet::new();
    let Ok(entries) = fs::read_dir(root.join(SNAPSHOTS_DIR)) else {
        return keys;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Unfinished ones too: a snapshot being taken names its blocks
        // before its description is written.
        if name.ends_with(".deleted") {
            continue;
        }
        match manifest::read(&entry.path().join("db").join(database)) {
            Ok(Some((_, listed))) => keys.extend(listed.into_iter().map(|e| e.key)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(snapshot = %name, error = %e, "cannot read a snapshot's block list")
            }
        }
    }
    keys
}

/// A block a database directory keeps in the object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlock {
    /// The file name the block has when local (`block-<n>[-<seq>].sdb`).
    pub file_name: String,
    pub bytes: u64,
    /// Its key under the database's prefix.
    pub key: String,
}

/// The blocks that `blocks.remote` in the database directory `dir` names
/// (none without one).
pub fn remote_blocks(dir: &Path) -> Result<Vec<RemoteBlock>> {
    let Some((_, entries)) = manifest::read(dir)? else {
        return Ok(Vec::new());
    };
    Ok(entries
        .into_iter()
        .map(|e| RemoteBlock {
            file_name: crate::block::block_path(Path::new(""), e.id)
                .to_string_lossy()
                .into_owned(),
            bytes: e.bytes,
            key: e.key,
        })
        .collect())
}

/// The name of a database's list of remote blocks (restores leave it out:
/// the blocks come back as local files).
pub const REMOTE_MANIFEST: &str = manifest::FILE;
