//! The series catalog (`series.cat`): every series' persistent id and key,
//! appended once per series at the flush after its creation, so blocks
//! need to carry only ids. Format: `docs/format/catalog.md`.

use crate::error::{Error, Result};
use crate::head::SeriesId;
use crate::record::{self, BatchEncoder, FrameError};
use crate::vfs::{Vfs, VfsFile};
use crate::wal::sync_dir;
use std::io::Write;
use std::path::{Path, PathBuf};
use sundial_model::SeriesKey;
use tracing::warn;

/// The catalog's file name in a database directory.
pub(crate) const FILE: &str = "series.cat";
const MAGIC: &[u8; 8] = b"SDCAT002";
/// Records hold the batch payload itself; such catalogs are rewritten in
/// the current format at open.
const MAGIC_V1: &[u8; 8] = b"SDCAT001";
/// Record payload: `u8 ZSTD`, `varint` length of the batch payload, then a
/// zstd frame of it.
const ZSTD: u8 = 1;
/// Tag names and values repeat from series to series: zstd takes a
/// catalog of TSBS-like keys to about a twentieth at level 3. Level 9
/// saves another 8% of its bytes for three times the CPU, paid by the
/// flush that follows a million new series.
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug)]
pub(crate) struct Catalog {
    path: PathBuf,
    file: VfsFile,
    /// Length up to the last complete record: a failed append is cut
    /// back to it, so later records are never hidden behind a partial one.
    len: u64,
    /// A failed append could not be cut back yet: no append until it is.
    uncut: bool,
    vfs: Vfs,
}

