//! The ingester (docs/cluster.md, "The ingester"): for every shard it
//! owns, one local database per Sundial database, fed by frames. A frame
//! is appended to the shard's JetStream log before its points enter the
//! head, and answered only after both, so an acknowledged point survives
//! the ingester. A checkpoint flushes the shard's databases to the object
//! store, stores their state files there and records blocks, position and
//! state in PostgreSQL under the shard's lease; a new owner restores that
//! state and replays the log after the position. The local directories
//! are a cache: a gained shard starts from what the object store and the
//! log hold, never from what a node left on its disk.

mod delete;
mod handover;
mod kinds;
mod names;
mod newer;
pub(crate) use handover::fetch_state;
pub(crate) use newer::{Held, NewerQuery, OwnerTag};
mod read;

use crate::frame::{BatchRules, ShardBatch};
use crate::{Error, Lease, Meta, Result, ShardHandler, ShardLog};
use names::NameChange;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use sundial_model::{WriteOutcome, WritePoint};
use sundial_storage::{Db, RemoteStore};
use tracing::{info, warn};

/// Where an ingester keeps its shards.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    /// Local directory of the shards' databases (wiped per shard when it
    /// is gained).
    pub dir: PathBuf,
    /// Settings of every shard database; the ingester sets its directory,
    /// store and `blocks_shared`.
    pub storage: sundial_storage::Config,
    /// A shard is checkpointed at least this often while it takes
    /// writes (bounds what a new owner replays, in time)...
    pub checkpoint_every: Duration,
    /// ...and once this many points arrived since its last checkpoint
    /// (bounds it in size, and the log's length).
    pub checkpoint_points: usize,
}

impl IngesterConfig {
    /// Shards under `dir` with default settings: a checkpoint every five
    /// minutes or million points.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            storage: sundial_storage::Config::default(),
            checkpoint_every: Duration::from_secs(300),
            checkpoint_points: 1_000_000,
        }
    }
}

/// One node's ingester; clones share it (the keeper drives one clone as
/// its [`ShardHandler`], the write path uses others).
#[derive(Debug, Clone)]
pub struct Ingester {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Its own connection: checkpoints run transactions on it.
    meta: tokio::sync::Mutex<Meta>,
    wal: ShardLog,
    /// The cluster's store root: blocks under `shard-<n>/<database>/`,
    /// state under `state-<n>/<database>/`.
    store: RemoteStore,
    config: IngesterConfig,
    shards: RwLock<HashMap<u32, Arc<Shard>>>,
}

#[derive(Debug)]
struct Shard {
    number: u32,
    lease: Lease,
    /// Cleared when the shard starts moving away: writes then get
    /// [`Error::Moving`].
    taking_writes: AtomicBool,
    /// Until when PostgreSQL last confirmed the lease (see
    /// [`Shard::confirmed`]).
    confirmed_until: parking_lot::Mutex<Option<Instant>>,
    /// Held across a write's log append and apply, so the log's order is
    /// the heads' order, and across a checkpoint.
    state: tokio::sync::Mutex<ShardState>,
}

#[derive(Debug, Default)]
struct ShardState {
    databases: BTreeMap<String, ShardDb>,
    /// The log position of the last frame in the heads.
    applied: u64,
    /// Where the log ends as this owner knows it (its last append, or
    /// the fence it claimed the log with): appends expect it.
    log_end: u64,
    /// The position the last checkpoint recorded.
    flushed: u64,
    /// Checkpoints made under this lease (names each one's objects).
    checkpoints: u64,
    /// A change the log does not hold (a delete) awaits its checkpoint.
    unlogged_change: bool,
    /// Databases whose listing names in PostgreSQL may differ from their
    /// index (see `names`).
    names_unsettled: BTreeSet<String>,
    /// Whether the rows of databases the shard does not hold were dropped
    /// since its restore.
    names_swept: bool,
    /// Points applied since the last checkpoint, and when it was.
    unflushed_points: usize,
    last_checkpoint: Option<Instant>,
}

