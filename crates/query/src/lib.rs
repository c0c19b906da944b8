//! Runs a `sundial_model::Query` against the storage engine: selects the
//! series, reads the range, groups and aggregates.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod aggregate;
pub mod series_query;

use std::collections::BTreeMap;
use sundial_model::{Aggregator, FieldValue, Kind, Query, SeriesKey, SeriesResult, Timestamp};
use sundial_storage::{Db, SeriesId, Snapshot};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A tag predicate cannot be evaluated (a bad regular expression).
    #[error("{0}")]
    InvalidPredicate(String),
    /// Reading stored data failed (I/O or a corrupt block); details logged.
    #[error("storage: {0}")]
    Storage(String),
    /// The metric was never written.
    #[error("unknown metric {metric}")]
    UnknownMetric { metric: String },
    /// A number-only pipeline step met a text or bytes value.
    #[error("aggregator {step} needs numbers, field {field} holds {found} values")]
    NumberRequired {
        step: String,
        field: String,
        found: &'static str,
    },
    /// The query ran past its time limit.
    #[error("query timed out after {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    /// The query would read or make more points than allowed.
    #[error("query touches more than {limit} data points; narrow the time range or the series")]
    TooManyPoints { limit: usize },
    /// The query would make more groups than allowed.
    #[error("query makes more than {limit} groups")]
    TooManyGroups { limit: usize },
    /// A computing aggregator over text values.
    #[error("aggregator {aggregator} cannot be applied to {kind:?} values of metric {metric}")]
    NotNumeric {
        aggregator: &'static str,
        kind: Kind,
        metric: String,
    },
}

/// Runs one query.
pub fn execute(db: &Db, query: &Query) -> Result<Vec<SeriesResult>> {
    db.read(|view| run(&view, query))
}

fn run(view: &Snapshot<'_>, query: &Query) -> Result<Vec<SeriesResult>> {
    if !view.has_metric(&query.metric) {
        return Err(Error::UnknownMetric {
            metric: query.metric.clone(),
        });
    }
    let kind = view.kind(&query.metric, &query.field);
    if query.aggregator != Aggregator::None
        && let Some(k @ (Kind::String | Kind::Bytes)) = kind
    {
        return Err(Error::NotNumeric {
            aggregator: aggregator_name(query.aggregator),
            kind: k,
            metric: query.metric.clone(),
        });
    }
    let mut selected: Vec<(SeriesKey, Vec<(Timestamp, FieldValue)>)> = Vec::new();
    let ids = view
        .select(&query.metric, &query.tags)
        .map_err(|e| Error::InvalidPredicate(e.to_string()))?;
    for id in ids {
        let Some(key) = view.key(id) else { continue };
        let points = read_points(view, id, query)?;
        if !points.is_empty() {
            selected.push((key, points));
        }
    }
    selected.sort_by(|a, b| a.0.tags.cmp(&b.0.tags));
    Ok(match query.aggregator {
        Aggregator::None => selected
            .into_iter()
            .map(|(key, points)| SeriesResult {
                metric: key.metric,
                tags: key.tags,
                aggregated_tags: Vec::new(),
                points,
            })
            .collect(),
        Aggregator::Sum => {
            let mut groups: BTreeMap<Vec<Option<String>>, Vec<(SeriesKey, Vec<_>)>> =
                BTreeMap::new();
            for (key, points) in selected {
                let group = query
                    .group_by
                    .iter()
                    .map(|k| key.tag(k).map(str::to_owned))
                    .collect();
                groups.entry(group).or_default().push((key, points));
            }
            groups
                .into_values()
                .map(|members| {
                    let (tags, aggregated_tags) = common_tags(members.iter().map(|(k, _)| k));
                    let series: Vec<&[(Timestamp, FieldValue)]> =
                        members.iter().map(|(_, p)| p.as_slice()).collect();
                    SeriesResult {
                        metric: query.metric.clone(),
                        tags,
                        aggregated_tags,
                        points: aggregate::sum(&series),
                    }
                })
                .collect()
        }
    })
}

fn read_points(
    view: &Snapshot<'_>,
    id: SeriesId,
    query: &Query,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    view.points(id, &query.field, query.start, query.end)
        .map_err(|e| Error::Storage(e.to_string()))
}

/// Tags whose value is the same in every series that has them, and the keys
/// whose values conflict (OpenTSDB 2.2+ rule).
fn common_tags<'a>(
    keys: impl Iterator<Item = &'a SeriesKey>,
) -> (Vec<(String, String)>, Vec<String>) {
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
            Some(v) => tags.push((k.to_owned(), v.to_owned())),
            None => aggregated.push(k.to_owned()),
        }
    }
    (tags, aggregated)
}

/// The OpenTSDB name of an aggregator.
pub fn aggregator_name(a: Aggregator) -> &'static str {
    match a {
        Aggregator::None => "none",
        Aggregator::Sum => "sum",
    }
}
