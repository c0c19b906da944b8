//! MySQL's `IF(condition, then, otherwise)` (spec baidu-tsdb 10.4) as a
//! registered scalar function. The planner turns each call into a `CASE`
//! (`simplify`), so a branch is evaluated only for the rows that take it,
//! as in MySQL: `IF(x = 0, 0, 1 / x)` never divides by zero.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
    when,
};
use std::sync::Arc;

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IfThen {
    signature: Signature,
}

impl IfThen {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IfThen {
    fn name(&self) -> &str {
        "if"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A boolean condition; both branches take their common type.
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [_, then, otherwise] = args else {
            return super::refuse("IF takes a condition and two values");
        };
        let Some(common) = comparison_coercion(then, otherwise) else {
            return super::refuse(format!(
                "IF branches of types {then} and {otherwise} have no common type"
            ));
        };
        Ok(vec![DataType::Boolean, common.clone(), common])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [_, then, _] => Ok(then.clone()),
            _ => exec_err!("IF takes three arguments"),
        }
    }

    // Nullable as the CASE it becomes, so the plan's schema holds.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let [_, then, otherwise] = args.arg_fields else {
            return exec_err!("IF takes three arguments");
        };
        let nullable = then.is_nullable() || otherwise.is_nullable();
        Ok(Arc::new(Field::new(
            self.name(),
            then.data_type().clone(),
            nullable,
        )))
    }

    fn simplify(&self, args: Vec<Expr>, _: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let Ok([condition, then, otherwise]) = <[Expr; 3]>::try_from(args) else {
            return exec_err!("IF takes three arguments");
        };
        let case = when(condition, then).otherwise(otherwise)?;
        Ok(ExprSimplifyResult::Simplified(case))
    }

    fn short_circuits(&self) -> bool {
        true
    }

    // Reached only where the planner did not simplify: both branches are
    // already computed, so a row takes one of them (null conditions take
    // the second, as in MySQL).
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [condition, then, otherwise] = args.args.as_slice() else {
            return exec_err!("IF takes three arguments");
        };
        let rows = args.number_rows;
        let condition = condition.to_array(rows)?;
        let Some(condition) = condition.as_boolean_opt() else {
            return exec_err!("IF condition of type {}", condition.data_type());
        };
        let then = then.to_array(rows)?;
        let otherwise = otherwise.to_array(rows)?;
        Ok(ColumnarValue::Array(zip(condition, &then, &otherwise)?))
    }
}
