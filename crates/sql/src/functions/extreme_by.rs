//! `max_by(x, y)` and `min_by(x, y)` (spec baidu-tsdb 10.4): the `x` of
//! the row with the largest (smallest) `y`. Rows without a `y` take no
//! part, since a metric's row may lack one of its fields; of rows with
//! equal `y` the first one read wins.

use datafusion::arrow::array::make_comparator;
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use std::cmp::Ordering;
use std::sync::Arc;

/// Which end of `y` wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum End {
    Max,
    Min,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExtremeBy {
    end: End,
    signature: Signature,
}

impl ExtremeBy {
    pub(crate) fn new(end: End) -> Self {
        Self {
            end,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ExtremeBy {
    fn name(&self) -> &str {
        match self.end {
            End::Max => "max_by",
            End::Min => "min_by",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [x, _] => Ok(x.clone()),
            _ => exec_err!("{} takes a value and an ordering", self.name()),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let [x, y] = args.input_fields else {
            return exec_err!("{} takes a value and an ordering", self.name());
        };
        Ok(vec![
            Arc::new(Field::new("x", x.data_type().clone(), true)),
            Arc::new(Field::new("y", y.data_type().clone(), true)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let [x, y] = args.expr_fields else {
            return exec_err!("{} takes a value and an ordering", self.name());
        };
        Ok(Box::new(Best {
            end: self.end,
            x: ScalarValue::try_from(x.data_type())?,
            y: ScalarValue::try_from(y.data_type())?,
        }))
    }
}

/// The winning row so far; `y` null until a row with a `y` is seen.
#[derive(Debug)]
struct Best {
    end: End,
    x: ScalarValue,
    y: ScalarValue,
}

impl Best {
    /// Whether `candidate` beats `current` (ties keep the current one).
    fn beats(&self, candidate: Ordering) -> bool {
        match self.end {
            End::Max => candidate == Ordering::Greater,
            End::Min => candidate == Ordering::Less,
        }
    }

    /// The best row of one batch of (x, y) columns.
    fn offer(&mut self, xs: &ArrayRef, ys: &ArrayRef) -> Result<()> {
        let compare = make_comparator(ys.as_ref(), ys.as_ref(), SortOptions::default())?;
        let mut best: Option<usize> = None;
        for i in (0..ys.len()).filter(|&i| ys.is_valid(i)) {
            if best.is_none_or(|b| self.beats(compare(i, b))) {
                best = Some(i);
            }
        }
        let Some(i) = best else {
            return Ok(());
        };
        let y = ScalarValue::try_from_array(ys, i)?;
        let wins = self.y.is_null()
            || self
                .y
                .partial_cmp(&y)
                .is_some_and(|current| self.beats(current.reverse()));
        if wins {
            self.x = ScalarValue::try_from_array(xs, i)?;
            self.y = y;
        }
        Ok(())
    }
}

impl Accumulator for Best {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match values {
            [xs, ys] => self.offer(xs, ys),
            _ => exec_err!("max_by and min_by take a value and an ordering"),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.x.clone(), self.y.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.x.clone())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.x.size() + self.y.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, StringArray};

    fn best(end: End, batches: &[(Vec<&str>, Vec<Option<f64>>)]) -> ScalarValue {
        let mut acc = Best {
            end,
            x: ScalarValue::Utf8(None),
            y: ScalarValue::Float64(None),
        };
        for (xs, ys) in batches {
            let xs: ArrayRef = Arc::new(StringArray::from(xs.clone()));
            let ys: ArrayRef = Arc::new(Float64Array::from(ys.clone()));
            acc.update_batch(&[xs, ys]).unwrap();
        }
        acc.evaluate().unwrap()
    }

    #[test]
    fn rows_without_an_ordering_take_no_part_and_ties_keep_the_first() {
        let batches = [
            (vec!["a", "b", "c"], vec![Some(2.0), None, Some(5.0)]),
            (vec!["d", "e"], vec![Some(5.0), Some(-1.0)]),
        ];
        assert_eq!(best(End::Max, &batches), ScalarValue::from("c"));
        assert_eq!(best(End::Min, &batches), ScalarValue::from("e"));
        let none = [(vec!["a"], vec![None])];
        assert_eq!(best(End::Max, &none), ScalarValue::Utf8(None));
    }
}
