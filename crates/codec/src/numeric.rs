//! Numeric columns that may mix Longs, Doubles and Booleans (OpenTSDB
//! keeps each point's own representation within a numeric metric).
//!
//! Layout: `varint n`, `u8 kinds` (0 Long, 1 Double, 2 Bool: the one kind of
//! every value; 3: mixed, followed by a u32 stream of per-value kinds),
//! then the i64 stream of Longs and Booleans, then the Doubles: `u8 mode`
//! (0: decimal with `u8 scale`, an i64 stream of value × 10^scale; 1: an
//! f64 stream of the raw values). Streams: [`crate::stream`].

use crate::{Effort, Error, Result, stream, varint};
use sundial_model::FieldValue;

/// One number as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Long(i64),
    Double(f64),
    Bool(bool),
}

impl Num {
    /// The number of a stored value; `None` for text and bytes.
    pub fn of(v: &FieldValue) -> Option<Self> {
        match v {
            FieldValue::Long(i) => Some(Self::Long(*i)),
            FieldValue::Double(d) => Some(Self::Double(*d)),
            FieldValue::Bool(b) => Some(Self::Bool(*b)),
            FieldValue::String(_) | FieldValue::Bytes(_) => None,
        }
    }

    /// The number as a double, booleans as 1/0 (as [`FieldValue::as_f64`]).
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Long(i) => i as f64,
            Self::Double(d) => d,
            Self::Bool(b) => f64::from(u8::from(b)),
        }
    }
}

impl From<Num> for FieldValue {
    fn from(n: Num) -> Self {
        match n {
            Num::Long(i) => Self::Long(i),
            Num::Double(d) => Self::Double(d),
            Num::Bool(b) => Self::Bool(b),
        }
    }
}

const LONG: u8 = 0;
const DOUBLE: u8 = 1;
const BOOL: u8 = 2;
const MIXED: u8 = 3;
const MAX_SCALE: u32 = 9;
/// Above 2^53 a scaled integer no longer maps to one double.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

fn kind(n: &Num) -> u8 {
    match n {
        Num::Long(_) => LONG,
        Num::Double(_) => DOUBLE,
        Num::Bool(_) => BOOL,
    }
}

/// Appends the encoding of `nums`.
pub fn encode_numbers_into(nums: &[Num], out: &mut Vec<u8>) -> Result<()> {
    encode_numbers_with(nums, Effort::Small, out)
}

/// [`encode_numbers_into`] at a chosen effort.
pub fn encode_numbers_with(nums: &[Num], effort: Effort, out: &mut Vec<u8>) -> Result<()> {
    varint::put(out, nums.len() as u64);
    let Some(first) = nums.first() else {
        return Ok(());
    };
    let uniform = nums.iter().all(|n| kind(n) == kind(first));
    if uniform {
        out.push(kind(first));
    } else {
        out.push(MIXED);
        let kinds: Vec<u32> = nums.iter().map(|n| u32::from(kind(n))).collect();
        stream::encode(&kinds, effort, out)?;
    }
    let ints: Vec<i64> = nums
        .iter()
        .filter_map(|n| match n {
            Num::Long(v) => Some(*v),
            Num::Bool(b) => Some(i64::from(*b)),
            Num::Double(_) => None,
        })
        .collect();
    varint::put(out, ints.len() as u64);
    if !ints.is_empty() {
        stream::encode(&ints, effort, out)?;
    }
    let doubles: Vec<f64> = nums
        .iter()
        .filter_map(|n| match n {
            Num::Double(v) => Some(*v),
            _ => None,
        })
        .collect();
    varint::put(out, doubles.len() as u64);
    if doubles.is_empty() {
        return Ok(());
    }
    match decimal_scale(&doubles) {
        Some(scale) => {
            out.push(0);
            out.push(scale as u8);
            let factor = 10f64.powi(scale as i32);
            let scaled: Vec<i64> = doubles
                .iter()
                .map(|v| (v * factor).round() as i64)
                .collect();
            stream::encode(&scaled, effort, out)
        }
        None => {
            out.push(1);
            stream::encode(&doubles, effort, out)
        }
    }
}

/// The smallest scale at which every value is an exact decimal, if any.
fn decimal_scale(values: &[f64]) -> Option<u32> {
    let mut scale = 0;
    for v in values {
        while !exact_at(*v, scale) {
            scale += 1;
            if scale > MAX_SCALE {
                return None;
            }
        }
    }
    // A larger scale chosen later must still hold for earlier values.
    values.iter().all(|v| exact_at(*v, scale)).then_some(scale)
}

