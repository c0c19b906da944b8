//! A database's retention at run time. It starts as the configured
//! `retention_secs`; once an admin call (OpenTSDB's `/api/ttl`) sets it,
//! the value is kept in `retention` in the database's directory and wins
//! over the configuration from then on, restarts included.

use super::{Db, Inner};
use crate::compact;
use crate::config::Config;
use crate::error::{Error, Result};
use std::sync::atomic::Ordering;
use sundial_model::Timestamp;

/// The file an admin-set retention is kept in: decimal seconds.
pub(super) const FILE: &str = "retention";

/// The retention a database opens with: the kept one, else the config's.
pub(super) fn load(config: &Config) -> Result<u64> {
    let path = config.data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| Error::Corrupt {
            path,
            offset: 0,
            reason: format!("not a number of seconds: {:?}", text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(config.retention_secs),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl Inner {
    /// Seconds of data kept; 0 keeps everything.
    pub(crate) fn retention_secs(&self) -> u64 {
        self.retention_secs.load(Ordering::Relaxed)
    }

    /// The oldest rollup kept (`None`: all): the raw retention's cutoff,
    /// or with rollup tiers and `rollup_retention_secs` set, the older
    /// of the two, down to which blocks past the raw retention keep their
    /// rollups (`crate::compact`).
    pub(crate) fn rollup_cutoff(&self) -> Option<Timestamp> {
        let raw = compact::retention_cutoff(self.retention_secs())?;
        match self.config.rollup_retention_secs {
            Some(secs) if !self.config.rollup_secs.is_empty() => {
                compact::retention_cutoff(secs).map(|c| c.min(raw))
            }
            _ => Some(raw),
        }
    }
}

impl Db {
    /// Seconds of data kept; 0 keeps everything.
    pub fn retention_secs(&self) -> u64 {
        self.inner.retention_secs()
    }

    /// Keeps `secs` of data from now on (0: everything): durable before
    /// it applies, so a restart keeps it; the next maintenance pass drops
    /// what it expires.
    pub fn set_retention_secs(&self, secs: u64) -> Result<()> {
        let path = self.inner.config.data_dir.join(FILE);
        self.inner
            .config
            .vfs
            .write_atomic(&path, secs.to_string().as_bytes())
            .map_err(|e| Error::io("write", &path, e))?;
        self.inner.retention_secs.store(secs, Ordering::Relaxed);
        Ok(())
    }
}
