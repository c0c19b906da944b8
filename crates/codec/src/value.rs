//! The byte form of one stored value, shared by the WAL's batch records
//! (docs/format/wal.md) and the cluster's frames (docs/cluster.md): a tag
//! byte, then 0 Long (zigzag varint), 1 Double (8 bytes LE), 2 false,
//! 3 true, 4 String and 5 Bytes (each a varint length and the bytes).

use crate::varint::{get, get_usize, put, take, unzigzag, zigzag};
use crate::{Error, Result};
use sundial_model::FieldValue;

const LONG: u8 = 0;
const DOUBLE: u8 = 1;
const FALSE: u8 = 2;
const TRUE: u8 = 3;
const STRING: u8 = 4;
const BYTES: u8 = 5;

/// Tags at or above this one are free for formats that embed values.
pub const FIRST_FREE_TAG: u8 = 6;

pub fn put_value(out: &mut Vec<u8>, v: &FieldValue) {
    match v {
        FieldValue::Long(i) => {
            out.push(LONG);
            put(out, zigzag(*i));
        }
        FieldValue::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_le_bytes());
        }
        FieldValue::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        FieldValue::String(s) => {
            out.push(STRING);
            put(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        FieldValue::Bytes(b) => {
            out.push(BYTES);
            put(out, b.len() as u64);
            out.extend_from_slice(b);
        }
    }
}

/// Reads a value whose tag byte was already read.
pub fn get_tagged_value(tag: u8, input: &mut &[u8]) -> Result<FieldValue> {
    Ok(match tag {
        LONG => FieldValue::Long(unzigzag(get(input)?)),
        DOUBLE => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(take(input, 8)?);
            FieldValue::Double(f64::from_le_bytes(bytes))
        }
        FALSE => FieldValue::Bool(false),
        TRUE => FieldValue::Bool(true),
        STRING => {
            let len = get_usize(input)?;
            let bytes = take(input, len)?;
            FieldValue::String(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| Error::Invalid("string is not UTF-8".into()))?,
            )
        }
        BYTES => {
            let len = get_usize(input)?;
            FieldValue::Bytes(take(input, len)?.to_vec())
        }
        t => return Err(Error::Invalid(format!("unknown value tag {t}"))),
    })
}

pub fn get_value(input: &mut &[u8]) -> Result<FieldValue> {
    let tag = take(input, 1)?[0];
    get_tagged_value(tag, input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_tags_are_errors() -> Result<()> {
        let values = [
            FieldValue::Long(i64::MIN),
            FieldValue::Long(-1),
            FieldValue::Double(-0.0),
            FieldValue::Double(f64::NAN),
            FieldValue::Bool(true),
            FieldValue::Bool(false),
            FieldValue::String("ü".into()),
            FieldValue::Bytes(vec![0, 255]),
        ];
        let mut out = Vec::new();
        for v in &values {
            put_value(&mut out, v);
        }
        let mut input = out.as_slice();
        for v in &values {
            let got = get_value(&mut input)?;
            assert_eq!(format!("{got:?}"), format!("{v:?}"));
        }
        assert!(input.is_empty());
        assert!(get_value(&mut [FIRST_FREE_TAG].as_slice()).is_err());
        assert!(get_value(&mut [DOUBLE, 1, 2].as_slice()).is_err());
        Ok(())
    }
}
