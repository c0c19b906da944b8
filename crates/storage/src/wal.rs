//! The write-ahead log: segment files of CRC-framed batch records, written
//! by one thread that commits every queued request with one `write` and
//! (per policy) one `fdatasync`. Format: `docs/format/wal.md`.

use crate::config::FsyncPolicy;
use crate::error::{Error, Result};
use crate::record::{self, Batch, FrameError};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use tokio::sync::oneshot;
use tracing::{error, warn};

const MAGIC: &[u8; 8] = b"SDWAL002";
/// Largest amount of record bytes gathered into one group commit.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Result of a commit as the writer reports it to a waiting request.
pub(crate) type CommitResult = std::result::Result<(), String>;

enum Command {
    Append {
        frame: Vec<u8>,
        sync: bool,
        done: oneshot::Sender<CommitResult>,
    },
    /// Close the current segment and start the next; replies with the new
    /// segment's number, so every earlier segment is complete.
    Rotate { done: oneshot::Sender<u64> },
}

/// Sending side of the WAL, shared by writers.
#[derive(Debug)]
pub(crate) struct Wal {
    tx: parking_lot::Mutex<Option<mpsc::Sender<Command>>>,
    queued_bytes: Arc<AtomicU64>,
    max_queued_bytes: u64,
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Called by the writer thread when the bytes written since the last flush
/// pass the flush threshold.
pub(crate) type FlushHint = Box<dyn Fn() + Send>;

pub(crate) struct WriterSettings {
    pub(crate) dir: PathBuf,
    pub(crate) first_segment: u64,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) segment_bytes: u64,
    pub(crate) flush_bytes: u64,
    pub(crate) max_queued_bytes: u64,
}

