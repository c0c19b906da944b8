//! The streaming path for the common dashboard query: one field, no value
//! filters, no fill, and a first step that is Count, Sum, Min, Max or Avg.
//! Each series' points fold straight into per-bucket accumulators of its
//! group, so nothing is materialised per row and no cross-series merge
//! sort is needed (those reductions do not depend on the merge order).
//! Block chunks wholly inside one bucket answer Count from their
//! statistics without being decoded.

use super::buckets::bucket_start;
use super::{Budget, SERIES_PER_READ, common_value_of, steps};
use crate::{Error, Result};
use std::collections::BTreeMap;
use sundial_model::series_query::{
    Aggregation, GroupOutput, QueryOutput, RangeFn, Row, SeriesQuery,
};
use sundial_model::{FieldValue, SeriesKey, Timestamp};
use sundial_storage::{Db, SeriesId};

/// Whether [`run`] can answer the query.
pub(super) fn eligible(q: &SeriesQuery) -> bool {
    let simple_first = matches!(
        q.aggregators.first(),
        Some(Aggregation::Range {
            func: RangeFn::Count | RangeFn::Sum | RangeFn::Min | RangeFn::Max | RangeFn::Avg,
            ..
        })
    );
    simple_first
        && q.fields.len() == 1
        && q.branches.len() == 1
        && q.branches.iter().all(|b| b.values.is_empty())
        && q.fills.iter().all(Option::is_none)
}

#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    /// Exact while every value is a Long and the sum fits.
    long_sum: Option<i64>,
    all_long: bool,
    sum: f64,
    min: f64,
    max: f64,
    long_min: i64,
    long_max: i64,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            count: 0,
            long_sum: Some(0),
            all_long: true,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            long_min: i64::MAX,
            long_max: i64::MIN,
        }
    }
}

impl Acc {
    fn add(&mut self, v: &FieldValue) {
        self.count += 1;
        // Only Count reaches here with text (number-only steps are refused
        // on text fields before the scan).
        let Some(f) = v.as_f64() else { return };
        self.sum += f;
        self.min = self.min.min(f);
        self.max = self.max.max(f);
        match v {
            FieldValue::Long(i) => {
                self.long_sum = self.long_sum.and_then(|s| s.checked_add(*i));
                self.long_min = self.long_min.min(*i);
                self.long_max = self.long_max.max(*i);
            }
            _ => {
                self.all_long = false;
                self.long_sum = None;
            }
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.all_long &= o.all_long;
        self.long_sum = match (self.long_sum, o.long_sum) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => None,
        };
        self.long_min = self.long_min.min(o.long_min);
        self.long_max = self.long_max.max(o.long_max);
    }

    fn value(&self, func: RangeFn) -> FieldValue {
        match func {
            RangeFn::Count => FieldValue::Long(self.count as i64),
            RangeFn::Sum => match (self.all_long, self.long_sum) {
                (true, Some(s)) => FieldValue::Long(s),
                _ => FieldValue::Double(self.sum),
            },
            RangeFn::Avg => FieldValue::Double(self.sum / self.count as f64),
            RangeFn::Max if self.all_long => FieldValue::Long(self.long_max),
            RangeFn::Min if self.all_long => FieldValue::Long(self.long_min),
            RangeFn::Max => FieldValue::Double(self.max),
            _ => FieldValue::Double(self.min),
        }
    }
}

struct GroupAcc {
    tags: Vec<(String, String)>,
    keys: Vec<SeriesKey>,
    buckets: BTreeMap<Timestamp, Acc>,
}

