//! The engine handle every API writes to and reads from.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::head::{Head, HeadView, PendingPoint};
use crate::part;
use crate::record::{Batch, BatchEncoder};
use crate::wal::{self, CommitResult, Wal, WriterSettings};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak, mpsc};
use sundial_model::{
    FieldValue, Kind, PointError, SeriesKey, ValueInput, WriteOutcome, WritePoint,
};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// A cheap-to-clone handle on one open data directory.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    head: RwLock<Head>,
    wal: Wal,
    /// One flush at a time.
    flush_lock: Mutex<()>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
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
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::WalStopped { reason }),
            Err(_) => Err(Error::WalStopped {
                reason: "writer exited before committing".into(),
            }),
        }
    }
}

impl Db {
    /// Opens (creating if needed) the data directory: loads the parts,
    /// replays the WAL written since the last flush, and starts the WAL
    /// writer and the background flusher.
    pub fn open(config: Config) -> Result<Self> {
        let dir = config.data_dir.clone();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create data directory", &dir, e))?;
        let (head, next_segment) = recover(&config)?;
        let (hint_tx, hint_rx) = mpsc::sync_channel::<()>(1);
        let wal = Wal::start(
            WriterSettings {
                dir: dir.clone(),
                first_segment: next_segment,
                fsync: config.fsync,
                segment_bytes: config.wal_segment_bytes,
                flush_bytes: config.flush_wal_bytes,
                max_queued_bytes: config.max_wal_queue_bytes,
            },
            Box::new(move || {
                // A full channel means a flush is already due.
                let _ = hint_tx.try_send(());
            }),
        )?;
        let inner = Arc::new(Inner {
            config,
            head: RwLock::new(head),
            wal,
            flush_lock: Mutex::new(()),
            flusher: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        let flusher = std::thread::Builder::new()
            .name("sundial-flush".into())
            .spawn(move || run_flusher(weak, hint_rx))
            .map_err(|e| Error::io("start the flush thread for", &dir, e))?;
        *inner.flusher.lock() = Some(flusher);
        Ok(Self { inner })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Validates kinds and stores every acceptable point, in order: an
    /// earlier point of the batch can fix the kind a later one must match.
    /// Accepted points are visible to reads on return; `commit` resolves
    /// once they are in the WAL (synced if `sync` or the policy says so).
    pub fn write(&self, mut points: Vec<WritePoint>, sync: bool) -> Result<Written> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.wal.check_room()?;
        let max_string = self.inner.config.max_string_value_bytes;
        let mut head = self.inner.head.write();
        let mut new_kinds: HashMap<(&str, &str), Kind> = HashMap::new();
        let mut results = Vec::with_capacity(points.len());
        let mut accepted: Vec<(usize, FieldValue)> = Vec::with_capacity(points.len());
        for (i, p) in points.iter_mut().enumerate() {
            let input = std::mem::replace(&mut p.value, ValueInput::Typed(FieldValue::Bool(false)));
            let known = new_kinds
                .get(&(p.series.metric.as_str(), p.field.as_str()))
                .copied()
                .or_else(|| head.kind(&p.series.metric, &p.field));
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
                        new_kinds.insert((p.series.metric.as_str(), p.field.as_str()), v.kind());
                    }
                    accepted.push((i, v));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        drop(new_kinds);
        let outcome = WriteOutcome { results };
        if accepted.is_empty() {
            return Ok(Written {
                outcome,
                commit: Commit(None),
            });
        }
        // Series ids: existing ones from the head, new ones numbered on from
        // the head's next id and defined in this record.
        let mut enc = BatchEncoder::default();
        let mut new_series: Vec<(SeriesId, &SeriesKey)> = Vec::new();
        let mut ids = Vec::with_capacity(accepted.len());
        let mut next = head.next_id();
        for (i, _) in &accepted {
            let Some(p) = points.get(*i) else { continue };
            let id = match head.lookup(&p.series) {
                Some(id) => id,
                None => match new_series.iter().find(|(_, k)| **k == p.series) {
                    Some((id, _)) => *id,
                    None => {
                        let id = SeriesId(next);
                        next += 1;
                        enc.define_series(id, &p.series);
                        new_series.push((id, &p.series));
                        id
                    }
                },
            };
            ids.push(id);
        }
        for ((i, v), id) in accepted.iter().zip(&ids) {
            if let Some(p) = points.get(*i) {
                let f = enc.field(&p.field);
                enc.point(*id, f, p.timestamp, v);
            }
        }
        let mut payload = Vec::new();
        enc.finish_into(&mut payload);
        // Queued while holding the head lock, so the WAL order is the order
        // in which the head applied writes: replay reproduces last-write-wins.
        // Series are defined in the head only once their record is queued.
        let rx = self.inner.wal.append(&payload, sync)?;
        for (id, key) in new_series {
            head.define(id, key.clone());
        }
        for ((i, v), id) in accepted.into_iter().zip(ids) {
            if let Some(p) = points.get(i) {
                head.apply(id, &p.field, p.timestamp, v);
            }
        }
        Ok(Written {
            outcome,
            commit: Commit(Some(rx)),
        })
    }

    /// Runs `f` with a consistent view of the stored data.
    pub fn read<R>(&self, f: impl FnOnce(HeadView<'_>) -> R) -> R {
        let head = self.inner.head.read();
        f(HeadView { head: &head })
    }

    /// Writes every point applied since the last flush into a part file and
    /// deletes the WAL segments it covers. Blocking; not for async contexts.
    pub fn flush(&self) -> Result<()> {
        flush(&self.inner)
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
        if let Some(t) = self.inner.flusher.lock().take()
            && t.join().is_err()
        {
            error!("the flush thread panicked");
        }
    }
}

fn run_flusher(inner: Weak<Inner>, hints: mpsc::Receiver<()>) {
    while hints.recv().is_ok() {
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = flush(&inner) {
            error!(error = %e, "background flush failed; will retry at the next threshold");
        }
    }
}

fn flush(inner: &Inner) -> Result<()> {
    let _one = inner.flush_lock.lock();
    let (mut pending, rotated) = {
        let mut head = inner.head.write();
        if head.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut head.pending);
        match inner.wal.rotate() {
            Ok(rx) => (pending, rx),
            Err(e) => {
                head.pending = pending;
                return Err(e);
            }
        }
    };
    let result = rotated
        .blocking_recv()
        .map_err(|_| Error::WalStopped {
            reason: "writer exited during rotation".into(),
        })
        .and_then(|below| write_part(inner, &mut pending, below).map(|()| below));
    match result {
        Ok(below) => {
            let dir = &inner.config.data_dir;
            for n in wal::list_segments(dir)?.into_iter().filter(|n| *n < below) {
                let path = wal::segment_path(dir, n);
                if let Err(e) = fs::remove_file(&path) {
                    warn!(path = %path.display(), error = %e, "cannot delete flushed WAL segment");
                }
            }
            Ok(())
        }
        Err(e) => {
            // Keep the points pending so a later flush covers them before
            // their WAL segments are deleted.
            let mut head = inner.head.write();
            let newer = std::mem::take(&mut head.pending);
            pending.extend(newer);
            head.pending = pending;
            Err(e)
        }
    }
}

fn write_part(inner: &Inner, pending: &mut [PendingPoint], below: u64) -> Result<()> {
    // Stable sort keeps arrival order among equal keys; the last one wins.
    pending.sort_by_key(|(id, col, ts, _)| (*id, *col, *ts));
    let head = inner.head.read();
    let mut rows = Vec::with_capacity(pending.len());
    for (i, (id, col, ts, value)) in pending.iter().enumerate() {
        let superseded = pending
            .get(i + 1)
            .is_some_and(|(nid, ncol, nts, _)| (nid, ncol, nts) == (id, col, ts));
        if superseded {
            continue;
        }
        let (Some(key), Some(field)) = (head.key(*id), head.field_name(*id, *col)) else {
            continue;
        };
        rows.push((*id, key, field, *ts, value));
    }
    let path = part::write(&inner.config.data_dir, below, &rows)?;
    info!(path = %path.display(), points = rows.len(), "flushed head to part");
    Ok(())
}

/// Rebuilds the head from parts and the WAL; returns it with the number of
/// the WAL segment to write next.
fn recover(config: &Config) -> Result<(Head, u64)> {
    let dir = &config.data_dir;
    for entry in fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "tmp") {
            warn!(path = %path.display(), "removing an unfinished part from an interrupted flush");
            let _ = fs::remove_file(&path);
        }
    }
    let mut head = Head::default();
    let mut covered = 0u64;
    for below in wal::list_numbered(dir, "part-", ".sdp")? {
        let (below, batches) = part::read(&part::part_path(dir, below))?;
        covered = covered.max(below);
        for batch in batches {
            apply_batch(&mut head, batch);
        }
    }
    // Parts are durable already; only WAL points still need a flush.
    head.pending.clear();
    let segments = wal::list_segments(dir)?;
    let mut replayed = 0usize;
    for &n in &segments {
        let path = wal::segment_path(dir, n);
        if n < covered {
            let _ = fs::remove_file(&path);
            continue;
        }
        for batch in wal::read_segment(&path)? {
            replayed += batch.points.len();
            apply_batch(&mut head, batch);
        }
    }
    if replayed > 0 {
        info!(points = replayed, "replayed the write-ahead log");
    }
    let next = segments.last().map_or(1, |n| n + 1).max(covered.max(1));
    Ok((head, next))
}

fn apply_batch(head: &mut Head, batch: Batch) {
    for (id, key) in batch.new_series {
        if !head.define(id, key.clone()) {
            warn!(series = %key, id = id.0, "series id already names another series; skipped");
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
