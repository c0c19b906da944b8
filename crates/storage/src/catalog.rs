//! The series catalog (`series.cat`): every series' persistent id and key,
//! appended once per series at the flush after its creation, so blocks
//! need to carry only ids. Format: `docs/format/catalog.md`.

use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, BatchEncoder, FrameError};
use crate::wal::sync_dir;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use sundial_model::SeriesKey;
use tracing::warn;

const MAGIC: &[u8; 8] = b"SDCAT001";

#[derive(Debug)]
pub(crate) struct Catalog {
    path: PathBuf,
    file: File,
}

impl Catalog {
    /// Opens (or creates) the catalog and returns every definition in it.
    /// A torn last record is cut off with a warning: its series are still
    /// defined in the WAL, which is deleted only after a complete append.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<(SeriesId, SeriesKey)>)> {
        let path = dir.join("series.cat");
        let io = |op, e| Error::io(op, &path, e);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("open series catalog", e))?;
        if !existed {
            file.write_all(MAGIC)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write series catalog", e))?;
            sync_dir(dir)?;
            return Ok((Self { path, file }, Vec::new()));
        }
        let bytes = std::fs::read(&path).map_err(|e| io("read series catalog", e))?;
        let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: "not a series catalog (bad magic)".into(),
            });
        };
        let mut defs = Vec::new();
        while !rest.is_empty() {
            let offset = bytes.len() - rest.len();
            let damaged = match record::read_frame(rest) {
                Ok((payload, tail)) => match record::decode_batch(payload) {
                    Ok(batch) => {
                        defs.extend(batch.new_series);
                        rest = tail;
                        continue;
                    }
                    Err(reason) => reason,
                },
                Err(FrameError::Truncated) => "torn record".into(),
                Err(FrameError::Checksum) => "checksum mismatch".into(),
            };
            warn!(path = %path.display(), offset, %damaged, "series catalog tail dropped");
            file.set_len(offset as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("truncate series catalog", e))?;
            break;
        }
        Ok((Self { path, file }, defs))
    }

    /// Appends definitions durably.
    pub(crate) fn append(&mut self, defs: &[(SeriesId, SeriesKey)]) -> Result<()> {
        if defs.is_empty() {
            return Ok(());
        }
        let mut enc = BatchEncoder::default();
        for (id, key) in defs {
            enc.define_series(*id, key);
        }
        let (mut payload, mut framed) = (Vec::new(), Vec::new());
        enc.finish_into(&mut payload);
        record::frame_into(&payload, &mut framed);
        self.file
            .write_all(&framed)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("append to series catalog", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(h: &str) -> SeriesKey {
        SeriesKey::new("m", vec![("host".into(), h.into())])
    }

    #[test]
    fn definitions_survive_reopen_and_a_torn_tail_is_cut() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let (mut cat, defs) = Catalog::open(dir.path())?;
        assert!(defs.is_empty());
        cat.append(&[(SeriesId(0), key("a")), (SeriesId(1), key("b"))])?;
        cat.append(&[(SeriesId(2), key("c"))])?;
        drop(cat);
        let path = dir.path().join("series.cat");
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        f.set_len(len - 3)
            .map_err(|e| Error::io("truncate", &path, e))?;
        let (mut cat, defs) = Catalog::open(dir.path())?;
        assert_eq!(defs, vec![(SeriesId(0), key("a")), (SeriesId(1), key("b"))]);
        // Appends after the cut are read back cleanly.
        cat.append(&[(SeriesId(2), key("c"))])?;
        drop(cat);
        let (_, defs) = Catalog::open(dir.path())?;
        assert_eq!(defs.len(), 3);
        Ok(())
    }
}
