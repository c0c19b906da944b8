//! Chunks kept for repeated reads (dashboards re-run the same ranges):
//! decoded numeric chunks, and the bytes of chunks fetched from object
//! storage. Blocks are immutable, so an entry never goes stale; it is
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
    pub(crate) fn empty() -> Self {
        Self {
            ts: Vec::new(),
            values: NumColumn::Longs(Vec::new()),
        }
    }
}

impl Weigh for NumericChunk {
    fn bytes(&self) -> usize {
        let per_value = match &self.values {
            NumColumn::Longs(_) | NumColumn::Doubles(_) => 8,
            NumColumn::Mixed(_) => 16,
        };
        self.ts.len() * (8 + per_value) + 64
    }
}

impl Weigh for bytes::Bytes {
    fn bytes(&self) -> usize {
        self.len() + 64
    }
}

/// What an entry costs the byte budget.
pub(crate) trait Weigh {
    fn bytes(&self) -> usize;
}

/// (block uid, chunk offset).
type Key = (u64, u64);

#[derive(Debug)]
struct Entries<V> {
    map: HashMap<Key, Arc<V>>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// Entries evicted oldest first past a byte budget.
#[derive(Debug)]
pub(crate) struct ChunkCache<V> {
    entries: Mutex<Entries<V>>,
    capacity: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Lookups a cache answered and did not, since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
}

/// Decoded numeric chunks, one budget for the process.
pub(crate) static CACHE: LazyLock<ChunkCache<NumericChunk>> =
    LazyLock::new(|| ChunkCache::new(64 << 20));

/// Decoded presampled buckets (`crate::rollup`), a quarter of the
/// decoded chunks' budget.
pub(crate) static PRESAMPLED: LazyLock<ChunkCache<crate::rollup::Presampled>> =
    LazyLock::new(|| ChunkCache::new(16 << 20));

static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for an opened block.
pub(crate) fn next_block_id() -> u64 {
    NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed)
}

impl<V: Weigh> ChunkCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            capacity: AtomicUsize::new(capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Like [`ChunkCache::get`], without counting a hit or a miss (a
    /// prefetch asking what it need not fetch).
    pub(crate) fn peek(&self, key: Key) -> Option<Arc<V>> {
        self.entries.lock().map.get(&key).cloned()
    }

    /// Sets the byte budget (0 turns caching off).
    pub(crate) fn set_capacity(&self, bytes: usize) {
        self.capacity.store(bytes, Ordering::Relaxed);
        let mut e = self.entries.lock();
        evict(&mut e, bytes);
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    pub(crate) fn get(&self, key: Key) -> Option<Arc<V>> {
        let found = self.peek(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, key: Key, value: Arc<V>) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let size = value.bytes();
        if size > capacity / 4 {
            return;
        }
        let mut e = self.entries.lock();
        if e.map.insert(key, value).is_none() {
            e.order.push_back(key);
            e.bytes += size;
        }
        evict(&mut e, capacity);
    }
}

fn evict<V: Weigh>(e: &mut Entries<V>, capacity: usize) {
    while e.bytes > capacity {
        let Some(key) = e.order.pop_front() else {
            break;
        };
        if let Some(old) = e.map.remove(&key) {
            e.bytes = e.bytes.saturating_sub(old.bytes());
        }
    }
}
