//! The write-ahead log: segment files of CRC-framed batch records, written
//! by one thread that commits every queued request with one `write` and
//! (per policy) one `fdatasync`, then hands the records to [`Hooks::durable`]
//! so their points become visible only once durable. Format:
//! `docs/format/wal.md`.
//!
//! After a failed write or sync the log is *failed*: the segment is cut
//! back to its last good record, every queued record fails and nothing
//! new is taken, until a fresh segment can be started (retried each
//! second, so writing resumes by itself once a full disk has room).

use crate::config::FsyncPolicy;
use crate::error::{Error, Result};
use crate::pending::Apply;
use crate::record;
use crate::vfs::{Vfs, VfsFile};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

mod segments;

pub(crate) use segments::{list_segments, parse_segment, segment_path, sync_dir};

pub(crate) const MAGIC: &[u8; 8] = b"SDWAL002";
/// Largest amount of record bytes gathered into one group commit.
const MAX_GROUP_BYTES: usize = 16 << 20;
/// How often a failed log tries to start a fresh segment.
const RECOVER_EVERY: Duration = Duration::from_secs(1);
/// Quiet this long after a commit, the writer hands its freed memory back
/// (and again each such period, [`IDLE_RELEASES`] times).
const IDLE: Duration = Duration::from_secs(1);
const IDLE_RELEASES: u8 = 3;

/// Result of a commit as the writer reports it to a waiting request.
pub(crate) type CommitResult = std::result::Result<(), String>;

/// What the writer thread calls back into.
pub(crate) trait Hooks: Send + 'static {
    /// The records are durable: make them visible, in this order, before
    /// they are acknowledged.
    fn durable(&self, applies: &mut [Apply]);
    /// The records failed and will never be applied.
    fn failed(&self, applies: &[Apply]);
    /// The log failed: forget everything queued records announced and
    /// return the first sequence number that may still be written.
    fn broken(&self) -> u64;
    /// The bytes written since the last flush passed the flush threshold.
    fn flush_due(&self);
}

enum Command {
    Append {
        seq: u64,
        frame: Vec<u8>,
        sync: bool,
        apply: Option<Apply>,
        done: oneshot::Sender<CommitResult>,
    },
    /// Commit what is queued, start the next segment and answer with its
    /// number; then wait for the records to log again first in it.
    Rotate {
        done: oneshot::Sender<std::result::Result<u64, String>>,
        relog: mpsc::Receiver<Relog>,
    },
}

/// Records a flush logs again as the first of a new segment (points kept
/// in the head), always synced.
#[derive(Debug)]
pub(crate) struct Relog {
    pub(crate) payloads: Vec<Vec<u8>>,
    pub(crate) done: oneshot::Sender<CommitResult>,
}

/// The rotation a flush asked for: the new segment's number, and where to
/// send the records to log again.
#[derive(Debug)]
pub(crate) struct Rotation {
    pub(crate) rotated: oneshot::Receiver<std::result::Result<u64, String>>,
    pub(crate) relog: mpsc::Sender<Relog>,
}

/// Shared between the writers and the writer thread.
#[derive(Debug, Default)]
struct Status {
    /// Why the log is failed, while it is.
    failed: Mutex<Option<String>>,
    /// Records queued below this sequence number fail.
    valid_from: AtomicU64,
    /// A failed record is still in its segment (the disk refused the
    /// truncate too): a crash now would replay it.
    uncut: AtomicBool,
}

/// Sending side of the WAL, shared by writers.
#[derive(Debug)]
pub(crate) struct Wal {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    queued_bytes: Arc<AtomicU64>,
    max_queued_bytes: u64,
    status: Arc<Status>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub(crate) struct WriterSettings {
    pub(crate) dir: PathBuf,
    pub(crate) first_segment: u64,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) segment_bytes: u64,
    pub(crate) flush_bytes: u64,
    pub(crate) max_queued_bytes: u64,
    pub(crate) vfs: Vfs,
}

