//! The engine handle every API writes to and reads from.

use crate::catalog::Catalog;
use crate::compact;
use crate::config::Config;
use crate::delete;
use crate::error::{Error, Result};
use crate::head::{Head, KeyHash, SeriesId};
use crate::pending::{Accepted, Apply, NewSeries, Pending};
use crate::record::BatchEncoder;
use crate::snapshot::{Layers, Snapshot};
use crate::wal::{self, CommitResult, Wal, WriterSettings};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use sundial_index::RoaringBitmap;
use sundial_model::{FieldValue, SeriesKey, Timestamp, ValueInput, WriteOutcome, WritePoint};
use tokio::sync::oneshot;
use tracing::error;

/// A cheap-to-clone handle on one open data directory.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
    /// Another node's newer points laid over this one's for reads (see
    /// `db/replica.rs`); `None` for a database read as it is.
    overlay: Option<Arc<replica::Overlay>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    /// Shared with the WAL writer thread, which applies durable records.
    pub(crate) head: Arc<RwLock<Head>>,
    /// Kinds and series of queued records; writers check and queue under
    /// this lock, so the WAL order is the order writes were checked in.
    pending: Arc<Mutex<Pending>>,
    /// Persistent series definitions; appended at each flush.
    catalog: Mutex<Catalog>,
    /// Replaced whole (copy on write) when a flush, compaction or
    /// retention changes the block list.
    pub(crate) layers: RwLock<Arc<Layers>>,
    wal: Wal,
    /// One flush at a time.
    pub(crate) flush_lock: Mutex<()>,
    /// When the whole head was last flushed (or the database opened).
    last_flush: Mutex<std::time::Instant>,
    /// Why the last flush failed, until one succeeds (for the status).
    pub(crate) flush_failure: Mutex<Option<String>>,
    /// Flushes and compactions done, for the metrics.
    pub(crate) activity: activity::Activity,
    /// The partition boundary the last maintenance flush went up to: late
    /// points for closed partitions wait for the next boundary (or a size
    /// flush) instead of having the open partition logged again each pass.
    closed_up_to: Mutex<Timestamp>,
    /// One retention/compaction pass at a time.
    pub(crate) compact_lock: Mutex<()>,
    /// Keys of shared blocks this database no longer lists (compacted or
    /// expired), whose objects its cluster's compactor deletes once the
    /// owner recorded them ([`Db::replaced_blocks`]).
    pub(crate) replaced: Mutex<Vec<String>>,
    /// The flush and maintenance threads, joined at close.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
    /// Points made durable and visible since the database opened.
    written: Arc<AtomicU64>,
    /// Seconds of data kept (0: all); see `db/retention.rs`.
    retention_secs: AtomicU64,
    /// Which series' chunks carry presampled buckets (`rollup.rs`).
    pub(crate) presampling: RwLock<Arc<Vec<crate::rollup::PresamplingRule>>>,
}

/// A database's state, as `GET /admin/storage` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub head_points: usize,
    /// Series defined (in the catalog or the head).
    pub series: usize,
    /// Points made durable since the database opened.
    pub points_written: u64,
    pub blocks: usize,
    /// Of `blocks`, those in the object store.
    pub remote_blocks: usize,
    pub block_bytes: u64,
    /// Where the blocks live, when not in the data directory.
    pub object_store: Option<String>,
    /// Why writes are refused, while they are.
    pub wal_failure: Option<String>,
    /// Why the last flush failed (e.g. the store refused an upload), until
    /// one succeeds: its points wait in the head and the WAL meanwhile.
    pub flush_failure: Option<String>,
    /// Blocks written by flushes and not yet merged by compaction.
    pub flushed_blocks: usize,
    /// WAL segment files and their bytes.
    pub wal_segments: usize,
    pub wal_bytes: u64,
    pub work: activity::WorkDone,
    /// Blocks and their bytes per compaction tier, every tier listed,
    /// smallest first: `partition`, `day`, `week`, then `wide` for blocks
    /// wider than a week's window, and `rollups` for rollups-only blocks
    /// (docs/storage.md, "Rollup tiers").
    pub levels: Vec<LevelStatus>,
}

