//! The engine handle every API writes to and reads from.

use crate::block::{self, Block, BlockId};
use crate::catalog::Catalog;
use crate::compact;
use crate::config::Config;
use crate::delete;
use crate::error::{Error, Result};
use crate::head::{FastMap, Frozen, Head, SeriesId};
use crate::partition::{self, Tiers, Window};
use crate::pending::{Apply, Pending};
use crate::phase::Phase;
use crate::record::{Batch, BatchEncoder};
use crate::snapshot::{Layers, Snapshot};
use crate::wal::{self, CommitResult, Wal, WriterSettings};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak, mpsc};
use sundial_index::RoaringBitmap;
use sundial_model::{
    FieldValue, Kind, PointError, SeriesKey, Timestamp, ValueInput, WriteOutcome, WritePoint,
};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// A cheap-to-clone handle on one open data directory.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
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
    /// The partition boundary the last maintenance flush went up to: late
    /// points for closed partitions wait for the next boundary (or a size
    /// flush) instead of having the open partition logged again each pass.
    closed_up_to: Mutex<Timestamp>,
    /// One retention/compaction pass at a time.
    pub(crate) compact_lock: Mutex<()>,
    /// The flush and maintenance threads, joined at close.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
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
        let (head, catalog, blocks, next_segment) = recover(&config)?;
        let (hint_tx, hint_rx) = mpsc::sync_channel::<()>(1);
        let head = Arc::new(RwLock::new(head));
        let pending = Arc::new(Mutex::new(Pending::default()));
        let applier = Applier {
            head: head.clone(),
            pending: pending.clone(),
            hint: hint_tx,
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
            closed_up_to: Mutex::new(Timestamp::MIN),
            compact_lock: Mutex::new(()),
            threads: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let (nudge_tx, nudge_rx) = mpsc::sync_channel::<()>(1);
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
        Ok(Self { inner })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
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
        self.write_points(points, sync, Atomic::Each)
    }

    /// Like [`Db::write`], but stores nothing unless every point is
    /// acceptable (Baidu's whole-request rule); the outcome then says which
    /// points failed.
    pub fn write_all_or_nothing(&self, points: Vec<WritePoint>, sync: bool) -> Result<Written> {
        let all = [points.len()];
        self.write_points(points, sync, Atomic::Groups(&all))
    }

    /// Like [`Db::write`], with consecutive points grouped by `sizes`: a
    /// group is stored whole or not at all (a multi-field point of
    /// OpenTSDB's `/api/mput`). In a refused group the failing points carry
    /// their error and the others [`PointError::Rejected`].
    pub fn write_groups(
        &self,
        points: Vec<WritePoint>,
        sizes: &[usize],
        sync: bool,
    ) -> Result<Written> {
        self.write_points(points, sync, Atomic::Groups(sizes))
    }

    fn write_points(
        &self,
        mut points: Vec<WritePoint>,
        sync: bool,
        atomic: Atomic<'_>,
    ) -> Result<Written> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.wal.check_room()?;
        let max_string = self.inner.config.max_string_value_bytes;
        // Checked and queued under one lock: the WAL order is this order.
        let mut pending = self.inner.pending.lock();
        let head = self.inner.head.read();
        if head.point_count() >= self.inner.config.max_head_points {
            return Err(Error::HeadFull {
                limit_points: self.inner.config.max_head_points,
            });
        }
        let n = points.len();
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
            check_points(&points, &mut inputs, n, atomic, max_string, known_kind)
        };
        let outcome = WriteOutcome { results };
        if accepted.is_empty() {
            return Ok(Written {
                outcome,
                commit: Commit(None),
            });
        }
        // Series ids: existing ones from the head or from queued writes,
        // new ones numbered on and defined in this record (hash lookups:
        // a write of a million new series costs a million, not squared).
        let mut known = Vec::with_capacity(accepted.len());
        let mut unknown: FastMap<Arc<SeriesKey>, Option<SeriesId>> = FastMap::default();
        for (i, v) in accepted {
            let Some(p) = points.get(i) else { continue };
            let id = match head.recent_id(&p.series) {
                Some(id) => Some((id, true)),
                None => head
                    .lookup(&p.series)
                    .or_else(|| pending.series(&p.series))
                    .map(|id| (id, false)),
            };
            if id.is_none() {
                unknown.insert(p.series.clone(), None);
            }
            known.push((i, v, id));
        }
        self.check_series_limits(unknown.len(), head.series_count(), &pending)?;
        let seq = pending.take_seq();
        let mut enc = BatchEncoder::default();
        let mut new_series: Vec<(SeriesId, Arc<SeriesKey>)> = Vec::with_capacity(unknown.len());
        let mut resolved = Vec::with_capacity(known.len());
        for (i, v, id) in known {
            let Some(p) = points.get(i) else { continue };
            let (id, cached) = match id {
                Some(found) => found,
                None => match unknown.get_mut(&p.series) {
                    Some(Some(id)) => (*id, false),
                    Some(slot) => {
                        let id = pending.new_id(head.next_id());
                        enc.define_series(id, &p.series);
                        pending.add_series(p.series.clone(), id, seq);
                        new_series.push((id, p.series.clone()));
                        *slot = Some(id);
                        (id, false)
                    }
                    None => continue,
                },
            };
            resolved.push((i, v, id, cached));
        }
        for (i, v, id, _) in &resolved {
            if let Some(p) = points.get(*i) {
                let f = enc.field(&p.field);
                enc.point(*id, f, p.timestamp, v);
            }
        }
        drop(head);
        for (metric, field, kind) in &new_kinds {
            pending.add_kind(metric, field, *kind, seq);
        }
        let mut payload = Vec::new();
        enc.finish_into(&mut payload);
        let apply = Apply {
            seq,
            new_series,
            new_kinds: new_kinds.into_iter().map(|(m, f, _)| (m, f)).collect(),
            points,
            accepted: resolved,
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
        let layers = self.inner.layers.read().clone();
        f(Snapshot {
            head,
            source: &self.inner.layers,
            layers,
            min_ts: compact::retention_cutoff(self.inner.config.retention_secs)
                .unwrap_or(sundial_model::Timestamp::MIN),
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
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = flush(&self.inner) {
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

/// What [`check_points`] found: per point its result, the accepted points
/// with their values, and the (metric, field) kinds the write fixes.
type Checked = (
    Vec<std::result::Result<(), PointError>>,
    Vec<(usize, FieldValue)>,
    Vec<(String, String, Kind)>,
);

/// Checks values in order against their field's kind (`known_kind`, or
/// the kind an earlier point of the batch fixed) and the string limit;
/// in a failing group of `atomic`, every point is refused.
fn check_points(
    points: &[WritePoint],
    inputs: &mut impl Iterator<Item = ValueInput>,
    n: usize,
    atomic: Atomic<'_>,
    max_string: usize,
    known_kind: impl Fn(&str, &str) -> Option<Kind>,
) -> Checked {
    let mut new_kinds: HashMap<(&str, &str), Kind> = HashMap::new();
    // Points of one metric come in runs: skips two hash lookups each.
    let mut last_fixed: Option<((&str, &str), Kind)> = None;
    let mut results = Vec::with_capacity(n);
    let mut accepted: Vec<(usize, FieldValue)> = Vec::with_capacity(n);
    let mut sizes = match atomic {
        Atomic::Each => None,
        Atomic::Groups(sizes) => Some(sizes.iter().copied()),
    };
    let mut from = 0;
    while from < n {
        let to = match sizes.as_mut() {
            None => from + 1,
            // Points past the listed sizes are one group each.
            Some(it) => from + it.next().unwrap_or(1).clamp(1, n - from),
        };
        let (accepted_before, mut fixed) = (accepted.len(), Vec::new());
        let mut failed = false;
        for (i, input) in (from..to).zip(inputs.by_ref()) {
            let Some(p) = points.get(i) else { break };
            let key = (p.series.metric.as_str(), p.field.as_str());
            let known = match last_fixed {
                Some((k, kind)) if k == key => Some(kind),
                _ => match new_kinds.get(&key) {
                    Some(kind) => Some(*kind),
                    None => {
                        let kind = known_kind(key.0, key.1);
                        // Kinds already fixed stay fixed for the batch.
                        last_fixed = kind.map(|k| (key, k)).or(last_fixed);
                        kind
                    }
                },
            };
            let checked = input.resolve(known).and_then(|v| match &v {
                FieldValue::String(s) if s.len() > max_string => Err(PointError::StringTooLong {
                    len: s.len(),
                    max: max_string,
                }),
                _ if p.rejected => Err(PointError::Rejected),
                _ => Ok(v),
            });
            match checked {
                Ok(v) => {
                    if known.is_none() {
                        new_kinds.insert(key, v.kind());
                        fixed.push(key);
                    }
                    accepted.push((i, v));
                    results.push(Ok(()));
                }
                Err(e) => {
                    failed = true;
                    results.push(Err(e));
                }
            }
        }
        if failed && to - from > 1 {
            // Undo the group: its points are not stored and the kinds it
            // would have fixed stay open.
            accepted.truncate(accepted_before);
            for key in fixed {
                new_kinds.remove(&key);
            }
            for r in results.iter_mut().skip(from) {
                if r.is_ok() {
                    *r = Err(PointError::Rejected);
                }
            }
        }
        from = to;
    }
    let kinds = new_kinds
        .into_iter()
        .map(|((m, f), k)| (m.to_owned(), f.to_owned(), k))
        .collect();
    (results, accepted, kinds)
}

/// Makes durable WAL records visible: the writer thread's hooks.
struct Applier {
    head: Arc<RwLock<Head>>,
    pending: Arc<Mutex<Pending>>,
    hint: mpsc::SyncSender<()>,
}

impl wal::Hooks for Applier {
    fn durable(&self, mut applies: Vec<Apply>) {
        {
            let mut head = self.head.write();
            for a in &mut applies {
                for (id, key) in &a.new_series {
                    let new = head.key(*id).is_none();
                    if head.define(*id, (**key).clone()) && new {
                        head.uncataloged.push(*id);
                    }
                }
                for (i, v, id, known) in std::mem::take(&mut a.accepted) {
                    let Some(p) = a.points.get(i) else { continue };
                    head.apply(id, &p.field, p.timestamp, v);
                    if !known {
                        head.remember(&p.series, id);
                    }
                }
            }
        }
        // After the head: a writer checking in between finds the kinds and
        // series in both places, which agree.
        let mut pending = self.pending.lock();
        for a in &applies {
            pending.settle(a);
        }
    }

    fn failed(&self, applies: Vec<Apply>) {
        let mut pending = self.pending.lock();
        for a in &applies {
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

/// Flushes when the WAL writer hints, then nudges the maintenance thread.
fn run_flusher(inner: Weak<Inner>, hints: mpsc::Receiver<()>, flushed: mpsc::SyncSender<()>) {
    while hints.recv().is_ok() {
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = flush(&inner) {
            error!(error = %e, "background flush failed; will retry at the next threshold");
        }
        let _ = flushed.try_send(());
    }
}

/// Runs retention and compaction after flushes and periodically, on its
/// own thread so a long merge never holds up flushes.
fn run_maintenance(inner: Weak<Inner>, nudges: mpsc::Receiver<()>) {
    let interval = match inner.upgrade() {
        Some(i) => std::time::Duration::from_secs(i.config.maintenance_interval_secs),
        None => return,
    };
    loop {
        match nudges.recv_timeout(interval) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let age = inner.last_flush.lock().elapsed();
        let flushed = if age.as_secs() >= inner.config.max_head_age_secs {
            flush(&inner)
        } else {
            // Closed partitions go to their blocks; the open one stays.
            let tiers = Tiers::new(inner.config.partition_secs);
            let grace = i64::try_from(inner.config.partition_grace_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            let before = tiers.closed_before(sundial_model::now_ms(), grace);
            if before > *inner.closed_up_to.lock() {
                flush_before(&inner, Some(before)).inspect(|()| *inner.closed_up_to.lock() = before)
            } else {
                Ok(())
            }
        };
        if let Err(e) = flushed {
            error!(error = %e, "periodic flush failed; will retry");
        }
        if let Err(e) = compact::maintain(&inner, false) {
            error!(error = %e, "compaction failed; blocks are unchanged");
        }
    }
}

/// Flushes every point in the head.
pub(crate) fn flush(inner: &Inner) -> Result<()> {
    flush_before(inner, None)
}

/// Flushes the head's points older than `before` (all for `None`) into one
/// block per time window, then deletes the WAL segments they were logged
/// in. Points left in the head are logged again first, in the segment the
/// rotation starts, so those segments can go.
pub(crate) fn flush_before(inner: &Inner, before: Option<Timestamp>) -> Result<()> {
    let _one = inner.flush_lock.lock();
    if before.is_none() {
        *inner.last_flush.lock() = std::time::Instant::now();
    }
    {
        let head = inner.head.read();
        if head.point_count() == 0 || before.is_some_and(|t| !head.has_points_before(t)) {
            return Ok(());
        }
    }
    // The rotation answers once every record queued before it is durable
    // and in the head; the writer then writes nothing until the kept
    // points are logged again, first in the new segment, so replay keeps
    // last-write-wins.
    let rotation = inner.wal.rotate()?;
    let below = match rotation.rotated.blocking_recv() {
        Ok(Ok(n)) => n,
        Ok(Err(reason)) => return Err(Error::WalFailed { reason }),
        Err(_) => {
            return Err(Error::WalStopped {
                reason: "writer exited during rotation".into(),
            });
        }
    };
    let (frozen, relogged, new_series, hidden) = {
        let mut head = inner.head.write();
        let payloads = match before {
            Some(t) => relog_payloads(&head, t),
            None => Vec::new(),
        };
        let (done, relogged) = oneshot::channel();
        // A dropped receiver means the writer stopped; the wait below says so.
        let _ = rotation.relog.send(wal::Relog { payloads, done });
        let frozen = Arc::new(head.freeze(before));
        let new_series = std::mem::take(&mut head.uncataloged);
        // Series written again since a delete removed them: the set must
        // be on disk before the WAL that shows the writes is deleted.
        let hidden = head.hidden_dirty.then(|| head.hidden.clone());
        head.hidden_dirty = false;
        let mut layers = inner.layers.write();
        *layers = Arc::new(Layers {
            blocks: layers.blocks.clone(),
            frozen: Some(frozen.clone()),
        });
        (frozen, relogged, new_series, hidden)
    };
    // Logged outside the head lock; ends when this function returns.
    let _phase = Phase::start("flush", &inner.config.data_dir);
    // Series definitions must be durable before the WAL holding them is
    // deleted; the block refers to series by id only.
    let result = catalog_series(inner, &new_series)
        // Before the block: once the block is in place, recovery deletes
        // the WAL that shows the writes which put these series back.
        .and_then(|()| match &hidden {
            Some(h) => delete::persist_hidden(&inner.config.vfs, &inner.config.data_dir, h),
            None => Ok(()),
        })
        .and_then(|()| write_blocks(inner, &frozen, below));
    match result {
        Ok(written) => {
            {
                let mut layers = inner.layers.write();
                let mut blocks = layers.blocks.clone();
                blocks.extend(written.into_iter().map(Arc::new));
                *layers = Arc::new(Layers {
                    blocks,
                    frozen: None,
                });
            }
            if let Err(e) = Commit(Some(relogged)).wait_blocking() {
                // The blocks hold the flushed points; the old segments stay
                // and replay them again, which is harmless.
                warn!(error = %e, "points kept in the head were not logged again; WAL segments kept");
                return Ok(());
            }
            let dir = &inner.config.data_dir;
            write_covered(&inner.config.vfs, dir, below)?;
            for n in wal::list_segments(dir)?.into_iter().filter(|n| *n < below) {
                let path = wal::segment_path(dir, n);
                if let Err(e) = inner.config.vfs.remove_file(&path) {
                    warn!(path = %path.display(), error = %e, "cannot delete flushed WAL segment");
                }
            }
            Ok(())
        }
        Err(e) => {
            // Put the points back so reads keep seeing them and a later
            // flush covers them before their WAL segments are deleted.
            let mut head = inner.head.write();
            let mut layers = inner.layers.write();
            *layers = Arc::new(Layers {
                blocks: layers.blocks.clone(),
                frozen: None,
            });
            // Readers holding an older snapshot may still share it.
            let frozen = Arc::try_unwrap(frozen).unwrap_or_else(|shared| (*shared).clone());
            head.restore(frozen);
            head.hidden_dirty |= hidden.is_some();
            // Appending twice is harmless (a re-definition is a no-op).
            let mut ids = new_series;
            ids.append(&mut head.uncataloged);
            head.uncataloged = ids;
            Err(e)
        }
    }
}

/// Points per record when a partial flush logs the kept points again (a
/// WAL frame's length is a u32).
const RELOG_POINTS: usize = 1 << 20;

/// The head's points from `from` on as WAL record payloads, in order.
fn relog_payloads(head: &Head, from: Timestamp) -> Vec<Vec<u8>> {
    head.encode_points(from, RELOG_POINTS)
        .into_iter()
        .map(|mut enc| {
            let mut payload = Vec::new();
            enc.finish_into(&mut payload);
            payload
        })
        .collect()
}

/// Appends the definitions of `ids` to the catalog, a few thousand keys at
/// a time so a million new series never sit materialised at once.
fn catalog_series(inner: &Inner, ids: &[SeriesId]) -> Result<()> {
    let mut catalog = inner.catalog.lock();
    for chunk in ids.chunks(4096) {
        let defs: Vec<(SeriesId, SeriesKey)> = {
            let head = inner.head.read();
            chunk
                .iter()
                .filter_map(|id| Some((*id, head.key(*id)?)))
                .collect()
        };
        catalog.append(&defs)?;
    }
    Ok(())
}

/// Most blocks one flush writes: a head spanning more partitions (a
/// backfill of scattered old points) is cut by days, or weeks, instead.
const MAX_FLUSH_BLOCKS: usize = 36;

/// Writes the frozen points as one block per window, oldest window first.
/// On failure no block of this flush is left behind.
fn write_blocks(inner: &Inner, frozen: &Frozen, below: u64) -> Result<Vec<Block>> {
    let dir = &inner.config.data_dir;
    let tiers = Tiers::new(inner.config.partition_secs);
    let mut written: Vec<Block> = Vec::new();
    let result = (|| {
        for (seq, w) in flush_windows(&tiers, frozen).into_iter().enumerate() {
            let id = BlockId {
                wal_below: below,
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
            };
            let mut writer = block::writer::BlockWriter::create(
                &inner.config.vfs,
                dir,
                id,
                sundial_codec::Effort::Fast,
            )?;
            let mut points = 0usize;
            for (series, cols) in frozen {
                for (field, pts) in cols {
                    let part = in_window(pts, w);
                    if part.is_empty() {
                        continue;
                    }
                    points += part.len();
                    writer.add(&block::writer::Column {
                        series: *series,
                        field,
                        points: part,
                    })?;
                }
            }
            let path = writer.finish()?;
            written.push(Block::open(&path, id)?);
            info!(path = %path.display(), points, "flushed head to block");
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(written),
        Err(e) => {
            for b in &written {
                let _ = inner.config.vfs.remove_file(b.path());
            }
            Err(e)
        }
    }
}

/// The windows holding frozen points, of the smallest tier that needs at
/// most [`MAX_FLUSH_BLOCKS`] of them; points scattered over more weeks than
/// that go to one block spanning them all (compaction merges such blocks
/// with everything between them).
fn flush_windows(tiers: &Tiers, frozen: &Frozen) -> Vec<Window> {
    let mut windows = std::collections::BTreeSet::new();
    for level in 0..=partition::WEEK {
        windows.clear();
        'columns: for (_, cols) in frozen {
            for (_, pts) in cols {
                let mut rest = pts.as_slice();
                while let Some((ts, _)) = rest.first() {
                    let w = tiers.window(level, *ts);
                    windows.insert(w);
                    let taken = in_window(rest, w).len();
                    if windows.len() > MAX_FLUSH_BLOCKS || taken == 0 {
                        break 'columns;
                    }
                    rest = rest.get(taken..).unwrap_or_default();
                }
            }
        }
        if windows.len() <= MAX_FLUSH_BLOCKS {
            return windows.into_iter().collect();
        }
    }
    vec![Window {
        start: Timestamp::MIN,
        end: Timestamp::MAX,
    }]
}

/// The part of an ascending column inside `w`.
fn in_window(points: &[(Timestamp, FieldValue)], w: Window) -> &[(Timestamp, FieldValue)] {
    let lo = points.partition_point(|p| p.0 < w.start);
    // A window reaching the end of time holds its last instant too.
    let hi = if w.end == Timestamp::MAX {
        points.len()
    } else {
        points.partition_point(|p| p.0 < w.end)
    };
    points.get(lo..hi).unwrap_or_default()
}

/// Records that every WAL segment below `below` is in blocks. Recovery
/// replays from there: a flush that wrote some of its blocks and then
/// crashed leaves the mark where it was, and its WAL is replayed.
fn write_covered(vfs: &crate::vfs::Vfs, dir: &std::path::Path, below: u64) -> Result<()> {
    let path = dir.join(COVERED_FILE);
    vfs.write_atomic(&path, format!("{below}\n").as_bytes())
        .map_err(|e| Error::io("write", &path, e))
}

/// The WAL segment recovery replays from, or `None` before the first
/// flush of this format.
fn read_covered(dir: &std::path::Path) -> Result<Option<u64>> {
    let path = dir.join(COVERED_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: format!("not a segment number: {:?}", text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

const COVERED_FILE: &str = "wal.flushed";

/// Rebuilds the series registry from the catalog, the field kinds from the
/// blocks and the head from the WAL; returns them with the number of the
/// WAL segment to write next.
fn recover(config: &Config) -> Result<(Head, Catalog, Vec<Arc<Block>>, u64)> {
    let dir = &config.data_dir;
    for entry in fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "tmp") {
            warn!(path = %path.display(), "removing an unfinished block from an interrupted flush");
            let _ = config.vfs.remove_file(&path);
        }
    }
    let mut head = Head::default();
    let (catalog, defs) = Catalog::open(&config.vfs, dir)?;
    for (id, key) in defs {
        if !head.define(id, key.clone()) {
            warn!(series = %key, id = id.0, "series id already names another series");
        }
    }
    let mut blocks = Vec::new();
    let mut newest_below = 0u64;
    for id in block::list_blocks(dir)? {
        let block = Block::open(&block::block_path(dir, id), id)?;
        newest_below = newest_below.max(id.wal_below);
        for (id, field, kind) in block.column_kinds() {
            if let Some(metric) = head.key(id).map(|k| k.metric.clone()) {
                head.set_kind(&metric, field, kind);
            }
        }
        blocks.push(Arc::new(block));
    }
    for id in delete::load_hidden(dir)? {
        head.hide(SeriesId(id));
    }
    // Directories from before the mark existed wrote one block per flush,
    // named by the segment it covers up to.
    let covered = match read_covered(dir)? {
        Some(n) => n,
        None => {
            write_covered(&config.vfs, dir, newest_below)?;
            newest_below
        }
    };
    let segments = wal::list_segments(dir)?;
    let mut replayed = 0usize;
    for &n in &segments {
        let path = wal::segment_path(dir, n);
        if n < covered {
            let _ = config.vfs.remove_file(&path);
            continue;
        }
        for batch in replay_segment(config, &path)? {
            replayed += batch.points.len();
            apply_batch(&mut head, batch);
        }
    }
    if replayed > 0 {
        info!(points = replayed, "replayed the write-ahead log");
    }
    // Never below a block's number: a flush that crashed between its
    // blocks must stay older than every later flush.
    let next = segments
        .last()
        .map_or(1, |n| n + 1)
        .max(covered.max(newest_below).max(1));
    Ok((head, catalog, blocks, next))
}

/// The records of one segment to replay. A torn tail (what a crash
/// leaves) is dropped with a warning; damage with intact records after it
/// stops the start, unless `wal_skip_damaged` says to replay around it.
fn replay_segment(config: &Config, path: &std::path::Path) -> Result<Vec<Batch>> {
    let bytes = fs::read(path).map_err(|e| Error::io("read WAL segment", path, e))?;
    let records = wal::parse_segment(&bytes, config.wal_skip_damaged);
    let Some(damage) = records.damage else {
        return Ok(records.batches);
    };
    let Some(resumes_at) = damage.resumes_at else {
        warn!(path = %path.display(), offset = damage.offset, reason = %damage.reason,
            "torn WAL tail dropped (writes a crash interrupted, never acknowledged)");
        return Ok(records.batches);
    };
    if !config.wal_skip_damaged {
        return Err(Error::DamagedWal {
            path: path.to_owned(),
            offset: damage.offset,
            reason: damage.reason,
        });
    }
    let mut kept = path.as_os_str().to_owned();
    kept.push(".damaged");
    if let Err(e) = fs::copy(path, &kept) {
        warn!(path = %path.display(), error = %e, "cannot keep a copy of the damaged WAL segment");
    }
    error!(path = %path.display(), offset = damage.offset, resumes_at, reason = %damage.reason,
        "damaged WAL segment: the records in the damaged bytes are lost; replaying the rest");
    Ok(records.batches)
}

fn apply_batch(head: &mut Head, batch: Batch) {
    for (id, key) in batch.new_series {
        let new = head.key(id).is_none();
        if !head.define(id, key.clone()) {
            warn!(series = %key, id = id.0, "series id already names another series; skipped");
        } else if new {
            // Defined only in the WAL so far: the next flush catalogs it.
            head.uncataloged.push(id);
        }
    }
    for p in batch.points {
        let field = batch
            .fields
            .get(p.field as usize)
            .map_or("", String::as_str);
        if !head.apply(p.series, field, p.timestamp, p.value) {
            warn!(id = p.series.0, %field, "stored point has an unknown series or conflicts with the field kind; skipped");
        }
    }
}

#[cfg(test)]
mod tests;
