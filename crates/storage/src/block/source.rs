//! Where a block's bytes come from: a local file read by position, or an
//! object fetched by byte range (through the fetched-chunk cache).

use crate::error::{Error, Result};
use crate::remote::RemoteStore;
use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes fetched from the end of an object when its block is opened: the
/// footer and, for all but the largest blocks, the whole index in one
/// request.
const TAIL_BYTES: u64 = 256 << 10;

#[derive(Debug)]
pub(crate) enum Source {
    Local(File),
    Remote { store: RemoteStore, key: String },
}

impl Source {
    /// `len` bytes from `at`; `uid` keys the cache of fetched chunks.
    pub(crate) fn read(&self, path: &Path, uid: u64, at: u64, len: usize) -> Result<Bytes> {
        match self {
            Self::Local(file) => {
                let mut buf = vec![0u8; len];
                read_file_at(file, path, &mut buf, at)?;
                Ok(Bytes::from(buf))
            }
            Self::Remote { store, key } => Ok((*store.read(uid, key, at, len)?).clone()),
        }
    }
}

pub(crate) fn read_file_at(file: &File, path: &Path, buf: &mut [u8], at: u64) -> Result<()> {
    file.read_exact_at(buf, at)
        .map_err(|e| Error::io("read block", path, e))
}

/// Reads a remote block's header, footer and index: the tail of the
/// object in one request, anything before it (the header of a large
/// block, the rest of a very large index) in one more each.
pub(crate) struct Opening<'a> {
    store: &'a RemoteStore,
    key: &'a str,
    tail_at: u64,
    tail: Bytes,
}

impl<'a> Opening<'a> {
    pub(crate) fn start(store: &'a RemoteStore, key: &'a str, len: u64) -> Result<Self> {
        let tail_len = len.min(TAIL_BYTES);
        let tail_at = len - tail_len;
        let tail = store.fetch(key, tail_at, tail_len as usize)?;
        Ok(Self {
            store,
            key,
            tail_at,
            tail,
        })
    }

    pub(crate) fn read_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        if let Some(from) = at.checked_sub(self.tail_at)
            && let Some(part) = usize::try_from(from)
                .ok()
                .and_then(|from| self.tail.get(from..from + buf.len()))
        {
            buf.copy_from_slice(part);
            return Ok(());
        }
        buf.copy_from_slice(&self.store.fetch(self.key, at, buf.len())?);
        Ok(())
    }
}
