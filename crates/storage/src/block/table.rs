//! A block's chunk entries as the reader keeps them: one vector sorted by
//! column (series, field) and time, and a sorted directory of columns. A
//! map from column to a vector of entries cost about 165 bytes per column
//! beside the entry (a hash slot in a table sized to a power of two, and
//! an allocation per column): at a million series per flushed block that
//! was most of the server's memory. The directory costs 12.

use super::ChunkEntry;
use crate::head::SeriesId;

/// Every chunk of a block, by column.
#[derive(Debug, Default)]
pub(crate) struct ChunkTable {
    entries: Vec<ChunkEntry>,
    /// Ascending by (series, field); a column's entries run to the next
    /// column's `start`.
    columns: Vec<ColumnAt>,
}

#[derive(Debug, Clone, Copy)]
struct ColumnAt {
    series: u32,
    field: u32,
    start: u32,
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
    pub(crate) fn get(&self, id: SeriesId, field: u32) -> &[ChunkEntry] {
        self.columns
            .binary_search_by_key(&(id.0, field), |c| (c.series, c.field))
            .map_or(&[], |i| self.column(i))
    }

    /// The table of `entries`, each of the column beside it in `keys`
    /// (series, field). Blocks whose series have one field each (most)
    /// list their chunks in the table's order, as flushes and merges
    /// write column by column: those are taken as they are, with no copy
    /// of the entries, which at a million columns is 56 MB beside the
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
        Self { entries, columns }
    }

    /// The chunks of one column, searching the directory forward from
    /// `*from`, which is left at the series' first column. A caller going
    /// through series in ascending order (compaction) finds each column a
    /// step or two from the last instead of by a binary search over the
    /// whole directory, whose probes miss the cache at a million columns.
    pub(crate) fn get_from(&self, from: &mut usize, id: SeriesId, field: u32) -> &[ChunkEntry] {
        let rest = self.columns.get(*from..).unwrap_or_default();
        let before = |i: usize| rest.get(i).is_some_and(|c| c.series < id.0);
        // Gallop to a window holding the series' first column.
        let (mut lo, mut step) = (0, 1);
        while lo + step <= rest.len() && before(lo + step - 1) {
            lo += step;
            step *= 2;
        }
        let end = (lo + step).min(rest.len());
        let window = rest.get(lo..end).unwrap_or_default();
        *from += lo + window.partition_point(|c| c.series < id.0);
        let series = self.columns.get(*from..).unwrap_or_default();
        series
            .iter()
            .take_while(|c| c.series == id.0)
            .position(|c| c.field == field)
            .map_or(&[], |i| self.column(*from + i))
    }

    /// Every column with its chunks, ascending by (series, field).
    pub(crate) fn iter(&self) -> impl Iterator<Item = ((SeriesId, u32), &[ChunkEntry])> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| ((SeriesId(c.series), c.field), self.column(i)))
    }

    /// Every chunk.
    pub(crate) fn entries(&self) -> &[ChunkEntry] {
        &self.entries
    }

    fn column(&self, i: usize) -> &[ChunkEntry] {
        let start = self.columns.get(i).map_or(0, |c| c.start as usize);
        let end = self
            .columns
            .get(i + 1)
            .map_or(self.entries.len(), |c| c.start as usize);
        self.entries.get(start..end).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(min_ts: i64) -> ChunkEntry {
        ChunkEntry {
            min_ts,
            max_ts: min_ts,
            offset: 0,
            len: 0,
            count: 1,
            stats_at: super::super::index::NO_STATS,
            rollup_len: 0,
            kind: 0,
            all_long: false,
            exact: false,
        }
    }

    proptest! {
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
                .map(|(i, (_, _, t))| ChunkEntry { offset: i as u64, ..entry(*t) })
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
                    .map(|(column, es)| (column, es.iter().map(|e| e.offset).collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(offsets(&taken), offsets(&sorted));
        }

        /// Walking series upwards (fields in any order within a series,
        /// absent columns included) finds what a lookup by key finds.
        #[test]
        fn a_forward_walk_finds_what_lookups_find(
            present in proptest::collection::btree_set((0u32..200, 0u32..3), 0..120),
            reversed in any::<bool>(),
        ) {
            let chunks: Vec<(SeriesId, u32, ChunkEntry)> = present
                .iter()
                .enumerate()
                .flat_map(|(i, (s, f))| {
                    (0..=(i % 3) as i64).map(move |t| (SeriesId(*s), *f, entry(t)))
                })
                .collect();
            let table = ChunkTable::new(chunks).map_err(TestCaseError::fail)?;
            let mut from = 0;
            for series in 0..205 {
                let fields: Vec<u32> = if reversed { vec![3, 2, 1, 0] } else { vec![0, 1, 2, 3] };
                for field in fields {
                    let id = SeriesId(series);
                    let walked: Vec<i64> = table.get_from(&mut from, id, field).iter().map(|e| e.min_ts).collect();
                    let looked: Vec<i64> = table.get(id, field).iter().map(|e| e.min_ts).collect();
                    prop_assert_eq!(walked, looked, "series {} field {}", series, field);
                }
            }
        }
    }
}