impl Catalog {
    /// Opens (or creates) the catalog and returns every definition in it.
    /// A torn last record is cut off with a warning: its series are still
    /// defined in the WAL, which is deleted only after a complete append.
    pub(crate) fn open(vfs: &Vfs, dir: &Path) -> Result<(Self, Vec<(SeriesId, SeriesKey)>)> {
        let path = dir.join(FILE);
        let io = |op, e| Error::io(op, &path, e);
        let existed = path.exists();
        let mut file = vfs
            .open_append(&path)
            .map_err(|e| io("open series catalog", e))?;
        if !existed {
            file.write_all(MAGIC)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write series catalog", e))?;
            sync_dir(vfs, dir)?;
            let catalog = Self {
                path,
                file,
                len: MAGIC.len() as u64,
                uncut: false,
                vfs: vfs.clone(),
            };
            return Ok((catalog, Vec::new()));
        }
        let bytes = std::fs::read(&path).map_err(|e| io("read series catalog", e))?;
        let parsed = parse(&path, &bytes)?;
        let mut len = bytes.len() as u64;
        if let Some((offset, damaged)) = parsed.damage {
            warn!(path = %path.display(), offset, %damaged, "series catalog tail dropped");
            file.set_len(offset)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("truncate series catalog", e))?;
            len = offset;
        }
        let (defs, compressed) = (parsed.defs, parsed.compressed);
        let mut catalog = Self {
            path,
            file,
            len,
            uncut: false,
            vfs: vfs.clone(),
        };
        if !compressed {
            catalog = catalog.rewrite(dir, &defs)?;
        }
        Ok((catalog, defs))
    }

    /// Replaces the catalog by one in the current format holding `defs`
    /// (written aside, synced, renamed over).
    fn rewrite(self, dir: &Path, defs: &[(SeriesId, SeriesKey)]) -> Result<Self> {
        let tmp = self.path.with_extension("cat-tmp");
        let io = |op, e| Error::io(op, &tmp, e);
        // Left by a rewrite that crashed: the catalog itself is intact.
        let _ = self.vfs.remove_file(&tmp);
        let mut file = self
            .vfs
            .create_new(&tmp)
            .map_err(|e| io("create series catalog", e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write series catalog", e))?;
        let mut aside = Self {
            path: tmp.clone(),
            file,
            len: MAGIC.len() as u64,
            uncut: false,
            vfs: self.vfs.clone(),
        };
        for chunk in defs.chunks(4096) {
            aside.append(chunk)?;
        }
        self.vfs
            .rename(&tmp, &self.path)
            .map_err(|e| io("rename series catalog", e))?;
        sync_dir(&self.vfs, dir)?;
        Ok(Self {
            path: self.path,
            file: aside.file,
            len: aside.len,
            uncut: false,
            vfs: self.vfs,
        })
    }

    pub(crate) fn append(&mut self, defs: &[(SeriesId, SeriesKey)]) -> Result<()> {
        if defs.is_empty() {
            return Ok(());
        }
        if self.uncut {
            self.cut_back()
                .map_err(|e| Error::io("cut back the series catalog", &self.path, e))?;
        }
        let mut enc = BatchEncoder::default();
        for (id, key) in defs {
            enc.define_series(*id, key);
        }
        let mut batch = Vec::new();
        enc.finish_into(&mut batch);
        let mut payload = vec![ZSTD];
        record::deflate_into(&batch, ZSTD_LEVEL, &mut payload)
            .map_err(|e| Error::io("compress series catalog record", &self.path, e))?;
        let mut framed = Vec::new();
        record::frame_into(&payload, &mut framed);
        let appended = self
            .file
            .write_all(&framed)
            .and_then(|()| self.file.sync_data());
        match appended {
            Ok(()) => {
                self.len += framed.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the partial record off; should that fail too, no
                // append happens until it succeeds (the next open would cut
                // it as a torn tail, with everything after it), and the WAL
                // that defines these series is kept meanwhile.
                if let Err(cut) = self.cut_back() {
                    warn!(path = %self.path.display(), error = %cut, "cannot cut a failed catalog append back yet");
                }
                Err(Error::io("append to series catalog", &self.path, e))
            }
        }
    }

    fn cut_back(&mut self) -> std::io::Result<()> {
        self.uncut = true;
        self.file.set_len(self.len)?;
        self.file.sync_all()?;
        self.uncut = false;
        Ok(())
    }
}

/// Batch payloads above this size are refused (the decompressor allocates
/// the stated length).
const MAX_RECORD_BYTES: usize = 1 << 30;

fn decode_record(payload: &[u8], compressed: bool) -> std::result::Result<record::Batch, String> {
    if !compressed {
        return record::decode_batch(payload);
    }
    match payload.split_first() {
        Some((&ZSTD, rest)) => record::decode_batch(&record::inflate(rest, MAX_RECORD_BYTES)?),
        Some((codec, _)) => Err(format!("unknown record codec {codec}")),
        None => Err("empty record".into()),
    }
}

/// A catalog file's definitions, and where the first damaged record
/// starts (all after it is unreadable).
pub(crate) struct Parsed {
    pub(crate) defs: Vec<(SeriesId, SeriesKey)>,
    pub(crate) damage: Option<(u64, String)>,
    compressed: bool,
}

/// Reads the catalog `bytes` of the file at `path`; only a bad magic is an
/// error (a damaged record ends the definitions).
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let (mut rest, compressed) = match bytes.split_at_checked(MAGIC.len()) {
        Some((m, rest)) if m == MAGIC => (rest, true),
        Some((m, rest)) if m == MAGIC_V1 => (rest, false),
        _ => {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                offset: 0,
                reason: "not a series catalog (bad magic)".into(),
            });
        }
    };
    let mut defs = Vec::new();
    while !rest.is_empty() {
        let offset = (bytes.len() - rest.len()) as u64;
        let damaged = match record::read_frame(rest) {
            Ok((payload, tail)) => match decode_record(payload, compressed) {
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
        return Ok(Parsed {
            defs,
            damage: Some((offset, damaged)),
            compressed,
        });
    }
    Ok(Parsed {
        defs,
        damage: None,
        compressed,
    })
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
        let (mut cat, defs) = Catalog::open(&Vfs::default(), dir.path())?;
        assert!(defs.is_empty());
        cat.append(&[(SeriesId(0), key("a")), (SeriesId(1), key("b"))])?;
        cat.append(&[(SeriesId(2), key("c"))])?;
        drop(cat);
        let path = dir.path().join("series.cat");
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        f.set_len(len - 3)
            .map_err(|e| Error::io("truncate", &path, e))?;
        let (mut cat, defs) = Catalog::open(&Vfs::default(), dir.path())?;
        assert_eq!(defs, vec![(SeriesId(0), key("a")), (SeriesId(1), key("b"))]);
        // Appends after the cut are read back cleanly.
        cat.append(&[(SeriesId(2), key("c"))])?;
        drop(cat);
        let (_, defs) = Catalog::open(&Vfs::default(), dir.path())?;
        assert_eq!(defs.len(), 3);
        Ok(())
    }

    #[test]
    fn a_catalog_of_the_first_format_is_read_and_rewritten() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        let path = dir.path().join("series.cat");
        let want: Vec<(SeriesId, SeriesKey)> = (0..50)
            .map(|i| (SeriesId(i), key(&format!("host-{i}"))))
            .collect();
        let mut enc = BatchEncoder::default();
        for (id, k) in &want {
            enc.define_series(*id, k);
        }
        let (mut payload, mut bytes) = (Vec::new(), MAGIC_V1.to_vec());
        enc.finish_into(&mut payload);
        record::frame_into(&payload, &mut bytes);
        std::fs::write(&path, &bytes).map_err(|e| Error::io("write", &path, e))?;
        let (mut cat, defs) = Catalog::open(&Vfs::default(), dir.path())?;
        assert_eq!(defs, want);
        cat.append(&[(SeriesId(50), key("late"))])?;
        drop(cat);
        let now = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        assert!(now.starts_with(MAGIC));
        // Compressed: smaller than the plain records it replaced.
        assert!(now.len() < bytes.len());
        let (_, defs) = Catalog::open(&Vfs::default(), dir.path())?;
        assert_eq!(defs.len(), 51);
        assert_eq!(defs[..50], want[..]);
        Ok(())
    }
}
