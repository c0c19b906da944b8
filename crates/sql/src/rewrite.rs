//! What the SQL of spec baidu-tsdb 10 needs beyond DataFusion's own SQL:
//! MySQL quoting (double-quoted strings, backtick identifiers), `timestamp`
//! as a name of the time column, and output names taken from the
//! statement's text. Baidu's extra functions are registered with
//! DataFusion instead (`functions/`).

use crate::SqlError;
use crate::table::TIME;
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, ObjectNamePart, Query, SelectItem, SetExpr, Statement, TableFactor,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::{Dialect, MySqlDialect};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use std::ops::ControlFlow;

/// Baidu's SQL (spec 10.2, 10.3): MySQL's quoting (backticks quote
/// identifiers, double quotes strings, doubled quotes escape, backslash
/// is an ordinary character) with PostgreSQL-style intervals
/// (`interval '5 minutes'`) as DataFusion users write them.
#[derive(Debug)]
struct TsdbDialect;

impl Dialect for TsdbDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        false
    }

    fn require_interval_qualifier(&self) -> bool {
        false
    }
}

/// A statement ready for DataFusion, and whether `*` columns of a join
/// are named `metric.column`.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) statement: Statement,
    pub(crate) qualify: bool,
    /// The result must come in storage order (time, series key): a plain
    /// SELECT without ORDER BY, GROUP BY, DISTINCT, aggregates or joins.
    pub(crate) ordered: bool,
}

fn invalid(e: impl std::fmt::Display) -> SqlError {
    SqlError::Invalid(e.to_string())
}

pub(crate) fn prepare(sql: &str) -> Result<Prepared, SqlError> {
    let tokens = Tokenizer::new(&TsdbDialect, sql)
        .tokenize_with_location()
        .map_err(invalid)?;
    // Spec 10's grammar has no arrays or subscripts, and sqlparser's
    // subscript parsing backtracks: a few hundred bytes of `[` and `:`
    // kept it busy for seconds (found by the fuzzer).
    if let Some(at) = tokens.iter().find(|t| t.token == Token::LBracket) {
        return Err(invalid(format!(
            "`[` at line {}, column {}: arrays and subscripts are not supported",
            at.span.start.line, at.span.start.column
        )));
    }
    let mut statements = Parser::new(&TsdbDialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(invalid)?;
    if statements.len() != 1 {
        return Err(invalid("exactly one statement is expected"));
    }
    let Some(mut statement) = statements.pop() else {
        return Err(invalid("exactly one statement is expected"));
    };
    let Statement::Query(query) = &mut statement else {
        return Err(invalid("only SELECT statements are supported"));
    };
    let qualify = name_outputs(query)?;
    let ordered = needs_storage_order(query);
    let mut failure = None;
    let _ = visit_expressions_mut(&mut statement, |e| {
        if let Err(err) = rewrite(e) {
            failure = Some(err);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(Prepared {
            statement,
            qualify,
            ordered,
        }),
    }
}

/// Aliases every unaliased select item after its text (spec 10.3: an
/// expression's column is named by its source text); `timestamp` keeps
/// its name although it reads the time column. Returns whether the query
/// joins and selects `*`.
fn name_outputs(query: &mut Query) -> Result<bool, SqlError> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Ok(false);
    };
    let joins = select.from.iter().any(|t| !t.joins.is_empty()) || select.from.len() > 1;
    let mut wildcard = false;
    for item in &mut select.projection {
        match item {
            // Plain names keep DataFusion's naming, except the time
            // column's keywords, which keep the spelling written.
            SelectItem::UnnamedExpr(Expr::Identifier(id))
                if !is_time_keyword(id) || id.value == TIME => {}
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(_)) => {}
            SelectItem::UnnamedExpr(expr) => {
                let name = match &*expr {
                    Expr::Identifier(id) => id.value.clone(),
                    other => other.to_string().trim().to_owned(),
                };
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('`', name),
                };
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => wildcard = true,
            _ => {}
        }
    }
    // Table names are metric names, dots included (`sys.cpu.user`): an
    // unquoted dotted name is one metric, not catalog.schema.table.
    let relations = select.from.iter_mut().flat_map(|t| {
        std::iter::once(&mut t.relation).chain(t.joins.iter_mut().map(|j| &mut j.relation))
    });
    for relation in relations {
        if let TableFactor::Table { args: Some(_), .. } = relation {
            return Err(invalid("table functions are not available"));
        }
        if let TableFactor::Table { name, .. } = relation {
            let parts: Option<Vec<String>> = name
                .0
                .iter()
                .map(|p| match p {
                    ObjectNamePart::Identifier(id) if id.quote_style.is_none() => {
                        Some(id.value.clone())
                    }
                    _ => None,
                })
                .collect();
            if let Some(parts) = parts.filter(|p| p.len() > 1) {
                name.0 = vec![ObjectNamePart::Identifier(Ident::with_quote(
                    '`',
                    parts.join("."),
                ))];
            }
        }
    }
    Ok(joins && wildcard)
}

/// Aggregate functions whose presence makes row order irrelevant.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "max_by",
    "min_by",
    "first_value",
    "last_value",
    "median",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var",
    "var_pop",
    "var_samp",
    "variance",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "array_agg",
    "string_agg",
    "bit_and",
    "bit_or",
    "bool_and",
    "bool_or",
    "corr",
    "covar",
    "covar_pop",
    "covar_samp",
];

fn needs_storage_order(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return true;
    };
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    let joined = select.from.len() > 1 || select.from.iter().any(|t| !t.joins.is_empty());
    let mut aggregated = false;
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            let mut e = e.clone();
            let _ = visit_expressions_mut(&mut e, |inner| {
                if let Expr::Function(f) = inner
                    && f.over.is_none()
                    && AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str())
                {
                    aggregated = true;
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    !(grouped || joined || aggregated || query.order_by.is_some() || select.distinct.is_some())
}

/// Functions refused: their output grows with an argument.
const DENIED: &[&str] = &["repeat", "lpad", "rpad", "generate_series", "range"];

/// `time` or `timestamp` in any case, unquoted: the time column (spec 10.2).
fn is_time_keyword(id: &Ident) -> bool {
    id.quote_style.is_none()
        && (id.value.eq_ignore_ascii_case("timestamp") || id.value.eq_ignore_ascii_case(TIME))
}

fn rewrite(e: &mut Expr) -> Result<(), SqlError> {
    match e {
        Expr::Identifier(id) if is_time_keyword(id) => {
            id.value = TIME.into();
        }
        Expr::CompoundIdentifier(parts) => {
            if let Some(last) = parts.last_mut()
                && is_time_keyword(last)
            {
                last.value = TIME.into();
            }
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            // Functions whose output size a client chooses are outside
            // every limit of a statement.
            if DENIED.contains(&name.as_str()) {
                return Err(invalid(format!("function {name} is not available")));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prepare;
    use crate::SqlError;

    #[test]
    fn brackets_are_refused_before_the_parser_sees_them() {
        let slow = "select a[b:c[d.e[f:g[h] from t";
        match prepare(slow) {
            Err(SqlError::Invalid(m)) => assert!(m.contains("line 1, column 9"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Inside strings and quoted names a bracket is just a character.
        let quoted = "select `a[1]` from t where host = '[x]'";
        assert!(prepare(quoted).is_ok(), "{:?}", prepare(quoted));
    }
}
