//! Functions of Baidu's SQL that DataFusion lacks, registered in every
//! statement's session: `time_bucket`, `IF`, `max_by` and `min_by`.

mod extreme_by;
mod if_then;
mod time_bucket;

pub(crate) use time_bucket::TimeBucket;
pub use time_bucket::WidthParser;

use crate::SqlError;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;
use extreme_by::{End, ExtremeBy};

/// `time_bucket`, reading widths with `bucket_width`.
pub(crate) fn register_time_bucket(ctx: &SessionContext, bucket_width: WidthParser) {
    ctx.register_udf(ScalarUDF::new_from_impl(time_bucket::TimeBucket::new(
        bucket_width,
    )));
}

/// The functions that are the same in every session.
pub(crate) fn register_fixed(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(if_then::IfThen::new()));
    ctx.register_udaf(AggregateUDF::new_from_impl(ExtremeBy::new(End::Max)));
    ctx.register_udaf(AggregateUDF::new_from_impl(ExtremeBy::new(End::Min)));
}

/// A client's mistake, shown as it is (not as an engine error).
fn invalid(message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::Invalid(message.into())))
}

/// Refuses a call with the client's mistake.
fn refuse<T>(message: impl Into<String>) -> datafusion::error::Result<T> {
    Err(invalid(message))
}

#[cfg(test)]
mod tests;
