//! `POST /v1/datapoint` (spec 7): the whole request is validated, kinds
//! included, before any point is stored.

use super::error::BaiduError;
use super::time;
use base64::Engine as _;
use compact_str::ToCompactString;
use serde_json::{Map, Value};
use sundial_model::{FieldValue, Name, SeriesKey, Tags, Timestamp, ValueInput, WritePoint};

/// Naming and size rules of spec 2.3 / 13.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteLimits {
    pub(crate) max_points: usize,
    pub(crate) max_string_chars: usize,
    pub(crate) max_bytes: usize,
}

/// Parses and validates a write body into points, in request order.
pub(crate) fn parse(
    body: &[u8],
    limits: WriteLimits,
    now: Timestamp,
) -> Result<Vec<WritePoint>, BaiduError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| BaiduError::malformed(format!("request body is not valid JSON: {e}")))?;
    let Some(root) = root.as_object() else {
        return Err(BaiduError::malformed("request body must be a JSON object"));
    };
    let datapoints = match present(root, "datapoints") {
        None => return Err(BaiduError::missing("datapoints")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(BaiduError::malformed("datapoints must be an array")),
    };
    if datapoints.is_empty() {
        return Err(BaiduError::invalid("datapoints must not be empty"));
    }
    let mut points = Vec::new();
    for (i, dp) in datapoints.iter().enumerate() {
        let Some(dp) = dp.as_object() else {
            return Err(BaiduError::invalid(format!(
                "datapoints[{i}] must be an object"
            )));
        };
        datapoint(dp, limits, now, &mut points).map_err(|e| BaiduError {
            message: format!("datapoints[{i}]: {}", e.message),
            ..e
        })?;
        if points.len() > limits.max_points {
            return Err(BaiduError::invalid(format!(
                "more than {} data points in one request",
                limits.max_points
            )));
        }
    }
    Ok(points)
}

/// A member that is present and not `null`.
pub(crate) fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn datapoint(
    dp: &Map<String, Value>,
    limits: WriteLimits,
    now: Timestamp,
    out: &mut Vec<WritePoint>,
) -> Result<(), BaiduError> {
    let metric = match present(dp, "metric") {
        None => return Err(BaiduError::missing("metric")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(BaiduError::invalid("metric must be a string")),
    };
    check_name(metric, "metric", 40)?;
    let field = match present(dp, "field") {
        None => sundial_model::DEFAULT_FIELD,
        Some(Value::String(s)) => {
            check_name(s, "field", 40)?;
            s.as_str()
        }
        Some(_) => return Err(BaiduError::invalid("field must be a string")),
    };
    let series = std::sync::Arc::new(SeriesKey::from_names(metric.clone(), tags_of(dp)?));
    let kind = match present(dp, "type") {
        None => None,
        Some(Value::String(t)) => Some(WireType::parse(t)?),
        Some(_) => return Err(BaiduError::invalid("type must be a string")),
    };
    let push =
        |out: &mut Vec<WritePoint>, timestamp: Timestamp, v: &Value| -> Result<(), BaiduError> {
            out.push(WritePoint {
                series: series.clone(),
                field: field.into(),
                timestamp,
                value: ValueInput::Typed(value(v, kind, limits)?),
            });
            Ok(())
        };
    match (present(dp, "value"), present(dp, "values")) {
        (Some(v), None) => {
            let ts = match present(dp, "timestamp") {
                Some(t) => time::absolute(t, "timestamp")?,
                None => now,
            };
            push(out, ts, v)
        }
        (None, Some(Value::Array(pairs))) => {
            if present(dp, "timestamp").is_some() {
                return Err(BaiduError::invalid("timestamp cannot be used with values"));
            }
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([t, v]) => push(out, time::absolute(t, "values timestamp")?, v)?,
                    _ => {
                        return Err(BaiduError::invalid(
                            "each values entry must be [timestamp, value]",
                        ));
                    }
                }
                if out.len() > limits.max_points {
                    break;
                }
            }
            Ok(())
        }
        (None, Some(_)) => Err(BaiduError::invalid("values must be an array")),
        (Some(_), Some(_)) => Err(BaiduError::invalid("use either value or values, not both")),
        (None, None) => Err(BaiduError::invalid("value or values is required")),
    }
}

