//! Where a database's blocks live, in one place for flush, compaction,
//! retention and recovery: files in the data directory, or objects in the
//! store with the manifest saying which (`crate::remote`).

use super::Inner;
use crate::block::{self, Block};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::remote::{self, RemoteStore, manifest};
use std::sync::Arc;
use tracing::{info, warn};

/// A block just written to the data directory, made durable where it
/// belongs: with a store, uploaded under a fresh key (the local file then
/// goes), without one, left as it is.
pub(crate) fn place(config: &Config, written: Block) -> Result<Block> {
    let Some(store) = &config.remote else {
        return Ok(written);
    };
    let path = written.path().to_owned();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("block.sdb");
    let key = remote::fresh_key(name);
    // Logged so the crash loop can tell a kill landed inside an upload.
    let phase = crate::phase::Phase::start("upload", &config.data_dir);
    let uploaded = store.upload_file(&key, &path);
    drop(phase);
    if let Err(e) = uploaded {
        // The WAL still holds the points; a later flush writes them again.
        let _ = config.vfs.remove_file(&path);
        return Err(e);
    }
    info!(key = %key, "uploaded block");
    // Not in the manifest yet: a crash from here on leaves an orphan the
    // next start sweeps, and the WAL still holds the points.
    if let Err(e) = config.vfs.remove_file(&path) {
        warn!(path = %path.display(), error = %e, "cannot delete the uploaded block's local copy");
    }
    Ok(written.into_remote(store, key))
}

/// Records `blocks` as the database's block list, before it becomes the
/// visible one (only the store's blocks need recording; the directory
/// lists the local ones).
pub(crate) fn record(inner: &Inner, blocks: &[Arc<Block>]) -> Result<()> {
    let Some(store) = &inner.config.remote else {
        return Ok(());
    };
    let entries: Vec<manifest::Entry> = blocks.iter().filter_map(|b| b.manifest_entry()).collect();
    manifest::write(
        &inner.config.vfs,
        &inner.config.data_dir,
        &store.location(),
        &entries,
    )
}

/// A block no longer in the list: a local file is deleted now (open
/// readers keep its inode), an object once its last reader is done.
pub(crate) fn discard(inner: &Inner, b: &Block) {
    if b.is_remote() {
        let key = b.manifest_entry().map(|e| e.key).unwrap_or_default();
        if inner.config.blocks_shared {
            // A cluster's manifest still names it until the owner records
            // the change; its compactor deletes the object after that.
            inner.replaced.lock().push(key);
        } else if pinned(&inner.config).contains(&key) {
            info!(key = %key, "a snapshot still names the replaced block; its object stays");
        } else {
            b.retire();
        }
    } else if let Err(e) = inner.config.vfs.remove_file(b.path()) {
        warn!(path = %b.path().display(), error = %e, "cannot delete a replaced block");
    }
}

/// Opens the blocks of the database in `config.data_dir`, oldest first.
pub(super) fn open_all(config: &Config) -> Result<Vec<Block>> {
    let dir = &config.data_dir;
    let listed = manifest::read(dir)?;
    let Some(store) = &config.remote else {
        if let Some((url, entries)) = listed
            && !entries.is_empty()
        {
            return Err(Error::ObjectStoreConfig {
                reason: format!(
                    "{} keeps its blocks in {url}; start with storage.object_store set to that \
                     store (docs/storage.md)",
                    dir.display()
                ),
            });
        }
        return local(config);
    };
    let mut blocks = Vec::new();
    if let Some((url, entries)) = listed {
        if url != store.location() {
            return Err(Error::ObjectStoreConfig {
                reason: format!(
                    "{} keeps its blocks in {url}, not in {}; a data directory belongs to one store",
                    dir.display(),
                    store.location()
                ),
            });
        }
        for entry in &entries {
            blocks.push(Block::open_remote(store, entry)?);
        }
    }
    // Written but not uploaded when the server stopped, or from before
    // the store was configured: they go up now.
    let local = local(config)?;
    let uploaded = !local.is_empty();
    for b in local {
        blocks.push(place(config, b)?);
    }
    blocks.sort_by_key(|b| b.id);
    if uploaded || !manifest::path(dir).exists() {
        let entries: Vec<manifest::Entry> =
            blocks.iter().filter_map(Block::manifest_entry).collect();
        manifest::write(&config.vfs, dir, &store.location(), &entries)?;
    }
    if !config.blocks_shared {
        sweep(config, store, &blocks);
    }
    Ok(blocks)
}

fn local(config: &Config) -> Result<Vec<Block>> {
    let dir = &config.data_dir;
    block::list_blocks(dir)?
        .into_iter()
        .map(|id| Block::open(&block::block_path(dir, id), id))
        .collect()
}

/// Deletes the store's objects of this database that its manifest does
/// not name: uploads a crash cut off before they were recorded, and blocks
/// replaced while a reader still held them when the server stopped.
fn sweep(config: &Config, store: &RemoteStore, blocks: &[Block]) {
    let mut known = pinned(config);
    known.extend(
        blocks
            .iter()
            .filter_map(|b| b.manifest_entry().map(|e| e.key)),
    );
    let keys = match store.list() {
        Ok(keys) => keys,
        Err(e) => {
            warn!(error = %e, "cannot list the object store to sweep orphaned blocks");
            return;
        }
    };
    for key in keys.into_iter().filter(|k| !known.contains(k)) {
        info!(key = %key, "deleting an orphaned object");
        if let Err(e) = store.delete(&key) {
            warn!(key = %key, error = %e, "cannot delete an orphaned object");
        }
    }
}

/// The object keys of this database that a snapshot names.
fn pinned(config: &Config) -> std::collections::HashSet<String> {
    let name = config.data_dir.file_name().and_then(|n| n.to_str());
    match (&config.engine_dir, name) {
        (Some(root), Some(name)) => crate::snapshots::pinned_keys(root, name),
        _ => std::collections::HashSet::new(),
    }
}

/// Where [`levels`] counts rollups-only blocks (`crate::compact`).
const ROLLUPS_LEVEL: &str = "rollups";

/// `blocks` counted per compaction tier, every tier listed, then the
/// rollups-only blocks.
pub(crate) fn levels(config: &Config, blocks: &[Arc<Block>]) -> Vec<super::LevelStatus> {
    let tiers = crate::partition::Tiers::new(config.partition_secs);
    let mut levels: Vec<super::LevelStatus> = crate::partition::LEVEL_NAMES
        .iter()
        .chain([&ROLLUPS_LEVEL])
        .map(|&level| super::LevelStatus {
            level,
            blocks: 0,
            bytes: 0,
        })
        .collect();
    for b in blocks {
        let name = match b.rollups_only {
            true => ROLLUPS_LEVEL,
            false => tiers.level_name(b.min_ts, b.max_ts),
        };
        if let Some(l) = levels.iter_mut().find(|l| l.level == name) {
            l.blocks += 1;
            l.bytes += b.file_bytes;
        }
    }
    levels
}
