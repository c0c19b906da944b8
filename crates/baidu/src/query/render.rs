//! Results in the seed's shape (spec 9.11) and the opaque paging marker.

use super::super::error::BaiduError;
use super::Parsed;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use sundial_model::FieldValue;
use sundial_model::series_query::{QueryOutput, RowKey};

const MARKER: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Appends one Result object as JSON. Rows are written straight into the
/// buffer (a raw query can return a million of them).
pub(crate) fn render_into(parsed: &Parsed, out: &QueryOutput, buf: &mut Vec<u8>) {
    let q = &parsed.query;
    let mut head = Map::new();
    head.insert("metric".into(), json!(q.metric));
    if parsed.multi_field {
        head.insert("fields".into(), json!(q.fields));
    } else {
        head.insert("field".into(), json!(q.fields.first()));
    }
    if let Some(tags) = &parsed.tag_columns {
        head.insert("tags".into(), json!(tags));
    }
    head.insert("rawCount".into(), json!(out.raw_count));
    head.insert("consumedCount".into(), json!(out.consumed_count));
    if q.is_raw() {
        head.insert("truncated".into(), json!(out.truncated));
        if out.truncated
            && let Some(m) = &out.next_marker
        {
            head.insert("nextMarker".into(), json!(encode_marker(m)));
        }
    }
    // `{...head, "groups": [...]}`: the head without its closing brace.
    let head = Value::Object(head).to_string();
    buf.extend_from_slice(head.trim_end_matches('}').as_bytes());
    buf.extend_from_slice(if head.len() > 2 {
        b",\"groups\":["
    } else {
        b"\"groups\":["
    });
    for (gi, g) in out.groups.iter().enumerate() {
        if gi > 0 {
            buf.push(b',');
        }
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
        buf.extend_from_slice(b"{\"groupInfos\":");
        buf.extend_from_slice(Value::Array(infos).to_string().as_bytes());
        buf.extend_from_slice(b",\"values\":[");
        for (ri, row) in g.rows.iter().enumerate() {
            if ri > 0 {
                buf.push(b',');
            }
            buf.push(b'[');
            scalar(buf, &row.timestamp);
            for v in &row.values {
                buf.push(b',');
                match v {
                    Some(v) => value_into(buf, v),
                    None => buf.extend_from_slice(b"null"),
                }
            }
            for t in &row.tags {
                buf.push(b',');
                scalar(buf, t);
            }
            buf.push(b']');
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}");
}

/// A scalar in serde_json's formatting (`2.0` for doubles, escapes).
fn scalar<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, v: &T) {
    if serde_json::to_writer(&mut *buf, v).is_err() {
        buf.extend_from_slice(b"null");
    }
}

fn value_into(buf: &mut Vec<u8>, v: &FieldValue) {
    match v {
        FieldValue::Long(i) => scalar(buf, i),
        FieldValue::Double(d) if d.is_finite() => scalar(buf, d),
        FieldValue::Double(_) => buf.extend_from_slice(b"null"),
        FieldValue::Bool(b) => scalar(buf, b),
        FieldValue::String(s) => scalar(buf, s.as_str()),
        FieldValue::Bytes(b) => {
            scalar(buf, &base64::engine::general_purpose::STANDARD.encode(b));
        }
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
