//! The answer to a querier's request for the per-series half of an
//! OpenTSDB query: the shards the owner answered for and their staged
//! series, in the byte form the internal protocol carries (docs/cluster.md,
//! "The querier"). Keys are written as in frames; a series' timestamps as
//! gaps from the previous one.
//!
//! ```text
//! "SDS1" | shard count, then each shard | raw points | metric known (0/1)
//! series count, then each: key, point count, then each: time gap, value
//! ```

use super::{FrameError, count, get_key, get_shards, invalid, put_key, put_shards};
use sundial_codec::value::{get_tagged_value, put_value};
use sundial_codec::varint::{get, get_usize, put, take, unzigzag, zigzag};
use sundial_query::StagedSeries;

const MAGIC: &[u8; 4] = b"SDS1";

/// The shards answered for and what their series gave.
#[derive(Debug, Default)]
pub struct StagedAnswer {
    pub shards: Vec<u32>,
    pub staged: StagedSeries,
}

pub(crate) fn encode_staged(answer: &StagedAnswer) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_shards(&mut out, &answer.shards);
    put(&mut out, answer.staged.raw_points as u64);
    out.push(u8::from(answer.staged.metric_known));
    put(&mut out, answer.staged.series.len() as u64);
    for (key, points) in &answer.staged.series {
        put_key(&mut out, key);
        put(&mut out, points.len() as u64);
        let mut last = 0i64;
        for (ts, value) in points {
            put(&mut out, zigzag(ts.wrapping_sub(last)));
            last = *ts;
            put_value(&mut out, value);
        }
    }
    out
}

/// Decodes an answer; damaged or hostile bytes are an error, never a
/// panic or an allocation beyond the bytes received.
pub(crate) fn decode_staged(bytes: &[u8]) -> Result<StagedAnswer, FrameError> {
    let mut input = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    let shards = get_shards(&mut input)?;
    let raw_points = get_usize(&mut input)?;
    let metric_known = match take(&mut input, 1)? {
        [0] => false,
        [1] => true,
        _ => return Err(invalid("metric flag").into()),
    };
    let mut series = Vec::new();
    for _ in 0..count(&mut input)? {
        let key = get_key(&mut input)?;
        let n = count(&mut input)?;
        let mut points = Vec::with_capacity(n);
        let mut last = 0i64;
        for _ in 0..n {
            last = last.wrapping_add(unzigzag(get(&mut input)?));
            let tag = take(&mut input, 1)?[0];
            points.push((last, get_tagged_value(tag, &mut input)?));
        }
        series.push((key, points));
    }
    if !input.is_empty() {
        return Err(invalid("bytes after the last series").into());
    }
    Ok(StagedAnswer {
        shards,
        staged: StagedSeries {
            series,
            raw_points,
            metric_known,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_model::{FieldValue, SeriesKey};

    #[test]
    fn an_answer_comes_back_as_it_was_sent_and_damage_is_an_error() {
        let key = |h: &str| SeriesKey::new("cpu", vec![("host".to_owned(), h.to_owned())]);
        let answer = StagedAnswer {
            shards: vec![0, 3],
            staged: StagedSeries {
                series: vec![
                    (
                        key("a"),
                        vec![
                            (1_700_000_000_000, FieldValue::Double(1.5)),
                            (1_700_000_060_000, FieldValue::Double(f64::NAN)),
                            (1_700_000_120_000, FieldValue::Long(-3)),
                        ],
                    ),
                    (key("b ü"), vec![(-5, FieldValue::String("x".into()))]),
                ],
                raw_points: 17,
                metric_known: true,
            },
        };
        let bytes = encode_staged(&answer);
        let back = decode_staged(&bytes).map_err(|e| e.to_string());
        assert_eq!(
            format!("{back:?}"),
            format!("{:?}", Ok::<_, String>(answer))
        );
        for cut in 0..bytes.len() {
            assert!(decode_staged(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
