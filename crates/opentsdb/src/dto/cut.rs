//! A put array parsed with its elements' member objects (the tags) cut
//! out. sonic-rs checks an object it skips token by token, and the tags
//! were two thirds of a put body's parse (BENCHMARKS.md, "Where a put
//! body's parse goes"), though agents send a host's metrics one after
//! another with the same tags text. Here each object's text is checked
//! only when it differs from the one before, and the parser reads a copy
//! of the body with `{}` in each object's place; the strings it returns
//! map back to the body.

use super::{Capped, PointDto, Scalar, TYPICAL_ELEMENT_BYTES, TagsDto};
use serde::de::{DeserializeSeed, IgnoredAny};
use std::borrow::Cow;

/// The elements of the array `body`, whose member objects lie at
/// `objects` (`nesting::member_objects`); `None` when anything is amiss
/// (not JSON, too many elements, no object to cut): the caller then
/// parses the body whole, for the same answer.
pub(super) fn parse<'a>(
    body: &'a str,
    objects: &[(usize, usize)],
    max: usize,
) -> Option<Vec<PointDto<'a>>> {
    if objects.is_empty() {
        return None;
    }
    let mut before: Option<&str> = None;
    for &(start, end) in objects {
        let text = body.get(start..end)?;
        if before != Some(text) {
            sonic_rs::from_str::<IgnoredAny>(text).ok()?;
        }
        before = Some(text);
    }
    // The body without the objects, `{}` in each place (a copy padded
    // to keep the offsets had the parser skip the padding byte by byte).
    let cut: usize = objects.iter().map(|&(start, end)| end - start).sum();
    let mut copy = Vec::with_capacity(body.len().saturating_sub(cut) + 2 * objects.len());
    let mut places = Vec::with_capacity(objects.len());
    let mut at = 0;
    for &(start, end) in objects {
        copy.extend_from_slice(body.as_bytes().get(at..start)?);
        places.push(copy.len());
        copy.extend_from_slice(b"{}");
        at = end;
    }
    copy.extend_from_slice(body.as_bytes().get(at..)?);
    let mut de = sonic_rs::Deserializer::from_slice(&copy);
    let capped = Capped::<true> {
        max,
        expected: body.len() / TYPICAL_ELEMENT_BYTES,
    };
    let points = capped.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let back = Back {
        body,
        copy: copy.as_ptr() as usize,
        objects,
        places: &places,
    };
    points.into_iter().map(|p| back.point(p)).collect()
}

/// `f` of a member that is there; `None` when `f` fails.
fn each<T, U>(member: Option<T>, f: impl FnOnce(T) -> Option<U>) -> Option<Option<U>> {
    match member {
        Some(v) => f(v).map(Some),
        None => Some(None),
    }
}

/// Maps what was parsed from the copy back to the body.
struct Back<'a, 'o> {
    body: &'a str,
    /// The copy's address.
    copy: usize,
    objects: &'o [(usize, usize)],
    /// Where each object's `{}` is in the copy.
    places: &'o [usize],
}

