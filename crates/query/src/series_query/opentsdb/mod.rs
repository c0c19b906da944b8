//! OpenTSDB's stages on the pipeline (spec opentsdb.md 9.7–9.11). Per
//! series: Alibaba's value pre-filter, downsampling with a fill policy,
//! rate. Per group: the aggregator, interpolating series that have no
//! point at a timestamp. Reading, the budget and grouping are the
//! pipeline's, shared with Baidu's query.

mod bucket;
mod downsample;
mod interpolate;
mod last;
mod streaming;
#[cfg(test)]
pub(in crate::series_query) mod tests;

pub use last::{Latest, last};

use super::{group, parallel, select};
use crate::{Budget, Error, Result};
use std::collections::BTreeMap;
use sundial_model::{
    Aggregator, FieldValue, Kind, Query, SeriesKey, SeriesResult, Tags, Timestamp,
};
use sundial_storage::{Db, NumSlice, SeriesId, Snapshot};

/// Points a fill policy may make for one series.
const MAX_FILLED: usize = 10_000_000;

/// A series after its stages: its key and points.
pub type Staged = (SeriesKey, Vec<(Timestamp, FieldValue)>);

/// What the per-series half of a query gives: every series that kept a
/// point after its stages, and the stored points read. A series lives in
/// one database (one shard of a cluster), so halves run where the data
/// is and [`finish`] merges them.
#[derive(Debug, Default)]
pub struct StagedSeries {
    pub series: Vec<Staged>,
    pub raw_points: usize,
    /// Whether the metric exists here (a query of a metric no part knows
    /// is an error).
    pub metric_known: bool,
}

/// What one read thread keeps.
#[derive(Default)]
struct Part {
    series: Vec<Staged>,
    /// Stored points read.
    raw_points: usize,
}

/// Runs one OpenTSDB query within `budget`: one result per series, or per
/// group when it aggregates; results in tag order.
pub fn execute(db: &Db, query: &Query, budget: &Budget) -> Result<Vec<SeriesResult>> {
    let staged = stage_series(db, query, budget)?;
    finish(query, vec![staged], budget)
}

/// The per-series half of [`execute`] over one database: select, read,
/// pre-filter, downsample, rate.
pub fn stage_series(db: &Db, query: &Query, budget: &Budget) -> Result<StagedSeries> {
    budget.check_time()?;
    let selected = db.read(|view| -> Result<Option<Vec<SeriesId>>> {
        if !view.has_metric(&query.metric) {
            return Ok(None);
        }
        check(&view, query)?;
        select(&view, &query.metric, &query.tags).map(Some)
    })?;
    let Some(ids) = selected else {
        return Ok(StagedSeries::default());
    };
    // Downsampling from chunk statistics decodes only the chunks at the
    // edges: fetching every chunk ahead would cost more than it saves.
    let fields = [query.field.as_str()];
    let reach = match (&query.downsample, query.pre_filter) {
        (Some(ds), None) if streaming::mostly_statistics(ds) => None,
        _ => Some(parallel::Reach {
            fields: &fields,
            start: query.start,
            end: query.end,
        }),
    };
    let parts =
        parallel::read_in_parallel(db, &ids, budget, reach, |view, batch, part: &mut Part| {
            for id in batch {
                if let Some(staged) = series_stages(view, *id, query, budget, &mut part.raw_points)?
                {
                    part.series.push(staged);
                }
            }
            Ok(())
        });
    let mut staged = StagedSeries {
        metric_known: true,
        ..StagedSeries::default()
    };
    for part in parts {
        let part = part?;
        staged.raw_points += part.raw_points;
        staged.series.extend(part.series);
    }
    Ok(staged)
}

/// The group half of [`execute`]: the halves of every database holding
/// the metric's series, merged, grouped and aggregated.
pub fn finish(
    query: &Query,
    halves: Vec<StagedSeries>,
    budget: &Budget,
) -> Result<Vec<SeriesResult>> {
    budget.check_time()?;
    if !halves.iter().any(|h| h.metric_known) {
        return Err(Error::UnknownMetric {
            metric: query.metric.clone(),
        });
    }
    let raw_points = halves.iter().map(|h| h.raw_points).sum();
    let mut series: Vec<Staged> = halves.into_iter().flat_map(|h| h.series).collect();
    series.sort_by(|a, b| a.0.tags.cmp(&b.0.tags));
    if query.aggregator == Aggregator::None {
        return Ok(series
            .into_iter()
            .map(|(key, points)| SeriesResult {
                metric: key.metric.into_string(),
                series: vec![key.tags.clone()],
                tags: key.tags,
                aggregated_tags: Vec::new(),
                points,
                raw_points,
            })
            .collect());
    }
    let groups = group(&query.group_by, series, |s| &s.0, usize::MAX)?;
    Ok(groups
        .into_iter()
        .map(|(_, members)| group_stage(query, &members, raw_points))
        .collect())
}

/// Refuses computing over text.
fn check(view: &Snapshot<'_>, query: &Query) -> Result<()> {
    let computes =
        query.aggregator != Aggregator::None || query.downsample.is_some() || query.rate.is_some();
    if computes
        && let Some(k @ (Kind::String | Kind::Bytes)) = view.kind(&query.metric, &query.field)
    {
        return Err(Error::NotNumeric {
            aggregator: crate::aggregator_name(query.aggregator),
            kind: k,
            metric: query.metric.clone(),
        });
    }
    Ok(())
}

