//! Runs a `sundial_model::Query` against the storage engine: selects the
//! series, reads the range, groups and aggregates.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod aggregate;
mod series_ops;
pub mod series_query;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use sundial_model::{
    Aggregator, ErrorClass, FieldValue, Kind, Query, SeriesKey, SeriesResult, Timestamp,
};
use sundial_storage::{Db, NumSlice, SeriesId, Snapshot};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A tag predicate cannot be evaluated (a bad regular expression).
    #[error("{0}")]
    InvalidPredicate(String),
    /// Reading stored data failed (I/O or a corrupt block).
    #[error("storage: {0}")]
    Storage(#[source] Arc<sundial_storage::Error>),
    /// A broken invariant of the engine.
    #[error("internal: {0}")]
    Internal(&'static str),
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

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidPredicate(_)
            | Self::UnknownMetric { .. }
            | Self::NumberRequired { .. }
            | Self::NotNumeric { .. }
            | Self::TooManyPoints { .. }
            | Self::TooManyGroups { .. } => ErrorClass::InvalidInput,
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::Storage(e) => e.class(),
            Self::Internal(_) => ErrorClass::Internal,
        }
    }
}

impl From<sundial_storage::Error> for Error {
    fn from(e: sundial_storage::Error) -> Self {
        Self::Storage(Arc::new(e))
    }
}

/// Points a fill policy may make for one series.
const MAX_POINTS: usize = 10_000_000;

/// A request's deadline and the stored points it may still read, shared
/// by its sub-queries.
#[derive(Debug)]
pub struct QueryBudget {
    deadline: Instant,
    timeout: Duration,
    max_points: usize,
    read: AtomicUsize,
}

impl QueryBudget {
    pub fn new(timeout: Duration, max_points: usize) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            timeout,
            max_points,
            read: AtomicUsize::new(0),
        }
    }

    /// An error once the deadline has passed.
    pub fn check_time(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout {
                limit_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }

    /// Counts `n` points read; an error past the budget.
    pub fn take(&self, n: usize) -> Result<()> {
        let before = self.read.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.max_points {
            return Err(Error::TooManyPoints {
                limit: self.max_points,
            });
        }
        Ok(())
    }
}

/// Series read between two chances for writers to take the head.
const SERIES_PER_YIELD: usize = 64;

/// Runs one query within `budget`.
pub fn execute(db: &Db, query: &Query, budget: &QueryBudget) -> Result<Vec<SeriesResult>> {
    budget.check_time()?;
    db.read(|mut view| run(&mut view, query, budget))
}

fn run(view: &mut Snapshot<'_>, query: &Query, budget: &QueryBudget) -> Result<Vec<SeriesResult>> {
    if !view.has_metric(&query.metric) {
        return Err(Error::UnknownMetric {
            metric: query.metric.clone(),
        });
    }
    let kind = view.kind(&query.metric, &query.field);
    let computes =
        query.aggregator != Aggregator::None || query.downsample.is_some() || query.rate.is_some();
    if computes && let Some(k @ (Kind::String | Kind::Bytes)) = kind {
        return Err(Error::NotNumeric {
            aggregator: aggregator_name(query.aggregator),
            kind: k,
            metric: query.metric.clone(),
        });
    }
    let mut selected: Vec<(SeriesKey, Vec<(Timestamp, FieldValue)>)> = Vec::new();
    let mut raw_points = 0usize;
    let ids = view
        .select(&query.metric, &query.tags)
        .map_err(|e| Error::InvalidPredicate(e.to_string()))?;
    let explicit: Option<std::collections::BTreeSet<&str>> = query
        .explicit_tags
        .then(|| query.tags.iter().map(|m| m.key()).collect());
    for (n, id) in ids.into_iter().enumerate() {
        if n > 0 && n % SERIES_PER_YIELD == 0 {
            budget.check_time()?;
            view.yield_to_writers();
        }
        let Some(key) = view.key(id) else { continue };
        if let Some(keys) = &explicit
            && (key.tags.len() != keys.len()
                || !key.tags.iter().all(|(k, _)| keys.contains(k.as_str())))
        {
            continue;
        }
        if let Some(only) = &query.only_series
            && !only.contains(&key.tags)
        {
            continue;
        }
        let before = raw_points;
        let mut points = match (&query.downsample, query.pre_filter) {
            // Downsampling reads numbers straight from the column.
            (Some(ds), None) => match numbers(view, id, query)? {
                Some(nums) => {
                    raw_points += nums.len();
                    budget.take(nums.len())?;
                    series_ops::downsample_numbers(&nums, ds, query.start, query.end, MAX_POINTS)?
                }
                None => {
                    let raw = read_points(view, id, query, &mut raw_points)?;
                    budget.take(raw_points - before)?;
                    series_ops::downsample(&raw, ds, query.start, query.end, MAX_POINTS)?
                }
            },
            (Some(ds), Some(_)) => {
                let raw = read_points(view, id, query, &mut raw_points)?;
                budget.take(raw_points - before)?;
                series_ops::downsample(&raw, ds, query.start, query.end, MAX_POINTS)?
            }
            (None, _) => {
                let raw = read_points(view, id, query, &mut raw_points)?;
                budget.take(raw_points - before)?;
                raw
            }
        };
        if let Some(opts) = query.rate {
            points = series_ops::rate(&points, opts);
        }
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
                series: vec![key.tags.clone()],
                tags: key.tags,
                aggregated_tags: Vec::new(),
                points,
                raw_points,
            })
            .collect(),
        agg => {
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
                        points: aggregate::aggregate(agg, &series, query.rate.is_some()),
                        series: members.iter().map(|(k, _)| k.tags.clone()).collect(),
                        raw_points,
                    }
                })
                .collect()
        }
    })
}

