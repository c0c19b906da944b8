use super::writer::Column;
use super::*;
use crate::head::SeriesId;
use sundial_model::FieldValue;

/// Writes `cols` as block `wal_below` in `dir` and opens it.
fn written(dir: &std::path::Path, wal_below: u64, cols: &[Column<'_>]) -> crate::Result<Block> {
    let path = write(dir, wal_below, cols)?;
    Block::open(&path, BlockId { wal_below, seq: 0 })
}

#[test]
fn block_round_trips_and_reads_narrow_ranges() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    let a: Vec<(i64, FieldValue)> = (0..1000)
        .map(|i| (1_000 + i * 10, FieldValue::Double(i as f64 / 100.0)))
        .collect();
    let b: Vec<(i64, FieldValue)> = (0..5)
        .map(|i| (i, FieldValue::String(format!("s{i}"))))
        .collect();
    let mixed: Vec<(i64, FieldValue)> = vec![
        (1, FieldValue::Long(5)),
        (2, FieldValue::Bool(true)),
        (3, FieldValue::Double(1.5)),
    ];
    let cols = [
        Column {
            series: SeriesId(0),
            field: "value",
            points: (&a).into(),
            grids: &[],
        },
        Column {
            series: SeriesId(0),
            field: "other",
            points: (&mixed).into(),
            grids: &[],
        },
        Column {
            series: SeriesId(3),
            field: "value",
            points: (&b).into(),
            grids: &[],
        },
    ];
    let block = written(dir.path(), 7, &cols)?;
    let all = block.read(SeriesId(0), "value", i64::MIN, i64::MAX)?;
    assert_eq!(all, a);
    let narrow = block.read(SeriesId(0), "value", 2_000, 2_050)?;
    let expected: Vec<_> = a
        .iter()
        .filter(|(t, _)| (2_000..=2_050).contains(t))
        .cloned()
        .collect();
    assert_eq!(narrow, expected);
    assert_eq!(block.read(SeriesId(0), "other", 0, 10)?, mixed);
    assert_eq!(block.read(SeriesId(3), "value", 0, 10)?, b);
    assert!(block.read(SeriesId(9), "value", 0, 10)?.is_empty());
    let stats = block
        .chunks(SeriesId(0), "value")
        .first()
        .and_then(|c| block.stats(c));
    let sum: f64 = (0..1000).map(|i| i as f64 / 100.0).sum();
    assert_eq!(stats.map(|s| (s.min, s.max)), Some((0.0, 9.99)));
    assert!(stats.is_some_and(|s| (s.sum - sum).abs() < 1e-9));
    Ok(())
}

#[test]
fn damaged_blocks_are_reported_with_their_path() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    let a: Vec<(i64, FieldValue)> = (0..100).map(|i| (i, FieldValue::Long(i))).collect();
    let path = write(
        dir.path(),
        1,
        &[Column {
            series: SeriesId(0),
            field: "value",
            points: (&a).into(),
            grids: &[],
        }],
    )?;
    let clean = std::fs::read(&path).map_err(|e| crate::Error::io("read", &path, e))?;
    for at in [
        3usize,
        12,
        30,
        clean.len() / 2,
        clean.len() - 20,
        clean.len() - 3,
    ] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).map_err(|e| crate::Error::io("write", &path, e))?;
        let result = Block::open(
            &path,
            super::BlockId {
                wal_below: 1,
                seq: 0,
            },
        )
        .and_then(|b| b.read(SeriesId(0), "value", 0, 100));
        match result {
            Err(crate::Error::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("flip at {at}: expected corruption, got {other:?}"),
        }
    }
    std::fs::write(&path, &clean[..clean.len() - 1])
        .map_err(|e| crate::Error::io("write", &path, e))?;
    assert!(matches!(
        Block::open(
            &path,
            super::BlockId {
                wal_below: 1,
                seq: 0
            }
        ),
        Err(crate::Error::Corrupt { .. })
    ));
    Ok(())
}