#[derive(Debug)]
struct ShardDb {
    db: Db,
    /// Blocks the manifest in PostgreSQL already lists.
    recorded: HashSet<String>,
    /// The state objects of the last checkpoint (deleted once a newer
    /// one is recorded).
    checkpoint: Vec<String>,
    /// The database's index changes when the checkpoint was made: a
    /// querier's copy of it is current while they have not moved (see
    /// `newer`).
    changes: u64,
    /// Names this opening of the database among those of this owner (a
    /// database dropped and made again is another).
    incarnation: u64,
}

/// Numbers [`ShardDb::incarnation`]s.
static INCARNATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_incarnation() -> u64 {
    INCARNATIONS.fetch_add(1, Ordering::Relaxed)
}

impl Ingester {
    /// An ingester over the metadata at `postgres_url`, the log `wal` and
    /// the cluster's object store `store`.
    pub async fn new(
        postgres_url: &str,
        wal: impl Into<ShardLog>,
        store: RemoteStore,
        config: IngesterConfig,
    ) -> Result<Self> {
        let meta = Meta::connect(postgres_url).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                meta: tokio::sync::Mutex::new(meta),
                wal: wal.into(),
                store,
                config,
                shards: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// Stores one frame: refused unless this node owns its shard under
    /// the frame's epoch and the shard is not moving; otherwise logged in
    /// JetStream, then applied. The outcome says which points were kept.
    pub async fn write(&self, batch: ShardBatch) -> Result<WriteOutcome> {
        let shard = self.shard(batch.shard)?;
        if batch.epoch != shard.lease.epoch {
            return Err(Error::StaleEpoch {
                shard: shard.number,
                sent: batch.epoch,
                current: shard.lease.epoch,
            });
        }
        let mut state = shard.state.lock().await;
        if !shard.taking_writes.load(Ordering::Acquire)
            || fenced_by_lease_now(&self.inner.wal, &shard)
        {
            return Err(Error::Moving {
                shard: shard.number,
            });
        }
        // Opened before the append: a database that cannot exist never
        // reaches the log.
        let db = self
            .database(shard.number, &mut state, &batch.database)
            .await?;
        // A frame logged must be applied: a full head refuses it first.
        db.check_room()?;
        let mut batch = batch;
        let refused = self.settle_kinds(&db, &mut batch).await;
        let new_names = names::new_names(&db, &batch);
        let position = self.log(&shard, &mut state, &batch).await?;
        state.unflushed_points += batch.points.len();
        let mut outcome = apply(&db, batch.points, &batch.rules).await?;
        state.applied = position;
        let at = (batch.database.as_str(), &db);
        self.record_names(shard.number, &mut state, at, new_names, NameChange::Added)
            .await;
        if fenced_by_lease_now(&self.inner.wal, &shard) {
            // The lease lapsed meanwhile: another node may hold the shard
            // and never read this log. Busy; the retry lands once.
            return Err(Error::Moving {
                shard: shard.number,
            });
        }
        for (i, why) in refused {
            if let Some(result) = outcome.results.get_mut(i) {
                *result = Err(why);
            }
        }
        Ok(outcome)
    }

    /// Appends `batch` where this owner's log ends. When the log moved on,
    /// either an append of ours whose acknowledgement was lost landed
    /// after all (then it is applied, and the append retried once), or
    /// another owner fenced the log: the shard is no longer ours to write.
    async fn log(&self, shard: &Shard, state: &mut ShardState, batch: &ShardBatch) -> Result<u64> {
        let wal = &self.inner.wal;
        match wal.append_frame_after(batch, state.log_end).await {
            Ok(position) => {
                state.log_end = position;
                return Ok(position);
            }
            Err(Error::LogMoved { .. }) => {}
            Err(e) => return Err(e),
        }
        match wal.last_frame(shard.number).await? {
            Some((position, ours))
                if ours.epoch == shard.lease.epoch && position > state.log_end =>
            {
                warn!(
                    shard = shard.number,
                    position, "applying an append whose acknowledgement was lost"
                );
                if !ours.points.is_empty() {
                    let db = self.database(shard.number, state, &ours.database).await?;
                    apply(&db, ours.points, &ours.rules).await?;
                }
                state.log_end = position;
                state.applied = position;
                let position = wal.append_frame_after(batch, state.log_end).await?;
                state.log_end = position;
                Ok(position)
            }
            _ => {
                warn!(
                    shard = shard.number,
                    epoch = shard.lease.epoch,
                    "another owner fenced the shard's log: no more writes here"
                );
                shard.taking_writes.store(false, Ordering::Release);
                Err(Error::NotOwner {
                    shard: shard.number,
                })
            }
        }
    }

    /// Checkpoints each served shard once it is due (by time or points
    /// since its last one), until `stop` completes: what an ingester runs
    /// beside its keeper. A failed checkpoint is logged and retried.
    pub async fn run_checkpoints(&self, stop: impl Future<Output = ()>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = every.tick() => {}
            }
            for number in self.shards() {
                let Ok(shard) = self.shard(number) else {
                    continue;
                };
                let mut state = shard.state.lock().await;
                let names_due = !state.names_unsettled.is_empty() || !state.names_swept;
                if names_due && shard.confirmed() {
                    self.settle_names(number, &mut state).await;
                }
                let config = &self.inner.config;
                let due = state.unflushed_points >= config.checkpoint_points
                    || state
                        .last_checkpoint
                        .is_none_or(|at| at.elapsed() >= config.checkpoint_every);
                // An unconfirmed lease means PostgreSQL, which records
                // checkpoints, is not answering: the log keeps the points.
                if !due || !shard.taking_writes.load(Ordering::Acquire) || !shard.confirmed() {
                    continue;
                }
                if let Err(e) = self.checkpoint_locked(&shard, &mut state).await {
                    warn!(shard = number, error = %e, "checkpoint failed; will retry");
                }
            }
        }
    }

    /// The shards this node serves now.
    pub fn shards(&self) -> Vec<u32> {
        let mut shards: Vec<u32> = self.inner.shards.read().keys().copied().collect();
        shards.sort_unstable();
        shards
    }

    /// The shards this node serves whose lease PostgreSQL has not
    /// confirmed lately (it cannot be reached).
    pub fn unconfirmed(&self) -> Vec<u32> {
        let shards = self.inner.shards.read();
        let mut out: Vec<u32> = shards
            .values()
            .filter(|s| !s.confirmed())
            .map(|s| s.number)
            .collect();
        out.sort_unstable();
        out
    }

    /// The lease epoch this node serves `shard` under.
    pub fn epoch(&self, shard: u32) -> Option<i64> {
        self.inner.shards.read().get(&shard).map(|s| s.lease.epoch)
    }

    /// `database` of `shard`, when this node serves the shard and the
    /// database has data there (for reads).
    pub async fn db(&self, shard: u32, database: &str) -> Option<Db> {
        let shard = self.shard(shard).ok()?;
        let state = shard.state.lock().await;
        state.databases.get(database).map(|d| d.db.clone())
    }

    /// Flushes every served shard to the object store and records it
    /// (what runs periodically, and before a shard moves).
    pub async fn checkpoint_all(&self) -> Result<()> {
        for number in self.shards() {
            self.checkpoint(number).await?;
        }
        Ok(())
    }

    /// Flushes `shard`'s databases to the object store, records blocks,
    /// log position and state files under the lease, then drops the log
    /// up to that position. Writes to the shard wait meanwhile.
    pub async fn checkpoint(&self, shard: u32) -> Result<()> {
        let shard = self.shard(shard)?;
        let mut state = shard.state.lock().await;
        self.checkpoint_locked(&shard, &mut state).await
    }

    /// Runs retention and the due compactions of `shard`'s databases,
    /// then checkpoints it, so the manifest lists the merged blocks and
    /// the replaced ones are retired for the compactor to delete: what the
    /// compactor asks a shard's owner for (docs/cluster.md, "The
    /// compactor"). Writes go on while blocks merge. `force` merges every
    /// adjacent block now (an operator's `/admin/compact`). Answers the
    /// number of blocks retired.
    pub async fn compact(&self, number: u32, force: bool) -> Result<usize> {
        let shard = self.shard(number)?;
        if !shard.taking_writes.load(Ordering::Acquire) || !shard.confirmed() {
            return Err(Error::Moving { shard: number });
        }
        let dbs: Vec<Db> = {
            let state = shard.state.lock().await;
            state.databases.values().map(|d| d.db.clone()).collect()
        };
        for db in dbs {
            blocking(move || Ok(db.compact(force)?)).await?;
        }
        let mut state = shard.state.lock().await;
        let retired = state
            .databases
            .values()
            .map(|d| d.db.replaced_blocks().len())
            .sum();
        self.checkpoint_locked(&shard, &mut state).await?;
        Ok(retired)
    }

    /// Keeps `secs` of `database`'s data (0: everything) in each shard
    /// this node serves that holds it (`/api/ttl` on a cluster, applied
    /// by every owner); how many shard databases changed.
    pub async fn set_retention(&self, database: &str, secs: u64) -> Result<usize> {
        let shards: Vec<Arc<Shard>> = self.inner.shards.read().values().cloned().collect();
        self.retain(shards, database, secs).await
    }

    /// [`Ingester::set_retention`] in those of `shards` this node serves
    /// (a `/api/ttl` applied at once): the shards covered, and how many
    /// shard databases changed.
    pub async fn set_retention_in(
        &self,
        database: &str,
        shards: &[u32],
        secs: u64,
    ) -> Result<(Vec<u32>, usize)> {
        let served = self.served(shards);
        let covered = served.iter().map(|s| s.number).collect();
        Ok((covered, self.retain(served, database, secs).await?))
    }

    async fn retain(&self, shards: Vec<Arc<Shard>>, database: &str, secs: u64) -> Result<usize> {
        let mut changed = 0;
        for shard in shards {
            let db = {
                let state = shard.state.lock().await;
                state.databases.get(database).map(|d| d.db.clone())
            };
            if let Some(db) = db.filter(|db| db.retention_secs() != secs) {
                blocking(move || Ok(db.set_retention_secs(secs)?)).await?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The metadata connection, made again when PostgreSQL restarted.
    async fn meta(&self) -> Result<tokio::sync::MutexGuard<'_, Meta>> {
        let mut meta = self.inner.meta.lock().await;
        if meta.is_closed() {
            *meta = meta.reconnect().await?;
            info!("metadata store connection made again");
        }
        Ok(meta)
    }

    fn shard(&self, number: u32) -> Result<Arc<Shard>> {
        self.inner
            .shards
            .read()
            .get(&number)
            .cloned()
            .ok_or(Error::NotOwner { shard: number })
    }

    /// `name` of the shard, opened empty when it has no data here yet.
    async fn database(&self, shard: u32, state: &mut ShardState, name: &str) -> Result<Db> {
        if let Some(d) = state.databases.get(name) {
            return Ok(d.db.clone());
        }
        if !sundial_storage::is_valid_name(name) {
            return Err(Error::BadDatabase(name.to_owned()));
        }
        let db = self.open_db(shard, name, Vec::new()).await?;
        state.databases.insert(
            name.to_owned(),
            ShardDb {
                db: db.clone(),
                recorded: HashSet::new(),
                checkpoint: Vec::new(),
                changes: 0,
                incarnation: next_incarnation(),
            },
        );
        Ok(db)
    }

    fn shard_dir(&self, shard: u32) -> PathBuf {
        self.inner.config.dir.join(shard_group(shard))
    }

    async fn drop_shard(&self, number: u32, flush: bool) {
        let Some(shard) = self.inner.shards.write().remove(&number) else {
            return;
        };
        shard.taking_writes.store(false, Ordering::Release);
        let mut state = shard.state.lock().await;
        let dbs: Vec<Db> = std::mem::take(&mut state.databases)
            .into_values()
            .map(|d| d.db)
            .collect();
        let dir = self.shard_dir(number);
        let closed = blocking(move || {
            for db in dbs {
                if flush { db.close() } else { db.discard() }
            }
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    warn!(dir = %dir.display(), error = %e, "cannot remove a shard's local files");
                }
                _ => {}
            }
            Ok(())
        })
        .await;
        if let Err(e) = closed {
            warn!(shard = number, error = %e, "closing a shard failed");
        }
    }
}

