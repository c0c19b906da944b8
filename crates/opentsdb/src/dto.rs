//! Borrowed views of `/api/put` bodies: elements are parsed without
//! building a `serde_json::Value` tree, strings borrow from the body where
//! they have no escapes, and unknown members are skipped. Duplicate members
//! keep the last occurrence, as `serde_json::Value` would.

mod cut;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Any JSON value, with only scalars kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'a, str>),
    /// An array or an object.
    Composite,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Scalar::I64(i),
            Err(_) => Scalar::U64(v),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
}

/// The `tags` member: the pairs of an object, or a note that it was not one.
/// A JSON string, borrowed from the body unless it has escapes (serde's
/// `Cow<str>` always copies: 14 allocations per put element).
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Tag pairs of an element as received (later duplicates replaced).
pub(crate) type TagPairs<'a> = [(Cow<'a, str>, Scalar<'a>)];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TagsDto<'a> {
    /// Pairs in first-seen key order; a repeated key keeps its last value.
    Map(Vec<(Cow<'a, str>, Scalar<'a>)>),
    NotAnObject,
    /// The JSON text of a put element's tags, parsed only when the key
    /// cache does not know it.
    Raw(Cow<'a, str>),
}

impl TagsDto<'_> {
    /// The pairs of raw tags (text that does not parse is not an object).
    pub(crate) fn parsed(&self) -> Cow<'_, TagsDto<'_>> {
        match self {
            TagsDto::Raw(text) => {
                Cow::Owned(sonic_rs::from_str::<TagsDto<'_>>(text).unwrap_or(TagsDto::NotAnObject))
            }
            other => Cow::Borrowed(other),
        }
    }
}

/// Tags kept as their JSON text: sonic-rs skips the object with SIMD and
/// hands out the slice (`LazyValue`), which only its own deserializer can.
struct RawTags<'a>(TagsDto<'a>);

impl<'de> Deserialize<'de> for RawTags<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = sonic_rs::LazyValue::deserialize(d)?;
        Ok(RawTags(TagsDto::Raw(raw.as_raw_cow())))
    }
}

impl<'de> Deserialize<'de> for TagsDto<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TagsDto<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tags object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs: Vec<(Cow<'de, str>, Scalar<'de>)> = Vec::with_capacity(8);
                while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                    let v: Scalar<'de> = map.next_value()?;
                    match pairs.iter_mut().find(|(pk, _)| *pk == k) {
                        Some(slot) => slot.1 = v,
                        None => pairs.push((k, v)),
                    }
                }
                Ok(TagsDto::Map(pairs))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TagsDto::NotAnObject)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TagsDto::NotAnObject)
            }
        }
        d.deserialize_any(V)
    }
}

/// One `/api/put` element: the four members OpenTSDB reads, and the
/// `fields` of an `/api/mput` element.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PointDto<'a> {
    pub(crate) metric: Option<Scalar<'a>>,
    pub(crate) timestamp: Option<Scalar<'a>>,
    pub(crate) value: Option<Scalar<'a>>,
    pub(crate) tags: Option<TagsDto<'a>>,
    /// Field name → value, same shape as tags.
    pub(crate) fields: Option<TagsDto<'a>>,
}

impl<'de> Deserialize<'de> for PointDto<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PointVisitor::<false>)
    }
}

/// A put element; with `RAW_FIELDS` its `fields` are kept as their text
/// like its tags (a body with its member objects cut out, see `cut`).
struct PointVisitor<const RAW_FIELDS: bool>;

impl<'de, const RAW_FIELDS: bool> Visitor<'de> for PointVisitor<RAW_FIELDS> {
    type Value = PointDto<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a data point object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut p = PointDto::default();
        while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
            match k.as_ref() {
                "metric" => p.metric = Some(map.next_value()?),
                "timestamp" => p.timestamp = Some(map.next_value()?),
                "value" => p.value = Some(map.next_value()?),
                "tags" => p.tags = Some(map.next_value::<RawTags<'de>>()?.0),
                "fields" if RAW_FIELDS => p.fields = Some(map.next_value::<RawTags<'de>>()?.0),
                "fields" => p.fields = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// One element of a put array, seeded with how its `fields` are read.
struct Element<const RAW_FIELDS: bool>;

impl<'de, const RAW_FIELDS: bool> serde::de::DeserializeSeed<'de> for Element<RAW_FIELDS> {
    type Value = PointDto<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(PointVisitor::<RAW_FIELDS>)
    }
}

/// Parses a put body in one pass: an array of data points or a single one.
/// `Err` carries the OpenTSDB message, prefixed `json: ` when the body is
/// not the JSON a put needs (which OpenTSDB reports as unparseable).
pub(crate) fn parse_points(body: &[u8], max: usize) -> Result<Vec<PointDto<'_>>, ParseError> {
    // sonic-rs panics on invalid UTF-8 inside a lazily kept value (the
    // tags): such a body is not JSON, and is refused before parsing.
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => return Err(ParseError::Json(e.to_string())),
    };
    // sonic-rs skips unread values recursively with no depth limit: a body
    // of a million `[` would overflow the stack and abort the server.
    let Some(objects) = super::nesting::member_objects(body, MAX_NESTING) else {
        return Err(ParseError::Json(format!(
            "arrays and objects nest deeper than {MAX_NESTING} levels"
        )));
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    // Anything the cut body does not parse into is parsed whole, which
    // gives the same points or error either way.
    if first == Some(&b'[')
        && let Some(points) = cut::parse(text, &objects, max)
    {
        return Ok(points);
    }
    parse_whole(body, first, max)
}

/// [`parse_points`] without cutting the member objects out first.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn parse_whole_for_fuzzing(
    body: &[u8],
    max: usize,
) -> Result<Vec<PointDto<'_>>, ParseError> {
    // Bodies refused before any parse are refused alike.
    if std::str::from_utf8(body).is_err()
        || super::nesting::member_objects(body, MAX_NESTING).is_none()
    {
        return parse_points(body, max);
    }
    parse_whole(body, body.iter().find(|b| !b.is_ascii_whitespace()), max)
}

