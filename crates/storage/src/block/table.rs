//! A block's chunk entries as the reader keeps them: one vector sorted by
//! column (series, field) and time, and a sorted directory of columns. A
//! map from column to a vector of entries cost about 165 bytes per column
//! beside the entry (a hash slot in a table sized to a power of two, and
//! an allocation per column): at a million series per flushed block that
//! was most of the server's memory. The directory costs 12 bytes per
//! column, or 4 when every series of the block has one chunk of the
//! block's first field (flushes and day merges of one-field metrics).
//! Such a block whose chunks are all small enough to keep no statistics
//! (a flush at high cardinality: a point or two per series) keeps its
//! entries packed, 24 bytes each instead of 40.

use super::ChunkEntry;
use super::index::PackedEntry;
use crate::head::SeriesId;
use sundial_model::Timestamp;
use sundial_model::search::{first_not, gallop};

/// Every chunk of a block, by column.
#[derive(Debug)]
pub(crate) struct ChunkTable {
    entries: Entries,
    columns: Directory,
}

impl Default for ChunkTable {
    fn default() -> Self {
        Self {
            entries: Entries::Full(Vec::new()),
            columns: Directory::Single(Vec::new()),
        }
    }
}

#[derive(Debug)]
enum Entries {
    Full(Vec<ChunkEntry>),
    /// Entry `i` is column `i`'s only chunk ([`Directory::Single`]).
    Packed(Vec<PackedEntry>),
}

/// The chunks of one column: borrowed from the table, or unpacked.
#[derive(Debug)]
pub(crate) enum Chunks<'a> {
    Listed(&'a [ChunkEntry]),
    One(ChunkEntry),
}

impl Default for Chunks<'_> {
    fn default() -> Self {
        Self::Listed(&[])
    }
}

/// The entries by value (40 bytes each, copied as a reference would be
/// read).
impl<'a> IntoIterator for Chunks<'a> {
    type Item = ChunkEntry;
    type IntoIter = std::iter::Chain<
        std::iter::Cloned<std::slice::Iter<'a, ChunkEntry>>,
        std::option::IntoIter<ChunkEntry>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Self::Listed(entries) => entries.iter().cloned().chain(None),
            Self::One(entry) => [].iter().cloned().chain(Some(entry)),
        }
    }
}

impl std::ops::Deref for Chunks<'_> {
    type Target = [ChunkEntry];

    fn deref(&self) -> &[ChunkEntry] {
        match self {
            Self::Listed(entries) => entries,
            Self::One(entry) => std::slice::from_ref(entry),
        }
    }
}

/// Where each column's entries are, ascending by (series, field).
#[derive(Debug)]
enum Directory {
    /// Every column is field 0 with one chunk: entry `i` is the chunk of
    /// series `series[i]`.
    Single(Vec<u32>),
    /// A column's entries run to the next column's `start`.
    Columns(Vec<ColumnAt>),
}

#[derive(Debug, Clone, Copy)]
struct ColumnAt {
    series: u32,
    field: u32,
    start: u32,
}

impl Directory {
    fn len(&self) -> usize {
        match self {
            Self::Single(series) => series.len(),
            Self::Columns(columns) => columns.len(),
        }
    }

    /// The (series, field) of column `i`; past the end, after every key.
    fn key(&self, i: usize) -> (u32, u32) {
        let key = match self {
            Self::Single(series) => series.get(i).map(|s| (*s, 0)),
            Self::Columns(columns) => columns.get(i).map(|c| (c.series, c.field)),
        };
        key.unwrap_or((u32::MAX, u32::MAX))
    }

    /// Where column `i`'s entries start; `entries` past the last column.
    fn start(&self, i: usize, entries: usize) -> usize {
        match self {
            Self::Single(series) => i.min(series.len()),
            Self::Columns(columns) => columns.get(i).map_or(entries, |c| c.start as usize),
        }
    }
}

impl ChunkTable {
    /// The table of `chunks` given in any order; a column's chunks end up
    /// ascending by time (ties in the order given).
    pub(crate) fn new(mut chunks: Vec<(SeriesId, u32, ChunkEntry)>) -> Result<Self, String> {
        if u32::try_from(chunks.len()).is_err() {
            return Err("more than 2^32 chunks".into());
        }
        chunks.sort_by_key(|(id, field, e)| (id.0, *field, e.min_ts));
        let (keys, entries) = chunks
            .into_iter()
            .map(|(id, field, entry)| ((id.0, field), entry))
            .unzip();
        Ok(Self::of_ordered(keys, entries))
    }

