use super::*;
use crate::{decode_timestamps, encode_timestamps_into};
use proptest::prelude::*;

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        any::<i64>().prop_map(Num::Long),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Num::Double),
        (-100_000i64..100_000).prop_map(|c| Num::Double(c as f64 / 100.0)),
        any::<bool>().prop_map(Num::Bool),
    ]
}

fn same(a: &[Num], b: &[Num]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Num::Double(p), Num::Double(q)) => p.to_bits() == q.to_bits(),
            _ => x == y,
        })
}

proptest! {
    #[test]
    fn numbers_round_trip(nums in proptest::collection::vec(num(), 0..300)) {
        let mut out = Vec::new();
        encode_numbers_into(&nums, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut input = out.as_slice();
        let back = decode_numbers(&mut input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same(&nums, &back));
        prop_assert!(input.is_empty());
    }

    #[test]
    fn timestamps_round_trip(ts in proptest::collection::vec(any::<i64>(), 0..300)) {
        let mut out = Vec::new();
        encode_timestamps_into(&ts, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = decode_timestamps(&mut out.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ts, back);
    }

    #[test]
    fn truncated_input_is_an_error(nums in proptest::collection::vec(num(), 1..100), cut in any::<prop::sample::Index>()) {
        let mut out = Vec::new();
        encode_numbers_into(&nums, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cut = cut.index(out.len());
        prop_assert!(decode_numbers(&mut &out[..cut]).is_err());
    }

    #[test]
    fn damaged_input_never_panics(nums in proptest::collection::vec(num(), 1..100), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut out = Vec::new();
        encode_numbers_into(&nums, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let i = at.index(out.len());
        out[i] = byte;
        let _ = decode_numbers(&mut out.as_slice());
    }
}

#[test]
fn agent_decimals_are_stored_as_scaled_integers() -> Result<()> {
    // A 2-decimal random walk, as monitoring agents send: the decimal path
    // must beat raw doubles by a wide margin.
    let mut v = 50.0f64;
    let nums: Vec<Num> = (0..8640)
        .map(|i| {
            v = ((v + ((i * 7919 % 13) as f64 - 6.0) / 10.0) * 100.0).round() / 100.0;
            Num::Double(v)
        })
        .collect();
    let doubles: Vec<f64> = nums
        .iter()
        .filter_map(|n| {
            if let Num::Double(d) = n {
                Some(*d)
            } else {
                None
            }
        })
        .collect();
    assert!(decimal_scale(&doubles).is_some_and(|s| s <= 2));
    let mut out = Vec::new();
    encode_numbers_into(&nums, &mut out)?;
    assert!(
        out.len() < nums.len() * 3,
        "{} bytes for {} values",
        out.len(),
        nums.len()
    );
    assert!(same(&nums, &decode_numbers(&mut out.as_slice())?));
    Ok(())
}

#[test]
fn regular_timestamps_cost_almost_nothing() -> Result<()> {
    let ts: Vec<i64> = (0..8640).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let mut out = Vec::new();
    encode_timestamps_into(&ts, &mut out)?;
    assert!(out.len() < 100, "{} bytes", out.len());
    Ok(())
}

#[test]
fn negative_zero_and_huge_values_stay_exact() -> Result<()> {
    let nums = [
        Num::Double(-0.0),
        Num::Double(1e300),
        Num::Double(0.1),
        Num::Long(i64::MIN),
    ];
    let mut out = Vec::new();
    encode_numbers_into(&nums, &mut out)?;
    assert!(same(&nums, &decode_numbers(&mut out.as_slice())?));
    Ok(())
}

#[test]
fn fast_effort_decodes_to_the_same_values() -> crate::Result<()> {
    let ts: Vec<i64> = (0..5000).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let mut walk = 50.0f64;
    let nums: Vec<Num> = (0..5000)
        .map(|i| {
            walk += f64::from((i * 7919) % 200 - 100) / 100.0;
            Num::Double((walk * 100.0).round() / 100.0)
        })
        .collect();
    for effort in [crate::Effort::Fast, crate::Effort::Small] {
        let mut out = Vec::new();
        crate::encode_timestamps_with(&ts, effort, &mut out)?;
        crate::encode_numbers_with(&nums, effort, &mut out)?;
        let mut input = out.as_slice();
        assert_eq!(decode_timestamps(&mut input)?, ts);
        assert_eq!(decode_numbers(&mut input)?, nums);
        assert!(input.is_empty());
    }
    Ok(())
}

#[test]
fn regular_timestamps_take_a_few_bytes_and_others_stay_exact() -> crate::Result<()> {
    let regular: Vec<i64> = (0..8640).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let mut out = Vec::new();
    encode_timestamps_into(&regular, &mut out)?;
    assert!(out.len() <= 12, "{} bytes", out.len());
    assert_eq!(decode_timestamps(&mut out.as_slice())?, regular);
    // One late sample: the pco stream, exact.
    let mut jitter = regular.clone();
    jitter[100] += 1;
    for ts in [jitter, vec![5], vec![i64::MIN, 0, i64::MAX], vec![3, 2, 1]] {
        let mut out = Vec::new();
        encode_timestamps_into(&ts, &mut out)?;
        assert_eq!(decode_timestamps(&mut out.as_slice())?, ts);
    }
    // A damaged count in regular form is an error, not an allocation.
    let mut bad = Vec::new();
    crate::varint::put(&mut bad, u64::MAX >> 1);
    bad.extend([0, 2, 2]);
    assert!(decode_timestamps(&mut bad.as_slice()).is_err());
    Ok(())
}