/// The `tags` of a data point: 1 to 20, keys checked as names, values
/// 1 to 200 characters (numbers and booleans as their text).
fn tags_of(dp: &Map<String, Value>) -> Result<Tags, BaiduError> {
    let tags = match present(dp, "tags") {
        None => return Err(BaiduError::missing("tags")),
        Some(Value::Object(t)) => t,
        Some(_) => return Err(BaiduError::invalid("tags must be an object")),
    };
    if tags.is_empty() || tags.len() > 20 {
        return Err(BaiduError::invalid("a data point needs 1 to 20 tags"));
    }
    let mut pairs = Vec::with_capacity(tags.len());
    for (k, v) in tags {
        check_name(k, "tag key", 100)?;
        let v = match v {
            Value::String(s) => Name::from(s.as_str()),
            Value::Number(n) => compact_str::format_compact!("{n}"),
            Value::Bool(b) => b.to_compact_string(),
            _ => {
                return Err(BaiduError::invalid(format!(
                    "tag {k} must have a string value"
                )));
            }
        };
        let chars = v.chars().count();
        if chars == 0 || chars > 200 {
            return Err(BaiduError::invalid(format!(
                "tag {k}: values are 1 to 200 characters"
            )));
        }
        pairs.push((Name::from(k.as_str()), v));
    }
    Ok(pairs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireType {
    Long,
    Double,
    String,
    Bytes,
}

impl WireType {
    fn parse(t: &str) -> Result<Self, BaiduError> {
        match t.to_ascii_lowercase().as_str() {
            "long" => Ok(Self::Long),
            "double" => Ok(Self::Double),
            "string" => Ok(Self::String),
            "bytes" => Ok(Self::Bytes),
            _ => Err(BaiduError::invalid(format!(
                "unsupported type {t:?}: use Long, Double, String or Bytes"
            ))),
        }
    }
}

fn value(v: &Value, kind: Option<WireType>, limits: WriteLimits) -> Result<FieldValue, BaiduError> {
    let bad = |what: &str| BaiduError::invalid(format!("value {v} is not a valid {what}"));
    let text = |s: &str| -> Result<FieldValue, BaiduError> {
        if s.chars().count() > limits.max_string_chars {
            return Err(BaiduError::invalid(format!(
                "string values are at most {} characters",
                limits.max_string_chars
            )));
        }
        Ok(FieldValue::String(s.to_owned()))
    };
    match (kind, v) {
        (Some(WireType::Long) | None, Value::Number(n)) if n.is_i64() => {
            n.as_i64().map(FieldValue::Long).ok_or_else(|| bad("Long"))
        }
        (Some(WireType::Long), _) => Err(bad("Long")),
        (Some(WireType::Double) | None, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(FieldValue::Double)
            .ok_or_else(|| bad("Double")),
        (Some(WireType::Double), _) => Err(bad("Double")),
        (Some(WireType::String) | None, Value::String(s)) => text(s),
        (Some(WireType::String), _) => Err(bad("String")),
        (Some(WireType::Bytes), Value::String(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| bad("base64 Bytes value"))?;
            if bytes.len() > limits.max_bytes {
                return Err(BaiduError::invalid(format!(
                    "Bytes values are at most {} bytes",
                    limits.max_bytes
                )));
            }
            Ok(FieldValue::Bytes(bytes))
        }
        (Some(WireType::Bytes), _) => Err(bad("Bytes")),
        (None, _) => Err(BaiduError::invalid(format!(
            "value {v} is not a number or a string"
        ))),
    }
}

/// `[A-Za-z][A-Za-z0-9_]*`, 1..=max characters.
fn check_name(name: &str, what: &str, max: usize) -> Result<(), BaiduError> {
    let mut bytes = name.bytes();
    let ok = name.len() <= max
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BaiduError::invalid(format!(
            "invalid {what} {name:?}: 1 to {max} of [A-Za-z0-9_], starting with a letter"
        )))
    }
}
