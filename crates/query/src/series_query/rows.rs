//! Raw rows: merging a group's series in `(timestamp, series key)` order,
//! and paging (marker, offset, limit) over the rows of every group.

use super::SeriesData;
use crate::Result;
use std::sync::Arc;
use sundial_model::Timestamp;
use sundial_model::series_query::{
    GroupOutput, Order, QueryOutput, Row, RowKey, RowValues, SeriesQuery,
};

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
pub(super) fn merge_raw(query: &SeriesQuery, members: Vec<SeriesData>) -> (Vec<Row>, RowKeys) {
    let tags_of = |s: &SeriesData| -> Vec<Option<String>> {
        query
            .tag_columns
            .iter()
            .map(|k| s.key.tag(k).map(str::to_owned))
            .collect()
    };
    let total: usize = members.iter().map(|s| s.rows.len()).sum();
    let mut rows = Vec::with_capacity(total);
    let mut keys = RowKeys {
        members: members.iter().map(|s| s.key_text.clone()).collect(),
        of_row: Vec::new(),
    };
    if members.len() == 1 {
        // One series: its rows are in order already.
        for s in members {
            let tags = tags_of(&s);
            rows.extend(s.rows.into_iter().map(|(t, values)| Row {
                timestamp: t,
                values,
                tags: tags.clone(),
            }));
        }
        return (rows, keys);
    }
    keys.of_row.reserve(total);
    let mut all: Vec<(Timestamp, usize, usize)> = Vec::with_capacity(total);
    for (si, s) in members.iter().enumerate() {
        for (ri, (t, _)) in s.rows.iter().enumerate() {
            all.push((*t, si, ri));
        }
    }
    let key_of = |si: usize| members.get(si).map(|s| &*s.key_text).unwrap_or_default();
    all.sort_unstable_by(|a, b| (a.0, key_of(a.1)).cmp(&(b.0, key_of(b.1))));
    let tags: Vec<Vec<Option<String>>> = members.iter().map(tags_of).collect();
    let mut values: Vec<Vec<Option<RowValues>>> = members
        .into_iter()
        .map(|s| s.rows.into_iter().map(|(_, v)| Some(v)).collect())
        .collect();
    for (t, si, ri) in all {
        let Some(v) = values
            .get_mut(si)
            .and_then(|r| r.get_mut(ri))
            .and_then(Option::take)
        else {
            continue;
        };
        rows.push(Row {
            timestamp: t,
            values: v,
            tags: tags.get(si).cloned().unwrap_or_default(),
        });
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
