//! The in-memory head: the series registry, field kinds, and the points not
//! yet flushed to a block, ordered by time per (series, field).
//!
//! Memory per series matters at millions of series: names are interned
//! once ([`Symbols`]) and a series key is a boxed slice of symbol ids
//! whose tag keys are one id for the list ([`Shapes`]);
//! columns are sorted vectors (monitoring data arrives mostly in order, so
//! an append is the common case), not trees.

mod points;
mod symbols;

pub(crate) use points::{Points, PointsRef};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Weak};
use sundial_index::{Postings, RoaringBitmap};
use sundial_model::{FieldValue, Kind, Name, SeriesKey, Timestamp};
pub(crate) use symbols::{Shapes, Symbols};

/// Persistent id of a series within one database: assigned once, written
/// with the series' first record, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u32);

#[derive(Debug)]
struct Column {
    field: u32,
    points: Points,
}

#[derive(Debug)]
struct Series {
    /// Symbol ids: metric, then the shape (its tag keys, sorted), then
    /// the value of each tag in the shape's order.
    key: Box<[u32]>,
    /// Almost every series has one field: that one is kept inline, which
    /// saves an allocation per new series.
    columns: SmallVec<[Column; 1]>,
}

/// The points of one flush, taken out of the head: per series (ascending),
/// per field (names shared: a flush may hold millions of columns; the
/// first inline, which spares a flush of a million series as many
/// allocations).
pub(crate) type Frozen = Vec<(SeriesId, FrozenColumns)>;

/// One series' columns in a [`Frozen`].
pub(crate) type FrozenColumns = SmallVec<[(Arc<str>, Points); 1]>;

/// Hashing for per-point lookups; clients cannot choose the per-process
/// seed, and foldhash is several times faster than SipHash here.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub(crate) struct Head {
    symbols: Symbols,
    shapes: Shapes,
    /// Series ids with the [`KeyHash`] of their names: growing the table
    /// moves the stored hashes instead of hashing every key's names again
    /// (that was a third of the WAL thread's time while a million new
    /// series arrived).
    ids: hashbrown::HashTable<(SeriesId, KeyHash)>,
    hasher: foldhash::fast::RandomState,
    /// Indexed by `SeriesId`; `None` for ids whose definition is not loaded.
    series: Vec<Option<Series>>,
    by_metric: FastMap<String, Vec<SeriesId>>,
    kinds: FastMap<String, HashMap<String, Kind>>,
    /// Points held, for the flush decision and memory accounting.
    points: usize,
    /// Series → postings per tag pair, over every series ever defined.
    pub(crate) postings: Postings,
    /// Series with points in the head.
    pub(crate) live: RoaringBitmap,
    /// Series defined since the last flush, not yet in the catalog.
    pub(crate) uncataloged: Vec<SeriesId>,
    /// Removed series: defined (ids are never reused, a key written again
    /// gets its old id back) but out of the index until written again.
    pub(crate) hidden: RoaringBitmap,
    /// `hidden` lost members since it was last persisted.
    pub(crate) hidden_dirty: bool,
    /// Series hidden or shown again since the head was made: a copy of the
    /// index elsewhere is current only while this has not moved.
    pub(crate) index_changes: u64,
    /// Ids of recently written keys by the address of their shared key:
    /// adapters hand the same `Arc` for a series they have seen, and this
    /// skips hashing its names. Only keys with another owner when looked
    /// up are kept (an adapter's key cache, or another point of the same
    /// write): a key built for one point never comes back, and at a
    /// million series such entries only cost memory. The weak reference
    /// keeps the allocation, so no other key can take the address while
    /// the entry exists.
    recent: FastMap<usize, (Weak<SeriesKey>, SeriesId)>,
}

/// Entries of [`Head::recent`] before it starts over.
const MAX_RECENT: usize = 1 << 18;

/// Up to this many tags a definition lists the key's tag keys without
/// allocating.
const INLINE_TAGS: usize = 24;

