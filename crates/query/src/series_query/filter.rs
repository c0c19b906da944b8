//! Value predicates (`> 10`, `= 'on'`, `>= threshold`) on query rows.

use std::cmp::Ordering;
use sundial_model::series_query::{CmpOp, Operand, ValuePredicate};
use sundial_model::{FieldValue, SeriesKey};

/// Whether a row (one optional value per queried field) passes every
/// predicate. A predicate naming a field needs that field's value; one
/// without a field applies to every value the row has.
pub(crate) fn row_passes(
    predicates: &[ValuePredicate],
    fields: &[String],
    row: &[Option<FieldValue>],
    series: &SeriesKey,
) -> bool {
    predicates.iter().all(|p| match &p.field {
        Some(f) => {
            let value = fields
                .iter()
                .position(|name| name == f)
                .and_then(|i| row.get(i))
                .and_then(Option::as_ref);
            value.is_some_and(|v| holds(p.op, v, &p.operand, series))
        }
        None => row
            .iter()
            .flatten()
            .all(|v| holds(p.op, v, &p.operand, series)),
    })
}

/// `value <op> operand`; mismatched kinds never hold.
fn holds(op: CmpOp, value: &FieldValue, operand: &Operand, series: &SeriesKey) -> bool {
    let ordering = match operand {
        Operand::Long(x) => compare_number(value, &FieldValue::Long(*x)),
        Operand::Double(x) => compare_number(value, &FieldValue::Double(*x)),
        Operand::Text(s) => match value {
            FieldValue::String(v) => Some(v.as_str().cmp(s.as_str())),
            _ => None,
        },
        Operand::Tag(key) => series.tag(key).and_then(|tag| match value {
            FieldValue::String(v) => Some(v.as_str().cmp(tag)),
            FieldValue::Bytes(_) => None,
            _ => parse_number(tag).and_then(|n| compare_number(value, &n)),
        }),
    };
    let Some(ord) = ordering else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
    }
}

fn parse_number(text: &str) -> Option<FieldValue> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(FieldValue::Long(i));
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(FieldValue::Double)
}

/// Exact for two integers, else as `f64`; `None` for non-numbers and NaN.
fn compare_number(a: &FieldValue, b: &FieldValue) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(op: CmpOp, operand: Operand) -> ValuePredicate {
        ValuePredicate {
            field: None,
            op,
            operand,
        }
    }

    #[test]
    fn numbers_text_and_tags() {
        let key = SeriesKey::new("m", vec![("threshold".into(), "5".into())]);
        let f = vec!["value".to_owned()];
        let row = |v: FieldValue| vec![Some(v)];
        assert!(row_passes(
            &[pred(CmpOp::Ge, Operand::Long(10))],
            &f,
            &row(FieldValue::Long(10)),
            &key
        ));
        assert!(!row_passes(
            &[pred(CmpOp::Gt, Operand::Long(10))],
            &f,
            &row(FieldValue::Long(10)),
            &key
        ));
        assert!(row_passes(
            &[pred(CmpOp::Lt, Operand::Double(10.5))],
            &f,
            &row(FieldValue::Long(10)),
            &key
        ));
        assert!(row_passes(
            &[pred(CmpOp::Gt, Operand::Tag("threshold".into()))],
            &f,
            &row(FieldValue::Long(8)),
            &key
        ));
        assert!(!row_passes(
            &[pred(CmpOp::Gt, Operand::Tag("threshold".into()))],
            &f,
            &row(FieldValue::Long(5)),
            &key
        ));
        assert!(!row_passes(
            &[pred(CmpOp::Gt, Operand::Tag("nope".into()))],
            &f,
            &row(FieldValue::Long(8)),
            &key
        ));
        let on = row(FieldValue::String("on".into()));
        assert!(row_passes(
            &[pred(CmpOp::Eq, Operand::Text("on".into()))],
            &f,
            &on,
            &key
        ));
        // A number against text never matches, whatever the operator.
        assert!(!row_passes(
            &[pred(CmpOp::Ne, Operand::Long(1))],
            &f,
            &on,
            &key
        ));
    }
}
