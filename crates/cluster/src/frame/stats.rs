//! The answer to a querier's request for SQL's statistics per group and
//! bucket (`stats::grouped_by`) over an owner's shards: what a
//! `GROUP BY <tags>, time_bucket(..)` with count, sum, min, max or avg
//! needs, so one statistics set per field, group and bucket crosses the
//! network rather than one row per point (docs/cluster.md, "SQL").
//!
//! ```text
//! "SDQ2" | shard count, then each shard | points folded | field count |
//! group count, then each: group-by values (as in "SDG2"), bucket count,
//!   then each: time gap, one statistics set per field (as in "SDG2")
//! ```

use super::folded::{get_stats, get_values, put_stats, put_values};
use super::{FrameError, count, get_shards, invalid, put_shards};
use std::collections::BTreeMap;
use sundial_codec::varint::{get, put, unzigzag, zigzag};
use sundial_query::stats::{GroupedStats, Stats};

const MAGIC: &[u8; 4] = b"SDQ2";

/// The shards answered for, the points read, and the statistics.
#[derive(Debug, Default, PartialEq)]
pub struct StatsAnswer {
    pub shards: Vec<u32>,
    pub points: u64,
    pub fields: usize,
    pub groups: GroupedStats,
}

pub(crate) fn encode_stats(answer: &StatsAnswer) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_shards(&mut out, &answer.shards);
    put(&mut out, answer.points);
    put(&mut out, answer.fields as u64);
    put(&mut out, answer.groups.len() as u64);
    for (values, buckets) in &answer.groups {
        put_values(&mut out, values);
        put(&mut out, buckets.len() as u64);
        let mut last = 0i64;
        for (ts, per_field) in buckets {
            put(&mut out, zigzag(ts.wrapping_sub(last)));
            last = *ts;
            for stats in per_field.iter().take(answer.fields) {
                put_stats(&mut out, &stats.parts());
            }
            // A cell always holds one set per field.
            for _ in per_field.len()..answer.fields {
                put_stats(&mut out, &Stats::default().parts());
            }
        }
    }
    out
}

/// Decodes an answer; damaged or hostile bytes are an error, never a
/// panic or an allocation beyond the bytes received.
pub(crate) fn decode_stats(bytes: &[u8]) -> Result<StatsAnswer, FrameError> {
    let mut input = bytes.strip_prefix(MAGIC).ok_or(FrameError::Magic)?;
    let shards = get_shards(&mut input)?;
    let points = get(&mut input)?;
    let fields = count(&mut input)?;
    let mut groups = GroupedStats::new();
    for _ in 0..count(&mut input)? {
        let values = get_values(&mut input)?;
        let mut buckets = BTreeMap::new();
        let mut last = 0i64;
        for _ in 0..count(&mut input)? {
            last = last.wrapping_add(unzigzag(get(&mut input)?));
            let per_field = (0..fields)
                .map(|_| get_stats(&mut input).map(Stats::from_parts))
                .collect::<Result<Vec<_>, _>>()?;
            buckets.insert(last, per_field);
        }
        groups.insert(values, buckets);
    }
    if !input.is_empty() {
        return Err(invalid("bytes after the last group").into());
    }
    Ok(StatsAnswer {
        shards,
        points,
        fields,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_model::ExactSum;
    use sundial_query::stats::StatsParts;

    #[test]
    fn an_answer_comes_back_as_it_was_sent_and_damage_is_an_error() {
        let one = Stats::from_parts(StatsParts {
            count: 1,
            long_sum: 7,
            double_sum: ExactSum::default(),
            all_long: true,
            min: 7.0,
            max: 7.0,
            long_min: 7,
            long_max: 7,
        });
        let mut double_sum = ExactSum::default();
        double_sum.add(-2.5);
        let two = Stats::from_parts(StatsParts {
            count: 2,
            long_sum: 0,
            double_sum,
            all_long: false,
            min: -3.0,
            max: 0.5,
            long_min: i64::MAX,
            long_max: i64::MIN,
        });
        let mut groups = GroupedStats::new();
        groups.insert(
            vec![Some("east".to_owned()), None],
            BTreeMap::from([
                (-60_000, vec![one.clone(), two.clone()]),
                (0, vec![two, one]),
            ]),
        );
        groups.insert(
            vec![None, None],
            BTreeMap::from([(120_000, vec![Stats::default(); 2])]),
        );
        let answer = StatsAnswer {
            shards: vec![3, 9],
            points: 4,
            fields: 2,
            groups,
        };
        let bytes = encode_stats(&answer);
        assert_eq!(decode_stats(&bytes).ok(), Some(answer));
        for cut in 0..bytes.len() {
            assert!(decode_stats(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