impl Head {
    /// Fields of a metric with their kinds, sorted by name.
    pub(crate) fn fields(&self, metric: &str) -> Vec<(&str, Kind)> {
        let mut out: Vec<(&str, Kind)> = self
            .kinds
            .get(metric)
            .map(|m| m.iter().map(|(f, k)| (f.as_str(), *k)).collect())
            .unwrap_or_default();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    pub(crate) fn kind(&self, metric: &str, field: &str) -> Option<Kind> {
        self.kinds.get(metric)?.get(field).copied()
    }

    /// The id of an existing series. Hashes the key's names once and
    /// compares them with the stored ones: finding the symbol of each name
    /// first (21 lookups at ten tags) cost a tenth of the CPU of the wide
    /// profile's writes, whose keys mostly miss the put key cache.
    pub(crate) fn lookup(&self, key: &SeriesKey) -> Option<SeriesId> {
        self.lookup_hashed(key, self.key_hash(key))
    }

    /// [`Head::lookup`] with the key's hash already known.
    pub(crate) fn lookup_hashed(&self, key: &SeriesKey, hash: KeyHash) -> Option<SeriesId> {
        let (series, names) = (&self.series, self.names());
        self.ids
            .find(hash.spread(), |(id, h)| {
                *h == hash && sym_key(series, *id).is_some_and(|syms| names.same(syms, key))
            })
            .map(|(id, _)| *id)
    }

    /// The hash of a key's names, for [`Head::lookup_hashed`],
    /// [`Head::define_hashed`] and the writes in flight: fixed for the
    /// head's life.
    pub(crate) fn key_hash(&self, key: &SeriesKey) -> KeyHash {
        let mut h = self.hasher.build_hasher();
        key.metric.as_str().hash(&mut h);
        for (k, v) in &key.tags {
            k.as_str().hash(&mut h);
            v.as_str().hash(&mut h);
        }
        // The low half: foldhash mixes every input bit into it.
        KeyHash(h.finish() as u32)
    }

    fn names(&self) -> Names<'_> {
        Names {
            symbols: &self.symbols,
            shapes: &self.shapes,
        }
    }

    /// The id of a key written recently through the same `Arc`.
    pub(crate) fn recent_id(&self, key: &Arc<SeriesKey>) -> Option<SeriesId> {
        let (weak, id) = self.recent.get(&(Arc::as_ptr(key) as usize))?;
        // A dead key's address is still reserved by the weak reference,
        // but `Arc::make_mut` may have moved its value out: never trust it.
        (weak.strong_count() > 0).then_some(*id)
    }

    /// Remembers the id of a key written through `key`.
    pub(crate) fn remember(&mut self, key: &Arc<SeriesKey>, id: SeriesId) {
        if self.recent.len() >= MAX_RECENT {
            self.recent.clear();
        }
        self.recent
            .insert(Arc::as_ptr(key) as usize, (Arc::downgrade(key), id));
    }

