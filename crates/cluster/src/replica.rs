//! A querier's copies of shard databases (docs/cluster.md, "Queriers read
//! the blocks"): each opened from its owner's last checkpoint (the state
//! objects in the store), reading the checkpoint's blocks from the object
//! store through this node's caches. A copy is replaced when the owner
//! names a newer checkpoint, and never written: the owner's newer points
//! are laid over it per query (`sundial_storage::Overlay`).

use crate::ingest::{OwnerTag, blocking, fetch_state, shard_group};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use sundial_storage::{Db, RemoteStore};
use tracing::warn;

/// The copies one node holds; its directory is a cache, emptied at start.
#[derive(Debug)]
pub struct Replicas {
    dir: PathBuf,
    /// The cluster's store root.
    store: RemoteStore,
    storage: sundial_storage::Config,
    held: parking_lot::Mutex<HashMap<(u32, String), Arc<Replica>>>,
    /// One load at a time: loads are rare (a checkpoint every few minutes
    /// per shard), and two of one copy would waste the fetch. Queries
    /// reading the copies held do not wait for it.
    loading: tokio::sync::Mutex<()>,
    /// Names each copy's directory.
    opened: AtomicU64,
    /// Copies loaded.
    loaded: AtomicU64,
    /// Shard halves run over copies here, and left to their owners.
    here: AtomicU64,
    by_owners: AtomicU64,
}

/// One shard database as its owner's checkpoint left it.
#[derive(Debug)]
pub(crate) struct Replica {
    pub(crate) checkpoint: Vec<String>,
    pub(crate) db: Db,
    dir: PathBuf,
    /// The owner whose series were registered (`None`: none yet).
    mirrored: parking_lot::Mutex<Option<OwnerTag>>,
}

/// Series ids beyond the copy's next one an owner may send (ids left
/// unused in between); more is not an owner's answer.
const MAX_ID_GAP: u32 = 1 << 16;

impl Replica {
    /// The owner whose series this copy registered.
    pub(crate) fn owner(&self) -> Option<OwnerTag> {
        *self.mirrored.lock()
    }

    /// Registers the series and kinds `owner` gave since the checkpoint;
    /// `false` when they do not fit this copy (another owner's ids are
    /// registered, an id holds another key, or lies far beyond the
    /// copy's). Blocking: it takes the copy's head lock.
    pub(crate) fn mirror(
        &self,
        owner: OwnerTag,
        series: Vec<(sundial_storage::SeriesId, sundial_model::SeriesKey)>,
        kinds: &[(String, String, sundial_model::Kind)],
    ) -> bool {
        let mut mirrored = self.mirrored.lock();
        if mirrored.is_some_and(|m| m != owner) {
            return false;
        }
        let bound = self
            .db
            .next_series_id()
            .saturating_add(u32::try_from(series.len()).unwrap_or(u32::MAX))
            .saturating_add(MAX_ID_GAP);
        if series.iter().any(|(id, _)| id.0 >= bound) {
            return false;
        }
        *mirrored = Some(owner);
        self.db.mirror(series, kinds)
    }
}

impl Drop for Replica {
    /// Closes the copy once no query reads it, off the async workers.
    fn drop(&mut self) {
        let (db, dir) = (self.db.clone(), self.dir.clone());
        let _ = std::thread::Builder::new()
            .name("sundial-replica-close".into())
            .spawn(move || {
                db.discard();
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    warn!(dir = %dir.display(), error = %e, "cannot remove a shard copy");
                }
            });
    }
}

impl Replicas {
    /// Copies under `dir` (emptied now) of the databases in the store
    /// `store`, opened with `storage`'s settings (cache sizes).
    pub fn new(dir: PathBuf, store: RemoteStore, storage: sundial_storage::Config) -> Result<Self> {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Internal(format!(
                    "cannot empty {}: {e}",
                    dir.display()
                )));
            }
            _ => {}
        }
        Ok(Self {
            dir,
            store,
            storage,
            held: parking_lot::Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            opened: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            here: AtomicU64::new(0),
            by_owners: AtomicU64::new(0),
        })
    }

    /// The copy of `database` in `shard` held now.
    pub(crate) fn held(&self, shard: u32, database: &str) -> Option<Arc<Replica>> {
        self.held.lock().get(&(shard, database.to_owned())).cloned()
    }

    /// The copy of `database` in `shard` opened from `checkpoint` (empty:
    /// an empty database), loaded unless one is held already other than
    /// `unfit` (a copy its owner refused).
    pub(crate) async fn load(
        &self,
        shard: u32,
        database: &str,
        checkpoint: &[String],
        unfit: Option<&Arc<Replica>>,
    ) -> Result<Arc<Replica>> {
        let _one = self.loading.lock().await;
        let held = self.held(shard, database);
        if let Some(r) =
            held.filter(|r| r.checkpoint == checkpoint && unfit.is_none_or(|u| !Arc::ptr_eq(r, u)))
        {
            return Ok(r);
        }
        let files = fetch_state(&self.store, shard, database, checkpoint).await?;
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        let mut config = self.storage.clone();
        config.data_dir = self
            .dir
            .join(shard_group(shard))
            .join(format!("{n}"))
            .join(database);
        config.remote = Some(self.store.group(&shard_group(shard)).database(database));
        config.blocks_shared = true;
        config.replica = true;
        config.fsync = sundial_storage::FsyncPolicy::Buffered;
        let dir = config
            .data_dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let db = blocking(move || {
            sundial_storage::restore_handover(&config.vfs, &config.data_dir, &files)?;
            Ok(Db::open(config)?)
        })
        .await?;
        let replica = Arc::new(Replica {
            checkpoint: checkpoint.to_vec(),
            db,
            dir,
            mirrored: parking_lot::Mutex::new(None),
        });
        self.loaded.fetch_add(1, Ordering::Relaxed);
        self.held
            .lock()
            .insert((shard, database.to_owned()), replica.clone());
        Ok(replica)
    }

    /// Copies loaded, shard halves run over copies here, and shard
    /// halves left to their owners, since start.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.loaded.load(Ordering::Relaxed),
            self.here.load(Ordering::Relaxed),
            self.by_owners.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn count(&self, here: usize, by_owners: usize) {
        self.here.fetch_add(here as u64, Ordering::Relaxed);
        self.by_owners
            .fetch_add(by_owners as u64, Ordering::Relaxed);
    }

    /// Drops `copy` of `database` in `shard` (it no longer matches its
    /// owner's, or the shard no longer holds the database), unless
    /// another copy took its place; `None`: whichever is held.
    pub(crate) fn forget(&self, shard: u32, database: &str, copy: Option<&Arc<Replica>>) {
        let gone = {
            let mut held = self.held.lock();
            let at = (shard, database.to_owned());
            match (held.get(&at), copy) {
                (Some(h), Some(c)) if !Arc::ptr_eq(h, c) => None,
                _ => held.remove(&at),
            }
        };
        // Dropped outside the lock: the last reference closes the copy.
        drop(gone);
    }
}
