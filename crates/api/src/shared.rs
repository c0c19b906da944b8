//! Metadata every node of a cluster shares (BlueKing's groups and data
//! ids so far): one versioned document, replaced whole with optimistic
//! concurrency. On a single node the APIs keep such state in a file; on a
//! cluster node in PostgreSQL (`sundial_cluster::PgDocument`), so a change
//! made through any node is seen by every other (docs/cluster.md,
//! "Shared metadata").

use std::fmt::Debug;

/// One named document in a store every node reaches. Calls block: the
/// callers keep them off the async workers or inside `block_in_place`.
pub trait SharedDocument: Send + Sync + Debug {
    /// The document and its version; `None` before the first store.
    fn load(&self) -> std::io::Result<Option<(i64, Vec<u8>)>>;

    /// The version stored now (0 before the first store).
    fn version(&self) -> std::io::Result<i64>;

    /// Stores `body` as version `expected + 1` if the stored version is
    /// still `expected`; `false` when another node stored first (the
    /// caller loads again and retries).
    fn store(&self, expected: i64, body: &[u8]) -> std::io::Result<bool>;
}
