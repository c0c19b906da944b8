//! What a backup copies: the files of a data directory (or of a snapshot,
//! which has the same layout), each with an identity that tells whether a
//! destination already holds it.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use sundial_storage::RemoteStore;
use sundial_storage::snapshots::{REMOTE_MANIFEST, SNAPSHOTS_DIR, remote_blocks};

/// One file of a backup: where it goes in a data directory, its size, and
/// its identity: `sha256-<hex>` of its bytes, or for a block in the object
/// store `object-<hex>` of its key (keys are never reused, so the key
/// names the content without reading it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) bytes: u64,
    pub(crate) id: String,
}

/// A listed file and where its bytes are read from.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) entry: Entry,
    pub(crate) origin: Origin,
}

#[derive(Debug, Clone)]
pub(crate) enum Origin {
    File(PathBuf),
    /// A block in the object store: its database and key.
    Object {
        database: String,
        key: String,
    },
}

/// Files a backup leaves out: the lock, a snapshot's description, what an
/// interrupted write leaves, and the list of remote blocks (they come back
/// as local files).
fn is_skipped(name: &str) -> bool {
    matches!(name, "LOCK" | "snapshot.json")
        || name == REMOTE_MANIFEST
        || name.ends_with(".tmp")
        || name.ends_with(".damaged")
}

/// Every file of the data directory (or snapshot) `root`, top-level files
/// first, then each database's.
pub(crate) fn list(root: &Path) -> anyhow::Result<Vec<Item>> {
    let mut items = files_of(root, "")?;
    let dbs = root.join("db");
    let mut names: Vec<String> = match fs::read_dir(&dbs) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| sundial_storage::is_valid_name(n))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dbs.display())),
    };
    names.sort();
    for database in names {
        let dir = dbs.join(&database);
        items.extend(files_of(&dir, &format!("db/{database}/"))?);
        for block in remote_blocks(&dir)? {
            items.push(Item {
                entry: Entry {
                    path: format!("db/{database}/{}", block.file_name),
                    bytes: block.bytes,
                    id: object_id(&database, &block.key),
                },
                origin: Origin::Object {
                    database: database.clone(),
                    key: block.key,
                },
            });
        }
    }
    Ok(items)
}

/// The regular files directly in `dir`, as paths under `prefix`.
fn files_of(dir: &Path, prefix: &str) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || is_skipped(&name) || name == SNAPSHOTS_DIR {
            continue;
        }
        let path = entry.path();
        let (bytes, id) = hash_file(&path)?;
        out.push(Item {
            entry: Entry {
                path: format!("{prefix}{name}"),
                bytes,
                id,
            },
            origin: Origin::File(path),
        });
    }
    out.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok(out)
}

/// The size and `sha256-` identity of a file.
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, format!("sha256-{}", hex::encode(hasher.finalize()))))
}

fn object_id(database: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{database}/{key}").as_bytes());
    format!("object-{}", hex::encode(digest))
}

/// Checks bytes against an identity while they stream by: a `sha256-`
/// identity must match at the end; an `object-` one names a block whose
/// own checksums `sundial check` verifies after a restore.
pub(crate) struct Verifier {
    want: Option<String>,
    hasher: Sha256,
}

impl Verifier {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            want: id.strip_prefix("sha256-").map(str::to_owned),
            hasher: Sha256::new(),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        if self.want.is_some() {
            self.hasher.update(bytes);
        }
    }

    pub(crate) fn finish(self, what: &str) -> anyhow::Result<()> {
        if let Some(want) = self.want {
            let got = hex::encode(self.hasher.finalize());
            anyhow::ensure!(
                got == want,
                "{what}: content does not match its sha256 ({got} is not {want})"
            );
        }
        Ok(())
    }
}

/// `len` bytes from `at` of a listed file.
pub(crate) fn read(
    origin: &Origin,
    store: Option<&RemoteStore>,
    at: u64,
    len: usize,
) -> anyhow::Result<Vec<u8>> {
    match origin {
        Origin::File(path) => {
            let file =
                fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut buf = vec![0u8; len];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, at)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(buf)
        }
        Origin::Object { database, key } => {
            let store =
                store.context("the blocks are in an object store, and none is configured")?;
            Ok(store.database(database).fetch(key, at, len)?.to_vec())
        }
    }
}

/// Whether `path` is one a backup may hold: relative, plain names, no way
/// out of the directory it is restored into.
pub(crate) fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        for good in [
            "series.cat",
            "db/default/block-0000000003.sdb",
            "db/a-b/wal.flushed",
        ] {
            assert!(is_safe_path(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "db/../../x",
            "db//x",
            "db/./x",
            "a\\b",
            "x y",
        ] {
            assert!(!is_safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_verifier_refuses_other_bytes() {
        let id = format!("sha256-{}", hex::encode(Sha256::digest(b"abc")));
        let mut v = Verifier::new(&id);
        v.update(b"ab");
        v.update(b"c");
        assert!(v.finish("x").is_ok());
        let mut v = Verifier::new(&id);
        v.update(b"abd");
        assert!(v.finish("x").is_err());
    }
}