#[test]
fn long_columns_are_cut_by_count_and_at_a_week_edge() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    // 40 000 points a second apart, the 30 000th on Monday 2023-11-20 00:00 UTC.
    let monday = 1_700_438_400_000;
    let pts: Vec<(i64, FieldValue)> = (0..40_000)
        .map(|i| (monday + (i - 30_000) * 1000, FieldValue::Long(i)))
        .collect();
    let col = Column {
        series: SeriesId(1),
        field: "value",
        points: (&pts).into(),
        grids: &[],
    };
    let block = written(dir.path(), 1, &[col])?;
    let counts: Vec<u64> = block
        .chunks(SeriesId(1), "value")
        .iter()
        .map(|c| u64::from(c.count))
        .collect();
    let max = writer::MAX_CHUNK_POINTS as u64;
    // Before Monday: 30 000 points in chunks of at most `max`; after it, 10 000.
    assert_eq!(counts, vec![max, 30_000 - max, 10_000]);
    let monday_chunk = &block.chunks(SeriesId(1), "value")[2];
    assert_eq!(monday_chunk.min_ts, monday);
    assert_eq!(block.read(SeriesId(1), "value", i64::MIN, i64::MAX)?, pts);
    Ok(())
}

/// Exact statistics as the points say them, for comparing with the index.
fn expected_exact(points: &[(i64, FieldValue)]) -> ExactStats {
    let num = |v: &FieldValue| sundial_codec::Num::of(v).expect("numeric test data");
    let mut s = ExactStats {
        long_sum: 0,
        double_sum: sundial_model::ExactSum::default(),
        long_min: i64::MAX,
        long_max: i64::MIN,
        first: num(&points[0].1),
        last: num(&points[points.len() - 1].1),
    };
    for (_, v) in points {
        match v {
            FieldValue::Long(i) => s.long_sum += i128::from(*i),
            FieldValue::Double(d) => s.double_sum.add(*d),
            FieldValue::Bool(b) => s.double_sum.add(f64::from(u8::from(*b))),
            _ => {}
        }
    }
    if points.iter().all(|(_, v)| matches!(v, FieldValue::Long(_))) {
        s.long_min = points
            .iter()
            .filter_map(|(_, v)| v.as_i64())
            .min()
            .unwrap_or(0);
        s.long_max = points
            .iter()
            .filter_map(|(_, v)| v.as_i64())
            .max()
            .unwrap_or(0);
    }
    s
}

#[test]
fn chunks_carry_exact_statistics_and_older_blocks_read_without() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    // Longs past 2^53 (their doubles are not exact), tenths, a mixture.
    let big: Vec<(i64, FieldValue)> = (0..300)
        .map(|i| (i, FieldValue::Long(i64::MAX - 1000 + i * (i % 3))))
        .collect();
    let tenths: Vec<(i64, FieldValue)> = (0..300)
        .map(|i| (i, FieldValue::Double(i as f64 * 0.1 - 7.0)))
        .collect();
    let mixed: Vec<(i64, FieldValue)> = vec![
        (1, FieldValue::Bool(true)),
        (2, FieldValue::Long(-5)),
        (3, FieldValue::Double(1e-300)),
        (4, FieldValue::Double(2.5e300)),
        (5, FieldValue::Long(7)),
    ];
    let text: Vec<(i64, FieldValue)> = vec![(1, FieldValue::String("a".into()))];
    let cols = [
        ("big", &big),
        ("tenths", &tenths),
        ("mixed", &mixed),
        ("text", &text),
    ];
    let columns: Vec<Column<'_>> = cols
        .iter()
        .map(|(field, points)| Column {
            series: SeriesId(1),
            field,
            points: (*points).into(),
            grids: &[],
        })
        .collect();
    let id = BlockId {
        wal_below: 3,
        seq: 0,
    };
    let current = Block::open(&write(dir.path(), 3, &columns)?, id)?;
    for (field, points) in &cols[..3] {
        let chunks = current.chunks(SeriesId(1), field);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            current.exact_stats(&chunks[0]),
            Some(expected_exact(points)),
            "{field}"
        );
    }
    let text_chunk = &current.chunks(SeriesId(1), "text")[0];
    assert_eq!(current.exact_stats(text_chunk), None);

    // An SDBLK004 block (pco streams only) reads as the current format.
    let v4_dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    let v4_path = write(v4_dir.path(), 3, &columns)?;
    let mut bytes = std::fs::read(&v4_path).map_err(|e| crate::Error::io("read", &v4_path, e))?;
    bytes[..8].copy_from_slice(MAGIC_V4);
    std::fs::write(&v4_path, &bytes).map_err(|e| crate::Error::io("write", &v4_path, e))?;
    let v4 = Block::open(&v4_path, id)?;
    for (field, points) in &cols {
        assert_eq!(v4.read(SeriesId(1), field, i64::MIN, i64::MAX)?, **points);
    }

    let old_dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    let old = Block::open(&writer::write_version_3(old_dir.path(), 3, &columns)?, id)?;
    for (field, points) in &cols {
        let chunk = &old.chunks(SeriesId(1), field)[0];
        assert_eq!(old.exact_stats(chunk), None);
        assert_eq!(old.read(SeriesId(1), field, i64::MIN, i64::MAX)?, **points);
    }
    Ok(())
}