/// One series through the per-series stages; `None` when the query's tag
/// rules leave it out or nothing of it remains. `raw` counts what was read.
fn series_stages(
    view: &Snapshot<'_>,
    id: SeriesId,
    query: &Query,
    budget: &Budget,
    raw: &mut usize,
) -> Result<Option<Staged>> {
    // A series deleted since it matched is skipped.
    let Some(key) = view.key(id) else {
        return Ok(None);
    };
    if !wanted(query, &key) {
        return Ok(None);
    }
    let before = *raw;
    let mut points = match (&query.downsample, query.pre_filter) {
        (Some(ds), None) if streaming::streams(ds) => {
            let range = (query.start, query.end);
            match streaming::downsample_column(view, id, &query.field, ds, range, MAX_FILLED)? {
                Some(d) => {
                    // Statistics stand for points without reading them.
                    *raw += d.covered;
                    budget.take(d.read)?;
                    d.points
                }
                None => {
                    let read = read_points(view, id, query, raw)?;
                    budget.take(*raw - before)?;
                    downsample::downsample(&read, ds, query.start, query.end, MAX_FILLED)?
                }
            }
        }
        // Without a pre-filter, downsampling reads numbers straight from
        // the column.
        (Some(ds), None) => match numbers(view, id, query)? {
            Some(nums) => {
                *raw += nums.len();
                budget.take(nums.len())?;
                downsample::downsample_numbers(&nums, ds, query.start, query.end, MAX_FILLED)?
            }
            None => {
                let read = read_points(view, id, query, raw)?;
                budget.take(*raw - before)?;
                downsample::downsample(&read, ds, query.start, query.end, MAX_FILLED)?
            }
        },
        (Some(ds), Some(_)) => {
            let read = read_points(view, id, query, raw)?;
            budget.take(*raw - before)?;
            downsample::downsample(&read, ds, query.start, query.end, MAX_FILLED)?
        }
        (None, _) => {
            let read = read_points(view, id, query, raw)?;
            budget.take(*raw - before)?;
            read
        }
    };
    if let Some(opts) = query.rate {
        points = downsample::rate(&points, opts);
    }
    Ok((!points.is_empty()).then_some((key, points)))
}

/// Whether the query's exact-tags rule and `tsuids` list keep the series.
fn wanted(query: &Query, key: &SeriesKey) -> bool {
    if query.explicit_tags {
        let keys: std::collections::BTreeSet<&str> = query.tags.iter().map(|m| m.key()).collect();
        if key.tags.len() != keys.len() || !key.tags.iter().all(|(k, _)| keys.contains(k.as_str()))
        {
            return false;
        }
    }
    query
        .only_series
        .as_ref()
        .is_none_or(|only| only.contains(&key.tags))
}

/// The group's series through the aggregator, with the tags they share.
fn group_stage(query: &Query, members: &[Staged], raw_points: usize) -> SeriesResult {
    let (tags, aggregated_tags) = common_tags(members.iter().map(|(k, _)| k));
    let series: Vec<&[(Timestamp, FieldValue)]> =
        members.iter().map(|(_, p)| p.as_slice()).collect();
    SeriesResult {
        metric: query.metric.clone(),
        tags,
        aggregated_tags,
        points: interpolate::aggregate(query.aggregator, &series, query.rate.is_some()),
        series: members.iter().map(|(k, _)| k.tags.clone()).collect(),
        raw_points,
    }
}

/// Points of one series in the query range, pre-filtered; `raw` counts
/// what was read.
fn read_points(
    view: &Snapshot<'_>,
    id: SeriesId,
    query: &Query,
    raw: &mut usize,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    let mut points = view.points(id, &query.field, query.start, query.end)?;
    *raw += points.len();
    if let Some((op, threshold)) = query.pre_filter {
        points.retain(|(_, v)| v.as_f64().is_some_and(|x| op.holds(x, threshold)));
    }
    Ok(points)
}

/// A numeric column as `(ts, f64)` pairs; `None` if it holds text.
fn numbers(
    view: &Snapshot<'_>,
    id: SeriesId,
    query: &Query,
) -> Result<Option<Vec<(Timestamp, f64)>>> {
    let mut out = Vec::new();
    let numeric = view.visit_numeric(
        id,
        &query.field,
        query.start,
        query.end,
        &mut |ts, values| {
            out.reserve(ts.len());
            match values {
                NumSlice::Longs(v) => out.extend(ts.iter().zip(v).map(|(t, x)| (*t, *x as f64))),
                NumSlice::Doubles(v) => out.extend(ts.iter().copied().zip(v.iter().copied())),
                NumSlice::Mixed(v) => out.extend(ts.iter().zip(v).map(|(t, x)| (*t, x.as_f64()))),
            }
        },
    )?;
    Ok(numeric.then_some(out))
}

/// Tags whose value is the same in every series that has them, and the
/// keys whose values conflict (OpenTSDB 2.2+ rule).
fn common_tags<'a>(keys: impl Iterator<Item = &'a SeriesKey>) -> (Tags, Vec<String>) {
    let mut seen: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for key in keys {
        for (k, v) in &key.tags {
            seen.entry(k)
                .and_modify(|cur| {
                    if *cur != Some(v.as_str()) {
                        *cur = None;
                    }
                })
                .or_insert(Some(v));
        }
    }
    let mut tags = Vec::new();
    let mut aggregated = Vec::new();
    for (k, v) in seen {
        match v {
            Some(v) => tags.push((k.into(), v.into())),
            None => aggregated.push(k.to_owned()),
        }
    }
    (tags, aggregated)
}
