//! The read model every query API translates into.
//!
//! This first cut covers series selection by exact tag values, a time range,
//! and the `none` / `sum` aggregators; downsampling, rate, fill and the full
//! filter set extend it in place.

use crate::{FieldValue, Tags, Timestamp};

/// A tag predicate on the series' tag set. Every predicate but `NotIn`
/// with an absent key requires the series to have the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TagMatch {
    /// The series has tag `key` with exactly `value`.
    Eq { key: String, value: String },
    /// The series has tag `key` with one of `values`.
    In { key: String, values: Vec<String> },
    /// The series has tag `key` with a value not among `values`.
    NotIn { key: String, values: Vec<String> },
    /// The series has tag `key`, any value.
    Exists { key: String },
    /// Glob on the value: `*` matches any run of characters.
    Wildcard {
        key: String,
        pattern: String,
        case_insensitive: bool,
    },
    /// SQL LIKE on the value: `%` any run, `_` one character, `escape`
    /// makes the next character literal.
    Like {
        key: String,
        pattern: String,
        escape: Option<char>,
    },
    /// Regular expression (`regex` crate syntax), unanchored like Java's
    /// `find`, as OpenTSDB uses.
    Regex { key: String, pattern: String },
    /// The series has tag `key` and the expression finds no match in its
    /// value (OpenTSDB's not_iliteral_or).
    NotRegex { key: String, pattern: String },
    /// The series does not have tag `key` (OpenTSDB's not_key).
    Absent { key: String },
}

impl TagMatch {
    pub fn key(&self) -> &str {
        match self {
            Self::Eq { key, .. }
            | Self::In { key, .. }
            | Self::NotIn { key, .. }
            | Self::Exists { key }
            | Self::Wildcard { key, .. }
            | Self::Like { key, .. }
            | Self::Regex { key, .. }
            | Self::NotRegex { key, .. }
            | Self::Absent { key } => key,
        }
    }
}

/// How the series of one group are combined (OpenTSDB's aggregators,
/// spec opentsdb.md 9.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Aggregator {
    /// Every series on its own, raw values.
    None,
    Sum,
    ZimSum,
    Avg,
    Min,
    Max,
    MimMin,
    MimMax,
    Dev,
    Count,
    First,
    Last,
    /// Percentile `per_mille / 1000` with an estimator.
    Percentile {
        per_mille: u16,
        estimator: Estimator,
    },
    Median,
    Mult,
    Diff,
    SquareSum,
    PfSum,
}

/// Percentile estimators of OpenTSDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Estimator {
    /// `pos = p (n + 1)` (`p50` ...).
    Legacy,
    /// `pos = round_half_even(n p)` (`ep50r3` ...).
    R3,
    /// `pos = 1 + (n - 1) p` (`ep50r7` ...).
    R7,
}

/// One read: a metric's field over an inclusive time range.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Query {
    pub metric: String,
    pub field: String,
    pub tags: Vec<TagMatch>,
    /// Tag keys whose values split the matched series into groups.
    pub group_by: Vec<String>,
    pub start: Timestamp,
    /// Inclusive.
    pub end: Timestamp,
    pub aggregator: Aggregator,
    /// Per series, before rate and aggregation.
    pub downsample: Option<Downsample>,
    /// Per series, after downsampling.
    pub rate: Option<RateOptions>,
    /// Only series whose tag keys are exactly the predicates' keys.
    pub explicit_tags: bool,
    /// Raw points failing this are dropped before any computation
    /// (Alibaba's `preDpValue`).
    pub pre_filter: Option<(crate::series_query::CmpOp, f64)>,
    /// Only these series (by complete tag set), as OpenTSDB's `tsuids`
    /// sub-queries name them.
    pub only_series: Option<Vec<Tags>>,
}

/// OpenTSDB downsampling: buckets reduced to Doubles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Downsample {
    pub buckets: Buckets,
    pub function: Aggregator,
    pub fill: FillPolicy,
}

/// How downsampling cuts time into buckets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Buckets {
    /// One bucket over the whole range, stamped at its start.
    All,
    /// Epoch-aligned buckets of this many milliseconds.
    Fixed(i64),
    /// Calendar buckets: ascending boundaries, the first at or before the
    /// query start, the last after its end. Computed by the caller, who
    /// knows the time zone.
    Edges(std::sync::Arc<[Timestamp]>),
}

/// What an empty downsampling bucket becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum FillPolicy {
    /// Absent (aggregation interpolates over it).
    #[default]
    None,
    /// NaN, printed `"NaN"`.
    NaN,
    /// NaN, printed `null`.
    Null,
    Zero,
}

/// OpenTSDB `rateOptions` (and Alibaba's `deltaOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateOptions {
    /// Alibaba's `delta`: the difference itself, not divided by time.
    pub delta: bool,
    pub counter: bool,
    pub counter_max: i64,
    pub reset_value: i64,
    pub drop_resets: bool,
}

impl Default for RateOptions {
    fn default() -> Self {
        Self {
            delta: false,
            counter: false,
            counter_max: i64::MAX,
            reset_value: 0,
            drop_resets: false,
        }
    }
}

/// One output series: a group (or a single series for `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    pub metric: String,
    /// Tags shared by every series of the group with one value.
    pub tags: Tags,
    /// Keys dropped from `tags` because the group's series disagree, sorted.
    pub aggregated_tags: Vec<String>,
    /// Ascending by time.
    pub points: Vec<(Timestamp, FieldValue)>,
    /// Tag sets of the series behind the result, ascending.
    pub series: Vec<Tags>,
    /// Stored points the whole query read (the same in each of its
    /// results), for OpenTSDB's `showSummary`.
    pub raw_points: usize,
}
