use super::*;
use crate::fuzz::facts;
use sundial_model::FieldValue;

fn key(metric: &str, tags: &[(&str, &str)]) -> Arc<SeriesKey> {
    Arc::new(SeriesKey::new(
        metric,
        tags.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    ))
}

fn point(series: &Arc<SeriesKey>, field: &str, timestamp: i64, value: ValueInput) -> WritePoint {
    WritePoint {
        series: series.clone(),
        field: field.into(),
        timestamp,
        value,
    }
}

/// Every value form a write can carry, on two series and three fields.
pub(crate) fn sample() -> ShardBatch {
    let cpu = key("cpu", &[("host", "a"), ("dc", "x")]);
    let wind = key("wind", &[("sensor", "s1 ü")]);
    let typed = |v| ValueInput::Typed(v);
    let text = |t: &str, number| ValueInput::Text {
        text: t.to_owned(),
        number,
    };
    let values = vec![
        typed(FieldValue::Long(i64::MIN)),
        typed(FieldValue::Long(42)),
        typed(FieldValue::Double(-0.0)),
        typed(FieldValue::Double(f64::MAX)),
        typed(FieldValue::Bool(true)),
        typed(FieldValue::Bool(false)),
        typed(FieldValue::String(String::new())),
        typed(FieldValue::Bytes(vec![0, 255, 7])),
        text("42", NumberText::Number(FieldValue::Long(42))),
        text("1.5e3", NumberText::Number(FieldValue::Double(1500.0))),
        text("NaN", NumberText::Invalid),
        text("High CPU Load", NumberText::NotNumeric),
    ];
    let points = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let (series, field) = match i % 3 {
                0 => (&cpu, "value"),
                1 => (&wind, "speed"),
                _ => (&wind, "direction"),
            };
            point(series, field, 1_500_000_000_000 + i as i64 * 10 - 60, v)
        })
        .collect();
    ShardBatch {
        // Two groups (the second one point), then points that stand
        // alone; two vetoed points.
        rules: BatchRules {
            groups: vec![3, 1],
            vetoed: [
                false, true, false, false, false, false, false, false, false, false, true,
            ]
            .to_vec(),
        },
        database: "metrics db".to_owned(),
        shard: 63,
        epoch: 7,
        id: u128::MAX - 12_345,
        points,
    }
}

#[test]
fn a_batch_comes_back_as_it_was_sent() -> Result<(), FrameError> {
    let batch = sample();
    let bytes = encode(&batch);
    let back = decode(&bytes)?;
    assert_eq!(facts(&back), facts(&batch));
    // A series is named once: the points share one key.
    assert!(Arc::ptr_eq(&back.points[0].series, &back.points[3].series));
    let empty = ShardBatch {
        rules: Default::default(),
        points: Vec::new(),
        ..batch
    };
    assert_eq!(facts(&decode(&encode(&empty))?), facts(&empty));
    Ok(())
}

#[test]
fn a_point_costs_a_few_bytes_beyond_its_value() {
    // 1000 points of 10 series: keys are sent once, each point is its
    // numbers and value.
    let keys: Vec<_> = (0..10)
        .map(|h| key("cpu.usage_user", &[("hostname", &format!("host_{h}"))]))
        .collect();
    let points = (0..1000)
        .map(|i| {
            let v = ValueInput::Typed(FieldValue::Double(f64::from(i) / 7.0));
            point(
                &keys[i as usize % 10],
                "value",
                1_700_000_000_000 + i64::from(i) * 10_000,
                v,
            )
        })
        .collect();
    let batch = ShardBatch {
        rules: Default::default(),
        database: "default".to_owned(),
        shard: 1,
        epoch: 1,
        id: 1,
        points,
    };
    let bytes = encode(&batch).len();
    // Series and field numbers 2 bytes, timestamp up to 6, a double 9.
    assert!(bytes < 1000 * 17 + 10 * 40 + 64, "{bytes} bytes");
}

#[test]
fn damage_is_an_error_never_a_panic() {
    let bytes = encode(&sample());
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for i in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x10;
        assert!(decode(&flipped).is_err(), "bit flip at {i}");
    }
    assert!(matches!(decode(b"SDF0"), Err(FrameError::Magic)));
}

#[test]
fn a_body_that_lies_is_refused_even_with_a_good_checksum() {
    // Checksummed garbage: counts beyond the input, numbers out of range.
    let seal = |body: &[u8]| {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out
    };
    let mut head = Vec::new();
    put_str(&mut head, "db");
    put(&mut head, 1);
    put(&mut head, 2);
    head.extend_from_slice(&0u128.to_le_bytes());
    let mut huge_count = head.clone();
    put(&mut huge_count, u64::MAX >> 1);
    assert!(decode(&seal(&huge_count)).is_err());
    let mut bad_series = head.clone();
    put(&mut bad_series, 0); // no series
    put(&mut bad_series, 0); // no fields
    put(&mut bad_series, 1); // one point
    for n in [5u64, 0, 0, 0] {
        put(&mut bad_series, n); // series 5, field 0, time 0, tag LONG
    }
    put(&mut bad_series, 0);
    assert!(matches!(
        decode(&seal(&bad_series)),
        Err(FrameError::Damaged(_))
    ));
}
