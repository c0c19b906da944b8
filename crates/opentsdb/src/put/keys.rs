//! Series keys of put elements, checked and built once per distinct
//! (metric, tags text). Agents send the same series over and over; parsing
//! the tags, the naming rules, sorting and owned strings would otherwise
//! cost more than everything else a put does with a point.
//!
//! With more live series than entries, a cache that admits every miss
//! never hits: it fills, starts over, and fills again, paying for the
//! copies each time. So after a generation that filled while hitting
//! almost never, the cache admits only the keys whose hash falls in a
//! smaller share (halved each time, its entries kept); that share stays
//! and hits on every round of the agents. Every 2 M lookups a narrowed
//! cache tries twice the share, in case the series became fewer: a server
//! that shrank from millions of series to a few takes some millions of
//! lookups to cache all of them again.

use super::dto::{PointDto, Scalar, TagPairs, TagsDto};
use super::{CheckedTags, Limits};
use parking_lot::RwLock;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sundial_model::SeriesKey;

/// Entries kept before the cache starts over (about 900 bytes each with
/// ten tags, the key included); a workload with more live series pays the
/// full checks for some points, not unbounded memory.
pub(super) const MAX_ENTRIES: usize = 65_536;
/// Memory the entries may hold before the cache starts over.
const MAX_BYTES: usize = 32 << 20;
/// Longer metric + tags text is not cached (padding would make each
/// variant of one series an entry of its own).
const MAX_ENTRY_TEXT: usize = 2048;
/// The smallest share admitted: one key in 2^10.
const MAX_SHIFT: u32 = 10;
/// Lookups after which a narrowed cache tries a wider share.
const WIDEN_AFTER_LOOKUPS: u64 = 32 * MAX_ENTRIES as u64;

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
    /// The tags object's JSON text as received.
    tags: Box<str>,
    resolved: Resolved,
}

#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    table: RwLock<Table>,
    hasher: foldhash::fast::RandomState,
    /// Keys are admitted when these many bits of their hash are zero.
    shift: AtomicU32,
    /// Lookups that found their key since the generation began.
    hits: AtomicU64,
    /// Lookups that did not.
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    entries: hashbrown::HashTable<Entry>,
    bytes: usize,
    /// Entries added since the generation began.
    admitted: u64,
}

impl Entry {
    /// Heap bytes held (texts and the key's strings), roughly.
    fn bytes(&self) -> usize {
        let key = &self.resolved.key;
        let spilled = |n: &sundial_model::Name| if n.is_heap_allocated() { n.len() } else { 0 };
        let names: usize = key
            .tags
            .iter()
            .map(|(k, v)| 48 + spilled(k) + spilled(v))
            .sum();
        self.metric.len() + self.tags.len() + key.metric.len() + names + 128
    }
}

impl KeyCache {
    fn hash(&self, metric: &str, tags: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(metric.as_bytes());
        h.write_u8(0xff);
        h.write(tags.as_bytes());
        h.finish()
    }

    /// Looks every (metric, tags text) up under one read lock.
    pub(crate) fn lookup_all<'a, I>(&self, elements: I) -> Vec<Option<Resolved>>
    where
        I: Iterator<Item = Option<(&'a str, &'a str)>>,
    {
        let table = self.table.read();
        let (mut hits, mut misses) = (0, 0);
        let found = elements
            .map(|e| {
                let (metric, tags) = e?;
                let hash = self.hash(metric, tags);
                let found = table
                    .entries
                    .find(hash, |entry| {
                        *entry.metric == *metric && *entry.tags == *tags
                    })
                    .map(|entry| entry.resolved.clone());
                if found.is_some() {
                    hits += 1;
                } else {
                    misses += 1;
                }
                found
            })
            .collect();
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(misses, Ordering::Relaxed);
        found
    }

    /// Whether a key with this hash is in the share admitted now.
    fn admits(&self, hash: u64) -> bool {
        admitted_at(hash, self.shift.load(Ordering::Relaxed))
    }

    /// Starts a new generation admitting a share of `2^-shift`. Entries
    /// of the new share stay: all of them when it is wider, those whose
    /// hash it admits when narrower; at the same share the table empties.
    fn start_over(&self, table: &mut Table, shift: u32) {
        let (old, shift) = (self.shift.load(Ordering::Relaxed), shift.min(MAX_SHIFT));
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
        self.shift.store(shift, Ordering::Relaxed);
        table.admitted = 0;
        if shift == old {
            table.entries.clear();
            table.bytes = 0;
        } else if shift > old {
            table.entries.retain(|e| admitted_at(e.hash, shift));
            table.bytes = table.entries.iter().map(Entry::bytes).sum();
        }
    }

    /// The share for the generation after a full one: narrower if this one
    /// hit almost never (its keys do not come back before it fills). A
    /// generation full of one-off keys beside a live set that fits still
    /// hits that set, and keeps its share.
    fn shift_after_full(&self, table: &Table) -> u32 {
        let shift = self.shift.load(Ordering::Relaxed);
        if self.hits.load(Ordering::Relaxed) < table.admitted / 8 {
            shift + 1
        } else {
            shift
        }
    }

    fn lookups(&self) -> u64 {
        self.hits.load(Ordering::Relaxed) + self.misses.load(Ordering::Relaxed)
    }