    /// The chunks of one column, ascending by time.
    pub(crate) fn get(&self, id: SeriesId, field: u32) -> Chunks<'_> {
        let lo = first_not(0..self.columns.len(), |i| {
            self.columns.key(i) < (id.0, field)
        });
        if self.columns.key(lo) == (id.0, field) {
            self.column(lo)
        } else {
            Chunks::default()
        }
    }

    /// The table of `entries`, each of the column beside it in `keys`
    /// (series, field). Blocks whose series have one field each (most)
    /// list their chunks in the table's order, as flushes and merges
    /// write column by column: those are taken as they are, with no copy
    /// of the entries, which at a million columns is 48 MB beside the
    /// table while a block opens. Others (field numbers follow first
    /// appearance, not names) are sorted.
    pub(crate) fn from_columns(
        keys: Vec<(u32, u32)>,
        entries: Vec<ChunkEntry>,
    ) -> Result<Self, String> {
        if keys.len() != entries.len() {
            return Err("a chunk without its column".into());
        }
        if u32::try_from(entries.len()).is_err() {
            return Err("more than 2^32 chunks".into());
        }
        let ordered = keys
            .windows(2)
            .zip(entries.windows(2))
            .all(|(k, e)| (k[0].0, k[0].1, e[0].min_ts) <= (k[1].0, k[1].1, e[1].min_ts));
        if !ordered {
            let chunks = keys
                .into_iter()
                .zip(entries)
                .map(|((series, field), e)| (SeriesId(series), field, e))
                .collect();
            return Self::new(chunks);
        }
        Ok(Self::of_ordered(keys, entries))
    }

    /// The table of `entries` already in its order, each of the column
    /// beside it in `keys`.
    fn of_ordered(keys: Vec<(u32, u32)>, entries: Vec<ChunkEntry>) -> Self {
        let single =
            keys.iter().all(|(_, field)| *field == 0) && keys.windows(2).all(|k| k[0].0 != k[1].0);
        if single {
            // From a borrow: collecting in place would keep the keys'
            // allocation, twice the size.
            let series = keys.iter().map(|(series, _)| *series).collect();
            // Gone before the packed copy of the entries is made.
            drop(keys);
            return Self {
                entries: packed(entries),
                columns: Directory::Single(series),
            };
        }
        let mut columns: Vec<ColumnAt> = Vec::new();
        for (at, (series, field)) in keys.into_iter().enumerate() {
            if columns
                .last()
                .is_none_or(|c| (c.series, c.field) != (series, field))
            {
                columns.push(ColumnAt {
                    series,
                    field,
                    start: at as u32,
                });
            }
        }
        columns.shrink_to_fit();
        Self {
            entries: Entries::Full(entries),
            columns: Directory::Columns(columns),
        }
    }

    /// The chunks of one column, searching the directory forward from
    /// `*from`, which is left at the series' first column. A caller going
    /// through series in ascending order (compaction) finds each column a
    /// step or two from the last instead of by a binary search over the
    /// whole directory, whose probes miss the cache at a million columns.
    pub(crate) fn get_from(&self, from: &mut usize, id: SeriesId, field: u32) -> Chunks<'_> {
        let columns = &self.columns;
        self.seek(from, id);
        (*from..columns.len())
            .take_while(|i| columns.key(*i).0 == id.0)
            .find(|i| columns.key(*i).1 == field)
            .map_or_else(Chunks::default, |i| self.column(i))
    }

    /// The chunks of each column of series `id`, searching forward from
    /// `*from` as [`ChunkTable::get_from`] does.
    pub(crate) fn columns_of(
        &self,
        from: &mut usize,
        id: SeriesId,
    ) -> impl Iterator<Item = Chunks<'_>> {
        self.seek(from, id);
        (*from..self.columns.len())
            .take_while(move |i| self.columns.key(*i).0 == id.0)
            .map(|i| self.column(i))
    }

    /// Moves `*from` forward to the first column of series `id` or after.
    fn seek(&self, from: &mut usize, id: SeriesId) {
        let columns = &self.columns;
        let rest = columns.len().saturating_sub(*from);
        let before = |i: usize| i < rest && columns.key(*from + i).0 < id.0;
        *from += gallop(rest, before);
    }

    /// Every column with its chunks, ascending by (series, field).
    pub(crate) fn iter(&self) -> impl Iterator<Item = ((SeriesId, u32), Chunks<'_>)> {
        (0..self.columns.len()).map(|i| {
            let (series, field) = self.columns.key(i);
            ((SeriesId(series), field), self.column(i))
        })
    }

    /// The earliest and latest time of any chunk; (MAX, MIN) for none.
    pub(crate) fn time_range(&self) -> (Timestamp, Timestamp) {
        let widen =
            |(lo, hi): (Timestamp, Timestamp), e: &ChunkEntry| (lo.min(e.min_ts), hi.max(e.max_ts));
        let none = (Timestamp::MAX, Timestamp::MIN);
        match &self.entries {
            Entries::Full(entries) => entries.iter().fold(none, widen),
            Entries::Packed(entries) => entries.iter().fold(none, |r, p| widen(r, &p.unpack())),
        }
    }

    fn column(&self, i: usize) -> Chunks<'_> {
        match &self.entries {
            Entries::Full(entries) => {
                let n = entries.len();
                let (start, end) = (self.columns.start(i, n), self.columns.start(i + 1, n));
                Chunks::Listed(entries.get(start..end).unwrap_or_default())
            }
            Entries::Packed(entries) => entries
                .get(i)
                .map_or_else(Chunks::default, |p| Chunks::One(p.unpack())),
        }
    }
}

