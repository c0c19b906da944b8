//! Handing freed memory back to the OS after bulk work. The server's
//! allocator keeps pages a thread freed until that thread allocates
//! again; a flush, a merge or the WAL thread at the end of a load then
//! goes idle holding hundreds of MiB nobody uses (a million-series load:
//! 1151 MiB resident after compaction, 571 MiB once purged). The server
//! sets what releasing means for its allocator; without it, nothing.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets what [`release`] does (once; later calls are ignored): a function
/// that collects the calling thread's heap and returns free pages to the
/// OS (mimalloc purges every thread's pending pages then, at once rather
/// than after its purge delay).
pub fn on_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Returns free pages to the OS, if the server said how. Costs a walk of
/// the thread's pages and page faults for whoever allocates next: call it
/// after bulk work, not per request.
pub(crate) fn release() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}
