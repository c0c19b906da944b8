//! `POST /api/import`, `GET /api/export` and `GET /api/export/metrics`:
//! Sundial's own routes for moving whole series in and out (what
//! `sundial import` and `sundial export` speak, docs/cli.md). One JSON
//! object per line, one series (or a slice of one) per object:
//!
//! `{"metric":"cpu","tags":{"host":"a"},"field":"value","timestamps":[..],"values":[..]}`
//!
//! Timestamps are milliseconds; values keep their kind (integers stay
//! integers, `1.0` stays a double, strings and booleans as such), so a
//! series exported and imported again answers every query as before.

mod export;
mod import;

pub(crate) use export::{export, export_metrics};
pub(crate) use import::import;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use sundial_model::{DEFAULT_FIELD, FieldValue, Timestamp};

/// One line of the transfer format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesLine {
    metric: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default = "default_field")]
    field: String,
    timestamps: Vec<Timestamp>,
    values: Vec<LineValue>,
}

fn default_field() -> String {
    DEFAULT_FIELD.to_owned()
}

/// A value as the line carries it: the JSON type decides the kind
/// (integers that fit in i64 stay integers). Public so `sundial import`
/// reads values exactly as this route does.
#[derive(Debug, Clone, PartialEq)]
pub struct LineValue(pub FieldValue);

impl<'de> Deserialize<'de> for LineValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LineValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string or a boolean")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LineValue, E> {
                Ok(LineValue(FieldValue::Long(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LineValue, E> {
                Ok(LineValue(match i64::try_from(v) {
                    Ok(i) => FieldValue::Long(i),
                    Err(_) => FieldValue::Double(v as f64),
                }))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LineValue, E> {
                Ok(LineValue(FieldValue::Double(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LineValue, E> {
                Ok(LineValue(FieldValue::Bool(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LineValue, E> {
                Ok(LineValue(FieldValue::String(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<LineValue, E> {
                Ok(LineValue(FieldValue::String(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A stored value on an export line. Bytes (written only through `/v1`
/// as base64 text) go out as that text.
struct OutValue<'a>(&'a FieldValue);

impl Serialize for OutValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            FieldValue::Long(v) => s.serialize_i64(*v),
            // serde_json writes NaN and infinities as null; the engine
            // stores neither from any API.
            FieldValue::Double(v) => s.serialize_f64(*v),
            FieldValue::Bool(v) => s.serialize_bool(*v),
            FieldValue::String(v) => s.serialize_str(v),
            FieldValue::Bytes(v) => {
                use base64::Engine as _;
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
            }
        }
    }
}

#[cfg(test)]
mod tests;