    /// Keys [`Head::remember`] holds.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.recent.len()
    }

    /// The id the next new series gets.
    pub(crate) fn next_id(&self) -> u32 {
        self.series.len() as u32
    }

    /// Registers a series under its persistent id. Re-defining an id with
    /// the same key is a no-op (a block and the WAL may both carry it).
    pub(crate) fn define(&mut self, id: SeriesId, key: &SeriesKey) -> bool {
        let hash = self.key_hash(key);
        self.define_hashed(id, key, hash)
    }

    /// [`Head::define`] with the key's [`Head::key_hash`] already known.
    pub(crate) fn define_hashed(&mut self, id: SeriesId, key: &SeriesKey, hash: KeyHash) -> bool {
        let slot = id.0 as usize;
        if self.series.len() <= slot {
            self.series.resize_with(slot + 1, || None);
        }
        let keys: SmallVec<[u32; INLINE_TAGS]> = key
            .tags
            .iter()
            .map(|(k, _)| self.symbols.intern(k))
            .collect();
        let shape = self.shapes.intern(&keys);
        let metric = self.symbols.intern(&key.metric);
        let syms: Box<[u32]> = [metric, shape]
            .into_iter()
            .chain(key.tags.iter().map(|(_, v)| self.symbols.intern(v)))
            .collect();
        match self.series.get_mut(slot) {
            Some(Some(s)) => s.key == syms,
            Some(empty @ None) => {
                self.postings.add(id.0, key);
                *empty = Some(Series {
                    key: syms,
                    columns: SmallVec::new(),
                });
                self.ids
                    .insert_unique(hash.spread(), (id, hash), |(_, h)| h.spread());
                match self.by_metric.get_mut(key.metric.as_str()) {
                    Some(ids) => ids.push(id),
                    None => {
                        self.by_metric.insert(key.metric.to_string(), vec![id]);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Stores one point of a defined series. Returns false, storing
    /// nothing, if the series is unknown or the value's kind conflicts with
    /// the field's (only possible when replaying damaged data).
    pub(crate) fn apply(
        &mut self,
        id: SeriesId,
        field: &str,
        ts: Timestamp,
        value: FieldValue,
    ) -> bool {
        let field = self.field_symbol(field);
        self.apply_field(id, field, ts, value)
    }

    /// The symbol of a field name, for [`Head::apply_field`].
    pub(crate) fn field_symbol(&mut self, field: &str) -> u32 {
        self.symbols.intern(field)
    }

    /// [`Head::apply`] with the field as its symbol: a batch of points
    /// of one field resolves the name once, not once per point.
    pub(crate) fn apply_field(
        &mut self,
        id: SeriesId,
        field_sym: u32,
        ts: Timestamp,
        value: FieldValue,
    ) -> bool {
        if !self.hidden.is_empty() && self.hidden.contains(id.0) {
            self.unhide(id);
        }
        let Some(Some(series)) = self.series.get_mut(id.0 as usize) else {
            return false;
        };
        let symbols = &self.symbols;
        let col = match series.columns.iter().position(|c| c.field == field_sym) {
            // An existing column already passed the kind check for this
            // (metric, field) when it was created; values written to it
            // were checked against that kind by `Db::write`.
            Some(i) => i,
            None => {
                let Some(metric) = series.key.first().map(|m| symbols.resolve(*m)) else {
                    return false;
                };
                let kind = value.kind();
                let kinds = match self.kinds.get_mut(metric) {
                    Some(k) => k,
                    None => self.kinds.entry(metric.to_owned()).or_default(),
                };
                let field = symbols.resolve(field_sym);
                match kinds.get(field) {
                    Some(k) if *k != kind => return false,
                    Some(_) => {}
                    None => {
                        kinds.insert(field.to_owned(), kind);
                    }
                }
                series.columns.push(Column {
                    field: field_sym,
                    points: Points::default(),
                });
                series.columns.len() - 1
            }
        };
        if series.columns.get(col).is_some_and(|c| c.points.is_empty()) {
            self.live.insert(id.0);
        }
        if let Some(c) = series.columns.get_mut(col)
            && c.points.insert(ts, value)
        {
            self.points += 1;
        }
        true
    }

    /// Takes a series out of the index (its data is already gone). A
    /// metric left without series forgets its field kinds.
    pub(crate) fn hide(&mut self, id: SeriesId) {
        let Some(key) = self.key(id) else { return };
        if !self.hidden.insert(id.0) {
            return;
        }
        self.index_changes += 1;
        self.postings.remove(id.0, &key);
        // Its columns are empty (the data is gone); dropping them makes the
        // next write recreate them and record the field's kind again.
        if let Some(Some(series)) = self.series.get_mut(id.0 as usize) {
            series.columns.clear();
        }
        if let Some(ids) = self.by_metric.get_mut(key.metric.as_str()) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_metric.remove(key.metric.as_str());
                self.kinds.remove(key.metric.as_str());
            }
        }
    }

    /// Whether the series was taken out of the index.
    pub(crate) fn is_hidden(&self, id: SeriesId) -> bool {
        self.hidden.contains(id.0)
    }

    /// Puts a removed series back in the index when it is written again.
    fn unhide(&mut self, id: SeriesId) {
        let Some(key) = self.key(id) else { return };
        self.hidden.remove(id.0);
        self.hidden_dirty = true;
        self.index_changes += 1;
        self.postings.add(id.0, &key);
        let ids = self.by_metric.entry(key.metric.into_string()).or_default();
        // Keep creation order.
        let at = ids.partition_point(|i| *i < id);
        ids.insert(at, id);
    }

    /// Records the kind of a column whose data lives in blocks.
    pub(crate) fn set_kind(&mut self, metric: &str, field: &str, kind: Kind) {
        let kinds = match self.kinds.get_mut(metric) {
            Some(k) => k,
            None => self.kinds.entry(metric.to_owned()).or_default(),
        };
        kinds.entry(field.to_owned()).or_insert(kind);
    }

    pub(crate) fn point_count(&self) -> usize {
        self.points
    }

    /// Takes the points older than `before` (every point for `None`) out
    /// of the head for a flush, sorted by series. The registry and kinds
    /// stay, and so do newer points.
    pub(crate) fn freeze(&mut self, before: Option<Timestamp>) -> Frozen {
        let live = std::mem::take(&mut self.live);
        let mut out = Vec::with_capacity(live.len() as usize);
        let mut names: FastMap<u32, Arc<str>> = FastMap::default();
        for id in &live {
            let Some(Some(series)) = self.series.get_mut(id as usize) else {
                continue;
            };
            let mut cols = FrozenColumns::with_capacity(series.columns.len());
            let mut kept = false;
            for c in series.columns.iter_mut().filter(|c| !c.points.is_empty()) {
                let split = before.map_or(c.points.len(), |t| c.points.count_before(t));
                let taken = if split == c.points.len() {
                    std::mem::take(&mut c.points)
                } else {
                    let rest = c.points.split_off(split);
                    kept = true;
                    std::mem::replace(&mut c.points, rest)
                };
                if !taken.is_empty() {
                    self.points -= taken.len();
                    let symbols = &self.symbols;
                    let name = names
                        .entry(c.field)
                        .or_insert_with(|| symbols.resolve(c.field).into())
                        .clone();
                    cols.push((name, taken));
                }
            }
            if kept {
                self.live.insert(id);
            }
            if !cols.is_empty() {
                out.push((SeriesId(id), cols));
            }
        }
        out
    }

    /// Whether any point is older than `before`.
    pub(crate) fn has_points_before(&self, before: Timestamp) -> bool {
        self.live.iter().any(|id| {
            self.series
                .get(id as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| {
                    s.columns
                        .iter()
                        .any(|c| c.points.first_ts().is_some_and(|t| t < before))
                })
        })
    }

    /// The points from `from` on, as WAL records of at most `per_record`
    /// points (series already defined): a partial flush logs what it
    /// leaves behind again, so the WAL segments before it can go.
    pub(crate) fn encode_points(
        &self,
        from: Timestamp,
        per_record: usize,
    ) -> Vec<crate::record::BatchEncoder> {
        let mut out = Vec::new();
        let (mut enc, mut n) = (crate::record::BatchEncoder::default(), 0usize);
        for id in &self.live {
            let Some(Some(series)) = self.series.get(id as usize) else {
                continue;
            };
            for c in &series.columns {
                let all = c.points.as_ref();
                let kept = all.slice(all.count_before(from), all.len());
                if kept.is_empty() {
                    continue;
                }
                let mut f = enc.field(self.symbols.resolve(c.field));
                for (ts, v) in kept.iter() {
                    if n == per_record.max(1) {
                        out.push(std::mem::take(&mut enc));
                        n = 0;
                        f = enc.field(self.symbols.resolve(c.field));
                    }
                    enc.point(SeriesId(id), f, ts, &v);
                    n += 1;
                }
            }
        }
        if n > 0 {
            out.push(enc);
        }
        out
    }

    /// Puts frozen points back after a failed flush; points written since
    /// the freeze are newer and win.
    pub(crate) fn restore(&mut self, frozen: Frozen) {
        for (id, cols) in frozen {
            for (field, points) in cols {
                for (ts, v) in points.as_ref().iter() {
                    if self
                        .column(id, &field)
                        .is_some_and(|c| c.points.contains(ts))
                    {
                        continue;
                    }
                    self.apply(id, &field, ts, v);
                }
            }
        }
    }

    /// Every defined series from id `first` on, ascending.
    pub(crate) fn defined_from(&self, first: u32) -> Vec<(SeriesId, SeriesKey)> {
        (first..self.next_id())
            .filter_map(|id| Some((SeriesId(id), self.key(SeriesId(id))?)))
            .collect()
    }

    /// The series' key, rebuilt from symbols.
    pub(crate) fn key(&self, id: SeriesId) -> Option<SeriesKey> {
        let syms = sym_key(&self.series, id)?;
        let [metric, shape, values @ ..] = syms else {
            return None;
        };
        let tags = self
            .shapes
            .resolve(*shape)
            .iter()
            .zip(values)
            .map(|(k, v)| {
                let name = |id: &u32| -> Name { Name::from(self.symbols.resolve(*id)) };
                (name(k), name(v))
            })
            .collect();
        // Stored sorted: the constructor only checks the order.
        Some(SeriesKey::from_names(self.symbols.resolve(*metric), tags))
    }

    fn column(&self, id: SeriesId, field: &str) -> Option<&Column> {
        let series = self.series.get(id.0 as usize)?.as_ref()?;
        let sym = self.symbols.get(field)?;
        series.columns.iter().find(|c| c.field == sym)
    }

    pub(crate) fn has_metric(&self, metric: &str) -> bool {
        self.by_metric.contains_key(metric)
    }

    pub(crate) fn series_of(&self, metric: &str) -> &[SeriesId] {
        self.by_metric
            .get(metric)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Points of one column in `[start, end]`, ascending.
    pub(crate) fn points(
        &self,
        id: SeriesId,
        field: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> PointsRef<'_> {
        self.column(id, field)
            .map(|c| c.points.as_ref().range(start, end))
            .unwrap_or_default()
    }

    /// Whether any column of the series has a head point in `[start, end]`.
    pub(crate) fn has_points_in(&self, id: SeriesId, start: Timestamp, end: Timestamp) -> bool {
        self.series
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .is_some_and(|s| {
                s.columns
                    .iter()
                    .any(|c| !c.points.as_ref().range(start, end).is_empty())
            })
    }

    pub(crate) fn metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_metric.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn series_count(&self) -> usize {
        self.ids.len()
    }
}

fn sym_key(series: &[Option<Series>], id: SeriesId) -> Option<&[u32]> {
    series.get(id.0 as usize)?.as_ref().map(|s| &*s.key)
}

/// A series key's hash as its head computes it ([`Head::key_hash`]): a
/// write hashes each key once, and the id table and the writes in flight
/// keep the value. 32 bits: the id table stores it beside each id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyHash(u32);

impl KeyHash {
    /// Spread over 64 bits for hashbrown, which picks buckets by the low
    /// bits and tags entries by the high ones.
    pub(crate) fn spread(self) -> u64 {
        u64::from(self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// The names behind a stored symbol key.
#[derive(Clone, Copy)]
struct Names<'a> {
    symbols: &'a Symbols,
    shapes: &'a Shapes,
}

impl Names<'_> {
    /// A stored key's metric, and its tags' keys and values by symbol.
    fn parts<'k>(&self, syms: &'k [u32]) -> (u32, &[u32], &'k [u32]) {
        match syms {
            [metric, shape, values @ ..] => (*metric, self.shapes.resolve(*shape), values),
            _ => (u32::MAX, &[], &[]),
        }
    }

    /// Whether a stored key has exactly `key`'s names.
    fn same(&self, syms: &[u32], key: &SeriesKey) -> bool {
        let (metric, keys, values) = self.parts(syms);
        let s = self.symbols;
        keys.len() == key.tags.len()
            && values.len() == keys.len()
            && s.resolve(metric) == key.metric
            && key
                .tags
                .iter()
                .zip(keys.iter().zip(values))
                .all(|((k, v), (ks, vs))| {
                    s.resolve(*ks) == k.as_str() && s.resolve(*vs) == v.as_str()
                })
    }
}

#[cfg(test)]
mod tests;