impl Wal {
    /// Creates the first segment and starts the writer thread.
    pub(crate) fn start(settings: WriterSettings, flush_hint: FlushHint) -> Result<Self> {
        let segment = Segment::create(&settings.dir, settings.first_segment)?;
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let max_queued_bytes = settings.max_queued_bytes;
        let writer = Writer {
            settings,
            segment,
            queued_bytes: queued_bytes.clone(),
            since_flush: 0,
            flush_hint,
            broken: None,
        };
        let thread = std::thread::Builder::new()
            .name("sundial-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("start the WAL thread for", "", e))?;
        Ok(Self {
            tx: parking_lot::Mutex::new(Some(tx)),
            queued_bytes,
            max_queued_bytes,
            thread: parking_lot::Mutex::new(Some(thread)),
        })
    }

    /// Refuses the write if the writer is too far behind.
    pub(crate) fn check_room(&self) -> Result<()> {
        if self.queued_bytes.load(Ordering::Relaxed) > self.max_queued_bytes {
            return Err(Error::Busy {
                limit_bytes: self.max_queued_bytes,
            });
        }
        Ok(())
    }

    /// Queues one record. Records are written in the order of these calls.
    pub(crate) fn append(
        &self,
        payload: &[u8],
        sync: bool,
    ) -> Result<oneshot::Receiver<CommitResult>> {
        let mut frame = Vec::with_capacity(payload.len() + record::FRAME_HEADER);
        record::frame_into(payload, &mut frame);
        let (done, rx) = oneshot::channel();
        self.queued_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.send(Command::Append { frame, sync, done })?;
        Ok(rx)
    }

    /// Starts a new segment after everything queued so far.
    pub(crate) fn rotate(&self) -> Result<oneshot::Receiver<u64>> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Rotate { done })?;
        Ok(rx)
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

struct Segment {
    path: PathBuf,
    file: File,
    number: u64,
    len: u64,
}

impl Segment {
    fn create(dir: &Path, number: u64) -> Result<Self> {
        let path = segment_path(dir, number);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("create WAL segment", &path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write WAL segment", &path, e))?;
        sync_dir(dir)?;
        Ok(Self {
            path,
            file,
            number,
            len: MAGIC.len() as u64,
        })
    }
}

struct Writer {
    settings: WriterSettings,
    segment: Segment,
    queued_bytes: Arc<AtomicU64>,
    since_flush: u64,
    flush_hint: FlushHint,
    /// Set after an I/O error: nothing more is acknowledged.
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut buf = Vec::new();
        let mut waiters = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            let mut need_sync = self.settings.fsync == FsyncPolicy::Always;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { frame, sync, done } => {
                        need_sync |= sync;
                        buf.extend_from_slice(&frame);
                        waiters.push(done);
                    }
                    Command::Rotate { done } => {
                        self.commit(&mut buf, &mut waiters, need_sync);
                        let number = self.segment.number + 1;
                        self.open_segment(number);
                        let _ = done.send(number);
                    }
                }
                if buf.len() < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(&mut buf, &mut waiters, need_sync);
            if self.segment.len >= self.settings.segment_bytes {
                let number = self.segment.number + 1;
                self.open_segment(number);
            }
        }
        // Channel closed: shutting down. Make everything durable.
        if let Err(e) = self.segment.file.sync_data() {
            error!(path = %self.segment.path.display(), error = %e, "final WAL sync failed");
        }
    }

    fn commit(
        &mut self,
        buf: &mut Vec<u8>,
        waiters: &mut Vec<oneshot::Sender<CommitResult>>,
        sync: bool,
    ) {
        if buf.is_empty() && waiters.is_empty() {
            return;
        }
        let result = match &self.broken {
            Some(reason) => Err(reason.clone()),
            None => self.write(buf, sync),
        };
        if let Err(reason) = &result {
            error!(path = %self.segment.path.display(), error = %reason, "WAL write failed; refusing further writes");
            self.broken = Some(reason.clone());
        }
        self.queued_bytes
            .fetch_sub(buf.len() as u64, Ordering::Relaxed);
        self.since_flush += buf.len() as u64;
        if self.since_flush >= self.settings.flush_bytes {
            self.since_flush = 0;
            (self.flush_hint)();
        }
        buf.clear();
        for w in waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }

    fn write(&mut self, buf: &[u8], sync: bool) -> CommitResult {
        self.segment
            .file
            .write_all(buf)
            .map_err(|e| e.to_string())?;
        self.segment.len += buf.len() as u64;
        if sync {
            self.segment.file.sync_data().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn open_segment(&mut self, number: u64) {
        if let Err(e) = self.segment.file.sync_data() {
            self.broken = Some(e.to_string());
        }
        match Segment::create(&self.settings.dir, number) {
            Ok(s) => self.segment = s,
            Err(e) => {
                error!(error = %e, "cannot start a new WAL segment");
                self.broken = Some(e.to_string());
            }
        }
    }
}

pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:010}.log"))
}

/// Segment numbers present in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    list_numbered(dir, "wal-", ".log")
}

pub(crate) fn list_numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads every intact record of a segment. A torn or corrupt tail is
/// dropped with a warning: it can only hold writes that were never
/// acknowledged (or, for mid-file damage, the segment's rest is unreadable).
pub(crate) fn read_segment(path: &Path) -> Result<Vec<Batch>> {
    let bytes = fs::read(path).map_err(|e| Error::io("read WAL segment", path, e))?;
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        warn!(path = %path.display(), "WAL segment without a complete header; skipped");
        return Ok(Vec::new());
    };
    let mut records = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        match record::read_frame(rest) {
            Ok((payload, tail)) => match record::decode_batch(payload) {
                Ok(batch) => {
                    records.push(batch);
                    rest = tail;
                }
                Err(reason) => {
                    warn!(path = %path.display(), offset, %reason, "undecodable WAL record; rest of segment dropped");
                    break;
                }
            },
            Err(FrameError::Truncated) => {
                warn!(path = %path.display(), offset, "torn WAL tail record dropped");
                break;
            }
            Err(FrameError::Checksum) => {
                warn!(path = %path.display(), offset, "WAL record checksum mismatch; rest of segment dropped");
                break;
            }
        }
    }
    Ok(records)
}

/// Makes a rename or file creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}
