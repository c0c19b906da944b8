//! Fetching the chunks a read is about to need in a few concurrent
//! requests instead of one round trip per chunk: a cold hourly average
//! over 100 series on S3 made a thousand sequential requests. Neighbouring
//! ranges are merged when the gap between them is small, so a batch of
//! series whose chunks sit together in a block costs one request.

use super::RemoteStore;
use crate::error::Result;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Ranges closer than this are fetched as one (the gap is read and
/// dropped: cheaper than another round trip).
const MERGE_GAP: u64 = 32 << 10;
/// A merged request grows no larger than this.
const MAX_REQUEST: u64 = 4 << 20;
/// Requests in flight for one prefetch.
const CONCURRENCY: usize = 8;

/// The chunks of one remote block a read will need: (offset, length).
#[derive(Debug)]
pub(crate) struct BlockRanges {
    pub(crate) store: RemoteStore,
    pub(crate) key: String,
    pub(crate) uid: u64,
    pub(crate) ranges: Vec<(u64, usize)>,
}

/// What a batch of reads will fetch from the store, gathered under the
/// read lock and fetched after it is released.
#[derive(Debug, Default)]
pub struct Prefetch {
    pub(crate) blocks: Vec<BlockRanges>,
}

impl Prefetch {
    /// Fetches every range not already cached into the fetched-chunk
    /// cache. A failure is not fatal to the read: the chunk is fetched
    /// again on demand, where its error is reported.
    pub fn run(self) {
        for block in self.blocks {
            if let Err(e) = block.store.prefetch(block.uid, &block.key, block.ranges) {
                tracing::debug!(error = %e, "prefetch failed; chunks are fetched one by one");
            }
        }
    }
}

impl RemoteStore {
    fn prefetch(&self, uid: u64, key: &str, mut ranges: Vec<(u64, usize)>) -> Result<()> {
        let cache = &self.shared.cache;
        ranges.retain(|&(at, len)| cache.peek((uid, at)).is_none_or(|hit| hit.len() != len));
        // What does not fit in half the cache would evict itself before
        // it is read; those chunks are fetched on demand.
        let mut room = cache.capacity() / 2;
        ranges.retain(|&(_, len)| {
            let fits = len <= room;
            room = room.saturating_sub(len);
            fits
        });
        if ranges.is_empty() {
            return Ok(());
        }
        ranges.sort_unstable();
        let requests = merge(&ranges);
        let store = self.shared.store.clone();
        let path = self.path(key);
        let fetched = self
            .wait(async move {
                futures::stream::iter(requests)
                    .map(|r| {
                        let (store, path) = (store.clone(), path.clone());
                        async move {
                            Ok::<_, object_store::Error>((
                                r.start,
                                store.get_range(&path, r).await?,
                            ))
                        }
                    })
                    .buffered(CONCURRENCY)
                    .try_collect::<Vec<(u64, Bytes)>>()
                    .await
            })
            .map_err(|e| self.error("read", key, e))?;
        // Requests come back in order, each covering the next ranges.
        let mut pieces = ranges.iter().peekable();
        for (start, bytes) in fetched {
            self.shared
                .fetched
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let end = start + bytes.len() as u64;
            while let Some(&&(at, len)) = pieces.peek().filter(|(at, _)| *at < end) {
                pieces.next();
                let from = (at - start) as usize;
                if let Some(piece) = bytes.get(from..from + len) {
                    cache.insert((uid, at), Arc::new(bytes.slice_ref(piece)));
                }
            }
        }
        Ok(())
    }
}

/// Sorted `(offset, length)` ranges merged into requests.
fn merge(ranges: &[(u64, usize)]) -> Vec<std::ops::Range<u64>> {
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    for &(at, len) in ranges {
        let end = at + len as u64;
        match out.last_mut() {
            Some(last) if at <= last.end + MERGE_GAP && end - last.start <= MAX_REQUEST => {
                last.end = last.end.max(end);
            }
            _ => out.push(at..end),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_REQUEST, MERGE_GAP, merge};

    #[test]
    fn near_ranges_merge_and_far_or_large_ones_do_not() {
        let gap = MERGE_GAP;
        let ranges = [(0, 100), (100 + gap, 50), (150 + 2 * gap + 1, 10)];
        assert_eq!(
            merge(&ranges),
            vec![0..150 + gap, 150 + 2 * gap + 1..161 + 2 * gap]
        );
        let big = MAX_REQUEST as usize / 2 + 1;
        let halves = [(0, big), (big as u64, big)];
        assert_eq!(merge(&halves).len(), 2);
        // A range inside the previous one adds nothing.
        assert_eq!(merge(&[(0, 100), (10, 20)]), vec![0..100]);
    }
}
