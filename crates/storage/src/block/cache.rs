//! Decoded numeric chunks, kept for repeated reads (dashboards re-run the
//! same ranges). Blocks are immutable, so an entry never goes stale; it is
//! keyed by a per-open block id that is never reused, and evicted oldest
//! first past the byte budget.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use sundial_codec::NumColumn;
use sundial_model::Timestamp;

/// A decoded numeric chunk: ascending unique timestamps and their values.
#[derive(Debug)]
pub(crate) struct NumericChunk {
    pub(crate) ts: Vec<Timestamp>,
    pub(crate) values: NumColumn,
}

impl NumericChunk {
    pub(crate) fn bytes(&self) -> usize {
        let per_value = match &self.values {
            NumColumn::Longs(_) | NumColumn::Doubles(_) => 8,
            NumColumn::Mixed(_) => 16,
        };
        self.ts.len() * (8 + per_value) + 64
    }
}

type Key = (u64, u64);

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, Arc<NumericChunk>>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// The process-wide cache.
#[derive(Debug)]
pub(crate) struct ChunkCache {
    entries: Mutex<Entries>,
    capacity: AtomicUsize,
}

pub(crate) static CACHE: LazyLock<ChunkCache> = LazyLock::new(|| ChunkCache {
    entries: Mutex::new(Entries::default()),
    capacity: AtomicUsize::new(64 << 20),
});

static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for an opened block.
pub(crate) fn next_block_id() -> u64 {
    NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed)
}

impl ChunkCache {
    /// Sets the byte budget (0 turns caching off).
    pub(crate) fn set_capacity(&self, bytes: usize) {
        self.capacity.store(bytes, Ordering::Relaxed);
        let mut e = self.entries.lock();
        evict(&mut e, bytes);
    }

    pub(crate) fn get(&self, key: Key) -> Option<Arc<NumericChunk>> {
        self.entries.lock().map.get(&key).cloned()
    }

    pub(crate) fn insert(&self, key: Key, chunk: Arc<NumericChunk>) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let size = chunk.bytes();
        if size > capacity / 4 {
            return;
        }
        let mut e = self.entries.lock();
        if e.map.insert(key, chunk).is_none() {
            e.order.push_back(key);
            e.bytes += size;
        }
        evict(&mut e, capacity);
    }
}

fn evict(e: &mut Entries, capacity: usize) {
    while e.bytes > capacity {
        let Some(key) = e.order.pop_front() else {
            break;
        };
        if let Some(old) = e.map.remove(&key) {
            e.bytes = e.bytes.saturating_sub(old.bytes());
        }
    }
}