impl ShardHandler for Ingester {
    async fn gained(&mut self, shard: u32, lease: &Lease) -> Result<()> {
        let state = self.restore(shard, lease).await?;
        info!(
            shard,
            databases = state.databases.len(),
            position = state.applied,
            "shard restored"
        );
        let served = Arc::new(Shard {
            number: shard,
            lease: lease.clone(),
            taking_writes: AtomicBool::new(true),
            confirmed_until: parking_lot::Mutex::new(None),
            state: tokio::sync::Mutex::new(state),
        });
        self.inner.shards.write().insert(shard, served);
        Ok(())
    }

    async fn releasing(&mut self, shard: u32, _: &Lease) -> Result<()> {
        let Ok(served) = self.shard(shard) else {
            return Ok(());
        };
        served.taking_writes.store(false, Ordering::Release);
        let outcome = {
            let mut state = served.state.lock().await;
            self.checkpoint_locked(&served, &mut state).await
        };
        if let Err(e) = outcome {
            // Kept: the keeper retries the hand-off at a later tick.
            served.taking_writes.store(true, Ordering::Release);
            return Err(e);
        }
        self.drop_shard(shard, true).await;
        Ok(())
    }

    async fn lost(&mut self, shard: u32, _: &Lease) {
        self.drop_shard(shard, false).await;
    }

