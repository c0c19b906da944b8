//! The answer to a querier's request for the per-series half of a Baidu
//! series query: the shards the owner answered for, the fields' kinds
//! there, the counts, and each series' rows (docs/cluster.md, "The
//! querier").
//!
//! ```text
//! "SDR1" | shard count, then each shard | consumed | raw
//! field count, then each field's kind (0 none, else 1 + kind byte)
//! series count, then each: key, row count, then each row: time gap,
//!   then per field 0 (absent) or 1 and the value
//! ```

use super::outcome::{byte_kind, kind_byte};
use super::{FrameError, count, get_key, get_shards, invalid, put_key, put_shards};
use sundial_codec::value::{get_tagged_value, put_value};
use sundial_codec::varint::{get, put, take, unzigzag, zigzag};
use sundial_model::series_query::RowValues;
use sundial_query::series_query::SeriesHalf;

const MAGIC: &[u8; 4] = b"SDR1";

/// The shards answered for and what their series gave.
#[derive(Debug, Default)]
pub struct RowsAnswer {
    pub shards: Vec<u32>,
    pub half: SeriesHalf,
}

pub(crate) fn encode_rows(answer: &RowsAnswer) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_shards(&mut out, &answer.shards);
    let half = &answer.half;
    put(&mut out, half.consumed);
    put(&mut out, half.raw);
    put(&mut out, half.kinds.len() as u64);
    for kind in &half.kinds {
        out.push(kind.map_or(0, |k| 1 + kind_byte(k)));
    }
    put(&mut out, half.series.len() as u64);
    for (key, rows) in &half.series {
        put_key(&mut out, key);
        put(&mut out, rows.len() as u64);
        let mut last = 0i64;
        for (ts, values) in rows {
            put(&mut out, zigzag(ts.wrapping_sub(last)));
            last = *ts;
            for field in 0..half.kinds.len() {
                match values.get(field).and_then(Option::as_ref) {
                    Some(v) => {
                        out.push(1);
                        put_value(&mut out, v);
                    }
                    None => out.push(0),
                }
            }
        }
    }
    out
}

/// Decodes an answer; damaged or hostile bytes are an error, never a
/// panic or an allocation beyond the bytes received.
pub(crate) fn decode_rows(bytes: &[u8]) -> Result<RowsAnswer, FrameError> {
    let mut input = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    let shards = get_shards(&mut input)?;
    let consumed = get(&mut input)?;
    let raw = get(&mut input)?;
    let kinds = (0..count(&mut input)?)
        .map(|_| match take(&mut input, 1)?[0] {
            0 => Ok(None),
            b => byte_kind(b - 1).map(Some),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let width = kinds.len();
    let mut series = Vec::new();
    for _ in 0..count(&mut input)? {
        let key = get_key(&mut input)?;
        let n = count(&mut input)?;
        let mut rows = Vec::with_capacity(n);
        let mut last = 0i64;
        for _ in 0..n {
            last = last.wrapping_add(unzigzag(get(&mut input)?));
            let mut values = RowValues::with_capacity(width);
            for _ in 0..width {
                values.push(match take(&mut input, 1)?[0] {
                    0 => None,
                    1 => {
                        let tag = take(&mut input, 1)?[0];
                        Some(get_tagged_value(tag, &mut input)?)
                    }
                    _ => return Err(invalid("value presence").into()),
                });
            }
            rows.push((last, values));
        }
        series.push((key, rows));
    }
    if !input.is_empty() {
        return Err(invalid("bytes after the last series").into());
    }
    Ok(RowsAnswer {
        shards,
        half: SeriesHalf {
            kinds,
            series,
            consumed,
            raw,
        },
    })
}

const EXPORT_MAGIC: &[u8; 4] = b"SDE1";

/// One export page of one shard: its series' rows (a column per field
/// asked for), and whether series follow.
#[derive(Debug, Default)]
pub struct ExportAnswer {
    pub rows: RowsAnswer,
    pub more: bool,
}

/// `"SDE1" | 1 when series follow, else 0 | the rows answer`.
pub(crate) fn encode_export(answer: &ExportAnswer) -> Vec<u8> {
    let mut out = EXPORT_MAGIC.to_vec();
    out.push(u8::from(answer.more));
    out.extend(encode_rows(&answer.rows));
    out
}

pub(crate) fn decode_export(bytes: &[u8]) -> Result<ExportAnswer, FrameError> {
    let mut input = bytes.strip_prefix(EXPORT_MAGIC).ok_or(FrameError::Magic)?;
    let more = match take(&mut input, 1)?[0] {
        0 => false,
        1 => true,
        _ => return Err(invalid("export page flag").into()),
    };
    Ok(ExportAnswer {
        rows: decode_rows(input)?,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_model::{FieldValue, Kind, SeriesKey};

    #[test]
    fn an_answer_comes_back_as_it_was_sent_and_damage_is_an_error() {
        let key = |h: &str| SeriesKey::new("wind", vec![("site".to_owned(), h.to_owned())]);
        let row =
            |t, a: Option<FieldValue>, b: Option<FieldValue>| (t, RowValues::from_vec(vec![a, b]));
        let answer = RowsAnswer {
            shards: vec![2, 5],
            half: SeriesHalf {
                kinds: vec![Some(Kind::Numeric), Some(Kind::String)],
                series: vec![
                    (
                        key("a"),
                        vec![
                            row(1_000, Some(FieldValue::Double(1.5)), None),
                            row(2_000, None, Some(FieldValue::String("n".into()))),
                            row(
                                3_000,
                                Some(FieldValue::Long(-7)),
                                Some(FieldValue::String(String::new())),
                            ),
                        ],
                    ),
                    (key("b ü"), Vec::new()),
                ],
                consumed: 9,
                raw: 4,
            },
        };
        let bytes = encode_rows(&answer);
        let back = decode_rows(&bytes).map_err(|e| e.to_string());
        assert_eq!(
            format!("{back:?}"),
            format!("{:?}", Ok::<_, String>(&answer))
        );
        for cut in 0..bytes.len() {
            assert!(decode_rows(&bytes[..cut]).is_err(), "cut at {cut}");
        }

        // The same rows as an export page with more to come.
        let page = ExportAnswer {
            rows: answer,
            more: true,
        };
        let bytes = encode_export(&page);
        let back = decode_export(&bytes).map_err(|e| e.to_string());
        assert_eq!(format!("{back:?}"), format!("{:?}", Ok::<_, String>(page)));
        for cut in 0..bytes.len() {
            assert!(decode_export(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
