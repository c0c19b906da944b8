use super::*;
use num_bigint::BigInt;
use proptest::prelude::*;

/// `x * 2^1074` exactly (x finite).
fn scaled(x: f64) -> BigInt {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = (bits & ((1 << 52) - 1)) as i64;
    let (m, shift) = if exp == 0 {
        (frac, 0)
    } else {
        (frac | 1 << 52, exp - 1)
    };
    let m = BigInt::from(m) << shift as usize;
    if x.is_sign_negative() { -m } else { m }
}

/// Whether `v` is the double nearest `exact` (scaled by 2^1074), ties to
/// even, checked against both neighbours.
fn is_nearest(v: f64, exact: &BigInt) -> bool {
    if v.is_infinite() {
        // Infinite only past the largest double plus half an ulp of it.
        let edge = scaled(f64::MAX) + (BigInt::from(1) << (970 + 1074));
        return if v > 0.0 {
            *exact >= edge
        } else {
            *exact <= -edge
        };
    }
    let d = (scaled(v) - exact).magnitude().clone();
    for n in [v.next_up(), v.next_down()] {
        if n.is_infinite() {
            continue;
        }
        let dn = (scaled(n) - exact).magnitude().clone();
        if dn < d || (dn == d && v.to_bits() & 1 == 1) {
            return false;
        }
    }
    true
}

fn any_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Every finite bit pattern.
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |x| x.is_finite()),
        // Monitoring-like values, where the narrow form is used.
        (-1_000_000i64..1_000_000).prop_map(|k| k as f64 * 0.1),
        (-60i32..60, any::<i32>()).prop_map(|(e, m)| f64::from(m) * 2f64.powi(e)),
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_sum_is_the_nearest_double_in_any_order_and_split(
        xs in proptest::collection::vec(any_double(), 0..60),
        ints in proptest::collection::vec(any::<i64>(), 0..4),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut exact = BigInt::from(0);
        let mut whole = ExactSum::default();
        for x in &xs {
            exact += scaled(*x);
            whole.add(*x);
        }
        for i in &ints {
            exact += BigInt::from(*i) << 1074usize;
            whole.add_integer(i128::from(*i));
        }
        let v = whole.value();
        prop_assert!(is_nearest(v, &exact), "{v:e} is not the nearest double");

        // Added as one slice: the same number.
        let mut sliced = ExactSum::default();
        let (min, max) = sliced.add_slice(&xs);
        let fold = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
        prop_assert_eq!((min.to_bits(), max.to_bits()), (fold.0.to_bits(), fold.1.to_bits()));
        for i in &ints {
            sliced.add_integer(i128::from(*i));
        }
        prop_assert_eq!(&sliced, &whole);

        // Reversed, split in two and merged, through parts: the same.
        let at = if xs.is_empty() { 0 } else { cut.index(xs.len()) };
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        for x in xs[..at].iter().rev() {
            a.add(*x);
        }
        for i in &ints {
            b.add_integer(i128::from(*i));
        }
        for x in xs[at..].iter().rev() {
            b.add(*x);
        }
        let mut bytes = Vec::new();
        b.encode(&mut bytes);
        bytes.push(7);
        let mut input = bytes.as_slice();
        let b = ExactSum::decode(&mut input).expect("an encoded sum");
        prop_assert_eq!(input, &[7u8][..]);
        a.merge(&b);
        prop_assert_eq!(a.value().to_bits(), v.to_bits());
        // One number, one encoding, whichever form each sum reached.
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.encode(&mut x);
        whole.encode(&mut y);
        prop_assert_eq!(x, y);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Slices of values within a few powers of two of each other, with
    /// small integers and zeros (the integer fast path) and, in some, one
    /// value far below or above the rest (the general loop): the nearest
    /// double to the exact sum, the same number as one by one, and the
    /// extremes.
    #[test]
    fn slices_of_like_values_sum_exactly(
        scale in -1070i32..960,
        xs in proptest::collection::vec(prop_oneof![
            8 => -1000.0f64..1000.0,
            1 => (-50i32..50).prop_map(f64::from),
            1 => Just(0.0),
        ], 0..300),
        outlier in proptest::option::of((any::<proptest::sample::Index>(), -1074i32..1023)),
    ) {
        let mut xs: Vec<f64> = xs.iter().map(|x| x * 2f64.powi(scale.clamp(-1000, 900) / 8)).collect();
        if let (Some((at, e)), false) = (outlier, xs.is_empty()) {
            let i = at.index(xs.len());
            xs[i] = 3.0 * 2f64.powi(e.clamp(-1022, 1020));
        }
        let mut exact = BigInt::from(0);
        let mut one_by_one = ExactSum::default();
        for x in &xs {
            exact += scaled(*x);
            one_by_one.add(*x);
        }
        let mut sliced = ExactSum::default();
        let (min, max) = sliced.add_slice(&xs);
        prop_assert!(is_nearest(sliced.value(), &exact));
        prop_assert_eq!(&sliced, &one_by_one);
        let fold = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
        prop_assert_eq!((min, max), fold);
        let mut skipping = ExactSum::default();
        prop_assert_eq!(skipping.add_slice_skipping_nan(&xs), 0);
        prop_assert_eq!(&skipping, &one_by_one);
    }
}