/// Runs an [`eligible`] query.
pub(super) fn run(
    db: &Db,
    q: &SeriesQuery,
    ids: &[SeriesId],
    budget: &mut Budget,
    max_groups: usize,
) -> Result<(QueryOutput, Vec<GroupOutput>)> {
    let (start, end) = q.range();
    let Some(Aggregation::Range { func, sampling }) = q.aggregators.first().cloned() else {
        return Err(Error::Storage("fast path on an ineligible query".into()));
    };
    let field = q.fields.first().cloned().unwrap_or_default();
    let bucket = |t: Timestamp| sampling.map_or(start, |s| bucket_start(s, start, t));
    let mut group_keys: Vec<&str> = Vec::new();
    for k in &q.group_by {
        if !group_keys.contains(&k.as_str()) {
            group_keys.push(k);
        }
    }
    let mut groups: BTreeMap<Vec<Option<String>>, GroupAcc> = BTreeMap::new();
    let mut out = QueryOutput::default();
    for batch in ids.chunks(SERIES_PER_READ) {
        budget.check_time()?;
        db.read(|view| -> Result<()> {
            for id in batch {
                let Some(key) = view.key(*id) else { continue };
                let mut local: BTreeMap<Timestamp, Acc> = BTreeMap::new();
                let mut points_read = 0usize;
                let whole_count = func == RangeFn::Count;
                let parts = if whole_count {
                    view.column_parts(*id, &field, start, end)
                } else {
                    view.points(*id, &field, start, end).map(|points| {
                        sundial_storage::ColumnParts {
                            summaries: Vec::new(),
                            points,
                        }
                    })
                }
                .map_err(|e| Error::Storage(e.to_string()))?;
                let mut points = parts.points;
                for s in &parts.summaries {
                    let b = bucket(s.min_ts);
                    if b == bucket(s.max_ts) {
                        let acc = local.entry(b).or_default();
                        acc.count += s.count;
                        points_read += s.count as usize;
                    } else {
                        // Spans buckets: decode it after all.
                        let pts = view
                            .points(*id, &field, s.min_ts, s.max_ts)
                            .map_err(|e| Error::Storage(e.to_string()))?;
                        points.extend(pts);
                    }
                }
                points.sort_by_key(|p| p.0);
                points_read += points.len();
                let mut current: Option<(Timestamp, Acc)> = None;
                for (t, v) in &points {
                    let b = bucket(*t);
                    match &mut current {
                        Some((cb, acc)) if *cb == b => acc.add(v),
                        _ => {
                            if let Some((cb, acc)) = current.take() {
                                local.entry(cb).or_default().merge(&acc);
                            }
                            let mut acc = Acc::default();
                            acc.add(v);
                            current = Some((b, acc));
                        }
                    }
                }
                if let Some((cb, acc)) = current {
                    local.entry(cb).or_default().merge(&acc);
                }
                budget.take(points.len())?;
                out.raw_count += points_read as u64;
                out.consumed_count += points_read as u64;
                if local.is_empty() {
                    continue;
                }
                let gk: Vec<Option<String>> = group_keys
                    .iter()
                    .map(|k| key.tag(k).map(str::to_owned))
                    .collect();
                if !groups.contains_key(&gk) && groups.len() >= max_groups {
                    return Err(Error::TooManyGroups { limit: max_groups });
                }
                let tags = group_keys
                    .iter()
                    .zip(&gk)
                    .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone())))
                    .collect();
                let g = groups.entry(gk).or_insert_with(|| GroupAcc {
                    tags,
                    keys: Vec::new(),
                    buckets: BTreeMap::new(),
                });
                g.keys.push(key);
                for (b, acc) in local {
                    g.buckets.entry(b).or_default().merge(&acc);
                }
            }
            Ok(())
        })?;
    }
    let mut rendered = Vec::with_capacity(groups.len());
    for g in groups.into_values() {
        budget.check_time()?;
        let mut stream: Vec<(Timestamp, FieldValue)> = g
            .buckets
            .iter()
            .map(|(b, acc)| ((*b).max(start), acc.value(func)))
            .collect();
        for step in q.aggregators.iter().skip(1) {
            stream = steps::apply(step, stream, start, &field)?;
        }
        let tags: Vec<Option<String>> = q
            .tag_columns
            .iter()
            .map(|k| common_value_of(g.keys.iter(), k))
            .collect();
        let rows = stream
            .into_iter()
            .map(|(t, v)| Row {
                timestamp: t,
                values: vec![Some(v)],
                tags: tags.clone(),
            })
            .collect();
        rendered.push(GroupOutput { tags: g.tags, rows });
    }
    Ok((out, rendered))
}
