//! Counters of a database's background work for `/metrics`: flushes and
//! compactions finished and the time they took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Activity {
    flushes: AtomicU64,
    flush_micros: AtomicU64,
    compactions: AtomicU64,
    compaction_micros: AtomicU64,
}

/// Flushes and compactions finished since the database opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct WorkDone {
    pub flushes: u64,
    pub flush_seconds: f64,
    pub compactions: u64,
    pub compaction_seconds: f64,
}

impl Activity {
    pub(crate) fn flushed(&self, took: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn compacted(&self, took: Duration) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.compaction_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn done(&self) -> WorkDone {
        let seconds = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1e6;
        WorkDone {
            flushes: self.flushes.load(Ordering::Relaxed),
            flush_seconds: seconds(&self.flush_micros),
            compactions: self.compactions.load(Ordering::Relaxed),
            compaction_seconds: seconds(&self.compaction_micros),
        }
    }
}