#[test]
fn cancellation_and_specials() {
    let mut s = ExactSum::default();
    for x in [1e308, 1e308, -1e308, 1e-300, -1e308] {
        s.add(x);
    }
    assert_eq!(s.value(), 1e-300);
    let mut t = ExactSum::default();
    for x in [0.1, 0.2, -0.3] {
        t.add(x);
    }
    // Left to right in doubles this is 2^-54; the three doubles' true
    // sum is 2^-55 less.
    let mut exact = BigInt::from(0);
    for x in [0.1, 0.2, -0.3] {
        exact += scaled(x);
    }
    assert!(is_nearest(t.value(), &exact));
    assert_ne!(t.value(), 0.1 + 0.2 - 0.3);
    let mut inf = ExactSum::default();
    inf.add(f64::MAX);
    inf.add(f64::MAX);
    assert_eq!(inf.value(), f64::INFINITY);
    let mut bytes = Vec::new();
    inf.encode(&mut bytes);
    assert_eq!(
        ExactSum::decode(&mut bytes.as_slice()).map(|s| s.value()),
        Some(f64::INFINITY)
    );
    // The sum is exact, not infinite, until rounded: -inf wins.
    inf.add(f64::NEG_INFINITY);
    assert_eq!(inf.value(), f64::NEG_INFINITY);
    inf.add(f64::INFINITY);
    assert!(inf.value().is_nan());
    assert!(ExactSum::default().is_zero());
    assert_eq!(ExactSum::default().value(), 0.0);
}

#[test]
fn damaged_encodings_are_refused() {
    let refused = |bytes: &[u8]| ExactSum::decode(&mut &bytes[..]).is_none();
    // A place past the largest double's, a 127-bit narrow sum.
    assert!(refused(&[0, 0x88, 0x13, 1, 2]));
    assert!(refused(&[&[0u8, 0, 0, 16][..], &[0xff; 16]].concat()));
    // Wide windows past the end, none at all, cut short.
    assert!(refused(&[1, 69, 1, 1, 0, 0, 0]));
    assert!(refused(&[1, 3, 0]));
    assert!(refused(&[1, 0, 2, 1, 0, 0, 0]));
    // Unknown flags, and nothing.
    assert!(refused(&[0x80, 0, 0, 0]));
    assert!(refused(&[0x04, 0, 0, 0]));
    assert!(refused(&[]));
}

#[test]
fn ties_round_to_even_in_both_forms() {
    let two53 = 9007199254740992.0;
    for widen in [false, true] {
        for (extra, expect) in [(1.0, two53), (3.0, two53 + 4.0), (-1.0, two53 - 1.0)] {
            let mut s = ExactSum::default();
            // Bits 600 places apart: only the wide form holds both.
            let tiny = if widen { 1e-200 } else { 0.0 };
            s.add(tiny);
            s.add(two53);
            s.add(extra);
            s.add(-tiny);
            assert_eq!(s.value(), expect, "2^53 + {extra}, wide: {widen}");
            let mut minus = ExactSum::default();
            minus.add(-tiny);
            minus.add(-two53);
            minus.add(-extra);
            minus.add(tiny);
            assert_eq!(minus.value(), -expect);
        }
    }
}

#[test]
fn a_wide_sum_spanning_five_windows_encodes_as_narrow() {
    // 99 bits from 2^-52 to 2^46: five 32-bit windows of the wide form,
    // which the slice reaches (its total is not reduced) and one by one
    // additions do not.
    let (x, n) = (-8.326035416672539e-10, 70_368_744_177_665);
    let mut one_by_one = ExactSum::default();
    one_by_one.add(x);
    one_by_one.add_integer(n);
    let mut sliced = ExactSum::default();
    sliced.add_slice(&[x]);
    sliced.add_integer(n);
    assert!(sliced.wide.is_some() && one_by_one.wide.is_none());
    assert_eq!(sliced, one_by_one);
}

#[test]
fn slices_with_infinities_and_nans_sum_as_one_by_one() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    for xs in [
        vec![inf],
        vec![inf, 1.0],
        vec![1.0, inf],
        vec![f64::MAX, inf, -inf],
        vec![-inf, 2.5],
        vec![nan, 1.0],
        vec![1.0, nan, 3.0],
    ] {
        let mut one_by_one = ExactSum::default();
        xs.iter().for_each(|x| one_by_one.add(*x));
        let mut sliced = ExactSum::default();
        sliced.add_slice(&xs);
        assert_eq!(sliced, one_by_one, "{xs:?}");
        let mut skipping = ExactSum::default();
        let nans = skipping.add_slice_skipping_nan(&xs);
        let mut numbers = ExactSum::default();
        xs.iter()
            .filter(|x| !x.is_nan())
            .for_each(|x| numbers.add(*x));
        assert_eq!(skipping, numbers, "{xs:?}");
        assert_eq!(nans, xs.iter().filter(|x| x.is_nan()).count());
        assert!(!skipping.holds_nan());
    }
}

#[test]
fn long_slices_and_zeros_sum_as_one_by_one() {
    // 2^23 values at the top of the one-pass range of the first (1.0):
    // more than an i128 holds in one pass, so they add in pieces.
    let high = f64::from_bits((1023 + 20) << 52 | ((1 << 52) - 1));
    let mut xs = vec![1.0];
    xs.resize(1 + (1 << 23), high);
    // Zeros anywhere, first included, keep the one-pass range.
    for zeros in [vec![0.0], vec![-0.0, 3.5, 0.0]] {
        let xs: Vec<f64> = zeros.iter().chain(&xs).copied().collect();
        let mut one_by_one = ExactSum::default();
        xs.iter().for_each(|x| one_by_one.add(*x));
        let mut sliced = ExactSum::default();
        assert_eq!(sliced.add_slice(&xs), (0.0, high));
        assert_eq!(sliced, one_by_one);
    }
}
