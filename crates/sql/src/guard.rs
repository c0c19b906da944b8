//! What a statement may call. Functions whose output a client sizes
//! (`repeat`, `lpad`, `rpad`) and table functions (`generate_series`,
//! `range`) are taken out of the session's registry, so no spelling,
//! alias or nesting reaches them; every other scalar function is wrapped
//! so one call's result per batch stays under [`MAX_RESULT_BYTES`] (nested
//! `replace` or `concat` cannot grow strings without bound, and DataFusion's
//! memory pool does not see expression results).

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{ExprSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// Scalar functions a statement may not call.
const DENIED_FUNCTIONS: &[&str] = &["repeat", "lpad", "rpad"];
/// Table functions a statement may not call.
const DENIED_TABLE_FUNCTIONS: &[&str] = &["generate_series", "range"];
/// Largest result of one function call over one batch.
pub(crate) const MAX_RESULT_BYTES: usize = 256 << 20;
/// How many times its inputs a function's result may be, for functions
/// other than the replacing ones (case changes grow UTF-8 up to 3x, hex 2x).
const GROWTH: usize = 4;

/// Takes the denied functions out of `ctx` and bounds every other one.
pub(crate) fn restrict(ctx: &SessionContext) -> Result<()> {
    for name in DENIED_FUNCTIONS {
        ctx.deregister_udf(name);
    }
    for name in DENIED_TABLE_FUNCTIONS {
        ctx.deregister_udtf(name);
    }
    let functions: Vec<Arc<ScalarUDF>> = ctx.state().scalar_functions().values().cloned().collect();
    let mut wrapped = std::collections::HashSet::new();
    for udf in functions {
        // Aliases map to the same function: wrap it once.
        if wrapped.insert(udf.name().to_owned()) {
            let bounded = Bounded {
                inner: (*udf).clone(),
            };
            ctx.register_udf(ScalarUDF::new_from_impl(bounded));
        }
    }
    Ok(())
}

/// A scalar function whose results are checked for size.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
}

fn size(value: &ColumnarValue) -> usize {
    match value {
        ColumnarValue::Array(a) => a.get_array_memory_size(),
        ColumnarValue::Scalar(s) => s.size(),
    }
}

/// What a call may produce at most, before it runs: the replacing
/// functions may put their replacement (taken whole, for an array: a
/// bound that needs no scan) at every character.
fn bound(name: &str, args: &[ColumnarValue], rows: usize) -> usize {
    let input: usize = args.iter().map(size).sum();
    match (name, args) {
        ("replace" | "regexp_replace", [text, _, to, ..]) => {
            let text = size(text);
            text.saturating_add(text.saturating_add(rows).saturating_mul(size(to)))
        }
        _ => input.saturating_mul(GROWTH),
    }
}

fn too_large(name: &str, bytes: usize) -> DataFusionError {
    DataFusionError::ResourcesExhausted(format!(
        "{name} could make a result of {bytes} bytes; at most {MAX_RESULT_BYTES} per batch"
    ))
}

fn check(value: &ColumnarValue, name: &str) -> Result<()> {
    let bytes = size(value);
    if bytes > MAX_RESULT_BYTES {
        return Err(too_large(name, bytes));
    }
    Ok(())
}

// Delegates, so it implements every trait method: a method DataFusion
// adds shows up here as a lint.
#[warn(clippy::missing_trait_methods)]
impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated, reason = "delegated as it is")]
        self.inner.inner().display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn with_updated_config(&self, config: &datafusion::config::ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Bounded { inner: updated }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated, reason = "delegated as it is")]
        self.inner.inner().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let before = bound(self.name(), &args.args, args.number_rows);
        if before > MAX_RESULT_BYTES {
            return Err(too_large(self.name(), before));
        }
        let out = self.inner.inner().invoke_with_args(args)?;
        check(&out, self.name())?;
        Ok(out)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.inner().simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.inner().struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}