/// The blocks of one compaction tier.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LevelStatus {
    pub level: &'static str,
    pub blocks: usize,
    pub bytes: u64,
}

/// How the points of one write stand together beyond their own checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// Sizes of consecutive groups, each stored whole or not at all (a
    /// multi-field point of OpenTSDB's `/api/mput`); points past the
    /// listed sizes stand alone. In a refused group the failing points
    /// carry their error and the others [`PointError::Rejected`].
    pub groups: &'a [usize],
    /// Points an API already refused for a rule it checks after the value
    /// kind (OpenTSDB checks kinds first): a kind error is still reported
    /// for them, else [`PointError::Rejected`]; they are never stored and
    /// never fix a field's kind. Missing entries are `false`.
    pub vetoed: &'a [bool],
}

/// Which points of a write stand or fall together.
#[derive(Debug, Clone, Copy)]
enum Atomic<'a> {
    Each,
    /// Sizes of consecutive groups.
    Groups(&'a [usize]),
}

/// The outcome of a write, and the wait for its WAL commit.
#[derive(Debug)]
pub struct Written {
    pub outcome: WriteOutcome,
    pub commit: Commit,
}

/// Resolves when the write's WAL record is committed (written, and synced
/// when the policy or the request asks for it).
#[derive(Debug)]
pub struct Commit(Option<oneshot::Receiver<CommitResult>>);

impl Commit {
    /// A commit that has already happened: for a write stored elsewhere
    /// (a cluster's shard owner) before it was answered.
    pub fn done() -> Self {
        Self(None)
    }

    pub async fn wait(self) -> Result<()> {
        let Some(rx) = self.0 else { return Ok(()) };
        Self::outcome(rx.await)
    }

    /// [`Commit::wait`] for threads outside the runtime.
    pub fn wait_blocking(self) -> Result<()> {
        let Some(rx) = self.0 else { return Ok(()) };
        Self::outcome(rx.blocking_recv())
    }

    fn outcome(
        received: std::result::Result<CommitResult, oneshot::error::RecvError>,
    ) -> Result<()> {
        match received {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::WalFailed { reason }),
            Err(_) => Err(Error::WalStopped {
                reason: "writer exited before committing".into(),
            }),
        }
    }
}

