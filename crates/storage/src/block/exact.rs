//! A numeric chunk's [`ExactStats`] as its index entry carries them
//! (`docs/format/block.md`, "Exact statistics").

use super::ExactStats;
use crate::record::{get_varint, put_varint, take, unzigzag, zigzag};
use sundial_codec::Num;
use sundial_codec::value::{get_tagged_value, put_value};
use sundial_model::{ExactSum, FieldValue};

/// The statistics of a chunk's values, in time order; `None` for none.
pub(crate) fn of_values(values: impl IntoIterator<Item = Num>) -> Option<ExactStats> {
    let mut values = values.into_iter();
    let first = values.next()?;
    let mut s = ExactStats {
        long_sum: 0,
        double_sum: ExactSum::default(),
        long_min: i64::MAX,
        long_max: i64::MIN,
        first,
        last: first,
    };
    for v in std::iter::once(first).chain(values) {
        match v {
            Num::Long(i) => {
                s.long_sum += i128::from(i);
                s.long_min = s.long_min.min(i);
                s.long_max = s.long_max.max(i);
            }
            Num::Double(d) => s.double_sum.add(d),
            Num::Bool(b) => s.double_sum.add(f64::from(u8::from(b))),
        }
        s.last = v;
    }
    Some(s)
}

/// Appends `s`; an all-Long chunk's takes only varints.
pub(crate) fn encode(s: &ExactStats, all_long: bool, out: &mut Vec<u8>) {
    put_varint(out, s.long_sum as u64);
    put_varint(out, zigzag((s.long_sum >> 64) as i64));
    if all_long {
        for v in [s.long_min, s.long_max] {
            put_varint(out, zigzag(v));
        }
    } else {
        s.double_sum.encode(out);
    }
    for v in [s.first, s.last] {
        match v {
            Num::Long(i) if all_long => put_varint(out, zigzag(i)),
            Num::Long(i) => put_value(out, &FieldValue::Long(i)),
            Num::Double(d) => put_value(out, &FieldValue::Double(d)),
            Num::Bool(b) => put_value(out, &FieldValue::Bool(b)),
        }
    }
}

/// Reads what [`encode`] wrote.
pub(crate) fn decode(input: &mut &[u8], all_long: bool) -> Result<ExactStats, String> {
    let lo = get_varint(input)?;
    let hi = unzigzag(get_varint(input)?);
    let long_sum = i128::from(hi) << 64 | i128::from(lo);
    let (long_min, long_max, double_sum) = if all_long {
        let min = unzigzag(get_varint(input)?);
        (min, unzigzag(get_varint(input)?), ExactSum::default())
    } else {
        let sum = ExactSum::decode(input).ok_or("bad exact sum")?;
        (i64::MAX, i64::MIN, sum)
    };
    let num = |input: &mut &[u8]| -> Result<Num, String> {
        if all_long {
            return Ok(Num::Long(unzigzag(get_varint(input)?)));
        }
        let tag = take(input, 1)?[0];
        match get_tagged_value(tag, input).map_err(|e| e.to_string())? {
            FieldValue::Long(i) => Ok(Num::Long(i)),
            FieldValue::Double(d) => Ok(Num::Double(d)),
            FieldValue::Bool(b) => Ok(Num::Bool(b)),
            FieldValue::String(_) | FieldValue::Bytes(_) => {
                Err("text in numeric statistics".into())
            }
        }
    };
    let first = num(input)?;
    let last = num(input)?;
    Ok(ExactStats {
        long_sum,
        double_sum,
        long_min,
        long_max,
        first,
        last,
    })
}
