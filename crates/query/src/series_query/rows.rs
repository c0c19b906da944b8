//! Raw rows: merging a group's series in `(timestamp, series key)` order,
//! and paging (marker, offset, limit) over the rows of every group.

use super::SeriesData;
use crate::Result;
use std::sync::Arc;
use sundial_model::Timestamp;
use sundial_model::series_query::{GroupOutput, Order, QueryOutput, Row, RowKey, SeriesQuery};

/// The series key of each raw row, for markers: the members' keys and,
/// with several members, each row's member index.
#[derive(Debug, Default)]
pub(super) struct RowKeys {
    members: Vec<Arc<str>>,
    /// Empty with one member (every row is its).
    of_row: Vec<u32>,
}

impl RowKeys {
    pub(super) fn get(&self, row: usize) -> Option<&str> {
        let member = if self.of_row.is_empty() {
            0
        } else {
            *self.of_row.get(row)? as usize
        };
        self.members.get(member).map(|k| &**k)
    }

    pub(super) fn reverse(&mut self) {
        self.of_row.reverse();
    }
}

/// Raw rows of a group in `(timestamp, series key)` order, with their
/// series keys.
pub(super) fn merge_raw(query: &SeriesQuery, mut members: Vec<SeriesData>) -> (Vec<Row>, RowKeys) {
    let tags_of = |s: &SeriesData| -> Vec<Option<String>> {
        query
            .tag_columns
            .iter()
            .map(|k| s.key.tag(k).map(str::to_owned))
            .collect()
    };
    let mut keys = RowKeys {
        members: members.iter().map(|s| s.key_text.clone()).collect(),
        of_row: Vec::new(),
    };
    if members.len() == 1
        && let Some(s) = members.pop()
    {
        // One series: its rows are in order already, and without tag
        // columns they are the output as they are (moving them into a new
        // vector took a sixth of a raw read's time).
        let tags = tags_of(&s);
        let mut rows = s.rows;
        if !tags.is_empty() {
            for row in &mut rows {
                row.tags = tags.clone();
            }
        }
        return (rows, keys);
    }
    let total: usize = members.iter().map(|s| s.rows.len()).sum();
    let mut rows = Vec::with_capacity(total);
    keys.of_row.reserve(total);
    let mut all: Vec<(Timestamp, usize, usize)> = Vec::with_capacity(total);
    for (si, s) in members.iter().enumerate() {
        for (ri, r) in s.rows.iter().enumerate() {
            all.push((r.timestamp, si, ri));
        }
    }
    let key_of = |si: usize| members.get(si).map(|s| &*s.key_text).unwrap_or_default();
    all.sort_unstable_by(|a, b| (a.0, key_of(a.1)).cmp(&(b.0, key_of(b.1))));
    let tags: Vec<Vec<Option<String>>> = members.iter().map(tags_of).collect();
    let mut taken: Vec<Vec<Option<Row>>> = members
        .into_iter()
        .map(|s| s.rows.into_iter().map(Some).collect())
        .collect();
    for (_, si, ri) in all {
        let Some(mut row) = taken
            .get_mut(si)
            .and_then(|r| r.get_mut(ri))
            .and_then(Option::take)
        else {
            continue;
        };
        if let Some(t) = tags.get(si).filter(|t| !t.is_empty()) {
            row.tags = t.clone();
        }
        rows.push(row);
        keys.of_row.push(u32::try_from(si).unwrap_or(u32::MAX));
    }
    (rows, keys)
}

/// Marker, offset and limit. Raw queries report `truncated` and the marker
/// of the last row; others just stop at the limit.
pub(super) fn page(
    query: &SeriesQuery,
    raw: bool,
    groups: Vec<(GroupOutput, RowKeys)>,
    out: &mut QueryOutput,
) -> Result<()> {
    let mut skip = query.offset;
    let mut left = query.limit;
    for (gi, (mut group, keys)) in groups.into_iter().enumerate() {
        if left == 0 && gi > 0 {
            break;
        }
        if raw {
            // Rows are in query order, so "after the marker" holds for a
            // suffix: the page is one contiguous range.
            let after = |i: usize| -> bool {
                let (Some(m), Some(row), Some(key)) =
                    (&query.marker, group.rows.get(i), keys.get(i))
                else {
                    return true;
                };
                let here = (row.timestamp, key);
                let marker = (m.timestamp, m.series.as_str());
                match query.order {
                    Order::Asc => here > marker,
                    Order::Desc => here < marker,
                }
            };
            let (mut lo, mut hi) = (0, group.rows.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if after(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            let len = group.rows.len();
            let begin = lo.saturating_add(skip).min(len);
            skip -= begin - lo;
            let end = begin.saturating_add(left).min(len);
            left -= end - begin;
            if end < len {
                out.truncated = true;
                out.next_marker = end
                    .checked_sub(1)
                    .filter(|last| *last >= begin)
                    .and_then(|last| Some((group.rows.get(last)?.timestamp, keys.get(last)?)))
                    .map(|(timestamp, key)| RowKey {
                        timestamp,
                        series: key.to_string(),
                    });
            }
            group.rows.truncate(end);
            group.rows.drain(..begin);
        } else {
            let drop = skip.min(group.rows.len());
            group.rows.drain(..drop);
            skip -= drop;
            group.rows.truncate(left);
            left -= group.rows.len();
        }
        out.groups.push(group);
    }
    Ok(())
}