impl Db {
    /// Opens (creating if needed) the data directory: reads the series
    /// catalog and the block indexes, replays the WAL written since the
    /// last flush, and starts the WAL writer, the flusher and the
    /// maintenance (retention, compaction) threads.
    pub fn open(config: Config) -> Result<Self> {
        let dir = config.data_dir.clone();
        config
            .vfs
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create data directory", &dir, e))?;
        let retention_secs = AtomicU64::new(retention::load(&config)?);
        let presampling = RwLock::new(Arc::new(presampling::load(&config)?));
        let (head, catalog, blocks, next_segment) = recover(&config)?;
        let (hint_tx, hint_rx) = mpsc::sync_channel::<()>(1);
        let head = Arc::new(RwLock::new(head));
        let pending = Arc::new(Mutex::new(Pending::default()));
        let written = Arc::new(AtomicU64::new(0));
        let applier = Applier {
            head: head.clone(),
            pending: pending.clone(),
            hint: hint_tx,
            written: written.clone(),
        };
        let wal = Wal::start(
            WriterSettings {
                dir: dir.clone(),
                first_segment: next_segment,
                fsync: config.fsync,
                segment_bytes: config.wal_segment_bytes,
                flush_bytes: config.flush_wal_bytes,
                max_queued_bytes: config.max_wal_queue_bytes,
                vfs: config.vfs.clone(),
            },
            Box::new(applier),
        )?;
        let inner = Arc::new(Inner {
            config,
            head,
            pending,
            catalog: Mutex::new(catalog),
            layers: RwLock::new(Arc::new(Layers {
                blocks,
                frozen: None,
            })),
            wal,
            flush_lock: Mutex::new(()),
            last_flush: Mutex::new(std::time::Instant::now()),
            flush_failure: Mutex::new(None),
            activity: activity::Activity::default(),
            closed_up_to: Mutex::new(Timestamp::MIN),
            compact_lock: Mutex::new(()),
            replaced: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            written,
            retention_secs,
            presampling,
        });
        let (nudge_tx, nudge_rx) = mpsc::sync_channel::<()>(1);
        if inner.config.replica {
            // Read only: nothing to flush, compact or expire here.
            return Ok(Self {
                inner,
                overlay: None,
            });
        }
        let weak = Arc::downgrade(&inner);
        let flusher = std::thread::Builder::new()
            .name("sundial-flush".into())
            .spawn(move || run_flusher(weak, hint_rx, nudge_tx))
            .map_err(|e| Error::io("start the flush thread for", &dir, e))?;
        let weak = Arc::downgrade(&inner);
        let maintenance = std::thread::Builder::new()
            .name("sundial-maint".into())
            .spawn(move || run_maintenance(weak, nudge_rx))
            .map_err(|e| Error::io("start the maintenance thread for", &dir, e))?;
        inner.threads.lock().extend([flusher, maintenance]);
        Ok(Self {
            inner,
            overlay: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database's name: the last part of its directory, which every
    /// opener names after the database.
    pub fn name(&self) -> &str {
        self.inner
            .config
            .data_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(crate::engine::DEFAULT_DATABASE)
    }

    /// Whether both handles are the same open database (a database
    /// dropped and created again is a different one).
    pub fn same_as(&self, other: &Db) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Validates kinds and stores every acceptable point, in order: an
    /// earlier point of the batch can fix the kind a later one must match.
    /// Accepted points become visible to reads once their WAL record is
    /// written (synced if `sync` or the policy says so); `commit` resolves
    /// then, or fails, and a failed record is never applied.
    pub fn write(&self, points: Vec<WritePoint>, sync: bool) -> Result<Written> {
        self.write_points(points, sync, Atomic::Each, &[])
    }

    /// Like [`Db::write`], but stores nothing unless every point is
    /// acceptable (Baidu's whole-request rule); the outcome then says which
    /// points failed.
    pub fn write_all_or_nothing(&self, points: Vec<WritePoint>, sync: bool) -> Result<Written> {
        let all = [points.len()];
        self.write_points(points, sync, Atomic::Groups(&all), &[])
    }

    /// Like [`Db::write`], under the API's [`Rules`].
    pub fn write_with(
        &self,
        points: Vec<WritePoint>,
        rules: Rules<'_>,
        sync: bool,
    ) -> Result<Written> {
        self.write_points(points, sync, Atomic::Groups(rules.groups), rules.vetoed)
    }

    /// Whether a write would be taken now, or the busy (or failed)
    /// error it would get: for callers that log a write elsewhere before
    /// storing it.
    pub fn check_room(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.wal.check_room()?;
        let limit_points = self.inner.config.max_head_points;
        if self.inner.head.read().point_count() >= limit_points {
            return Err(Error::HeadFull { limit_points });
        }
        Ok(())
    }

    /// [`Db::write_with`] if it can run without waiting for a lock (a
    /// flush freezing the head, the WAL thread applying, another write):
    /// callers on async workers take this before moving a write to a
    /// blocking thread, whose two wake-ups cost more than a small write.
    /// Gives the points back when it would wait.
    pub fn try_write_with(
        &self,
        points: Vec<WritePoint>,
        rules: Rules<'_>,
        sync: bool,
    ) -> std::result::Result<Result<Written>, Vec<WritePoint>> {
        let Some(pending) = self.inner.pending.try_lock() else {
            return Err(points);
        };
        let Some(head) = self.inner.head.try_read() else {
            return Err(points);
        };
        let atomic = Atomic::Groups(rules.groups);
        Ok(self.write_locked((pending, head), points, sync, atomic, rules.vetoed))
    }

    fn write_points(
        &self,
        points: Vec<WritePoint>,
        sync: bool,
        atomic: Atomic<'_>,
        vetoed: &[bool],
    ) -> Result<Written> {
        // Checked and queued under one lock: the WAL order is this order.
        let pending = self.inner.pending.lock();
        let head = self.inner.head.read();
        self.write_locked((pending, head), points, sync, atomic, vetoed)
    }

    fn write_locked(
        &self,
        (mut pending, head): (MutexGuard<'_, Pending>, RwLockReadGuard<'_, Head>),
        mut points: Vec<WritePoint>,
        sync: bool,
        atomic: Atomic<'_>,
        vetoed: &[bool],
    ) -> Result<Written> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.wal.check_room()?;
        let max_string = self.inner.config.max_string_value_bytes;
        if head.point_count() >= self.inner.config.max_head_points {
            return Err(Error::HeadFull {
                limit_points: self.inner.config.max_head_points,
            });
        }
        let mut inputs = points
            .iter_mut()
            .map(|p| std::mem::replace(&mut p.value, ValueInput::Typed(FieldValue::Bool(false))))
            .collect::<Vec<_>>()
            .into_iter();
        let (results, accepted, new_kinds) = {
            let known_kind = |metric: &str, field: &str| {
                pending
                    .kind(metric, field)
                    .or_else(|| head.kind(metric, field))
            };
            check_points(&points, &mut inputs, atomic, vetoed, max_string, known_kind)
        };
        let outcome = WriteOutcome { results };
        if accepted.is_empty() {
            return Ok(Written {
                outcome,
                commit: Commit(None),
            });
        }
        let (found, mut unknown) = find_series(&head, &pending, &points, accepted);
        self.check_series_limits(unknown.len(), head.series_count(), &pending)?;
        let seq = pending.take_seq();
        let Encoded {
            mut enc,
            new_series,
            resolved,
            remember,
        } = number_and_encode(&head, &mut pending, seq, &points, found, &mut unknown);
        drop(head);
        for (metric, field, kind) in &new_kinds {
            pending.add_kind(metric, field, *kind, seq);
        }
        let fields = enc.fields().to_vec();
        let mut payload = Vec::new();
        enc.finish_into(&mut payload);
        let apply = Apply {
            seq,
            new_series,
            new_kinds: new_kinds.into_iter().map(|(m, f, _)| (m, f)).collect(),
            fields,
            accepted: resolved,
            remember,
        };
        let rx = match self.inner.wal.append(seq, &payload, sync, apply) {
            Ok(rx) => rx,
            Err(e) => {
                // The log has stopped: nothing queued will be applied.
                pending.clear();
                return Err(e);
            }
        };
        drop(pending);
        drop(points);
        Ok(Written {
            outcome,
            commit: Commit(Some(rx)),
        })
    }

    /// Refuses a write that would create more new series than one write
    /// may, or take the database past its series limit.
    fn check_series_limits(&self, new: usize, in_head: usize, pending: &Pending) -> Result<()> {
        let config = &self.inner.config;
        if new > config.max_new_series_per_write {
            return Err(Error::TooManyNewSeries {
                limit: config.max_new_series_per_write,
            });
        }
        let total = (in_head + pending.series_count() + new) as u64;
        if new > 0 && total > config.max_series {
            return Err(Error::SeriesLimit {
                limit: config.max_series,
            });
        }
        Ok(())
    }

    /// Deletes the points of `series` in `[start, end]`, of `fields` or of
    /// every field; returns how many were deleted. Blocking: flushes, then
    /// rewrites the blocks holding such points.
    pub fn delete_points(
        &self,
        series: &RoaringBitmap,
        fields: Option<&[String]>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<usize> {
        let sel = delete::Selection {
            series,
            fields,
            start,
            end,
        };
        delete::delete(&self.inner, &sel, false)
    }

    /// Deletes every point of `series` and takes them out of the index
    /// (listings and selections) until they are written again; a metric
    /// left without series forgets its field kinds. Blocking.
    pub fn remove_series(&self, series: &RoaringBitmap) -> Result<usize> {
        let sel = delete::Selection {
            series,
            fields: None,
            start: Timestamp::MIN,
            end: Timestamp::MAX,
        };
        delete::delete(&self.inner, &sel, true)
    }

    /// Runs `f` with a consistent view of the stored data.
    pub fn read<R>(&self, f: impl FnOnce(Snapshot<'_>) -> R) -> R {
        let head = self.inner.head.read();
        let overlay = self.overlay.clone();
        let layers = replica::layers_under(&self.inner.layers, overlay.as_deref());
        // A copy read with its owner's newer points keeps the owner's
        // retention, which may have changed since the copy's checkpoint.
        let (min_ts, rollup_min_ts) = match &overlay {
            Some(o) => (o.min_ts(), o.min_ts()),
            None => {
                let at = |cutoff: Option<_>| cutoff.unwrap_or(sundial_model::Timestamp::MIN);
                let raw = compact::retention_cutoff(self.inner.retention_secs());
                (at(raw), at(self.inner.rollup_cutoff()))
            }
        };
        f(Snapshot {
            head,
            source: &self.inner.layers,
            layers,
            min_ts,
            rollup_min_ts,
            grids: self.inner.kept_grids(),
            overlay,
            pinned: false,
        })
    }

    /// Why the write-ahead log refuses writes, while it does (a failed
    /// write or sync; it recovers by itself).
    pub fn wal_failure(&self) -> Option<String> {
        self.inner.wal.failure()
    }

    /// Whether the last failed WAL record is still in its segment because
    /// the disk refused to truncate it as well: until it is cut (the log
    /// retries each second), a crash would bring the refused write back.
    pub fn wal_failure_uncut(&self) -> bool {
        self.inner.wal.has_uncut_failure()
    }

    /// Points in the head (not yet in a block).
    pub fn head_points(&self) -> usize {
        self.inner.head.read().point_count()
    }

    /// What operators look at: the head, the blocks and where they live,
    /// and what is failing.
    pub fn status(&self) -> Status {
        let layers = self.inner.layers.read().clone();
        let dir = &self.inner.config.data_dir;
        let wal_files: Vec<u64> = wal::list_segments(dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| std::fs::metadata(wal::segment_path(dir, n)).ok())
            .map(|m| m.len())
            .collect();
        Status {
            head_points: self.head_points(),
            series: self.inner.head.read().series_count(),
            points_written: self.inner.written.load(Ordering::Relaxed),
            blocks: layers.blocks.len(),
            remote_blocks: layers.blocks.iter().filter(|b| b.is_remote()).count(),
            block_bytes: layers.blocks.iter().map(|b| b.file_bytes).sum(),
            object_store: self.inner.config.remote.as_ref().map(|r| r.location()),
            wal_failure: self.wal_failure(),
            flush_failure: self.inner.flush_failure.lock().clone(),
            flushed_blocks: layers.blocks.iter().filter(|b| b.fast).count(),
            wal_segments: wal_files.len(),
            wal_bytes: wal_files.iter().sum(),
            work: self.inner.activity.done(),
            levels: blocks::levels(&self.inner.config, &layers.blocks),
        }
    }

    /// Number of block files.
    pub fn block_count(&self) -> usize {
        self.inner.layers.read().blocks.len()
    }

    /// Writes the head into a block file and deletes the WAL segments it
    /// covers. Blocking; not for async contexts.
    pub fn flush(&self) -> Result<()> {
        flush(&self.inner)
    }

    /// Runs retention and due compactions now; `force` merges every run of
    /// adjacent blocks up to `max_block_bytes`. Blocking.
    pub fn compact(&self, force: bool) -> Result<()> {
        compact::maintain(&self.inner, force)
    }

    /// What a crash leaves on disk: stops the WAL and the background
    /// threads without flushing. Tests reopen the directory afterwards.
    #[cfg(test)]
    pub(crate) fn abandon(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wal.stop();
        for t in self.inner.threads.lock().drain(..) {
            let _ = t.join();
        }
    }

    /// Stops taking writes, flushes, and stops the background threads.
    /// Blocking; call from a blocking context.
    pub fn close(&self) {
        self.close_with(true);
    }

    fn close_with(&self, flush_head: bool) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if flush_head && let Err(e) = flush(&self.inner) {
            error!(error = %e, "flush at shutdown failed; the WAL keeps the data");
        }
        self.inner.wal.stop();
        // The WAL writer's exit closes the flusher's channel, whose exit
        // closes the maintenance thread's.
        for t in self.inner.threads.lock().drain(..) {
            if t.join().is_err() {
                error!("a storage thread panicked");
            }
        }
    }
}

/// A point's index, checked value, and series.
type Found = (usize, FieldValue, SeriesOf);

/// The series of an accepted point as its write finds it.
enum SeriesOf {
    /// Known to the head or a queued write; `remember`: the head should
    /// remember the id by the point's shared key (it had another owner).
    Known { id: SeriesId, remember: bool },
    /// New to the database: its key's hash, for the write's own list.
    New(KeyHash),
}

/// New series of one write, each listed once (the first point of a key
/// numbers it), by the key's [`KeyHash`].
type Unknown = hashbrown::HashTable<Listed>;

/// A new series of one write: its key, the key's hash, and its id once
/// numbered.
type Listed = (Arc<SeriesKey>, KeyHash, Option<SeriesId>);

/// Whether `listed` is the series of `key`.
fn is_listed(key: &SeriesKey, hash: KeyHash) -> impl Fn(&Listed) -> bool {
    move |(k, h, _)| *h == hash && **k == *key
}

/// Series of the accepted points: existing ones from the head or from
/// queued writes; new ones are listed once (hash lookups: a write of a
/// million new series costs a million, not squared). A key is hashed once
/// for the head, the queued writes and the list.
fn find_series(
    head: &Head,
    pending: &Pending,
    points: &[WritePoint],
    accepted: Vec<(usize, FieldValue)>,
) -> (Vec<Found>, Unknown) {
    let mut found = Vec::with_capacity(accepted.len());
    let mut unknown = Unknown::new();
    for (i, v) in accepted {
        let Some(p) = points.get(i) else { continue };
        let key = &p.series;
        let of = match head.recent_id(key) {
            Some(id) => SeriesOf::Known {
                id,
                remember: false,
            },
            None => {
                let hash = head.key_hash(key);
                match head
                    .lookup_hashed(key, hash)
                    .or_else(|| pending.series(key, hash))
                {
                    Some(id) => SeriesOf::Known {
                        id,
                        remember: Arc::strong_count(key) > 1,
                    },
                    None => {
                        unknown
                            .entry(hash.spread(), is_listed(key, hash), |(_, h, _)| h.spread())
                            .or_insert_with(|| (key.clone(), hash, None));
                        SeriesOf::New(hash)
                    }
                }
            }
        };
        found.push((i, v, of));
    }
    (found, unknown)
}

/// One write's WAL record in the making.
struct Encoded {
    enc: BatchEncoder,
    new_series: Vec<NewSeries>,
    /// As [`Apply::accepted`].
    resolved: Vec<Accepted>,
    /// As [`Apply::remember`].
    remember: Vec<(Arc<SeriesKey>, SeriesId)>,
}

/// Numbers the new series on (defined in the record `seq`) and encodes
/// every point.
fn number_and_encode(
    head: &Head,
    pending: &mut Pending,
    seq: u64,
    points: &[WritePoint],
    found: Vec<Found>,
    unknown: &mut Unknown,
) -> Encoded {
    let mut enc = BatchEncoder::default();
    // The new keys of one write are mostly alike: the first stands for all.
    let key_bytes = unknown
        .iter()
        .next()
        .map_or(0, |(k, _, _)| BatchEncoder::key_bytes(k));
    enc.reserve(unknown.len(), key_bytes, found.len());
    let mut new_series = Vec::with_capacity(unknown.len());
    let mut resolved = Vec::with_capacity(found.len());
    let mut remembered = Vec::new();
    for (i, v, of) in found {
        let Some(p) = points.get(i) else { continue };
        let (id, remember) = match of {
            SeriesOf::Known { id, remember } => (id, remember),
            SeriesOf::New(hash) => {
                match unknown.find_mut(hash.spread(), is_listed(&p.series, hash)) {
                    Some((_, _, Some(id))) => (*id, false),
                    Some((_, _, slot)) => {
                        let id = pending.new_id(head.next_id());
                        enc.define_series(id, &p.series);
                        let new = NewSeries {
                            id,
                            key: p.series.clone(),
                            hash,
                        };
                        pending.add_series(new.clone(), seq);
                        new_series.push(new);
                        *slot = Some(id);
                        (id, false)
                    }
                    None => continue,
                }
            }
        };
        let field = enc.field(&p.field);
        enc.point(id, field, p.timestamp, &v);
        resolved.push(Accepted {
            id,
            field,
            timestamp: p.timestamp,
            value: v,
        });
        if remember {
            remembered.push((p.series.clone(), id));
        }
    }
    Encoded {
        enc,
        new_series,
        resolved,
        remember: remembered,
    }
}

/// Makes durable WAL records visible: the writer thread's hooks.
struct Applier {
    head: Arc<RwLock<Head>>,
    pending: Arc<Mutex<Pending>>,
    hint: mpsc::SyncSender<()>,
    written: Arc<AtomicU64>,
}

impl wal::Hooks for Applier {
    fn durable(&self, applies: &mut [Apply]) {
        {
            let mut head = self.head.write();
            for a in applies.iter_mut() {
                for s in &a.new_series {
                    let new = head.key(s.id).is_none();
                    if head.define_hashed(s.id, &s.key, s.hash) && new {
                        head.uncataloged.push(s.id);
                    }
                }
                self.written
                    .fetch_add(a.accepted.len() as u64, Ordering::Relaxed);
                let fields: SmallVec<[u32; 4]> =
                    a.fields.iter().map(|f| head.field_symbol(f)).collect();
                for p in std::mem::take(&mut a.accepted) {
                    if let Some(field) = fields.get(p.field as usize) {
                        head.apply_field(p.id, *field, p.timestamp, p.value);
                    }
                }
                for (key, id) in &a.remember {
                    head.remember(key, *id);
                }
            }
        }
        // After the head: a writer checking in between finds the kinds and
        // series in both places, which agree.
        let mut pending = self.pending.lock();
        for a in applies.iter() {
            pending.settle(a);
        }
    }

    fn failed(&self, applies: &[Apply]) {
        let mut pending = self.pending.lock();
        for a in applies {
            pending.settle(a);
        }
    }

    fn broken(&self) -> u64 {
        self.pending.lock().clear()
    }

    fn flush_due(&self) {
        // A full channel means a flush is already due.
        let _ = self.hint.try_send(());
    }
}

mod activity;
pub(crate) mod blocks;
pub use activity::WorkDone;
pub use handover::{RemoteBlock, restore_handover};
pub(crate) use replica::layers_under;
pub use replica::{Overlay, OverlayRows};
mod capture;
mod check;
mod flush;
mod handover;
mod presampling;
mod recover;
mod replica;
mod retention;

use check::check_points;
pub(crate) use flush::flush;
use flush::{run_flusher, run_maintenance};
use recover::recover;
#[cfg(test)]
mod tests;
