use super::*;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<i64>().prop_map(FieldValue::Long),
        any::<f64>().prop_map(FieldValue::Double),
        any::<bool>().prop_map(FieldValue::Bool),
        ".{0,40}".prop_map(FieldValue::String),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(FieldValue::Bytes),
    ]
}

fn point() -> impl Strategy<Value = RecordPoint> {
    (
        "[a-z.]{1,12}",
        proptest::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{1,6}", 1..4),
        "[a-z]{1,6}",
        any::<i64>(),
        value(),
    )
        .prop_map(|(m, tags, field, ts, v)| RecordPoint {
            series: SeriesKey::new(m, tags.into_iter().collect()),
            field,
            timestamp: ts,
            value: v,
        })
}

fn encode(points: &[RecordPoint]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch_into(
        points
            .iter()
            .map(|p| (&p.series, p.field.as_str(), p.timestamp, &p.value)),
        points.len(),
        &mut out,
    );
    out
}

fn same(a: &[RecordPoint], b: &[RecordPoint]) -> bool {
    // NaN != NaN, so compare doubles bit for bit.
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.series == y.series
                && x.field == y.field
                && x.timestamp == y.timestamp
                && match (&x.value, &y.value) {
                    (FieldValue::Double(p), FieldValue::Double(q)) => p.to_bits() == q.to_bits(),
                    (p, q) => p == q,
                }
        })
}

proptest! {
    #[test]
    fn batch_round_trips(points in proptest::collection::vec(point(), 0..20)) {
        let bytes = encode(&points);
        let back = decode_batch(&bytes).map_err(TestCaseError::fail)?;
        prop_assert!(same(&points, &back));
    }

    #[test]
    fn truncated_batch_is_an_error(points in proptest::collection::vec(point(), 1..8), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&points);
        let cut = cut.index(bytes.len());
        prop_assert!(decode_batch(&bytes[..cut]).is_err());
    }

    #[test]
    fn flipped_frame_byte_is_detected(points in proptest::collection::vec(point(), 1..8), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut framed = Vec::new();
        frame_into(&encode(&points), &mut framed);
        let i = at.index(framed.len());
        framed[i] ^= 1 << bit;
        // CRC-32 detects every single-bit error; a longer length reads as truncated.
        prop_assert!(read_frame(&framed).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_batch(&bytes);
        let _ = read_frame(&bytes);
    }
}

#[test]
fn zigzag_round_trips_extremes() {
    for v in [0, 1, -1, i64::MIN, i64::MAX] {
        assert_eq!(unzigzag(zigzag(v)), v);
    }
}
