//! The answer to a querier's request for the per-series half of a Baidu
//! query that folds per bucket (`series_query::folds`): each group's
//! statistics per bucket over the owner's series, so a 10-minute maximum
//! over every series sends one number set per group and bucket, not every
//! point (docs/cluster.md, "The querier").
//!
//! ```text
//! "SDG2" | shard count, then each shard | field count, then each kind
//! (0 none, else 1 + kind byte) | points folded | group count, then each:
//!   group-by values (0 absent, or 1 and the text), tags, series keys,
//!   bucket count, then each: time gap, statistics
//! statistics: count | the Long values' sum (16 bytes LE) | the other
//!   values' exact sum (docs/format/exact-sum.md) | all long (0/1) | min,
//!   max (8 bytes LE each) | long min, long max (zigzag)
//! ```

use super::outcome::{byte_kind, kind_byte};
use super::{
    FrameError, count, get_key, get_shards, get_str, invalid, put_key, put_shards, put_str,
};
use sundial_codec::varint::{get, put, take, unzigzag, zigzag};
use sundial_model::ExactSum;
use sundial_query::series_query::{FoldedGroup, FoldedHalf};
use sundial_query::stats::{Stats, StatsParts};

const MAGIC: &[u8; 4] = b"SDG2";

/// The shards answered for and what their series folded to.
#[derive(Debug, Default)]
pub struct FoldedAnswer {
    pub shards: Vec<u32>,
    pub half: FoldedHalf,
}

pub(crate) fn encode_folded(answer: &FoldedAnswer) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_shards(&mut out, &answer.shards);
    let half = &answer.half;
    put(&mut out, half.kinds.len() as u64);
    for kind in &half.kinds {
        out.push(kind.map_or(0, |k| 1 + kind_byte(k)));
    }
    put(&mut out, half.points);
    put(&mut out, half.groups.len() as u64);
    for (values, group) in &half.groups {
        put_values(&mut out, values);
        put(&mut out, group.tags.len() as u64);
        for (k, v) in &group.tags {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        put(&mut out, group.keys.len() as u64);
        for key in &group.keys {
            put_key(&mut out, key);
        }
        put(&mut out, group.buckets.len() as u64);
        let mut last = 0i64;
        for (ts, stats) in &group.buckets {
            put(&mut out, zigzag(ts.wrapping_sub(last)));
            last = *ts;
            put_stats(&mut out, &stats.parts());
        }
    }
    out
}

