//! What the owner of a cluster shard hands to the next (docs/cluster.md):
//! the small files that, with the blocks already in the object store,
//! make the database whole again on another node. The WAL is not among
//! them: the cluster's log lives in JetStream.

use super::{Db, flush};
use crate::error::{Error, Result};
use crate::remote::manifest;
use crate::vfs::Vfs;
use bytes::Bytes;
use std::path::Path;
use sundial_model::Timestamp;

/// The files of a database directory that a new owner needs: the series
/// catalog, the deleted series, the block manifest and a retention set at
/// run time.
const STATE_FILES: [&str; 4] = [
    crate::catalog::FILE,
    crate::delete::HIDDEN_FILE,
    manifest::FILE,
    super::retention::FILE,
];

/// One block in the object store, as a cluster's manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlock {
    /// Relative to the database's place in the store.
    pub key: String,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
    pub bytes: u64,
}

impl Db {
    /// Flushes the whole head and returns the state files (name, bytes),
    /// read under the flush lock so the catalog names every series of
    /// every listed block. Blocking.
    pub fn flush_for_handover(&self) -> Result<Vec<(&'static str, Bytes)>> {
        flush(&self.inner)?;
        let _one = self.inner.flush_lock.lock();
        let dir = &self.inner.config.data_dir;
        let mut files = Vec::new();
        for name in STATE_FILES {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => files.push((name, Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read", &path, e)),
            }
        }
        Ok(files)
    }

    /// The blocks that live in the object store.
    pub fn remote_blocks(&self) -> Vec<RemoteBlock> {
        let layers = self.inner.layers.read().clone();
        layers
            .blocks
            .iter()
            .filter_map(|b| {
                b.manifest_entry().map(|e| RemoteBlock {
                    key: e.key,
                    min_ts: b.min_ts,
                    max_ts: b.max_ts,
                    bytes: e.bytes,
                })
            })
            .collect()
    }

    /// Keys (as [`RemoteBlock::key`]) of shared blocks replaced by a
    /// compaction or dropped by retention since the last
    /// [`Db::forget_replaced`]: the owner records them as retired.
    pub fn replaced_blocks(&self) -> Vec<String> {
        self.inner.replaced.lock().clone()
    }

    /// Forgets the first `n` [`Db::replaced_blocks`], once recorded.
    pub fn forget_replaced(&self, n: usize) {
        let mut replaced = self.inner.replaced.lock();
        let n = n.min(replaced.len());
        replaced.drain(..n);
    }

    /// Stops the database without flushing its head: its owner lost it,
    /// and the points are in the cluster's log for the next owner.
    pub fn discard(&self) {
        self.close_with(false);
    }
}

/// Writes state files a previous owner handed over into `dir` (durably),
/// for [`Db::open`]. Only the names [`Db::flush_for_handover`] gives are
/// taken.
pub fn restore_handover(vfs: &Vfs, dir: &Path, files: &[(String, Bytes)]) -> Result<()> {
    vfs.create_dir_all(dir)
        .map_err(|e| Error::io("create data directory", dir, e))?;
    for (name, bytes) in files {
        if !STATE_FILES.contains(&name.as_str()) {
            return Err(Error::Corrupt {
                path: dir.join(name),
                offset: 0,
                reason: "not a database state file".into(),
            });
        }
        let path = dir.join(name);
        vfs.write_atomic(&path, bytes)
            .map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(())
}