/// `entries` packed when every one of them fits, in a vector sized once.
fn packed(entries: Vec<ChunkEntry>) -> Entries {
    if entries.is_empty() || !entries.iter().all(|e| PackedEntry::pack(e).is_some()) {
        return Entries::Full(entries);
    }
    let mut packed = Vec::with_capacity(entries.len());
    packed.extend(entries.iter().filter_map(PackedEntry::pack));
    Entries::Packed(packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::index::NO_STATS;
    use proptest::prelude::*;

    /// Everything an entry says, to compare.
    #[allow(clippy::type_complexity)]
    fn fields(e: &ChunkEntry) -> (i64, i64, u64, u8, bool, bool, u32, u32, u32, u32) {
        let at = (e.offset(), e.kind(), e.all_long(), e.exact());
        (
            e.min_ts,
            e.max_ts,
            at.0,
            at.1,
            at.2,
            at.3,
            e.len,
            e.count,
            e.stats_at,
            e.rollup_len,
        )
    }

    fn entry(min_ts: i64) -> ChunkEntry {
        entry_at(min_ts, 0)
    }

    fn entry_at(min_ts: i64, offset: u64) -> ChunkEntry {
        let none = super::super::index::NO_STATS;
        ChunkEntry::new(
            (min_ts, min_ts),
            (offset, 0),
            (1, none, 0),
            (0, false, false),
        )
    }

    proptest! {
        /// Offset, kind and flags share a word without touching each
        /// other, up to the largest offset an index may give.
        #[test]
        fn an_entry_keeps_its_offset_kind_and_flags(
            offset in 0u64..(1 << super::super::index::OFFSET_BITS),
            kind in any::<u8>(),
            all_long in any::<bool>(),
            exact in any::<bool>(),
        ) {
            let e = ChunkEntry::new((-5, 7), (offset, 3), (4, 5, 6), (kind, all_long, exact));
            prop_assert_eq!(
                (e.offset(), e.kind(), e.all_long(), e.exact()),
                (offset, kind, all_long, exact)
            );
            prop_assert_eq!((e.min_ts, e.max_ts, e.len, e.count, e.stats_at, e.rollup_len), (-5, 7, 3, 4, 5, 6));
        }

        /// A block of one chunk per series is packed exactly when every
        /// chunk fits, and reads back the same entries either way.
        #[test]
        fn packed_entries_read_back_as_they_were_given(
            chunks in proptest::collection::vec(
                (-1000i64..1000, prop_oneof![Just(0i64), 0i64..10, Just(u32::MAX as i64), Just(1 << 40)],
                 0u32..70, prop_oneof![Just(NO_STATS), 0u32..5], prop_oneof![Just(0u32), 1u32..9],
                 0u64..(1 << super::super::index::OFFSET_BITS), any::<u8>(), any::<bool>(), any::<bool>()),
                0..40),
        ) {
            let given: Vec<ChunkEntry> = chunks
                .iter()
                .map(|&(min_ts, span, count, stats_at, rollup_len, offset, kind, long, exact)| {
                    ChunkEntry::new(
                        (min_ts, min_ts + span),
                        (offset, count.wrapping_mul(7)),
                        (count, stats_at, rollup_len),
                        (kind, long, exact),
                    )
                })
                .collect();
            let keys = (0..given.len() as u32).map(|s| (s * 2, 0)).collect();
            let table = ChunkTable::from_columns(keys, given.clone()).map_err(TestCaseError::fail)?;
            let fits = given.iter().all(|e| {
                e.stats_at == NO_STATS && e.rollup_len == 0 && e.count < 64
                    && e.max_ts - e.min_ts <= i64::from(u32::MAX)
            });
            prop_assert_eq!(matches!(table.entries, Entries::Packed(_)), fits && !given.is_empty());
            let read: Vec<ChunkEntry> = table.iter().flat_map(|(_, es)| es).collect();
            prop_assert_eq!(read.iter().map(fields).collect::<Vec<_>>(), given.iter().map(fields).collect::<Vec<_>>());
            for (i, e) in given.iter().enumerate() {
                let got = table.get(SeriesId(2 * i as u32), 0);
                prop_assert_eq!(got.iter().map(fields).collect::<Vec<_>>(), vec![fields(e)]);
                prop_assert!(table.get(SeriesId(2 * i as u32 + 1), 0).is_empty());
            }
            let range = given.iter().fold((i64::MAX, i64::MIN), |(lo, hi), e| (lo.min(e.min_ts), hi.max(e.max_ts)));
            prop_assert_eq!(table.time_range(), range);
        }

        /// A block's listing taken as it is (when in order) or sorted
        /// builds the same table as sorting it always did.
        #[test]
        fn a_listing_in_order_is_taken_as_sorting_would_build_it(
            listed in proptest::collection::vec((0u32..20, 0u32..3, 0i64..5), 0..60),
            in_order in any::<bool>(),
        ) {
            let mut listed = listed;
            if in_order {
                listed.sort();
            }
            let entries: Vec<ChunkEntry> = listed
                .iter()
                .enumerate()
                .map(|(i, (_, _, t))| entry_at(*t, i as u64))
                .collect();
            let keys = listed.iter().map(|(s, f, _)| (*s, *f)).collect();
            let chunks = listed
                .iter()
                .zip(&entries)
                .map(|((s, f, _), e)| (SeriesId(*s), *f, e.clone()))
                .collect();
            let sorted = ChunkTable::new(chunks).map_err(TestCaseError::fail)?;
            let taken = ChunkTable::from_columns(keys, entries).map_err(TestCaseError::fail)?;
            let offsets = |t: &ChunkTable| {
                t.iter()
                    .map(|(column, es)| (column, es.iter().map(|e| e.offset()).collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(offsets(&taken), offsets(&sorted));
        }

        /// Walking series upwards (fields in any order within a series,
        /// absent columns included) and looking columns up both find
        /// each column's chunks, in either directory: one chunk of field 0
        /// per series, or any columns.
        #[test]
        fn walks_and_lookups_find_each_columns_chunks(
            present in proptest::collection::btree_set((0u32..200, 0u32..3), 0..120),
            reversed in any::<bool>(),
            single in any::<bool>(),
        ) {
            let mut expected: std::collections::BTreeMap<(u32, u32), Vec<i64>> = Default::default();
            for (i, (s, f)) in present.iter().enumerate() {
                let (field, chunks) = if single { (0, 1) } else { (*f, 1 + i as i64 % 3) };
                expected.insert((*s, field), (0..chunks).collect());
            }
            let chunks: Vec<(SeriesId, u32, ChunkEntry)> = expected
                .iter()
                .rev()
                .flat_map(|((s, f), ts)| ts.iter().map(move |t| (SeriesId(*s), *f, entry(*t))))
                .collect();
            let table = ChunkTable::new(chunks).map_err(TestCaseError::fail)?;
            let one_each = expected.iter().all(|((_, f), ts)| *f == 0 && ts.len() == 1);
            prop_assert!(one_each || !single);
            prop_assert_eq!(matches!(table.columns, Directory::Single(_)), one_each);
            let times = |es: &[ChunkEntry]| es.iter().map(|e| e.min_ts).collect::<Vec<i64>>();
            let listed: Vec<((u32, u32), Vec<i64>)> =
                table.iter().map(|((s, f), es)| ((s.0, f), times(&es))).collect();
            prop_assert_eq!(listed, expected.clone().into_iter().collect::<Vec<_>>());
            let mut from = 0;
            for series in 0..205 {
                let fields: Vec<u32> = if reversed { vec![3, 2, 1, 0] } else { vec![0, 1, 2, 3] };
                for field in fields {
                    let id = SeriesId(series);
                    let want = expected.get(&(series, field)).cloned().unwrap_or_default();
                    prop_assert_eq!(times(&table.get_from(&mut from, id, field)), want.clone(), "walk {} {}", series, field);
                    prop_assert_eq!(times(&table.get(id, field)), want, "lookup {} {}", series, field);
                }
            }
        }
    }
}
