//! Results in the seed's shape (spec 9.11) and the opaque paging marker.

use super::super::error::BaiduError;
use super::Parsed;
use base64::Engine as _;
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use sundial_model::FieldValue;
use sundial_model::series_query::{GroupOutput, QueryOutput, Row, RowKey};

const MARKER: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Appends one Result object as JSON, serialized straight from the
/// query's output (a raw query can return a million rows).
/// `rule`: the presampling rule that answered it.
pub(crate) fn render_into(
    parsed: &Parsed,
    out: &QueryOutput,
    rule: Option<&str>,
    buf: &mut Vec<u8>,
) {
    let q = &parsed.query;
    let raw = q.is_raw();
    let result = ResultJson {
        metric: &q.metric,
        fields: parsed.multi_field.then_some(q.fields.as_slice()),
        field: (!parsed.multi_field).then(|| q.fields.first()),
        tags: parsed.tag_columns.as_deref(),
        raw_count: out.raw_count,
        consumed_count: out.consumed_count,
        truncated: raw.then_some(out.truncated),
        next_marker: match (&out.next_marker, raw && out.truncated) {
            (Some(m), true) => Some(encode_marker(m)),
            _ => None,
        },
        groups: Groups { parsed, out },
        presampling_rule_id: rule,
    };
    // Serializing into a Vec cannot fail: every map key is a string.
    let _ = sundial_api::json::write_into(buf, &result);
}

/// A Result object of spec 9.11, members in the seed's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultJson<'a> {
    metric: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
    /// Present (maybe `null`) unless `fields` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<Option<&'a String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a [String]>,
    raw_count: u64,
    consumed_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    groups: Groups<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presampling_rule_id: Option<&'a str>,
}

/// The groups of one output, each with the GroupBy infos of the request.
struct Groups<'a> {
    parsed: &'a Parsed,
    out: &'a QueryOutput,
}

impl Serialize for Groups<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.out.groups.iter().map(|group| GroupJson {
            group_infos: GroupInfos {
                infos: &self.parsed.group_infos,
                group,
            },
            values: Rows(&group.rows),
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupJson<'a> {
    group_infos: GroupInfos<'a>,
    values: Rows<'a>,
}

/// `{"name": "Tag", "tags": {...}}` per GroupBy object: the group's values
/// of that object's keys, keys ascending.
struct GroupInfos<'a> {
    infos: &'a [Vec<String>],
    group: &'a GroupOutput,
}

#[derive(Serialize)]
struct TagInfo<'a> {
    name: &'static str,
    tags: BTreeMap<&'a str, &'a str>,
}

impl Serialize for GroupInfos<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.infos.iter().map(|keys| {
            TagInfo {
                name: "Tag",
                tags: self
                    .group
                    .tags
                    .iter()
                    .filter(|(k, _)| keys.contains(k))
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            }
        }))
    }
}

/// Rows as `[timestamp, field values..., tag columns...]`.
struct Rows<'a>(&'a [Row]);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(RowJson))
    }
}

struct RowJson<'a>(&'a Row);

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.0;
        let mut seq = s.serialize_seq(Some(1 + row.values.len() + row.tags.len()))?;
        seq.serialize_element(&row.timestamp)?;
        for v in &row.values {
            seq.serialize_element(&v.as_ref().map(ValueJson))?;
        }
        for t in &row.tags {
            seq.serialize_element(t)?;
        }
        seq.end()
    }
}

/// A stored value: non-finite doubles as `null`, bytes as base64.
struct ValueJson<'a>(&'a FieldValue);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            FieldValue::Long(i) => s.serialize_i64(*i),
            FieldValue::Double(d) if d.is_finite() => s.serialize_f64(*d),
            FieldValue::Double(_) => s.serialize_none(),
            FieldValue::Bool(b) => s.serialize_bool(*b),
            FieldValue::String(text) => s.serialize_str(text),
            FieldValue::Bytes(b) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
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
