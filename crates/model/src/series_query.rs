//! The full read model: series selection, time ranges, value predicates, a
//! per-group pipeline of aggregators with sampling buckets, fill, order and
//! paging. Baidu's `/v1` JSON query translates into it whole; OpenTSDB's
//! `/api/query` and SQL reuse its parts.

use crate::{FieldValue, TagMatch, Timestamp};

/// One optional value per queried field; inline for one field, so a raw
/// single-field row costs no allocation.
pub type RowValues = smallvec::SmallVec<[Option<FieldValue>; 1]>;

/// One query over one metric.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeriesQuery {
    pub metric: String,
    /// The fields read, in output column order (at least one).
    pub fields: Vec<String>,
    /// A stored row is selected when any branch selects it (`or`); a query
    /// without `or` has exactly one branch.
    pub branches: Vec<Branch>,
    /// Tag keys whose values split the series into groups; empty: one group.
    pub group_by: Vec<String>,
    /// Whether grouping was asked for (an empty result then has no group).
    pub grouped: bool,
    /// Applied in order, each to the previous one's output.
    pub aggregators: Vec<Aggregation>,
    /// One entry per field (same order as `fields`), `None`: no fill.
    pub fills: Vec<Option<Fill>>,
    /// Tag keys appended to every row as extra columns.
    pub tag_columns: Vec<String>,
    pub order: Order,
    /// Rows per result, across groups.
    pub limit: usize,
    /// Rows skipped after the marker.
    pub offset: usize,
    /// Resume strictly after this row (raw queries only).
    pub marker: Option<RowKey>,
    /// The request's clock: fill never runs past it.
    pub now: Timestamp,
}

impl SeriesQuery {
    /// The union of the branches' time ranges.
    pub fn range(&self) -> (Timestamp, Timestamp) {
        let start = self.branches.iter().map(|b| b.start).min().unwrap_or(0);
        let end = self.branches.iter().map(|b| b.end).max().unwrap_or(0);
        (start, end)
    }

    /// Raw queries (no grouping, no aggregators) page with markers.
    pub fn is_raw(&self) -> bool {
        !self.grouped && self.aggregators.is_empty()
    }
}

/// One alternative of a filter: inclusive time range, tag predicates (all
/// must hold) and value predicates (all must hold).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Branch {
    pub start: Timestamp,
    pub end: Timestamp,
    pub tags: Vec<TagMatch>,
    pub values: Vec<ValuePredicate>,
}

/// `field <op> operand`; `field: None` applies to every non-null field of
/// the row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValuePredicate {
    pub field: Option<String>,
    pub op: CmpOp,
    pub operand: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl CmpOp {
    /// `a <op> b` for numbers; NaN never satisfies anything.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => !a.is_nan() && !b.is_nan() && a != b,
            Self::Gt => a > b,
            Self::Lt => a < b,
            Self::Ge => a >= b,
            Self::Le => a <= b,
        }
    }
}

/// The right-hand side of a value predicate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Operand {
    Long(i64),
    Double(f64),
    Text(String),
    /// The series' value of this tag, read as the field's kind.
    Tag(String),
}

/// One pipeline step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Aggregation {
    /// Values per bucket reduced to one (two for least squares).
    Range {
        func: RangeFn,
        /// `None`: one bucket over the whole query range.
        sampling: Option<Sampling>,
    },
    /// Difference to the previous value.
    Diff,
    Div(f64),
    Scale(f64),
    /// Change per `unit_ms` between consecutive values.
    Rate {
        unit_ms: i64,
    },
    /// Drops a value equal to the one right before it.
    AdjacentUnique,
}

impl Aggregation {
    /// Whether the step needs numbers (everything but count, first, last
    /// and adjacent-unique).
    pub fn needs_numbers(&self) -> bool {
        match self {
            Self::Range { func, .. } => {
                !matches!(func, RangeFn::Count | RangeFn::First | RangeFn::Last)
            }
            Self::AdjacentUnique => false,
            Self::Diff | Self::Div(_) | Self::Scale(_) | Self::Rate { .. } => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RangeFn {
    Avg,
    Dev,
    Count,
    First,
    Last,
    LeastSquares,
    Max,
    Min,
    /// Quantile in (0, 1].
    Percentile(f64),
    Sum,
}

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sampling {
    /// Fixed width in ms, anchored at the query start.
    Fixed(i64),
    /// `count` calendar units in a fixed-offset time zone.
    Calendar {
        count: i64,
        unit: CalendarUnit,
        utc_offset_ms: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CalendarUnit {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

/// Interpolation of a series' missing grid points.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fill {
    pub kind: FillKind,
    /// Grid step in ms, epoch-aligned.
    pub interval_ms: i64,
    /// How far before the start and after the end to look for neighbours.
    pub max_write_interval_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FillKind {
    Linear,
    Previous,
    Fixed(FieldValue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Where a row sits in the raw order: its time, then its series key
/// (`k1=v1,k2=v2`, tags sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct RowKey {
    pub timestamp: Timestamp,
    pub series: String,
}

/// The answer to one [`SeriesQuery`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOutput {
    /// Stored values that passed every filter inside the range.
    pub raw_count: u64,
    /// Stored values read before value filters (billing count).
    pub consumed_count: u64,
    pub groups: Vec<GroupOutput>,
    /// Raw queries: whether rows remain after the last one returned.
    pub truncated: bool,
    /// Raw queries with `truncated`: the last row returned.
    pub next_marker: Option<RowKey>,
}

/// One group's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupOutput {
    /// `(key, value)` for each group-by key the group has a value for, in
    /// group-by order.
    pub tags: Vec<(String, String)>,
    pub rows: Vec<Row>,
}

/// `[timestamp, field values..., tag columns...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub timestamp: Timestamp,
    pub values: RowValues,
    pub tags: Vec<Option<String>>,
}