impl<'a> Back<'a, '_> {
    fn point(&self, p: PointDto<'_>) -> Option<PointDto<'a>> {
        Some(PointDto {
            metric: each(p.metric, |v| self.scalar(v))?,
            timestamp: each(p.timestamp, |v| self.scalar(v))?,
            value: each(p.value, |v| self.scalar(v))?,
            tags: each(p.tags, |t| self.tags(t))?,
            fields: each(p.fields, |f| self.fields(f))?,
        })
    }

    /// The body's bytes that `s`, text between the cut objects in the
    /// copy, came from; text the parser had to unescape is its own.
    fn text(&self, s: Cow<'_, str>) -> Option<Cow<'a, str>> {
        let b = match s {
            Cow::Borrowed(b) => b,
            Cow::Owned(o) => return Some(Cow::Owned(o)),
        };
        let at = (b.as_ptr() as usize).checked_sub(self.copy)?;
        // After the i-th `{}` the copy is the body from that object's end.
        let i = self.places.partition_point(|&place| place < at);
        let from = match i.checked_sub(1) {
            None => at,
            Some(before) => {
                let place = *self.places.get(before)?;
                let (_, end) = *self.objects.get(before)?;
                end + at.checked_sub(place + 2)?
            }
        };
        self.body.get(from..from + b.len()).map(Cow::Borrowed)
    }

    /// The object a `{}` left in the copy stands for.
    fn object(&self, raw: &str) -> Option<&'a str> {
        if raw != "{}" {
            return None;
        }
        let at = (raw.as_ptr() as usize).checked_sub(self.copy)?;
        let i = self.places.binary_search(&at).ok()?;
        let &(start, end) = self.objects.get(i)?;
        self.body.get(start..end)
    }

    fn scalar(&self, v: Scalar<'_>) -> Option<Scalar<'a>> {
        Some(match v {
            Scalar::Str(s) => Scalar::Str(self.text(s)?),
            Scalar::Null => Scalar::Null,
            Scalar::Bool(b) => Scalar::Bool(b),
            Scalar::I64(i) => Scalar::I64(i),
            Scalar::U64(u) => Scalar::U64(u),
            Scalar::F64(f) => Scalar::F64(f),
            Scalar::Composite => Scalar::Composite,
        })
    }

    /// Tags stay text: an object's is the body's, anything else its own.
    fn tags(&self, t: TagsDto<'_>) -> Option<TagsDto<'a>> {
        match t {
            TagsDto::Raw(raw) => Some(TagsDto::Raw(match self.object(&raw) {
                Some(object) => Cow::Borrowed(object),
                None => self.text(raw)?,
            })),
            // Read as text in the copy: nothing else comes back.
            TagsDto::Map(_) | TagsDto::NotAnObject => None,
        }
    }

    /// Fields are parsed, from the body's text of their object, as the
    /// whole body's parse would have (their text was checked above).
    fn fields(&self, f: TagsDto<'_>) -> Option<TagsDto<'a>> {
        let TagsDto::Raw(raw) = f else { return None };
        Some(match self.object(&raw) {
            Some(object) => sonic_rs::from_str::<TagsDto<'a>>(object).ok()?,
            // Only an object is one; a member object of an element is
            // always cut.
            None => TagsDto::NotAnObject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_points, parse_whole};

    /// Bodies with and without the objects cut out come to the same
    /// points or the same error.
    fn same(body: &str) {
        let first = body.bytes().find(|b| !b.is_ascii_whitespace());
        assert_eq!(
            parse_points(body.as_bytes(), 1000),
            parse_whole(body.as_bytes(), first.as_ref(), 1000),
            "{body}"
        );
    }

    #[test]
    fn cut_objects_give_what_the_whole_parse_gives() {
        let tags = [
            r#"{"host":"a","dc":"x"}"#,
            r#"{"host":"a\u0041","dc":"x"}"#,
            r#"{"host":"a","host":"b"}"#,
            r#"{ }"#,
            r#"{"h":{"n":[1,{"m":2}]}}"#,
            r#""text""#,
            r#"[{"a":"b"}]"#,
            r#"null"#,
            r#"{"a":}"#,
            r#"{"a":"b""#,
        ];
        let fields = [r#"{"f":1.5,"g":"x"}"#, r#"{"f":null}"#, r#"7"#, r#"{}"#];
        let mut bodies = Vec::new();
        for (i, t) in tags.iter().enumerate() {
            let f = fields[i % fields.len()];
            bodies.push(format!(
                r#"[{{"metric":"m","timestamp":1,"value":2,"tags":{t}}},{{"metric":{{"x":1}},"tags":{t},"fields":{f},"extra":{{"y":[2]}}}}]"#
            ));
            bodies.push(format!(
                r#"[ {{"tags":{t},"metric":"m\"{{","value":"3"}} , {{"tags":{t}, "tags":{{"z":"1"}}}} ]"#
            ));
            bodies.push(format!(r#"[{{"metric":"m","tags":{t}}},[{{"a":1}}]]"#));
            bodies.push(format!(r#"[{{"metric":"m","tags":{t}}}"#));
        }
        bodies.push(r#"[{"tags":{"a":"b"}}] x"#.into());
        bodies.push(r#"[{"tags":{"a":"b"}},{"tags":{"a":"b"}},{"tags":{"a":"c"}}]"#.into());
        for body in &bodies {
            same(body);
        }
        let many = format!("[{}]", vec![r#"{"tags":{"a":"b"}}"#; 1001].join(","));
        same(&many);
    }

    #[test]
    fn random_bodies_parse_alike_cut_or_whole() {
        let values = [
            r#"{"host":"h1","dc":"x"}"#,
            r#"{"host":"h1","dc":"x"}"#,
            r#"{"host":"h"2","dc":"é"}"#,
            r#"{"a":{"b":[{"c":"}"}]}}"#,
            r#"{}"#,
            r#""m""#,
            r#"12.5"#,
            r#"[1,{"x":2}]"#,
            r#"null"#,
        ];
        let keys = [
            r#""tags""#,
            r#""metric""#,
            r#""value""#,
            r#""fields""#,
            r#""x"""#,
        ];
        let spaces = ["", " ", "\n  "];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut body = String::from("[");
            for e in 0..next(6) {
                if e > 0 {
                    body.push(',');
                }
                body.push_str(spaces[next(3)]);
                body.push('{');
                for m in 0..next(5) {
                    if m > 0 {
                        body.push(',');
                    }
                    body.push_str(keys[next(keys.len())]);
                    body.push_str(spaces[next(3)]);
                    body.push(':');
                    body.push_str(values[next(values.len())]);
                }
                body.push('}');
            }
            body.push(']');
            // Now and then one byte removed or doubled.
            let mut bytes = body.into_bytes();
            if next(4) == 0 && !bytes.is_empty() {
                let at = next(bytes.len());
                if next(2) == 0 {
                    bytes.remove(at);
                } else {
                    bytes.insert(at, bytes[at]);
                }
            }
            if let Ok(body) = String::from_utf8(bytes) {
                same(&body);
            }
        }
    }
}