/// Decodes an answer; damaged or hostile bytes are an error, never a
/// panic or an allocation beyond the bytes received.
pub(crate) fn decode_folded(bytes: &[u8]) -> Result<FoldedAnswer, FrameError> {
    let mut input = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    let shards = get_shards(&mut input)?;
    let kinds = (0..count(&mut input)?)
        .map(|_| match take(&mut input, 1)?[0] {
            0 => Ok(None),
            b => byte_kind(b - 1).map(Some),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let points = get(&mut input)?;
    let mut groups = Vec::new();
    for _ in 0..count(&mut input)? {
        let values = get_values(&mut input)?;
        let tags = (0..count(&mut input)?)
            .map(|_| Ok((get_str(&mut input)?, get_str(&mut input)?)))
            .collect::<Result<Vec<_>, sundial_codec::Error>>()?;
        let keys = (0..count(&mut input)?)
            .map(|_| get_key(&mut input))
            .collect::<Result<Vec<_>, _>>()?;
        let mut group = FoldedGroup {
            tags,
            keys,
            ..FoldedGroup::default()
        };
        let mut last = 0i64;
        for _ in 0..count(&mut input)? {
            last = last.wrapping_add(unzigzag(get(&mut input)?));
            group
                .buckets
                .insert(last, Stats::from_parts(get_stats(&mut input)?));
        }
        groups.push((values, group));
    }
    if !input.is_empty() {
        return Err(invalid("bytes after the last group").into());
    }
    Ok(FoldedAnswer {
        shards,
        half: FoldedHalf {
            kinds,
            points,
            groups,
        },
    })
}

/// Group-by values: each absent (0) or present (1 and the text).
pub(super) fn put_values(out: &mut Vec<u8>, values: &[Option<String>]) {
    put(out, values.len() as u64);
    for v in values {
        match v {
            Some(v) => {
                out.push(1);
                put_str(out, v);
            }
            None => out.push(0),
        }
    }
}

pub(super) fn get_values(input: &mut &[u8]) -> Result<Vec<Option<String>>, sundial_codec::Error> {
    (0..count(input)?)
        .map(|_| match take(input, 1)?[0] {
            0 => Ok(None),
            1 => get_str(input).map(Some),
            _ => Err(invalid("group value")),
        })
        .collect()
}

pub(super) fn put_stats(out: &mut Vec<u8>, s: &StatsParts) {
    put(out, s.count);
    out.extend_from_slice(&s.long_sum.to_le_bytes());
    s.double_sum.encode(out);
    out.push(u8::from(s.all_long));
    for f in [s.min, s.max] {
        out.extend_from_slice(&f.to_le_bytes());
    }
    put(out, zigzag(s.long_min));
    put(out, zigzag(s.long_max));
}

pub(super) fn get_stats(input: &mut &[u8]) -> Result<StatsParts, sundial_codec::Error> {
    let count = get(input)?;
    let long_sum = i128::from_le_bytes(
        take(input, 16)?
            .try_into()
            .map_err(|_| invalid("long sum"))?,
    );
    let double_sum = ExactSum::decode(input).ok_or_else(|| invalid("exact sum"))?;
    let all_long = match take(input, 1)?[0] {
        0 => false,
        1 => true,
        _ => return Err(invalid("all-long flag")),
    };
    let mut float = || -> Result<f64, sundial_codec::Error> {
        Ok(f64::from_le_bytes(
            take(input, 8)?.try_into().map_err(|_| invalid("number"))?,
        ))
    };
    let (min, max) = (float()?, float()?);
    Ok(StatsParts {
        count,
        long_sum,
        double_sum,
        all_long,
        min,
        max,
        long_min: unzigzag(get(input)?),
        long_max: unzigzag(get(input)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_model::{Kind, SeriesKey};

    #[test]
    fn an_answer_comes_back_as_it_was_sent_and_damage_is_an_error() {
        let key = |h: &str| SeriesKey::new("cpu", vec![("host".to_owned(), h.to_owned())]);
        let stats = |n: u64, long: bool| {
            let mut double_sum = ExactSum::default();
            double_sum.add(1.5 * n as f64);
            double_sum.add(1e-300);
            Stats::from_parts(StatsParts {
                count: n,
                long_sum: -(1i128 << 70),
                double_sum,
                all_long: long,
                min: f64::NEG_INFINITY,
                max: f64::INFINITY,
                long_min: i64::MIN,
                long_max: i64::MAX,
            })
        };
        let mut group = FoldedGroup {
            tags: vec![("dc".to_owned(), "east".to_owned())],
            keys: vec![key("a"), key("b ü")],
            ..FoldedGroup::default()
        };
        group.buckets.insert(-600_000, stats(3, true));
        group.buckets.insert(1_700_000_000_000, stats(0, false));
        let answer = FoldedAnswer {
            shards: vec![1, 7],
            half: FoldedHalf {
                kinds: vec![Some(Kind::Numeric)],
                points: 42,
                groups: vec![
                    (vec![Some("east".to_owned())], group),
                    (vec![None], FoldedGroup::default()),
                ],
            },
        };
        let bytes = encode_folded(&answer);
        let back = decode_folded(&bytes).map_err(|e| e.to_string());
        assert_eq!(
            format!("{back:?}"),
            format!("{:?}", Ok::<_, String>(answer))
        );
        for cut in 0..bytes.len() {
            assert!(decode_folded(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
