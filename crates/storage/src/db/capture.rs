//! A database's part of a snapshot (`crate::snapshots`).

use super::Db;
use crate::block::block_path;
use crate::error::{Error, Result};
use crate::snapshots::copy_files;
use std::fs;
use std::path::Path;

impl Db {
    /// Copies this database into `into` as it stands after a flush:
    /// blocks linked (or listed, in the store), other files copied.
    /// Returns the blocks and their bytes. Blocking.
    pub(crate) fn capture(&self, into: &Path) -> Result<(usize, u64)> {
        self.flush()?;
        let inner = &self.inner;
        // No flush, compaction, retention or delete changes the block list,
        // the catalog or the manifest while they are copied.
        let _no_compaction = inner.compact_lock.lock();
        let _no_flush = inner.flush_lock.lock();
        let dir = &inner.config.data_dir;
        let vfs = &inner.config.vfs;
        vfs.create_dir_all(into)
            .map_err(|e| Error::io("create", into, e))?;
        let layers = inner.layers.read().clone();
        let mut bytes = 0;
        for block in layers.blocks.iter() {
            bytes += block.file_bytes;
            if block.is_remote() {
                continue;
            }
            let to = block_path(into, block.id);
            if fs::hard_link(block.path(), &to).is_err() {
                // Another file system (or one without links): a copy.
                fs::copy(block.path(), &to).map_err(|e| Error::io("copy", block.path(), e))?;
            }
        }
        copy_files(dir, into)?;
        vfs.sync_dir(into).map_err(|e| Error::io("sync", into, e))?;
        Ok((layers.blocks.len(), bytes))
    }
}
