//! Results in the seed's shape (spec 9.11) and the opaque paging marker.

use super::super::error::BaiduError;
use super::Parsed;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use sundial_model::FieldValue;
use sundial_model::series_query::{QueryOutput, RowKey};

const MARKER: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One Result object.
pub(crate) fn render(parsed: &Parsed, out: &QueryOutput) -> Value {
    let q = &parsed.query;
    let mut r = Map::new();
    r.insert("metric".into(), json!(q.metric));
    if parsed.multi_field {
        r.insert("fields".into(), json!(q.fields));
    } else {
        r.insert("field".into(), json!(q.fields.first()));
    }
    if let Some(tags) = &parsed.tag_columns {
        r.insert("tags".into(), json!(tags));
    }
    r.insert("rawCount".into(), json!(out.raw_count));
    r.insert("consumedCount".into(), json!(out.consumed_count));
    let groups: Vec<Value> = out
        .groups
        .iter()
        .map(|g| {
            let infos: Vec<Value> = parsed
                .group_infos
                .iter()
                .map(|keys| {
                    let mut tags: Vec<(&String, &String)> = g
                        .tags
                        .iter()
                        .filter(|(k, _)| keys.contains(k))
                        .map(|(k, v)| (k, v))
                        .collect();
                    tags.sort();
                    tags.dedup();
                    let tags: Map<String, Value> = tags
                        .into_iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    json!({"name": "Tag", "tags": tags})
                })
                .collect();
            let values: Vec<Value> = g
                .rows
                .iter()
                .map(|row| {
                    let mut cells = Vec::with_capacity(1 + row.values.len() + row.tags.len());
                    cells.push(json!(row.timestamp));
                    cells.extend(
                        row.values
                            .iter()
                            .map(|v| v.as_ref().map_or(Value::Null, value)),
                    );
                    cells.extend(row.tags.iter().map(|t| json!(t)));
                    Value::Array(cells)
                })
                .collect();
            json!({"groupInfos": infos, "values": values})
        })
        .collect();
    r.insert("groups".into(), Value::Array(groups));
    if q.is_raw() {
        r.insert("truncated".into(), json!(out.truncated));
        if out.truncated
            && let Some(m) = &out.next_marker
        {
            r.insert("nextMarker".into(), json!(encode_marker(m)));
        }
    }
    Value::Object(r)
}

/// Long as an integer, Double with a fraction (`51.0`), non-finite as null,
/// Bytes as standard base64.
pub(crate) fn value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Long(i) => json!(i),
        FieldValue::Double(d) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        FieldValue::Bool(b) => json!(b),
        FieldValue::String(s) => json!(s),
        FieldValue::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

fn encode_marker(m: &RowKey) -> String {
    MARKER.encode(json!({"t": m.timestamp, "k": m.series}).to_string())
}

pub(super) fn decode_marker(text: &str) -> Result<RowKey, BaiduError> {
    let bad = || BaiduError::invalid("marker is not a nextMarker this server returned");
    let bytes = MARKER.decode(text).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(RowKey {
        timestamp: v.get("t").and_then(Value::as_i64).ok_or_else(bad)?,
        series: v
            .get("k")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_owned(),
    })
}
