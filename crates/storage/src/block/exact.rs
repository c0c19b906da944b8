//! A numeric chunk's [`ExactStats`] as its index entry carries them
//! (`docs/format/block.md`, "Exact statistics").

use super::ExactStats;
use crate::record::{get_varint, put_varint, take, unzigzag, zigzag};
use sundial_codec::Num;
use sundial_model::ExactSum;

const TAG_LONG: u8 = 0;
const TAG_DOUBLE: u8 = 1;
const TAG_FALSE: u8 = 2;
const TAG_TRUE: u8 = 3;

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
        match (v, all_long) {
            (Num::Long(i), true) => put_varint(out, zigzag(i)),
            (Num::Long(i), false) => {
                out.push(TAG_LONG);
                put_varint(out, zigzag(i));
            }
            (Num::Double(d), _) => {
                out.push(TAG_DOUBLE);
                out.extend_from_slice(&d.to_le_bytes());
            }
            (Num::Bool(b), _) => out.push(if b { TAG_TRUE } else { TAG_FALSE }),
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
        Ok(match take(input, 1)?[0] {
            TAG_LONG => Num::Long(unzigzag(get_varint(input)?)),
            TAG_DOUBLE => {
                let mut b = [0u8; 8];
                b.copy_from_slice(take(input, 8)?);
                Num::Double(f64::from_le_bytes(b))
            }
            TAG_FALSE => Num::Bool(false),
            TAG_TRUE => Num::Bool(true),
            t => return Err(format!("value tag {t}")),
        })
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
