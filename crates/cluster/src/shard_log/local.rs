//! A shard log on the ingester's own disk (`wal = "local"`;
//! docs/cluster.md, "A local log"): one file per shard, each frame
//! appended and synced before it is acknowledged. Only the node that
//! wrote it can replay it: a shard that moves elsewhere starts from its
//! last checkpoint, so what a dead node did not checkpoint is lost, while
//! a node restarted after a crash (or regaining a shard it lost for a
//! moment) replays its own frames. Its frames are replayed only when no
//! other node can have held the shard since: the log's last frame carries
//! the lease epoch just before the one the node now holds (every lease
//! acquisition raises the epoch by one). Otherwise the log starts again
//! after every position already recorded, so positions never go back.
//!
//! A record is `[payload length u32][crc32 of position and payload u32]
//! [position u64][frame]`, little-endian. A torn last record (a crash
//! mid-append, never acknowledged) is cut when the file is opened.

use crate::frame::{self, ShardBatch};
use crate::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::warn;

const HEADER: usize = 16;

/// Every shard's log under one directory.
#[derive(Debug)]
pub struct LocalWal {
    dir: PathBuf,
    logs: Mutex<HashMap<u32, Arc<Mutex<Option<LogFile>>>>>,
}

/// One shard's open log.
#[derive(Debug)]
struct LogFile {
    file: File,
    path: PathBuf,
    /// The last record's position (0 before any), and its frame's epoch.
    last: u64,
    last_epoch: Option<i64>,
    /// Bytes of whole records.
    len: u64,
    /// A failed append could not be cut back: nothing more is appended
    /// until the file is opened again (which cuts it).
    broken: bool,
}

impl LocalWal {
    /// The logs in `dir` (made when first written).
    pub fn open(dir: PathBuf) -> Self {
        Self {
            dir,
            logs: Mutex::default(),
        }
    }

    /// Runs `f` on `shard`'s log, opened (and its torn tail cut) first,
    /// off the async workers.
    async fn with_log<T: Send + 'static>(
        &self,
        shard: u32,
        f: impl FnOnce(&mut LogFile) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot = self.logs.lock().entry(shard).or_default().clone();
        let path = self.dir.join(format!("shard-{shard:04}.log"));
        tokio::task::spawn_blocking(move || {
            let mut log = slot.lock();
            if log.is_none() {
                *log = Some(LogFile::open(path)?);
            }
            match log.as_mut() {
                Some(log) => f(log),
                None => Err(Error::Internal("a local log did not open".into())),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("local log task: {e}")))?
    }

    /// The last position of `shard`'s log (0 before any).
    pub async fn last_position(&self, shard: u32) -> Result<u64> {
        self.with_log(shard, |log| Ok(log.last)).await
    }

    /// Appends `batch` if the log still ends at `after`; its position.
    pub async fn append_frame_after(&self, batch: &ShardBatch, after: u64) -> Result<u64> {
        let (shard, epoch, payload) = (batch.shard, batch.epoch, frame::encode(batch));
        self.with_log(shard, move |log| {
            if log.last != after {
                return Err(Error::LogMoved { shard });
            }
            log.append(log.last + 1, epoch, &payload)
        })
        .await
    }

    /// Claims `shard`'s log for lease `epoch`: keeps its frames when it
    /// was last written under `epoch - 1` and reaches `floor` (the
    /// positions PostgreSQL recorded), else starts it again after both;
    /// then appends an empty frame. Its position.
    pub async fn fence(&self, shard: u32, epoch: i64, id: u128, floor: u64) -> Result<u64> {
        let payload = frame::encode(&ShardBatch::marker(shard, epoch, id));
        self.with_log(shard, move |log| {
            let ours = log.last_epoch == Some(epoch - 1) && log.last >= floor;
            if !ours && log.len > 0 {
                warn!(
                    shard,
                    epoch,
                    last_epoch = ?log.last_epoch,
                    "the local log was written before another owner held the shard; starting it again"
                );
            }
            if !ours {
                log.restart(log.last.max(floor))?;
            }
            log.append(log.last + 1, epoch, &payload)
        })
        .await
    }

    /// The frames of `shard` after position `after`, with positions.
    pub async fn replay_frames(&self, shard: u32, after: u64) -> Result<Vec<(u64, ShardBatch)>> {
        self.with_log(shard, move |log| {
            log.records()?
                .into_iter()
                .filter(|(position, _)| *position > after)
                .map(|(position, payload)| match frame::decode(&payload) {
                    Ok(batch) => Ok((position, batch)),
                    Err(error) => Err(Error::DamagedWal {
                        shard,
                        position,
                        error,
                    }),
                })
                .collect()
        })
        .await
    }

    /// The last frame of `shard`'s log with its position.
    pub async fn last_frame(&self, shard: u32) -> Result<Option<(u64, ShardBatch)>> {
        let mut frames = self.replay_frames(shard, 0).await?;
        Ok(frames.pop())
    }

    /// Drops `shard`'s frames up to and including `upto` (they are in
    /// recorded blocks); the position and epoch of the last stay known.
    pub async fn truncate(&self, shard: u32, upto: u64) -> Result<()> {
        self.with_log(shard, move |log| {
            let kept: Vec<(u64, Vec<u8>)> = log
                .records()?
                .into_iter()
                .filter(|(position, _)| *position > upto)
                .collect();
            log.rewrite(upto.min(log.last), kept)
        })
        .await
    }
}

