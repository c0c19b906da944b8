//! `filters` (spec 9.4): time range, tag filters in both forms, value and
//! field filters, and `or`.

use super::super::error::BaiduError;
use super::super::time;
use super::super::write::present;
use super::{string, strings};
use serde_json::{Map, Value};
use sundial_model::series_query::{Branch, CmpOp, Operand, ValuePredicate};
use sundial_model::{TagMatch, Timestamp};

const BRANCH_KEYS: [&str; 5] = ["start", "end", "tags", "value", "fields"];

/// The filter's branches: one, or one per `or` entry.
pub(super) fn parse(
    f: &Value,
    fields: &[String],
    now: Timestamp,
) -> Result<Vec<Branch>, BaiduError> {
    let Some(f) = f.as_object() else {
        return Err(BaiduError::invalid("filters must be an object"));
    };
    let Some(or) = present(f, "or") else {
        return Ok(vec![branch(f, fields, now)?]);
    };
    if BRANCH_KEYS.iter().any(|k| present(f, k).is_some()) {
        return Err(BaiduError::invalid(
            "filters with or cannot have start, end, tags, value or fields beside it",
        ));
    }
    let Value::Array(list) = or else {
        return Err(BaiduError::invalid("or must be an array of filters"));
    };
    if list.is_empty() {
        return Err(BaiduError::invalid("or must not be empty"));
    }
    list.iter()
        .map(|b| {
            let Some(b) = b.as_object() else {
                return Err(BaiduError::invalid("each or entry must be an object"));
            };
            if present(b, "or").is_some() {
                return Err(BaiduError::invalid("or cannot be nested"));
            }
            branch(b, fields, now)
        })
        .collect()
}

fn branch(f: &Map<String, Value>, fields: &[String], now: Timestamp) -> Result<Branch, BaiduError> {
    let start = match present(f, "start") {
        None => return Err(BaiduError::missing("filters.start")),
        Some(v) => time::query_time(v, "start", now)?,
    };
    let end = match present(f, "end") {
        None => Timestamp::MAX,
        Some(v) => time::query_time(v, "end", now)?,
    };
    if end < start {
        return Err(BaiduError::invalid("end must not be before start"));
    }
    let tags = match present(f, "tags") {
        None => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                Ok(TagMatch::In {
                    key: k.clone(),
                    values: strings(v, "tag filter values")?,
                })
            })
            .collect::<Result<_, BaiduError>>()?,
        Some(Value::Array(list)) => list.iter().map(tag_filter).collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(BaiduError::invalid(
                "filters.tags must be an object or an array",
            ));
        }
    };
    let mut values = Vec::new();
    match (present(f, "value"), present(f, "fields")) {
        (Some(_), Some(_)) => {
            return Err(BaiduError::invalid(
                "use either value or fields in filters, not both",
            ));
        }
        (Some(v), None) => values.push(ValuePredicate {
            field: None,
            ..predicate(&string(v, "value filter")?)?
        }),
        (None, Some(Value::Array(list))) => {
            for item in list {
                let field = item
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or_else(|| BaiduError::missing("filters.fields[].field"))?;
                if !fields.iter().any(|f| f == field) {
                    return Err(BaiduError::invalid(format!(
                        "field filter on {field:?}, which the query does not read"
                    )));
                }
                let text = item
                    .get("value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| BaiduError::missing("filters.fields[].value"))?;
                values.push(ValuePredicate {
                    field: Some(field.to_owned()),
                    ..predicate(text)?
                });
            }
        }
        (None, Some(_)) => return Err(BaiduError::invalid("filters.fields must be an array")),
        (None, None) => {}
    }
    Ok(Branch {
        start,
        end,
        tags,
        values,
    })
}

/// `{"tag": k, "in"|"notIn"|"like": ...}` with exactly one operator;
/// null, `[]` and `""` count as absent.
fn tag_filter(v: &Value) -> Result<TagMatch, BaiduError> {
    let Some(o) = v.as_object() else {
        return Err(BaiduError::invalid("each tag filter must be an object"));
    };
    let key = match present(o, "tag") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        None => return Err(BaiduError::missing("tag filter tag")),
        Some(_) => return Err(BaiduError::invalid("tag filter tag must be a string")),
    };
    let given = |name: &str| {
        present(o, name).filter(|v| match v {
            Value::Array(a) => !a.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => true,
        })
    };
    match (given("in"), given("notIn"), given("like")) {
        (Some(v), None, None) => Ok(TagMatch::In {
            key,
            values: strings(v, "in")?,
        }),
        (None, Some(v), None) => Ok(TagMatch::NotIn {
            key,
            values: strings(v, "notIn")?,
        }),
        (None, None, Some(v)) => {
            let pattern = string(v, "like")?;
            check_like(&pattern)?;
            Ok(TagMatch::Like {
                key,
                pattern,
                escape: Some('/'),
            })
        }
        _ => Err(BaiduError::invalid(format!(
            "tag filter on {key:?} needs exactly one of in, notIn, like"
        ))),
    }
}

/// A `/` must escape something.
fn check_like(pattern: &str) -> Result<(), BaiduError> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '/' && chars.next().is_none() {
            return Err(BaiduError::invalid(format!(
                "like pattern {pattern:?} ends with the escape character /"
            )));
        }
    }
    Ok(())
}

/// `OP OPERAND` (spec 9.4.4).
pub(super) fn predicate(text: &str) -> Result<ValuePredicate, BaiduError> {
    let bad = || {
        BaiduError::invalid(format!(
            "invalid value filter {text:?}: expected like \">= 10\""
        ))
    };
    let t = text.trim();
    let (op, rest) = [
        ("!=", CmpOp::Ne),
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        ("=", CmpOp::Eq),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
    ]
    .into_iter()
    .find_map(|(sym, op)| t.strip_prefix(sym).map(|rest| (op, rest.trim())))
    .ok_or_else(bad)?;
    let operand = if let Some(inner) = rest.strip_prefix('\'') {
        Operand::Text(inner.strip_suffix('\'').ok_or_else(bad)?.to_owned())
    } else if is_tag_ref(rest) {
        Operand::Tag(rest.to_owned())
    } else if is_number(rest) {
        let integral = !rest.contains(['.', 'e', 'E']);
        match rest.parse::<i64>() {
            Ok(i) if integral => Operand::Long(i),
            _ => Operand::Double(rest.parse::<f64>().map_err(|_| bad())?),
        }
    } else {
        return Err(bad());
    };
    Ok(ValuePredicate {
        field: None,
        op,
        operand,
    })
}

fn is_tag_ref(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `[+-]? (DIGITS (. DIGITS?)? | . DIGITS) ([eE] [+-]? DIGITS)?`
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some((int, frac)) => {
            (digits(int) && (frac.is_empty() || digits(frac))) || (int.is_empty() && digits(frac))
        }
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_filter_grammar() -> Result<(), BaiduError> {
        assert_eq!(predicate(">= 10")?.operand, Operand::Long(10));
        assert_eq!(predicate("<11.1")?.operand, Operand::Double(11.1));
        assert_eq!(predicate("= 'a b'")?.operand, Operand::Text("a b".into()));
        assert_eq!(
            predicate("> threshold")?.operand,
            Operand::Tag("threshold".into())
        );
        assert_eq!(predicate("!= -1e3")?.op, CmpOp::Ne);
        for bad in ["== 5", "> ", "= \"abc\"", "5", "> 1.2.3", "= 'open"] {
            assert!(predicate(bad).is_err(), "{bad}");
        }
        assert!(check_like("value/").is_err());
        assert!(check_like("value/_1").is_ok());
        Ok(())
    }
}
