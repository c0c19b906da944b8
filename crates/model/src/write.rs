//! What a write hands the engine and what it gets back.

use crate::{Kind, SeriesKey, Timestamp, ValueInput};

/// One data point to write.
#[derive(Debug, Clone)]
pub struct WritePoint {
    /// Shared: a series written many times is parsed and checked once
    /// (the adapters cache keys) and cloned by reference.
    pub series: std::sync::Arc<SeriesKey>,
    pub field: crate::Name,
    pub timestamp: Timestamp,
    pub value: ValueInput,
}

/// Why the engine refused one point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    /// The field holds values of another kind.
    #[error("field stores {stored:?} values, not {written:?}")]
    KindMismatch { stored: Kind, written: Kind },
    /// Text that must be a number here is not one.
    #[error("value is not a number")]
    NotANumber,
    /// A text value over the configured limit.
    #[error("string value too long: {len} bytes (limit {max})")]
    StringTooLong { len: usize, max: usize },
    /// Refused although its value is fine: the API vetoed it for a rule
    /// it checks after the value kind, or its all-or-nothing group failed.
    #[error("rejected by the API adapter")]
    Rejected,
}

/// Per-point results of a write, in request order.
#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    pub results: Vec<Result<(), PointError>>,
}

impl WriteOutcome {
    pub fn accepted(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}