/// The elements of `body` parsed whole (`first`: its first byte that is
/// not whitespace).
fn parse_whole<'a>(
    body: &'a [u8],
    first: Option<&u8>,
    max: usize,
) -> Result<Vec<PointDto<'a>>, ParseError> {
    // sonic-rs parses with SIMD: the largest single cost of a put is here.
    let parsed = match first {
        Some(b'[') => {
            let mut de = sonic_rs::Deserializer::from_slice(body);
            let capped = Capped::<false> {
                max,
                expected: body.len() / TYPICAL_ELEMENT_BYTES,
            };
            serde::de::DeserializeSeed::deserialize(capped, &mut de)
                .and_then(|points| de.end().map(|()| points))
        }
        Some(b'{') => sonic_rs::from_slice::<PointDto<'_>>(body).map(|p| vec![p]),
        _ => {
            return match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => Err(ParseError::Shape),
                Err(e) => Err(ParseError::Json(e.to_string())),
            };
        }
    };
    parsed.map_err(|e| {
        let text = e.to_string();
        if text.contains(TOO_MANY) {
            ParseError::TooMany { max }
        } else {
            ParseError::Json(text)
        }
    })
}

/// Deepest nesting a put body may have (serde_json's own limit); a put
/// needs three: the array, a point, its tags.
const MAX_NESTING: usize = 128;

/// Why a put body was not parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not JSON (the parser's message).
    Json(String),
    /// JSON, but neither an object nor an array.
    Shape,
    /// More elements than a request may carry.
    TooMany { max: usize },
}

/// Marks the error the capped visitor raises (a message is all serde's
/// error type carries).
const TOO_MANY: &str = "sundial: too many data points";

/// An array of at most `max` elements, refused as soon as it holds more,
/// so a small body of `{},{},...` cannot make millions of them.
struct Capped<const RAW_FIELDS: bool> {
    max: usize,
    /// Elements the body likely holds, reserved up front: grown by
    /// doubling, the vector of a 5 000-point put (800 KB) was copied a
    /// dozen times, each time onto fresh pages.
    expected: usize,
}

/// Bytes of a put element with a few tags, about: an estimate that errs
/// high only reserves address space the vector never touches.
const TYPICAL_ELEMENT_BYTES: usize = 100;

impl<'de, const RAW_FIELDS: bool> serde::de::DeserializeSeed<'de> for Capped<RAW_FIELDS> {
    type Value = Vec<PointDto<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, const RAW_FIELDS: bool> Visitor<'de> for Capped<RAW_FIELDS> {
    type Value = Vec<PointDto<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of data points")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let expected = seq.size_hint().unwrap_or(self.expected);
        let mut out = Vec::with_capacity(expected.min(self.max).min(1 << 16));
        while let Some(p) = seq.next_element_seed(Element::<RAW_FIELDS>)? {
            if out.len() == self.max {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            out.push(p);
        }
        Ok(out)
    }
}

/// The elements at `wanted` (ascending indexes) of a put body as
/// `serde_json::Value`s, to echo failed points exactly as received (spec
/// 7.7); the others are skipped, not built.
pub(crate) fn echo_elements(body: &[u8], wanted: &[usize]) -> Vec<serde_json::Value> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return serde_json::from_slice(body)
            .map(|v| vec![v])
            .unwrap_or_default();
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::de::DeserializeSeed::deserialize(Picked(wanted), &mut de).unwrap_or_default()
}

/// The elements of a JSON array at the given indexes.
struct Picked<'w>(&'w [usize]);

impl<'de> serde::de::DeserializeSeed<'de> for Picked<'_> {
    type Value = Vec<serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Picked<'_> {
    type Value = Vec<serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(self.0.len());
        let mut wanted = self.0.iter().peekable();
        let mut i = 0;
        while let Some(&&next) = wanted.peek() {
            if i == next {
                match seq.next_element::<serde_json::Value>()? {
                    Some(v) => out.push(v),
                    None => break,
                }
                wanted.next();
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        // The rest is skipped (the parser wants the array read to its end).
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_before_the_parser() {
        let deep = [
            "[".repeat(200_000),
            format!(r#"[{{"metric":"m","value":{}}}]"#, "[".repeat(200_000)),
            format!(
                r#"[{{"metric":"m","tags":{}}}]"#,
                r#"{"a":"#.repeat(200_000)
            ),
        ];
        for body in deep {
            let got = parse_points(body.as_bytes(), 10);
            assert!(
                matches!(&got, Err(ParseError::Json(m)) if m.contains("nest deeper")),
                "{got:?}"
            );
        }
    }
}
