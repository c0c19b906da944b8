//! A database's presampling rules (`crate::rollup`), kept in
//! `presampling.json` in its directory.

use super::Db;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::rollup::PresamplingRule;

/// The file a database's rules are kept in (JSON).
pub(super) const FILE: &str = "presampling.json";

/// The rules a database opens with.
pub(super) fn load(config: &Config) -> Result<Vec<PresamplingRule>> {
    let path = config.data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path,
            offset: 0,
            reason: format!("presampling rules: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl Db {
    /// The database's presampling rules.
    pub fn presampling_rules(&self) -> Vec<PresamplingRule> {
        self.inner.presampling.read().as_ref().clone()
    }

    /// Replaces the rules: durable before they apply. Blocks written from
    /// now on (flushes, compactions, deletes) carry their buckets.
    pub fn set_presampling_rules(&self, rules: Vec<PresamplingRule>) -> Result<()> {
        let path = self.inner.config.data_dir.join(FILE);
        let text = serde_json::to_vec_pretty(&rules).map_err(|e| Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: format!("presampling rules: {e}"),
        })?;
        self.inner
            .config
            .vfs
            .write_atomic(&path, &text)
            .map_err(|e| Error::io("write", &path, e))?;
        *self.inner.presampling.write() = std::sync::Arc::new(rules);
        Ok(())
    }
}
