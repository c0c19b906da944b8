//! `time_bucket(ts, '10 seconds')` (spec baidu-tsdb 10.4): the start of
//! the epoch-aligned bucket holding `ts`, in milliseconds, also for
//! negative times. A registered scalar function: the width is read once,
//! at planning, from its literal.

use super::invalid;
use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// Parses a width such as `'10 seconds'` into milliseconds.
pub type WidthParser = fn(&str) -> Result<i64, String>;

#[derive(Debug)]
pub(crate) struct TimeBucket {
    signature: Signature,
    width: WidthParser,
}

// A server has one width parser: the function is its signature.
impl PartialEq for TimeBucket {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl Eq for TimeBucket {}

impl std::hash::Hash for TimeBucket {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl TimeBucket {
    pub(crate) fn new(width: WidthParser) -> Self {
        // Any time expression (cast to milliseconds); the width is checked
        // when the statement is planned.
        let signature = Signature::any(2, Volatility::Immutable);
        Self { signature, width }
    }

    /// The width in milliseconds from the literal second argument.
    pub(crate) fn width_ms(&self, arg: Option<&ScalarValue>) -> Result<i64> {
        let text = match arg {
            Some(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => s,
            Some(other) => {
                return Err(invalid(format!(
                    "time_bucket width must be a string such as '10 seconds', not {other}"
                )));
            }
            None => {
                return Err(invalid(
                    "time_bucket width must be a string literal such as '10 seconds'",
                ));
            }
        };
        match (self.width)(text) {
            Ok(w) if w > 0 => Ok(w),
            Ok(_) => Err(invalid("time_bucket width must be positive")),
            Err(e) => Err(invalid(e)),
        }
    }
}

/// The bucket start of `t`; `None` past the ends of i64.
fn floor(t: i64, width: i64) -> Option<i64> {
    t.div_euclid(width).checked_mul(width)
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    // Checks the width while the statement is planned, so a bad one is
    // refused before any data is read.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.width_ms(args.scalar_arguments.get(1).copied().flatten())?;
        Ok(Arc::new(Field::new(self.name(), DataType::Int64, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [ts, width] = args.args.as_slice() else {
            return exec_err!("time_bucket takes a time and a width");
        };
        let ColumnarValue::Scalar(width) = width else {
            return Err(invalid(
                "time_bucket width must be a string literal such as '10 seconds'",
            ));
        };
        let width = self.width_ms(Some(width))?;
        let times = cast(&ts.to_array(args.number_rows)?, &DataType::Int64)?;
        let Some(times) = times.as_any().downcast_ref::<Int64Array>() else {
            return exec_err!("time_bucket of {}", times.data_type());
        };
        let buckets: Int64Array = times
            .iter()
            .map(|t| t.and_then(|t| floor(t, width)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(buckets)))
    }
}

#[cfg(test)]
mod tests {
    use super::floor;

    #[test]
    fn buckets_are_epoch_aligned_on_both_sides_of_zero() {
        assert_eq!(floor(25_000, 10_000), Some(20_000));
        assert_eq!(floor(20_000, 10_000), Some(20_000));
        assert_eq!(floor(-1, 10_000), Some(-10_000));
        assert_eq!(floor(-10_000, 10_000), Some(-10_000));
        assert_eq!(floor(i64::MIN + 1, 10), None);
        assert_eq!(floor(i64::MAX, 10), Some(i64::MAX - 7));
    }
}