fn exact_at(v: f64, scale: u32) -> bool {
    let factor = 10f64.powi(scale as i32);
    let m = (v * factor).round();
    m.abs() <= MAX_EXACT && ((m as i64) as f64 / factor).to_bits() == v.to_bits()
}

/// A decoded numeric column, as compact as its content allows: readers
/// that aggregate loop over plain `i64` / `f64` slices.
#[derive(Debug, Clone, PartialEq)]
pub enum NumColumn {
    Longs(Vec<i64>),
    Doubles(Vec<f64>),
    /// Booleans, or a mix of kinds.
    Mixed(Vec<Num>),
}

impl NumColumn {
    pub fn len(&self) -> usize {
        match self {
            Self::Longs(v) => v.len(),
            Self::Doubles(v) => v.len(),
            Self::Mixed(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `i`.
    pub fn get(&self, i: usize) -> Option<Num> {
        match self {
            Self::Longs(v) => v.get(i).map(|x| Num::Long(*x)),
            Self::Doubles(v) => v.get(i).map(|x| Num::Double(*x)),
            Self::Mixed(v) => v.get(i).copied(),
        }
    }

    /// Every value as a [`Num`].
    pub fn into_nums(self) -> Vec<Num> {
        match self {
            Self::Longs(v) => v.into_iter().map(Num::Long).collect(),
            Self::Doubles(v) => v.into_iter().map(Num::Double).collect(),
            Self::Mixed(v) => v,
        }
    }
}

/// Reads a numeric column; `input` advances past it.
pub fn decode_numbers(input: &mut &[u8]) -> Result<Vec<Num>> {
    decode_number_column(input).map(NumColumn::into_nums)
}

/// Reads a numeric column without a per-value enum when it has one kind.
pub fn decode_number_column(input: &mut &[u8]) -> Result<NumColumn> {
    let n = varint::get_usize(input)?;
    if n == 0 {
        return Ok(NumColumn::Longs(Vec::new()));
    }
    let mode = varint::take(input, 1)?[0];
    let kinds: Option<Vec<u8>> = match mode {
        LONG | DOUBLE | BOOL => None,
        MIXED => Some(
            stream::decode::<u32>(input, n)?
                .into_iter()
                .map(|k| u8::try_from(k).unwrap_or(u8::MAX))
                .collect(),
        ),
        other => return Err(Error::Invalid(format!("unknown kind {other}"))),
    };
    let n_ints = varint::get_usize(input)?;
    let ints: Vec<i64> = if n_ints == 0 {
        Vec::new()
    } else {
        stream::decode(input, n_ints)?
    };
    let n_doubles = varint::get_usize(input)?;
    let doubles: Vec<f64> = if n_doubles == 0 {
        Vec::new()
    } else {
        match varint::take(input, 1)?[0] {
            0 => {
                let scale = u32::from(varint::take(input, 1)?[0]);
                if scale > MAX_SCALE {
                    return Err(Error::Invalid(format!("decimal scale {scale}")));
                }
                let factor = 10f64.powi(scale as i32);
                // Collected in place: i64 and f64 have one size.
                stream::decode::<i64>(input, n_doubles)?
                    .into_iter()
                    .map(|m| m as f64 / factor)
                    .collect()
            }
            1 => stream::decode(input, n_doubles)?,
            other => return Err(Error::Invalid(format!("unknown double mode {other}"))),
        }
    };
    let disagree = || Error::Invalid("kind stream and values disagree".into());
    let Some(kinds) = kinds else {
        return match mode {
            LONG if ints.len() == n && doubles.is_empty() => Ok(NumColumn::Longs(ints)),
            DOUBLE if doubles.len() == n && ints.is_empty() => Ok(NumColumn::Doubles(doubles)),
            BOOL if ints.len() == n && doubles.is_empty() => Ok(NumColumn::Mixed(
                ints.into_iter().map(|v| Num::Bool(v != 0)).collect(),
            )),
            _ => Err(disagree()),
        };
    };
    let (mut ints, mut doubles) = (ints.into_iter(), doubles.into_iter());
    let mut out = Vec::with_capacity(n);
    for k in kinds {
        let num = match k {
            LONG => ints.next().map(Num::Long),
            BOOL => ints.next().map(|v| Num::Bool(v != 0)),
            DOUBLE => doubles.next().map(Num::Double),
            other => return Err(Error::Invalid(format!("unknown kind {other}"))),
        };
        out.push(num.ok_or_else(disagree)?);
    }
    if ints.next().is_some() || doubles.next().is_some() {
        return Err(Error::Invalid(
            "values left over after the kind stream".into(),
        ));
    }
    Ok(NumColumn::Mixed(out))
}

#[cfg(test)]
mod tests;