    fn confirmed(&mut self, shards: &[u32], until: Instant) {
        let served = self.inner.shards.read();
        for shard in shards {
            if let Some(shard) = served.get(shard) {
                *shard.confirmed_until.lock() = Some(until);
            }
        }
    }
}

impl Shard {
    /// Whether PostgreSQL confirmed the lease recently enough that no
    /// other node can hold it yet. Past that (PostgreSQL unreachable),
    /// writes go on, fenced by the log, and reads check the log first.
    fn confirmed(&self) -> bool {
        self.confirmed_until
            .lock()
            .is_some_and(|until| Instant::now() < until)
    }
}

/// Whether a write must not be acknowledged for want of a lease: a local
/// log fences no one, so only a lease PostgreSQL confirmed lately keeps a
/// stale owner from acknowledging writes nobody else will replay.
fn fenced_by_lease_now(wal: &ShardLog, shard: &Shard) -> bool {
    wal.is_local() && !shard.confirmed()
}

/// Writes points to a shard database and waits until they are in its
/// head.
/// Stores a logged frame's points under its rules: the same frame on the
/// same head gives the same outcome, so a replay applies what the first
/// owner applied.
async fn apply(db: &Db, points: Vec<WritePoint>, rules: &BatchRules) -> Result<WriteOutcome> {
    let rules = sundial_storage::Rules {
        groups: &rules.groups,
        vetoed: &rules.vetoed,
    };
    // Durability is the log's; the local WAL only orders the head.
    let written = db.write_with(points, rules, false)?;
    written.commit.wait().await?;
    Ok(written.outcome)
}

/// The store group (and local directory) of a shard's databases.
pub(crate) fn shard_group(shard: u32) -> String {
    format!("shard-{shard:04}")
}

/// The store group of a shard's state files.
pub(crate) fn state_group(shard: u32) -> String {
    format!("state-{shard:04}")
}

/// Runs blocking storage work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("storage task: {e}")))?
}
