//! `blocks.remote`: which objects are a database's blocks. A block in the
//! store but not here is an orphan (an upload a crash interrupted) and is
//! swept at the next start; a block is visible only once it is here.
//!
//! Text, one line per block after a header naming the store:
//! `sundial blocks 1 <store url>` then `<wal_below> <seq> <bytes> <key>`.

use crate::block::BlockId;
use crate::error::{Error, Result};
use crate::vfs::Vfs;
use std::path::{Path, PathBuf};

pub(crate) const FILE: &str = "blocks.remote";
const HEADER: &str = "sundial blocks 1";

/// One block in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: BlockId,
    pub(crate) bytes: u64,
    pub(crate) key: String,
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The manifest of the database in `dir`: the store it names and its
/// blocks; `None` when there is none (blocks are local).
pub(crate) fn read(dir: &Path) -> Result<Option<(String, Vec<Entry>)>> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let corrupt = |line: usize, reason: &str| Error::Corrupt {
        path: path.clone(),
        offset: line as u64,
        reason: format!("line {}: {reason}", line + 1),
    };
    let mut lines = text.lines();
    let url = lines
        .next()
        .and_then(|h| h.strip_prefix(HEADER))
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| corrupt(0, "not a block manifest of this version"))?
        .to_owned();
    let mut entries = Vec::new();
    for (n, line) in lines.enumerate() {
        let mut parts = line.splitn(4, ' ');
        let mut num = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let (Some(wal_below), Some(seq), Some(bytes)) = (num(), num(), num()) else {
            return Err(corrupt(n + 1, "expected <wal_below> <seq> <bytes> <key>"));
        };
        let key = parts
            .next()
            .filter(|k| !k.is_empty() && !k.contains(['/', ' ']))
            .ok_or_else(|| corrupt(n + 1, "bad object key"))?;
        let seq = u32::try_from(seq).map_err(|_| corrupt(n + 1, "sequence out of range"))?;
        entries.push(Entry {
            id: BlockId { wal_below, seq },
            bytes,
            key: key.to_owned(),
        });
    }
    Ok(Some((url, entries)))
}

/// Replaces the manifest (atomically: the old one or the new one stands).
pub(crate) fn write(vfs: &Vfs, dir: &Path, url: &str, entries: &[Entry]) -> Result<()> {
    let mut text = format!("{HEADER} {url}\n");
    for e in entries {
        text.push_str(&format!(
            "{} {} {} {}\n",
            e.id.wal_below, e.id.seq, e.bytes, e.key
        ));
    }
    let path = path(dir);
    vfs.write_atomic(&path, text.as_bytes())
        .map_err(|e| Error::io("write", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_write_and_a_read() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;
        assert_eq!(read(dir.path())?, None);
        let entries = vec![
            Entry {
                id: BlockId {
                    wal_below: 12,
                    seq: 0,
                },
                bytes: 4096,
                key: "block-0000000012.17a.sdb".into(),
            },
            Entry {
                id: BlockId {
                    wal_below: 12,
                    seq: 3,
                },
                bytes: 1,
                key: "block-0000000012-003.17b.sdb".into(),
            },
        ];
        write(&Vfs::default(), dir.path(), "s3://b/p/default", &entries)?;
        assert_eq!(
            read(dir.path())?,
            Some(("s3://b/p/default".to_owned(), entries))
        );
        std::fs::write(path(dir.path()), "sundial blocks 1 s3://b\n1 2 x\n")
            .map_err(|e| Error::io("write", "", e))?;
        assert!(matches!(read(dir.path()), Err(Error::Corrupt { .. })));
        Ok(())
    }
}
