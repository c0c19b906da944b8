//! Series keys of put elements, checked and built once per distinct
//! (metric, tags) text. Agents send the same series over and over; naming
//! rules, sorting and owned strings would otherwise cost more than
//! everything else a put does with a point.

use super::Limits;
use super::dto::{Scalar, TagPairs};
use parking_lot::RwLock;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use sundial_model::SeriesKey;

/// Entries kept before the cache starts over (about 300 bytes each with
/// ten tags); a workload with more live series pays the full checks for
/// some points, not unbounded memory.
const MAX_ENTRIES: usize = 65_536;

/// What the checks made of a metric and its tags.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) key: Arc<SeriesKey>,
    /// The first failure of rules 6-14, if any.
    pub(crate) error: Option<Arc<str>>,
}

#[derive(Debug)]
struct Entry {
    hash: u64,
    metric: Box<str>,
    /// As received: order and text (only all-string tag values are kept).
    tags: Box<[(Box<str>, Box<str>)]>,
    resolved: Resolved,
}

impl Entry {
    fn matches(&self, metric: &str, tags: &TagPairs<'_>) -> bool {
        *self.metric == *metric
            && self.tags.len() == tags.len()
            && self
                .tags
                .iter()
                .zip(tags)
                .all(|((k, v), (tk, tv))| **k == **tk && matches!(tv, Scalar::Str(s) if **v == **s))
    }
}

#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    table: RwLock<hashbrown::HashTable<Entry>>,
    hasher: foldhash::fast::RandomState,
}

impl KeyCache {
    /// The hash of a cacheable element, `None` when a tag value is not a
    /// string (converted text is not worth caching).
    fn hash(&self, metric: &str, tags: &TagPairs<'_>) -> Option<u64> {
        let mut h = self.hasher.build_hasher();
        h.write(metric.as_bytes());
        h.write_u8(0xff);
        for (k, v) in tags {
            let Scalar::Str(v) = v else { return None };
            h.write(k.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        Some(h.finish())
    }

    /// Looks every element up under one read lock.
    pub(crate) fn lookup_all<'a, I>(&self, elements: I) -> Vec<Option<Resolved>>
    where
        I: Iterator<Item = Option<(&'a str, &'a TagPairs<'a>)>>,
    {
        let table = self.table.read();
        elements
            .map(|e| {
                let (metric, tags) = e?;
                let hash = self.hash(metric, tags)?;
                table
                    .find(hash, |entry| entry.matches(metric, tags))
                    .map(|entry| entry.resolved.clone())
            })
            .collect()
    }

    /// Remembers what the checks made of one element.
    pub(crate) fn pending(
        &self,
        metric: &str,
        tags: &TagPairs<'_>,
        resolved: &Resolved,
    ) -> Option<Pending> {
        let hash = self.hash(metric, tags)?;
        let tags = tags
            .iter()
            .filter_map(|(k, v)| match v {
                Scalar::Str(v) => Some((k.as_ref().into(), v.as_ref().into())),
                _ => None,
            })
            .collect();
        Some(Pending(Entry {
            hash,
            metric: metric.into(),
            tags,
            resolved: resolved.clone(),
        }))
    }

    /// Adds the entries of one request under one write lock.
    pub(crate) fn insert_all(&self, pending: Vec<Pending>) {
        if pending.is_empty() {
            return;
        }
        let mut table = self.table.write();
        if table.len() + pending.len() > MAX_ENTRIES {
            table.clear();
        }
        for Pending(entry) in pending {
            // Two requests (or two elements of one) may race to add it.
            let known = table.find(entry.hash, |e| {
                e.metric == entry.metric && e.tags == entry.tags
            });
            if known.is_none() {
                table.insert_unique(entry.hash, entry, |e| e.hash);
            }
        }
    }
}

/// An entry to add once the request's lookups are done.
#[derive(Debug)]
pub(crate) struct Pending(Entry);

/// Checks and builds the key of one element without the cache.
pub(crate) fn resolve(metric: &str, tags: &TagPairs<'_>, limits: Limits) -> Resolved {
    let (pairs, error) = super::check_names(metric, tags, limits);
    Resolved {
        key: Arc::new(SeriesKey::new(metric, pairs)),
        error: error.map(Arc::from),
    }
}
