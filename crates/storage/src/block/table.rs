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
        let mut entries = Vec::with_capacity(chunks.len());
        let mut columns: Vec<ColumnAt> = Vec::new();
        for (id, field, entry) in chunks {
            if columns
                .last()
                .is_none_or(|c| (c.series, c.field) != (id.0, field))
            {
                columns.push(ColumnAt {
                    series: id.0,
                    field,
                    start: entries.len() as u32,
                });
            }
            entries.push(entry);
        }
        columns.shrink_to_fit();
        Ok(Self { entries, columns })
    }

    /// The chunks of one column, ascending by time.
    pub(crate) fn get(&self, id: SeriesId, field: u32) -> &[ChunkEntry] {
        self.columns
            .binary_search_by_key(&(id.0, field), |c| (c.series, c.field))
            .map_or(&[], |i| self.column(i))
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