impl Wal {
    /// Creates the first segment and starts the writer thread.
    pub(crate) fn start(settings: WriterSettings, hooks: Box<dyn Hooks>) -> Result<Self> {
        let segment = Segment::create(&settings.vfs, &settings.dir, settings.first_segment)?;
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let status = Arc::new(Status::default());
        let (tx, rx) = mpsc::channel();
        let max_queued_bytes = settings.max_queued_bytes;
        let writer = Writer {
            settings,
            segment,
            queued_bytes: queued_bytes.clone(),
            since_flush: 0,
            hooks,
            status: status.clone(),
            uncut: None,
            last_attempt: Instant::now(),
            idle_releases: 0,
        };
        let thread = std::thread::Builder::new()
            .name("sundial-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("start the WAL thread for", "", e))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            queued_bytes,
            max_queued_bytes,
            status,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Refuses the write if the log has failed or is too far behind.
    pub(crate) fn check_room(&self) -> Result<()> {
        if let Some(reason) = self.status.failed.lock().clone() {
            return Err(Error::WalFailed { reason });
        }
        if self.queued_bytes.load(Ordering::Relaxed) > self.max_queued_bytes {
            return Err(Error::Busy {
                limit_bytes: self.max_queued_bytes,
            });
        }
        Ok(())
    }

    /// Why the log is failed, if it is.
    pub(crate) fn failure(&self) -> Option<String> {
        self.status.failed.lock().clone()
    }

    /// Whether a failed record could not be cut back yet.
    pub(crate) fn has_uncut_failure(&self) -> bool {
        self.status.uncut.load(Ordering::Acquire)
    }

    /// Queues record `seq`. Records are written in the order of these
    /// calls; `apply` reaches [`Hooks::durable`] once the record is.
    pub(crate) fn append(
        &self,
        seq: u64,
        payload: &[u8],
        sync: bool,
        apply: Apply,
    ) -> Result<oneshot::Receiver<CommitResult>> {
        let mut frame = Vec::with_capacity(payload.len() + record::FRAME_HEADER);
        record::frame_into(payload, &mut frame);
        let (done, rx) = oneshot::channel();
        self.queued_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.send(Command::Append {
            seq,
            frame,
            sync,
            apply: Some(apply),
            done,
        })?;
        Ok(rx)
    }

    /// Starts a new segment after everything queued so far.
    pub(crate) fn rotate(&self) -> Result<Rotation> {
        let (done, rotated) = oneshot::channel();
        let (relog_tx, relog) = mpsc::channel();
        self.send(Command::Rotate { done, relog })?;
        Ok(Rotation {
            rotated,
            relog: relog_tx,
        })
    }

    fn send(&self, cmd: Command) -> Result<()> {
        let guard = self.tx.lock();
        let tx = guard.as_ref().ok_or(Error::Closed)?;
        tx.send(cmd).map_err(|_| Error::WalStopped {
            reason: "writer thread exited".into(),
        })
    }

    /// Writes and syncs everything queued, then stops the writer thread.
    pub(crate) fn stop(&self) {
        drop(self.tx.lock().take());
        if let Some(t) = self.thread.lock().take()
            && t.join().is_err()
        {
            error!("the WAL writer thread panicked");
        }
    }
}

/// How far ahead of its records a segment is zeroed: the file's size so
/// far, between these bounds.
const ZERO_AHEAD_MIN: u64 = 64 << 10;
const ZERO_AHEAD_MAX: u64 = 1 << 20;
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

struct Segment {
    file: VfsFile,
    number: u64,
    /// Where the next record goes.
    len: u64,
    /// The file's size: its records, then zeros.
    zeroed: u64,
}

impl Segment {
    fn create(vfs: &Vfs, dir: &Path, number: u64) -> Result<Self> {
        let path = segment_path(dir, number);
        let file = vfs
            .create_new_positioned(&path)
            .map_err(|e| Error::io("create WAL segment", &path, e))?;
        let written = file.write_all_at(MAGIC, 0).and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = vfs.remove_file(&path);
            return Err(Error::io("write WAL segment", &path, e));
        }
        if let Err(e) = vfs.sync_dir(dir) {
            drop(file);
            let _ = vfs.remove_file(&path);
            return Err(Error::io("sync directory", dir, e));
        }
        Ok(Self {
            file,
            number,
            len: MAGIC.len() as u64,
            zeroed: MAGIC.len() as u64,
        })
    }

    /// Zeroes the file from `end` (where the records about to be written
    /// end) some way on, at most to `limit` (the segment's size), unless
    /// that is done already. Syncs of records written over zeros find the
    /// file's size and blocks unchanged and write the data alone; a file
    /// growing with every commit had each sync write its inode too, a
    /// second write waited for. Replay takes zeros after the last record
    /// for the segment's end. A failure here is left to the records' own
    /// write: zeroing only saves work.
    fn zero_ahead(&mut self, end: u64, limit: u64) {
        if end <= self.zeroed || self.zeroed >= limit {
            return;
        }
        let step = self.zeroed.clamp(ZERO_AHEAD_MIN, ZERO_AHEAD_MAX);
        let target = (self.zeroed + step).max(end).min(limit);
        let mut at = end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            if let Err(e) = self.file.write_all_at(&ZEROS[..n], at) {
                debug!(path = %self.path().display(), error = %e, "cannot zero the WAL segment ahead");
                return;
            }
            at += n as u64;
        }
        self.zeroed = target;
    }

