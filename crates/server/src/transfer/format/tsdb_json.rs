//! OpenTSDB JSON documents (an `/api/put` body: an array of data points
//! or one) read typed, names borrowed from the buffer: an element repeats
//! its metric and every tag, and allocating them per point cost more than
//! all else an import does.

use super::{KeyRef, Sink, opentsdb_millis};
use crate::transfer::{DEFAULT_FIELD, Val};
use anyhow::bail;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Puts a document's points into `sink`.
pub(crate) fn write_document(
    Document(elements): Document<'_>,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    for e in elements {
        let tags: Vec<(&str, &str)> = e.tags.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        let ts = opentsdb_millis(e.timestamp.0);
        let key = |field| KeyRef {
            metric: &e.metric,
            tags: &tags,
            field,
        };
        match (e.value, &e.fields) {
            (Some(v), _) => sink.point(&key(DEFAULT_FIELD), ts, number_text(v))?,
            (None, Some(fields)) => {
                for (field, v) in fields {
                    sink.point(&key(field), ts, number_text(v.clone()))?;
                }
            }
            (None, None) => bail!("no value"),
        }
    }
    Ok(())
}

/// OpenTSDB reads a string value as a number when it is one.
fn number_text(v: Val) -> Val {
    match v {
        Val::Text(s) => Val::from_text(&s),
        other => other,
    }
}

/// One data point; members OpenTSDB does not read are skipped.
#[derive(Deserialize)]
struct Element<'a> {
    #[serde(borrow)]
    metric: Cow<'a, str>,
    timestamp: Time,
    #[serde(default)]
    value: Option<Val>,
    /// Alibaba's multi-field form.
    #[serde(default)]
    fields: Option<std::collections::BTreeMap<String, Val>>,
    #[serde(default, borrow)]
    tags: Tags<'a>,
}

/// An array of elements or one element.
pub(crate) struct Document<'a>(Vec<Element<'a>>);

impl<'de> Deserialize<'de> for Document<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Document<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of data points or one data point")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element()? {
                    out.push(e);
                }
                Ok(Document(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Document<'de>, A::Error> {
                let one = Element::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Document(vec![one]))
            }
        }
        d.deserialize_any(V)
    }
}

/// A timestamp as a number or as digits in a string.
struct Time(i64);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Val::deserialize(d)? {
            Val::Long(t) => Ok(Time(t)),
            Val::Text(s) => s.parse().map(Time).map_err(de::Error::custom),
            _ => Err(de::Error::custom("a timestamp must be an integer")),
        }
    }
}

/// Tag pairs in body order; numbers and booleans as their text.
#[derive(Default)]
struct Tags<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Tags<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tags<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of tags")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags<'de>, A::Error> {
                let mut out = Vec::new();
                // Keys through TagValue too: serde's own Cow always copies.
                while let Some((TagValue(k), TagValue(v))) =
                    map.next_entry::<TagValue<'de>, TagValue<'de>>()?
                {
                    out.push((k, v));
                }
                Ok(Tags(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct TagValue<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for TagValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TagValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tag value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<TagValue<'de>, E> {
                Ok(TagValue(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TagValue<'de>, E> {
                Ok(TagValue(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TagValue<'de>, E> {
                Ok(TagValue(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TagValue<'de>, E> {
                Ok(TagValue(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TagValue<'de>, E> {
                Ok(TagValue(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TagValue<'de>, E> {
                Ok(TagValue(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}