/// Chunks of a few points keep no statistics in memory (reads decode
/// them); larger ones keep the summary and the exact statistics.
#[test]
fn only_chunks_past_a_few_points_keep_statistics() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    let columns: Vec<Vec<(i64, FieldValue)>> = (1..=8)
        .map(|n| (0..n).map(|i| (i, FieldValue::Long(i * 3 - 5))).collect())
        .collect();
    let cols: Vec<Column> = columns
        .iter()
        .enumerate()
        .map(|(i, points)| Column {
            series: SeriesId(i as u32),
            field: "value",
            points: points.into(),
            grids: &[],
        })
        .collect();
    let block = written(dir.path(), 9, &cols)?;
    for (i, points) in columns.iter().enumerate() {
        let id = SeriesId(i as u32);
        assert_eq!(&block.read(id, "value", i64::MIN, i64::MAX)?, points);
        let chunk = &block.chunks(id, "value")[0];
        let longs: Vec<i64> = points
            .iter()
            .filter_map(|(_, v)| match v {
                FieldValue::Long(v) => Some(*v),
                _ => None,
            })
            .collect();
        let stats = block.stats(chunk);
        let exact = block.exact_stats(chunk);
        if points.len() <= 4 {
            assert!(
                stats.is_none() && exact.is_none(),
                "{} points",
                points.len()
            );
            continue;
        }
        let min = longs.iter().min().copied().unwrap_or_default();
        let max = longs.iter().max().copied().unwrap_or_default();
        let sum: i64 = longs.iter().sum();
        assert_eq!(
            stats.map(|s| (s.min, s.max, s.sum)),
            Some((min as f64, max as f64, sum as f64))
        );
        assert_eq!(
            exact.map(|e| (e.long_min, e.long_max, e.long_sum)),
            Some((min, max, i128::from(sum)))
        );
    }
    Ok(())
}

#[test]
fn an_index_compressed_in_several_spills_reads_whole() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    // Enough columns that the directory is compressed in several parts
    // (each entry of a numeric chunk takes tens of bytes).
    let n = 60_000u32;
    let points: Vec<Vec<(i64, FieldValue)>> = (0..n)
        .map(|i| {
            let i = i64::from(i);
            (0..6)
                .map(|t| (t * 10, FieldValue::Long(i * 7 + t)))
                .collect()
        })
        .collect();
    let fields = ["b", "a"];
    let cols: Vec<Column<'_>> = points
        .iter()
        .enumerate()
        .map(|(i, p)| Column {
            series: SeriesId(i as u32 / 2),
            field: fields[i % 2],
            points: p.into(),
            grids: &[],
        })
        .collect();
    let block = written(dir.path(), 1, &cols)?;
    assert_eq!(block.columns().count(), n as usize);
    for (i, p) in points.iter().enumerate().step_by(997) {
        let read = block.read(SeriesId(i as u32 / 2), fields[i % 2], i64::MIN, i64::MAX)?;
        assert_eq!(&read, p, "column {i}");
        let stats = block.chunks(SeriesId(i as u32 / 2), fields[i % 2]);
        assert_eq!(stats.len(), 1);
    }
    Ok(())
}

#[test]
fn a_field_name_longer_than_the_index_window_reads_back() -> crate::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", "", e))?;
    // Past the 1 MiB window the index is read through; distinct bytes so
    // zstd cannot shrink the name to nothing.
    let long: String = (0..1_500_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    let points = vec![(5, FieldValue::Long(1)), (6, FieldValue::Long(2))];
    let cols = [
        Column {
            series: SeriesId(1),
            field: "short",
            points: (&points).into(),
            grids: &[],
        },
        Column {
            series: SeriesId(2),
            field: &long,
            points: (&points).into(),
            grids: &[],
        },
    ];
    let block = written(dir.path(), 1, &cols)?;
    assert_eq!(block.read(SeriesId(2), &long, i64::MIN, i64::MAX)?, points);
    assert_eq!(
        block.read(SeriesId(1), "short", i64::MIN, i64::MAX)?,
        points
    );
    Ok(())
}