    fn path(&self) -> &Path {
        self.file.path()
    }
}

/// One group commit being gathered.
#[derive(Default)]
struct Group {
    buf: Vec<u8>,
    waiters: Vec<oneshot::Sender<CommitResult>>,
    applies: Vec<Apply>,
    sync: bool,
}

struct Writer {
    settings: WriterSettings,
    segment: Segment,
    queued_bytes: Arc<AtomicU64>,
    since_flush: u64,
    hooks: Box<dyn Hooks>,
    status: Arc<Status>,
    /// A failed segment not yet cut back to this length.
    uncut: Option<u64>,
    last_attempt: Instant,
    /// Quiet seconds left in which it hands freed memory back.
    idle_releases: u8,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            let first = if self.is_failed() {
                self.try_recover();
                match rx.recv_timeout(RECOVER_EVERY) {
                    Ok(cmd) => cmd,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv_timeout(IDLE) {
                    Ok(cmd) => cmd,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Idle after commits: the points it applied go to
                        // blocks and are freed on other threads, up to a
                        // flush's length after its rotation.
                        if self.idle_releases > 0 {
                            self.idle_releases -= 1;
                            crate::memory::release();
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut group = Group {
                sync: self.settings.fsync == FsyncPolicy::Always,
                ..Group::default()
            };
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append {
                        seq,
                        frame,
                        sync,
                        apply,
                        done,
                    } => {
                        self.queued_bytes
                            .fetch_sub(frame.len() as u64, Ordering::Relaxed);
                        if seq < self.status.valid_from.load(Ordering::Acquire) {
                            // Checked against writes that failed.
                            let reason = self.failure_text();
                            self.hooks.failed(apply.as_slice());
                            let _ = done.send(Err(reason));
                        } else {
                            group.sync |= sync;
                            group.buf.extend_from_slice(&frame);
                            group.waiters.push(done);
                            group.applies.extend(apply);
                        }
                    }
                    Command::Rotate { done, relog } => {
                        // A flush follows: its freed points are ours.
                        self.idle_releases = IDLE_RELEASES;
                        self.commit(std::mem::take(&mut group));
                        group.sync = self.settings.fsync == FsyncPolicy::Always;
                        self.rotate(done, &relog);
                    }
                }
                if group.buf.len() < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(group);
            if !self.is_failed() && self.segment.len >= self.settings.segment_bytes {
                let number = self.segment.number + 1;
                self.open_segment(number);
            }
        }
        // Channel closed: shutting down. Make everything durable.
        if let Err(e) = self.segment.file.sync_data() {
            error!(path = %self.segment.path().display(), error = %e, "final WAL sync failed");
        }
    }

    fn is_failed(&self) -> bool {
        self.status.failed.lock().is_some()
    }

    fn failure_text(&self) -> String {
        self.status
            .failed
            .lock()
            .clone()
            .unwrap_or_else(|| "the write-ahead log failed".into())
    }

    /// Writes (and syncs) a group; applies it on success, fails it
    /// otherwise. Waiters hear only after their records are visible.
    fn commit(&mut self, mut group: Group) {
        if group.buf.is_empty() && group.waiters.is_empty() {
            return;
        }
        let result = if self.is_failed() {
            Err(self.failure_text())
        } else {
            let good_len = self.segment.len;
            let written = self.write(&group.buf, group.sync);
            if let Err(e) = &written {
                self.fail(good_len, e);
            }
            written.map_err(|_| self.failure_text())
        };
        self.idle_releases = IDLE_RELEASES;
        match &result {
            Ok(()) => {
                self.since_flush += group.buf.len() as u64;
                if self.since_flush >= self.settings.flush_bytes {
                    self.since_flush = 0;
                    self.hooks.flush_due();
                }
                self.hooks.durable(&mut group.applies);
            }
            Err(_) => self.hooks.failed(&group.applies),
        }
        for w in group.waiters {
            let _ = w.send(result.clone());
        }
        // Freeing a group's points (thousands of keys) is no reason to
        // keep its writers waiting.
        drop(group.applies);
    }

    fn write(&mut self, buf: &[u8], sync: bool) -> std::io::Result<()> {
        let end = self.segment.len + buf.len() as u64;
        self.segment.zero_ahead(end, self.settings.segment_bytes);
        self.segment.file.write_all_at(buf, self.segment.len)?;
        self.segment.len = end;
        self.segment.zeroed = self.segment.zeroed.max(end);
        if sync {
            self.segment.file.sync_data()?;
        }
        Ok(())
    }

    /// Enters the failed state: queued records fail, and the segment is cut
    /// back to `good_len` so nothing unacknowledged is replayed later.
    fn fail(&mut self, good_len: u64, e: &std::io::Error) {
        let reason =
            format!("the write-ahead log failed ({e}); writes are refused until it recovers");
        error!(path = %self.segment.path().display(), error = %e, "WAL write failed; refusing writes until a new segment can be started");
        *self.status.failed.lock() = Some(reason);
        let valid_from = self.hooks.broken();
        self.status.valid_from.store(valid_from, Ordering::Release);
        self.segment.len = good_len;
        self.uncut = Some(good_len);
        self.status.uncut.store(true, Ordering::Release);
        self.cut_back();
        self.last_attempt = Instant::now();
    }

    fn cut_back(&mut self) {
        let Some(len) = self.uncut else { return };
        let cut = self
            .segment
            .file
            .set_len(len)
            .and_then(|()| self.segment.file.sync_all());
        match cut {
            Ok(()) => {
                self.segment.zeroed = len;
                self.uncut = None;
                self.status.uncut.store(false, Ordering::Release);
            }
            Err(e) => {
                warn!(path = %self.segment.path().display(), error = %e, "cannot cut the failed WAL segment back yet");
            }
        }
    }

    /// Once a second while failed: cut the old segment back, start a new
    /// one, and take writes again.
    fn try_recover(&mut self) {
        if self.last_attempt.elapsed() < RECOVER_EVERY {
            return;
        }
        self.last_attempt = Instant::now();
        self.cut_back();
        if self.uncut.is_some() {
            return;
        }
        // Past a file a failed start may have left (its removal failed too).
        let mut number = self.segment.number + 1;
        while segment_path(&self.settings.dir, number).exists() {
            number += 1;
        }
        match Segment::create(&self.settings.vfs, &self.settings.dir, number) {
            Ok(s) => {
                self.segment = s;
                *self.status.failed.lock() = None;
                info!(
                    segment = number,
                    "the write-ahead log recovered; writes are taken again"
                );
            }
            Err(e) => warn!(error = %e, "the write-ahead log is still failed"),
        }
    }

    fn rotate(
        &mut self,
        done: oneshot::Sender<std::result::Result<u64, String>>,
        relog: &mpsc::Receiver<Relog>,
    ) {
        if self.is_failed() {
            let _ = done.send(Err(self.failure_text()));
            return;
        }
        let number = self.segment.number + 1;
        self.open_segment(number);
        if self.is_failed() {
            let _ = done.send(Err(self.failure_text()));
            return;
        }
        let _ = done.send(Ok(number));
        // Nothing else is written until the kept points are logged again:
        // they must come first in the new segment.
        let Ok(Relog { payloads, done }) = relog.recv() else {
            return;
        };
        let mut buf = Vec::new();
        for p in &payloads {
            record::frame_into(p, &mut buf);
        }
        let good_len = self.segment.len;
        let written = self.write(&buf, true);
        if let Err(e) = &written {
            self.fail(good_len, e);
        }
        let _ = done.send(written.map_err(|_| self.failure_text()));
    }

    fn open_segment(&mut self, number: u64) {
        let old_len = self.segment.len;
        if let Err(e) = self.segment.file.sync_data() {
            self.fail(old_len, &e);
            return;
        }
        match Segment::create(&self.settings.vfs, &self.settings.dir, number) {
            Ok(s) => self.segment = s,
            Err(e) => {
                error!(error = %e, "cannot start a new WAL segment");
                let io = std::io::Error::other(e.to_string());
                self.fail(old_len, &io);
            }
        }
    }
}
