//! Start and end lines of background work in the log, so operators see
//! when flushes and merges run and the crash loop (`scripts/crash-loop`)
//! can tell whether a kill landed inside one.

use std::path::{Path, PathBuf};
use tracing::info;

/// Logs `"<what> started"` when created and `"<what> finished"` when
/// dropped, so every exit path (errors included) closes the phase.
#[derive(Debug)]
pub(crate) struct Phase {
    what: &'static str,
    dir: PathBuf,
}

impl Phase {
    pub(crate) fn start(what: &'static str, dir: &Path) -> Self {
        info!(dir = %dir.display(), "{what} started");
        Self {
            what,
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        info!(dir = %self.dir.display(), "{} finished", self.what);
    }
}