    /// A narrowed cache tries the wider share again every so many
    /// lookups (the series may have become fewer); if the wider share does
    /// not fit, its generation fills without hits and narrows back, keeping
    /// the narrower share's entries.
    fn maybe_widen(&self) {
        let shift = self.shift.load(Ordering::Relaxed);
        if shift > 0 && self.lookups() > WIDEN_AFTER_LOOKUPS {
            let mut table = self.table.write();
            // Another request may have just done it.
            if self.shift.load(Ordering::Relaxed) == shift && self.lookups() > WIDEN_AFTER_LOOKUPS {
                self.start_over(&mut table, shift - 1);
            }
        }
    }

    /// Remembers what the checks made of one element; `None` for elements
    /// not worth keeping (long text, a name error).
    pub(crate) fn pending(&self, metric: &str, tags: &str, resolved: &Resolved) -> Option<Pending> {
        if metric.len() + tags.len() > MAX_ENTRY_TEXT || resolved.error.is_some() {
            return None;
        }
        let hash = self.hash(metric, tags);
        if !self.admits(hash) {
            return None;
        }
        Some(Pending(Entry {
            hash,
            metric: metric.into(),
            tags: tags.into(),
            resolved: resolved.clone(),
        }))
    }

    /// Adds the entries of one request under one write lock.
    pub(crate) fn insert_all(&self, pending: Vec<Pending>) {
        self.maybe_widen();
        if pending.is_empty() {
            return;
        }
        let mut table = self.table.write();
        let adding: usize = pending.iter().map(|Pending(e)| e.bytes()).sum();
        if table.entries.len() + pending.len() > MAX_ENTRIES || table.bytes + adding > MAX_BYTES {
            let shift = self.shift_after_full(&table);
            self.start_over(&mut table, shift);
        }
        for Pending(entry) in pending {
            // One request may bring more than the table holds: the rest
            // is checked again next time, never kept past the bound.
            if table.entries.len() >= MAX_ENTRIES || table.bytes + entry.bytes() > MAX_BYTES {
                break;
            }
            // Two requests (or two elements of one) may race to add it.
            let known = table.entries.find(entry.hash, |e| {
                e.metric == entry.metric && e.tags == entry.tags
            });
            if known.is_none() {
                table.admitted += 1;
                table.bytes += entry.bytes();
                table.entries.insert_unique(entry.hash, entry, |e| e.hash);
            }
        }
    }
}

/// Whether a share of `2^-shift` holds a key with this hash. The bits
/// tested are not the ones the table places entries by.
fn admitted_at(hash: u64, shift: u32) -> bool {
    (hash >> 32) & ((1u64 << shift) - 1) == 0
}

/// An entry to add once the request's lookups are done.
#[derive(Debug)]
pub(crate) struct Pending(Entry);

/// Checks and builds the key of one element without the cache.
pub(crate) fn resolve(metric: &str, tags: &TagPairs<'_>, limits: Limits) -> Resolved {
    CheckedTags::new(tags, limits).key_for(metric, limits)
}

/// The metric and raw tags text of an element, as the key cache knows it.
pub(crate) fn raw_names<'a>(p: &'a PointDto<'_>) -> Option<(&'a str, &'a str)> {
    match (&p.metric, &p.tags) {
        (Some(Scalar::Str(m)), Some(TagsDto::Raw(t))) => Some((m.as_ref(), t.as_ref())),
        _ => None,
    }
}

/// Resolves the keys of one request's elements in body order: from the
/// key cache, from the element before when the tags text is the same
/// (agents send a host's metrics one after another, all with its tags),
/// or by the checks. What the checks made is learned by the cache when the
/// request is done.
pub(crate) struct RequestKeys<'c, 'b> {
    cache: &'c KeyCache,
    limits: Limits,
    /// The tags text of the last element checked, and what it made.
    last: Option<(&'b str, CheckedTags)>,
    learned: Vec<Pending>,
}

impl<'c, 'b> RequestKeys<'c, 'b> {
    pub(crate) fn new(cache: &'c KeyCache, limits: Limits) -> Self {
        Self {
            cache,
            limits,
            last: None,
            learned: Vec::new(),
        }
    }

    /// The cached key of every element, under one read lock.
    pub(crate) fn lookup_all(&self, elements: &'b [PointDto<'_>]) -> Vec<Option<Resolved>> {
        self.cache.lookup_all(elements.iter().map(raw_names))
    }

    /// The key of `element` when it needs no tag parsing: `cached`, or
    /// built from the tags the element before had with the same text.
    pub(crate) fn known(
        &mut self,
        element: &'b PointDto<'_>,
        cached: Option<Resolved>,
    ) -> Option<Resolved> {
        if cached.is_some() {
            return cached;
        }
        let (metric, text) = raw_names(element)?;
        let (last_text, tags) = self.last.as_ref()?;
        if *last_text != text {
            return None;
        }
        let resolved = tags.key_for(metric, self.limits);
        self.learn(metric, text, &resolved);
        Some(resolved)
    }

    /// Checks the parsed `tags` of `element` and builds its key.
    pub(crate) fn resolve(
        &mut self,
        element: &'b PointDto<'_>,
        metric: &str,
        tags: &TagPairs<'_>,
    ) -> Resolved {
        let checked = CheckedTags::new(tags, self.limits);
        let resolved = checked.key_for(metric, self.limits);
        if let Some((metric, text)) = raw_names(element) {
            self.learn(metric, text, &resolved);
            self.last = Some((text, checked));
        }
        resolved
    }

    fn learn(&mut self, metric: &str, text: &str, resolved: &Resolved) {
        self.learned
            .extend(self.cache.pending(metric, text, resolved));
    }

    /// Adds what the request's checks made to the cache.
    pub(crate) fn finish(self) {
        self.cache.insert_all(self.learned);
    }
}
