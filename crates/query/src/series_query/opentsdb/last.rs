//! `/api/query/last` (spec opentsdb.md 10) on the pipeline: the per-series
//! stage keeps only each series' newest point.

use super::super::{parallel, select};
use super::wanted;
use crate::{Budget, Result};
use sundial_model::{FieldValue, Query, SeriesKey, Timestamp};
use sundial_storage::{Db, SeriesId, Snapshot};

/// A series and its newest point.
pub type Latest = (SeriesKey, Timestamp, FieldValue);

/// The newest point in `query`'s range of each series it selects, in tag
/// order; each series counts one point against the budget. An unknown
/// metric selects nothing.
pub fn last(db: &Db, query: &Query, budget: &Budget) -> Result<Vec<Latest>> {
    budget.check_time()?;
    let ids = db.read(|view| -> Result<Vec<SeriesId>> {
        if !view.has_metric(&query.metric) {
            return Ok(Vec::new());
        }
        select(&view, &query.metric, &query.tags)
    })?;
    let parts =
        parallel::read_in_parallel(db, &ids, budget, None, |view, batch, found: &mut Vec<_>| {
            for id in batch {
                let Some(key) = view.key(*id) else { continue };
                if !wanted(query, &key) {
                    continue;
                }
                budget.take(1)?;
                if let Some((t, v)) = newest(view, *id, query)? {
                    found.push((key, t, v));
                }
            }
            Ok(())
        });
    let mut found = Vec::new();
    for part in parts {
        found.extend(part?);
    }
    found.sort_by(|a, b| a.0.tags.cmp(&b.0.tags));
    Ok(found)
}

/// The newest point of a series in the range, reading widening windows
/// back from its end: the newest point is usually recent, and a whole
/// history is read only when not.
fn newest(
    view: &Snapshot<'_>,
    id: SeriesId,
    query: &Query,
) -> Result<Option<(Timestamp, FieldValue)>> {
    for back in [3_600_000i64, 86_400_000, 30 * 86_400_000, i64::MAX] {
        let from = query.end.saturating_sub(back).max(query.start);
        let mut points = view.points(id, &query.field, from, query.end)?;
        if let Some(p) = points.pop() {
            return Ok(Some(p));
        }
        if from == query.start {
            break;
        }
    }
    Ok(None)
}
