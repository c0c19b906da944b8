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

fn batch() -> impl Strategy<Value = Batch> {
    let series = proptest::collection::vec(
        (
            any::<u32>(),
            "[a-z.]{1,12}",
            proptest::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{1,6}", 1..4),
        ),
        0..4,
    );
    // The encoder numbers distinct field names, so generate distinct ones.
    let fields = proptest::collection::btree_set("[a-z]{1,6}", 1..4);
    (series, fields).prop_flat_map(|(series, fields)| {
        let fields: Vec<String> = fields.into_iter().collect();
        let nf = fields.len() as u32;
        let points = proptest::collection::vec((any::<u32>(), 0..nf, any::<i64>(), value()), 0..20);
        points.prop_map(move |points| Batch {
            new_series: series
                .iter()
                .map(|(id, m, tags)| {
                    (
                        SeriesId(*id),
                        SeriesKey::new(m.clone(), tags.clone().into_iter().collect()),
                    )
                })
                .collect(),
            fields: fields.clone(),
            points: points
                .into_iter()
                .map(|(s, f, t, v)| BatchPoint {
                    series: SeriesId(s),
                    field: f,
                    timestamp: t,
                    value: v,
                })
                .collect(),
        })
    })
}

fn encode(b: &Batch) -> Vec<u8> {
    let mut enc = BatchEncoder::default();
    for (id, key) in &b.new_series {
        enc.define_series(*id, key);
    }
    for f in &b.fields {
        enc.field(f);
    }
    for p in &b.points {
        enc.point(p.series, p.field, p.timestamp, &p.value);
    }
    let mut out = Vec::new();
    enc.finish_into(&mut out);
    out
}

/// Equality with doubles compared bit for bit (NaN != NaN otherwise).
fn same(a: &Batch, b: &Batch) -> bool {
    a.new_series == b.new_series
        && a.fields == b.fields
        && a.points.len() == b.points.len()
        && a.points.iter().zip(&b.points).all(|(x, y)| {
            (x.series, x.field, x.timestamp) == (y.series, y.field, y.timestamp)
                && match (&x.value, &y.value) {
                    (FieldValue::Double(p), FieldValue::Double(q)) => p.to_bits() == q.to_bits(),
                    (p, q) => p == q,
                }
        })
}

proptest! {
    #[test]
    fn batch_round_trips(b in batch()) {
        let back = decode_batch(&encode(&b)).map_err(TestCaseError::fail)?;
        prop_assert!(same(&b, &back));
    }

    #[test]
    fn truncated_batch_is_an_error(b in batch(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&b);
        let cut = cut.index(bytes.len());
        prop_assert!(decode_batch(&bytes[..cut]).is_err());
    }

    #[test]
    fn flipped_frame_bit_is_detected(b in batch(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut framed = Vec::new();
        frame_into(&encode(&b), &mut framed);
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