impl LogFile {
    /// Opens (or makes) the log at `path`, cutting a torn last record.
    /// A damaged record with whole records after it is not a torn
    /// append: the log is refused rather than cut.
    fn open(path: PathBuf) -> Result<Self> {
        let dir = path.parent().map(std::path::Path::to_path_buf);
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let existed = path.exists();
        let mut file = append_to(&path)?;
        if !existed && let Some(dir) = &dir {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, len) = parse(&bytes);
        let last_position = records.last().map_or(0, |r| r.0);
        if len < bytes.len() {
            if !torn_tail(bytes.get(len..).unwrap_or_default(), last_position) {
                return Err(Error::Internal(format!(
                    "the local log {} is damaged at byte {len}, with records after it",
                    path.display()
                )));
            }
            warn!(path = %path.display(), cut = bytes.len() - len, "cutting a torn record off a local log");
            file.set_len(len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let last = records.last();
        Ok(Self {
            last: last.map_or(0, |r| r.0),
            last_epoch: last.and_then(|r| frame::decode(&r.1).ok()).map(|b| b.epoch),
            file,
            path,
            len: len as u64,
            broken: false,
        })
    }

    /// Every whole record: (position, frame bytes).
    fn records(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let bytes = std::fs::read(&self.path).map_err(io)?;
        let (records, _) = parse(&bytes);
        Ok(records)
    }

    /// Appends and syncs one record; on a failure the file is cut back,
    /// so the log is as before.
    fn append(&mut self, position: u64, epoch: i64, payload: &[u8]) -> Result<u64> {
        if self.broken {
            return Err(Error::Internal(format!(
                "the local log {} failed an append it could not undo; restart the node",
                self.path.display()
            )));
        }
        let record = encode(position, payload)?;
        let written = self
            .file
            .write_all(&record)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.broken = self.file.set_len(self.len).is_err();
            return Err(io(e));
        }
        self.len += record.len() as u64;
        self.last = position;
        self.last_epoch = Some(epoch);
        Ok(position)
    }

    /// Empties the log, whose next position follows `base`.
    fn restart(&mut self, base: u64) -> Result<()> {
        self.rewrite(base, Vec::new())
    }

    /// Replaces the log by an empty frame at `base` (keeping the
    /// position, and the last epoch, known across a reopen), then `kept`:
    /// written aside, synced and renamed over, so a crash leaves the old
    /// log or the new one.
    fn rewrite(&mut self, base: u64, kept: Vec<(u64, Vec<u8>)>) -> Result<()> {
        let epoch = self.last_epoch.unwrap_or(0);
        let mut bytes = Vec::new();
        if base > 0 {
            let marker = frame::encode(&ShardBatch::marker(0, epoch, 0));
            bytes.extend(encode(base, &marker)?);
        }
        for (position, payload) in &kept {
            bytes.extend(encode(*position, payload)?);
        }
        let mut aside = self.path.clone().into_os_string();
        aside.push(".new");
        let aside = PathBuf::from(aside);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&aside)
            .map_err(io)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&aside, &self.path).map_err(io)?;
        // From here the old file has no name: appends must go to the new
        // one, or nowhere.
        match append_to(&self.path) {
            Ok(file) => self.file = file,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        }
        self.len = bytes.len() as u64;
        self.broken = false;
        if let Some((position, payload)) = kept.last() {
            self.last = *position;
            self.last_epoch = Some(frame::decode(payload).map_or(epoch, |b| b.epoch));
        } else {
            self.last = base;
        }
        if let Some(dir) = self.path.parent()
            && let Err(e) = File::open(dir).and_then(|d| d.sync_all())
        {
            self.broken = true;
            return Err(io(e));
        }
        Ok(())
    }
}

fn append_to(path: &std::path::Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)
}

/// Whether `rest`, what follows the last whole record (at position
/// `last`), can be an append a crash cut short: no whole record of a
/// later position starts anywhere in it. One that does means damage in
/// the middle of the log, with acknowledged frames after it.
pub(crate) fn torn_tail(rest: &[u8], last: u64) -> bool {
    (1..rest.len()).all(|at| {
        let tail = rest.get(at..).unwrap_or_default();
        let position = tail.get(8..16).and_then(|p| p.try_into().ok());
        // The checksum only for a plausible later position: scanning
        // garbage stays linear.
        match position.map(u64::from_le_bytes) {
            Some(p) if p > last && p - last <= 1 << 32 => record_at(tail).is_none(),
            _ => true,
        }
    })
}

/// The whole, intact record `bytes` start with: its position, frame and
/// length.
fn record_at(bytes: &[u8]) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
    let position = u64::from_le_bytes(header.get(8..16)?.try_into().ok()?);
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    let mut check = crc32fast::Hasher::new();
    check.update(&position.to_le_bytes());
    check.update(payload);
    (check.finalize() == crc).then_some((position, payload, HEADER + len))
}

pub(crate) fn encode(position: u64, payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::Internal("a frame over 4 GiB for the local log".into()))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&position.to_le_bytes());
    crc.update(payload);
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&crc.finalize().to_le_bytes());
    record.extend_from_slice(&position.to_le_bytes());
    record.extend_from_slice(payload);
    Ok(record)
}

/// The whole records at the start of `bytes`, and their length.
pub(crate) fn parse(bytes: &[u8]) -> (Vec<(u64, Vec<u8>)>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((position, payload, len)) = bytes.get(at..).and_then(record_at) {
        records.push((position, payload.to_vec()));
        at += len;
    }
    (records, at)
}

fn io(e: std::io::Error) -> Error {
    Error::Wal(Box::new(e))
}

#[cfg(test)]
mod tests;