/// Points of one series in the query range; `raw` counts what was read.
fn read_points(
    view: &Snapshot<'_>,
    id: SeriesId,
    query: &Query,
    raw: &mut usize,
) -> Result<Vec<(Timestamp, FieldValue)>> {
    let mut points = view
        .points(id, &query.field, query.start, query.end)
        .map_err(Error::from)?;
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
    let numeric = view
        .visit_numeric(
            id,
            &query.field,
            query.start,
            query.end,
            &mut |ts, values| {
                out.reserve(ts.len());
                match values {
                    NumSlice::Longs(v) => {
                        out.extend(ts.iter().zip(v).map(|(t, x)| (*t, *x as f64)))
                    }
                    NumSlice::Doubles(v) => out.extend(ts.iter().copied().zip(v.iter().copied())),
                    NumSlice::Mixed(v) => out.extend(ts.iter().zip(v).map(|(t, x)| {
                        let f = match x {
                            sundial_storage::Num::Long(i) => *i as f64,
                            sundial_storage::Num::Double(d) => *d,
                            sundial_storage::Num::Bool(b) => f64::from(u8::from(*b)),
                        };
                        (*t, f)
                    })),
                }
            },
        )
        .map_err(Error::from)?;
    Ok(numeric.then_some(out))
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
        Aggregator::ZimSum => "zimsum",
        Aggregator::Avg => "avg",
        Aggregator::Min => "min",
        Aggregator::Max => "max",
        Aggregator::MimMin => "mimmin",
        Aggregator::MimMax => "mimmax",
        Aggregator::Dev => "dev",
        Aggregator::Count => "count",
        Aggregator::First => "first",
        Aggregator::Last => "last",
        Aggregator::Median => "median",
        Aggregator::Mult => "mult",
        Aggregator::Diff => "diff",
        Aggregator::SquareSum => "squareSum",
        Aggregator::PfSum => "pfsum",
        Aggregator::Percentile {
            per_mille,
            estimator,
        } => PERCENTILES
            .iter()
            .find(|(_, p, e)| *p == per_mille && *e == estimator)
            .map_or("p50", |(n, _, _)| *n),
    }
}

/// Every aggregator by name (OpenTSDB's list, `/api/aggregators`).
pub fn aggregator_by_name(name: &str) -> Option<Aggregator> {
    let simple = [
        Aggregator::None,
        Aggregator::Sum,
        Aggregator::ZimSum,
        Aggregator::Avg,
        Aggregator::Min,
        Aggregator::Max,
        Aggregator::MimMin,
        Aggregator::MimMax,
        Aggregator::Dev,
        Aggregator::Count,
        Aggregator::First,
        Aggregator::Last,
        Aggregator::Median,
        Aggregator::Mult,
        Aggregator::Diff,
        Aggregator::SquareSum,
        Aggregator::PfSum,
    ];
    simple
        .into_iter()
        .find(|a| aggregator_name(*a) == name)
        .or_else(|| {
            PERCENTILES
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, per_mille, estimator)| Aggregator::Percentile {
                    per_mille: *per_mille,
                    estimator: *estimator,
                })
        })
}

/// All aggregator names, sorted.
pub fn aggregator_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = [
        "none",
        "sum",
        "zimsum",
        "avg",
        "min",
        "max",
        "mimmin",
        "mimmax",
        "dev",
        "count",
        "first",
        "last",
        "median",
        "mult",
        "diff",
        "squareSum",
        "pfsum",
    ]
    .into_iter()
    .chain(PERCENTILES.iter().map(|(n, _, _)| *n))
    .collect();
    names.sort_unstable();
    names
}

const PERCENTILES: [(&str, u16, sundial_model::Estimator); 18] = {
    use sundial_model::Estimator::{Legacy, R3, R7};
    [
        ("p50", 500, Legacy),
        ("p75", 750, Legacy),
        ("p90", 900, Legacy),
        ("p95", 950, Legacy),
        ("p99", 990, Legacy),
        ("p999", 999, Legacy),
        ("ep50r3", 500, R3),
        ("ep75r3", 750, R3),
        ("ep90r3", 900, R3),
        ("ep95r3", 950, R3),
        ("ep99r3", 990, R3),
        ("ep999r3", 999, R3),
        ("ep50r7", 500, R7),
        ("ep75r7", 750, R7),
        ("ep90r7", 900, R7),
        ("ep95r7", 950, R7),
        ("ep99r7", 990, R7),
        ("ep999r7", 999, R7),
    ]
};
